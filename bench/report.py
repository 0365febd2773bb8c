"""Docs-ready markdown and charts from the benchmarks' JSON results.

    python bench/proxy.py --zdm-proxy PATH --json-out proxy-results.json
    python bench/report.py proxy-results.json [--md docs/benchmarks.md] [--png docs/proxy-throughput.png]

    python bench/migrate.py --cdm-jar PATH --spark-submit PATH --dsbulk PATH --json-out migrate-results.json
    python bench/validate.py --cdm-jar PATH --spark-submit PATH --json-out validate-results.json
    python bench/report.py migrate-results.json validate-results.json [--md OUT.md] [--copy-png docs/copy-throughput.png]

For the proxy (bench/proxy.py): the machine, the settings, one table per workload (ops/s, p50/p99
latency, errors, the proxy's CPU per request, the load generator's CPU), the zdm / zdm-proxy
ratios and the memory per client connection; its chart plots ops/s against concurrency, one panel
per workload, one line per path. For the copy and the validation (bench/migrate.py,
bench/validate.py): the machine and versions, the exact commands, one table per job (wall time,
rows/s, how many times faster zdm is, what target holds afterwards) and a chart of rows/s per
table shape, one bar per tool. Needs matplotlib: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from proxy import ratios

DOCS = Path(__file__).resolve().parent.parent / "docs"
PATHS = ("direct", "zdm", "zdm-proxy")


def num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def workloads(results: dict) -> list[str]:
    return list(dict.fromkeys(c["workload"] for c in results["cells"]))


def machine_md(results: dict) -> list[str]:
    m, s = results["machine"], results["settings"]
    lines = [f"- Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
             f"Python {m['python']} (uvloop: {'yes' if m['uvloop'] else 'no'}), {m['go']}."]
    if "zdm_proxy" in m:
        lines.append(f"- zdm-proxy: `{m['zdm_proxy']}`.")
    workers = f", zdm `workers: {s['workers']}`" if s.get("workers") else ""
    lines.append("- Paths: `direct` goes straight to origin (so its writes land on origin only); `zdm` and "
                 "`zdm-proxy` write to both clusters and read from origin.")
    lines.append(f"- Settings: protocol v{s['protocol']}, {s['seconds']:g} s measured per cell after "
                 f"{s['warmup']:g} s of warm-up, {s['rows']:,} rows, load generator with "
                 f"{s['conns']} connections{workers}.")
    return lines


def cells_md(results: dict) -> list[str]:
    lines = []
    for workload in workloads(results):
        lines += ["", f"**{workload}**", "",
                  "| in flight | path | ops/s | p50 ms | p99 ms | errors | proxy CPU µs/request | loadgen cores |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for c in results["cells"]:
            if c["workload"] == workload:
                lines.append(f"| {c['conc']} | {c['path']} | {c['ops_s']:,.0f} | {c['p50_ms']:.2f} | "
                             f"{c['p99_ms']:.2f} | {c['errors']} | {num(c['proxy_cpu_us_per_req'], '.1f')} | "
                             f"{c['cpu_cores']:.2f} |")
    return lines


def ratios_md(results: dict) -> list[str]:
    rows = []
    for zdm, ops, cpu in ratios(results["cells"]):
        share = zdm.get("unprepared_share")
        rows.append(f"| {zdm['workload']} | {zdm['conc']} | {ops:.2f} | {num(cpu, '.2f')} | "
                    f"{num(None if share is None else share * 100, '.3f')}% |")
    if not rows:
        return []
    return ["", "zdm / zdm-proxy (ops/s above 1: zdm is faster; CPU/request below 1: zdm uses less), "
                "and the share of zdm's EXECUTEs that a worker answered UNPREPARED because the "
                "statement had been prepared through another worker:", "",
            "| workload | in flight | ops/s | CPU/request | EXECUTEs answered UNPREPARED |",
            "|---|---:|---:|---:|---:|", *rows]


def memory_md(results: dict) -> list[str]:
    if not results["memory"]:
        return []
    m0 = results["memory"][0]
    lines = ["", f"Memory per client connection: {m0['rounds']} rounds of opening {m0['connections']} "
                 "connections that complete STARTUP, holding them, and closing them; RSS summed over the "
                 "proxy's process tree:", "",
             "| path | idle MB | kB/connection held | after close MB, first round | last round | growth |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in results["memory"]:
        first, last = m["after_close_rss_kb"][0], m["after_close_rss_kb"][-1]
        lines.append(f"| {m['path']} | {m['base_rss_kb'] / 1024:.1f} | {m['kb_per_conn']:.1f} | "
                     f"{first / 1024:.1f} | {last / 1024:.1f} | {m['after_close_growth']:+.1%} |")
    return lines


def chart(results: dict, png: Path) -> None:
    names = workloads(results)
    fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
    for i, (ax, workload) in enumerate(zip(fig.subplots(1, len(names), squeeze=False)[0], names)):
        for path in PATHS:
            cells = sorted((c for c in results["cells"] if c["workload"] == workload and c["path"] == path),
                           key=lambda c: c["conc"])
            if cells:
                ax.plot([c["conc"] for c in cells], [c["ops_s"] for c in cells], marker="o", label=path)
        concs = sorted({c["conc"] for c in results["cells"]})
        ax.set_xscale("log", base=2)
        ax.set_xticks(concs, [str(c) for c in concs])
        ax.set_ylim(bottom=0)
        ax.set_title(workload)
        ax.set_xlabel("requests in flight")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("ops/s")
            ax.legend()
    m = results["machine"]
    fig.suptitle(f"proxy throughput, {m['cores']} cores, protocol v{results['settings']['protocol']}")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


# --- the copy and the validation -------------------------------------------------------------

JOBS = {"migrate": "copy", "validate": "validation"}


def _generic(text: str, results: dict, shape: str) -> str:
    """A command with the run's keyspace and table as KS and TABLE."""
    return text.replace(f"{results['keyspace']}.{shape}", "KS.TABLE").replace(
        f"-k {results['keyspace']} -t {shape}", "-k KS -t TABLE").replace(results["keyspace"], "KS")


def copy_machine_md(runs: list[dict]) -> list[str]:
    m = runs[0]["machine"]
    tools = [f"Apache Cassandra {m['cassandra']} (origin and target: one node each, on the same cores)",
             f"cassandra-driver {m['cassandra_driver']}"]
    if "cdm" in m:
        tools.append(f"Cassandra Data Migrator `{m['cdm']}` on {m['spark']} (`--master local[2]`)")
    if "dsbulk" in m:
        tools.append(m["dsbulk"])
    rows = runs[0]["rows"]
    return [f"- Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
            f"Python {m['python']}, {m['java']}.",
            f"- Versions: {'; '.join(tools)}.",
            f"- Data: {rows:,} rows per table, each row with its own writetime and every fourth with a TTL; "
            "`single` is `(k int PRIMARY KEY, v text)`, `clustered` has 10 rows per partition "
            "(`pk, ck, v text, n bigint`), `wide` 10,000 (`pk, ck, v text`).",
            "- Wall time of the whole command (Python, JVM and Spark start-up included); target's table "
            "truncated before each copy and scanned after it: its rows, and how many kept origin's "
            "writetime and TTL."]


def commands_md(results: dict) -> list[str]:
    seen, lines = set(), []
    for r in results["runs"]:
        if r["tool"] not in seen:
            seen.add(r["tool"])
            lines.append(f"    # {r['tool']}\n    {_generic(r['command'], results, r['shape'])}")
    return lines


def job_md(results: dict) -> list[str]:
    job = results["kind"]
    lines = ["", f"**{JOBS[job]}** ({results['rows']:,} rows per table; *zdm is* = zdm's rows/s over the "
                 "tool's, on the same table in the same run)", ""]
    if job == "migrate":
        lines += ["| table | tool | seconds | rows/s | zdm is | rows on target | writetimes kept | TTLs kept |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
    else:
        lines += ["| table | tool | seconds | rows/s | zdm is | result |", "|---|---|---:|---:|---:|---|"]
    by_key = {(r["shape"], r["tool"]): r for r in results["runs"]}
    for ln in results["summary"]:
        head = (f"| {ln['shape']} | {ln['tool']} | {ln['seconds']:.1f} | {ln['rows_per_s']:,.0f} | "
                f"{'-' if ln['tool'].startswith('zdm') else format(ln['zdm_speedup'], '.2f') + 'x'} |")
        if job == "migrate":
            c = ln["check"]
            lines.append(f"{head} {c['rows']:,} | {c['writetimes_kept']:,} | {c['ttls_kept']:,} |")
        else:
            counters = by_key[(ln["shape"], ln["tool"])]["counters"]
            if ln["tool"].startswith("zdm"):
                result = f"{'clean' if counters.get('clean') else 'NOT clean'}, {counters.get('differences')} differences"
            else:
                result = (f"{counters.get('valid', 0):,} valid, {counters.get('mismatch', 0)} mismatched, "
                          f"{counters.get('missing', 0)} missing")
            lines.append(f"{head} {result} |")
    if any(r["runs"] > 1 for r in results["summary"]):
        lines += ["", "Seconds are the median of each tool's runs."]
    loads = [x for r in results["runs"] for x in r.get("load", ())]
    if loads:
        lines += ["", f"The machine's 1-minute load average, before and after each command: "
                      f"{min(loads):.1f} to {max(loads):.1f} (other work shared the cores)."]
    return lines


def copy_chart(all_results: list[dict], png: Path) -> None:
    fig = Figure(figsize=(6.2 * len(all_results), 3.8), layout="constrained")
    axes = fig.subplots(1, len(all_results), squeeze=False)[0]
    for ax, results in zip(axes, all_results):
        lines = results["summary"]
        shapes = list(dict.fromkeys(ln["shape"] for ln in lines))
        tools = list(dict.fromkeys(ln["tool"] for ln in lines))
        width = 0.8 / len(tools)
        for i, tool in enumerate(tools):
            xs, ys = [], []
            for j, shape in enumerate(shapes):
                ln = next((x for x in lines if x["shape"] == shape and x["tool"] == tool), None)
                if ln:
                    xs.append(j + (i - (len(tools) - 1) / 2) * width)
                    ys.append(ln["rows_per_s"])
            bars = ax.bar(xs, ys, width, label=tool)
            if not tool.startswith("zdm"):
                for bar, shape in zip(bars, [s for s in shapes if any(
                        x["shape"] == s and x["tool"] == tool for x in lines)]):
                    ln = next(x for x in lines if x["shape"] == shape and x["tool"] == tool)
                    ax.annotate(f"{ln['zdm_speedup']:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize="x-small")
        ax.set_xticks(range(len(shapes)), shapes)
        ax.set_ylabel("rows/s")
        ax.set_title(f"{JOBS[results['kind']]}, {results['rows']:,} rows per table")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")
    m = all_results[0]["machine"]
    fig.suptitle(f"copy and validation throughput, {m['cores']} cores, Cassandra {m['cassandra']} "
                 "(above a bar: how many times faster zdm is)")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def cdm_properties_md(all_results: list[dict]) -> list[str]:
    texts = list(dict.fromkeys(r["cdm_properties"] for r in all_results if r.get("cdm_properties")))
    lines = []
    for text in texts:
        lines += ["", "with `cdm.properties`:", "", *(f"    {line}" for line in text.splitlines())]
    return lines


def copy_md(all_results: list[dict], image: str) -> str:
    commands = [c for results in all_results for c in commands_md(results)] + cdm_properties_md(all_results)
    jobs = [line for results in all_results for line in job_md(results)]
    return "\n".join(["## Copy and validation: zdm against CDM and DSBulk", "", *copy_machine_md(all_results),
                      "", "The commands (KS.TABLE is each table in turn):", "", *commands, *jobs, "",
                      f"![rows/s per table and tool]({image})", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="+",
                    help="JSON written by bench/proxy.py, or by bench/migrate.py and bench/validate.py")
    ap.add_argument("--md", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--png", type=Path, default=DOCS / "proxy-throughput.png", help="the proxy's chart (default: docs/proxy-throughput.png)")
    ap.add_argument("--copy-png", type=Path, default=DOCS / "copy-throughput.png",
                    help="the copy and validation chart (default: docs/copy-throughput.png)")
    a = ap.parse_args()
    loaded = [json.loads(p.read_text()) for p in a.results]
    base = a.md.parent if a.md else DOCS
    sections = []
    for results in loaded:
        if "cells" in results:
            chart(results, a.png)
            image = os.path.relpath(a.png, base)
            sections.append("\n".join(["## Proxy throughput", "", *machine_md(results), *cells_md(results),
                                       *ratios_md(results), *memory_md(results), "",
                                       f"![ops/s against concurrency]({image})", ""]))
    copies = [r for r in loaded if r.get("kind") in JOBS]
    if copies:
        copy_chart(copies, a.copy_png)
        sections.append(copy_md(copies, os.path.relpath(a.copy_png, base)))
    md = "\n".join(sections)
    if a.md:
        a.md.write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
