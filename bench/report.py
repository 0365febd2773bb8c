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

The markdown (stdout, or the --md file) gives the machine, the settings, one table per workload
(ops/s, p50/p99 latency, errors, the proxy's CPU per request, the load generator's CPU), the
zdm / zdm-proxy ratios and the memory per client connection. The chart plots ops/s against
concurrency: one panel per workload, one line per path. Needs matplotlib: `pip install -e '.[bench]'`.

Results of a --tls-sandbox run give a "TLS" section instead: the same tables over every path
(TLS paths beside their plaintext counterparts), zdm-tls / zdm-proxy-tls, and the cost of TLS
for each path (chart: docs/proxy-tls-throughput.png). Results with --feature paths give a
"Feature costs" section: each feature against zdm's defaults, and a chart of the proxy's CPU
per request (docs/proxy-feature-costs.png). Results of a --compression none,lz4 run give a
"Compression" section: each proxy's CPU per request with and without it, zdm against zdm-proxy
with the same compression, and a chart of both (docs/proxy-compression.png).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from proxy import added_latency, feature_costs, ratios, tls_costs

DOCS = Path(__file__).resolve().parent.parent / "docs"
PATHS = ("direct", "zdm", "zdm-proxy")


def num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def pct(share: float | None) -> str:
    return num(None if share is None else share * 100, ".3f") + "%"


def workloads(results: dict) -> list[str]:
    return list(dict.fromkeys(c["workload"] for c in results["cells"]))


def paths(results: dict) -> list[str]:
    return list(dict.fromkeys(c["path"] for c in results["cells"]))


def has_tls(results: dict) -> bool:
    return any(p.endswith("-tls") for p in paths(results))


def compressions(results: dict) -> list[str]:
    """The compressions other than none a run measured (its paths ``PATH+NAME``)."""
    return list(dict.fromkeys(p.rpartition("+")[2] for p in paths(results) if "+" in p))


def has_features(results: dict) -> bool:
    return any(c.get("feature") for c in results["cells"])


def machine_md(results: dict) -> list[str]:
    m, s = results["machine"], results["settings"]
    lines = [f"- Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
             f"Python {m['python']} (uvloop: {'yes' if m['uvloop'] else 'no'}), {m['go']}"
             + (f", {m['openssl']} (Python's)." if has_tls(results) and "openssl" in m else ".")]
    if "zdm_proxy" in m:
        lines.append(f"- zdm-proxy: `{m['zdm_proxy']}`.")
    workers = f", zdm `workers: {s['workers']}`" if s.get("workers") else ""
    if s.get("write_coalesce_us") is not None:  # gocql's default is 200 µs, and none over TLS
        workers += (", gocql's write coalescing off" if s["write_coalesce_us"] == 0 else
                    f", gocql's write coalescing {s['write_coalesce_us']} µs")
    if compressions(results):
        workers += (f"; every path also with the load generator's frames {' and '.join(compressions(results))}-"
                    "compressed (`PATH+NAME`), the proxies' legs to the clusters compressed as the clients'")
    if s.get("rounds", 1) > 1:
        workers += f"; each figure the median of {s['rounds']} rounds, every path measured in turn in each round, each round beginning with another path"
    lines.append("- Paths: `direct` goes straight to origin (so its writes land on origin only); `zdm` and "
                 "`zdm-proxy` write to both clusters and read from origin.")
    if has_tls(results):
        lines.append("- TLS paths (`-tls`) run against a `zdm sandbox up --tls` pair, every connection TLS: "
                     "the load generator to the node or proxy (verifying its certificate and name), and "
                     "each proxy to both clusters (zdm: `proxy.tls` and each cluster's `tls`; zdm-proxy: "
                     "`ZDM_PROXY_TLS_*`, `ZDM_ORIGIN_TLS_*`, `ZDM_TARGET_TLS_*`; the same certificates). "
                     "The plaintext paths run against the plaintext sandbox in the same run.")
    if has_features(results):
        lines.append("- Feature paths (`zdm KEY=VALUE`) are zdm instances with that one setting under "
                     "`proxy:`, measured in every cell beside `zdm` with the defaults.")
    lines.append(f"- Settings: protocol v{s['protocol']}, {s['seconds']:g} s measured per cell after "
                 f"{s['warmup']:g} s of warm-up, {s['rows']:,} rows, load generator with "
                 f"{s['conns']} connections{workers}.")
    return lines


def cells_md(results: dict) -> list[str]:
    lines = []
    loads = any("load" in c for c in results["cells"])  # runs before the load was recorded have none
    for workload in workloads(results):
        lines += ["", f"**{workload}**", "",
                  "| in flight | path | ops/s | p50 ms | p99 ms | errors | proxy CPU µs/request | loadgen cores |"
                  + (" load (1 min) |" if loads else ""),
                  "|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if loads else "")]
        for c in results["cells"]:
            if c["workload"] == workload:
                load = f" {c['load'][0]:.1f}-{c['load'][1]:.1f} |" if loads and "load" in c else (" - |" if loads else "")
                lines.append(f"| {c['conc']} | {c['path']} | {c['ops_s']:,.0f} | {c['p50_ms']:.2f} | "
                             f"{c['p99_ms']:.2f} | {c['errors']} | {num(c['proxy_cpu_us_per_req'], '.1f')} | "
                             f"{c['cpu_cores']:.2f} |{load}")
    return lines


def ratios_md(results: dict, path: str = "zdm", other: str = "zdm-proxy") -> list[str]:
    rows = []
    for zdm, ops, cpu in ratios(results["cells"], path, other):
        rows.append(f"| {zdm['workload']} | {zdm['conc']} | {ops:.2f} | {num(cpu, '.2f')} | "
                    f"{pct(zdm.get('unprepared_share'))} |")
    if not rows:
        return []
    return ["", f"{path} / {other} (ops/s above 1: zdm is faster; CPU/request below 1: zdm uses less), "
                "and the share of zdm's EXECUTEs that a worker answered UNPREPARED because the "
                "statement had been prepared through another worker:", "",
            "| workload | in flight | ops/s | CPU/request | EXECUTEs answered UNPREPARED |",
            "|---|---:|---:|---:|---:|", *rows]


def added_latency_md(results: dict) -> list[str]:
    rows = [f"| {mine['path']} | {mine['workload']} | {mine['conc']} | {base['p50_ms']:.2f} | {z50:+.2f} | "
            f"{p50:+.2f} | {base['p99_ms']:.2f} | {z99:+.2f} | {p99:+.2f} | {mine['ops_s'] / theirs['ops_s']:.2f} |"
            for mine, theirs, base, z50, z99, p50, p99 in added_latency(results["cells"])]
    if not rows:
        return []
    return ["", ("What a request pays for the proxy: each proxy's p50 and p99 minus the direct path's "
                 "in the same run, in ms (plaintext against `direct`, TLS against `direct-tls`):"), "",
            ("| path | workload | in flight | direct p50 | zdm added | zdm-proxy added | direct p99 | "
             "zdm added | zdm-proxy added | ops/s zdm / zdm-proxy |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows]


def tls_costs_md(results: dict) -> list[str]:
    rows = [f"| {plain} | {t['workload']} | {t['conc']} | {p['ops_s']:,.0f} | {t['ops_s']:,.0f} | {ops:.2f} | "
            f"{num(p['proxy_cpu_us_per_req'], '.1f')} | {num(t['proxy_cpu_us_per_req'], '.1f')} | {num(cpu, '.2f')} |"
            for plain, p, t, ops, cpu in tls_costs(results["cells"])]
    if not rows:
        return []
    return ["", ("The cost of TLS: each path with TLS against itself in plaintext (ops/s below 1: TLS is "
                 "slower; CPU/request above 1: TLS costs the proxy more):"), "",
            ("| path | workload | in flight | ops/s plaintext | ops/s TLS | TLS / plaintext | "
             "CPU µs/request plaintext | TLS | TLS / plaintext |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows]


def feature_costs_md(results: dict) -> list[str]:
    rows = []
    for mine, base, ops, delta in feature_costs(results["cells"]):
        b = base["proxy_cpu_us_per_req"]
        same = f"{pct(mine.get('same_timeuuid_share'))} ({pct(base.get('same_timeuuid_share'))})" \
            if mine["workload"] == "write-now" else ""
        rows.append(f"| `{mine['feature']}` | {mine['workload']} | {mine['conc']} | {base['ops_s']:,.0f} | "
                    f"{mine['ops_s']:,.0f} | {ops:.2f} | {num(b, '.1f')} | "
                    f"{num(mine['proxy_cpu_us_per_req'], '.1f')} | {num(delta, '+.1f')} | "
                    f"{num(None if delta is None or not b else delta / b * 100, '+.0f')}% | {same} |")
    if not rows:
        return []
    return ["", ("Each feature against zdm with the defaults, in the same cells (ops/s ratio below 1: the "
                 "feature is slower; a positive CPU difference: it costs the proxy more per request). "
                 "For write-now, the share of the rows a path wrote last whose timeuuid is the same on "
                 "origin and target (in brackets: zdm with the defaults):"), "",
            ("| feature | workload | in flight | ops/s defaults | ops/s feature | ratio | "
             "CPU µs/request defaults | feature | difference | % | same timeuuid |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *rows]


def compression_md(results: dict) -> list[str]:
    """Each proxy's CPU per request with compression against without, and zdm against zdm-proxy
    with the same compression."""
    lines = []
    for name in compressions(results):
        rows = []
        by_key = {(c["workload"], c["conc"], c["path"]): c for c in results["cells"]}
        for (workload, conc, path), plain in by_key.items():
            if path not in ("zdm", "zdm-proxy"):
                continue
            packed = by_key.get((workload, conc, f"{path}+{name}"))
            if packed is None or not plain["proxy_cpu_us_per_req"] or not packed["proxy_cpu_us_per_req"]:
                continue
            rows.append(f"| {workload} | {conc} | {path} | {plain['proxy_cpu_us_per_req']:.1f} | "
                        f"{packed['proxy_cpu_us_per_req']:.1f} | "
                        f"{packed['proxy_cpu_us_per_req'] / plain['proxy_cpu_us_per_req']:.2f} |")
        if rows:
            lines += ["", f"The proxies' CPU per request, uncompressed and {name}:", "",
                      f"| workload | in flight | proxy | µs/request | µs/request, {name} | ratio |",
                      "|---|---:|---|---:|---:|---:|", *rows]
        lines += ratios_md(results, f"zdm+{name}", f"zdm-proxy+{name}")
    return lines


def compression_chart(results: dict, png: Path) -> None:
    """The proxies' CPU per request against concurrency, uncompressed (dashed) and compressed."""
    lines = [(path, {"label": path, "color": f"C{n + 1}", "linestyle": "--" if path == base else "-"})
             for n, base in enumerate(("zdm", "zdm-proxy"))
             for path in (base, *(f"{base}+{c}" for c in compressions(results)))]
    cpu_chart(results, png, "proxy CPU per request: uncompressed dashed, compressed solid", lines)


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


def panels(results: dict, title: str):
    names = workloads(results)
    fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
    m = results["machine"]
    fig.suptitle(f"{title}, {m['cores']} cores, protocol v{results['settings']['protocol']}")
    return fig, zip(fig.subplots(1, len(names), squeeze=False)[0], names)


def concurrency_axis(ax, results: dict) -> None:
    concs = sorted({c["conc"] for c in results["cells"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(concs, [str(c) for c in concs])
    ax.set_xlabel("requests in flight")
    ax.grid(alpha=0.3)


def chart(results: dict, png: Path) -> None:
    """ops/s against concurrency; with TLS paths, each plaintext path dashed in its TLS path's colour."""
    tls = has_tls(results)
    fig, axes = panels(results, "proxy throughput" + (", TLS solid, plaintext dashed" if tls else ""))
    shown = [p for p in (PATHS + tuple(f"{p}-tls" for p in PATHS) if tls else PATHS) if p in paths(results)]
    for i, (ax, workload) in enumerate(axes):
        for path in shown:
            cells = sorted((c for c in results["cells"] if c["workload"] == workload and c["path"] == path),
                           key=lambda c: c["conc"])
            if cells:
                base = path.removesuffix("-tls")
                style = {"color": f"C{PATHS.index(base)}"}
                if tls and path == base:
                    style["linestyle"] = "--"
                ax.plot([c["conc"] for c in cells], [c["ops_s"] for c in cells], marker="o", label=path, **style)
        concurrency_axis(ax, results)
        ax.set_ylim(bottom=0)
        ax.set_title(workload)
        if i == 0:
            ax.set_ylabel("ops/s")
            ax.legend(fontsize="small" if tls else None)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def cpu_chart(results: dict, png: Path, title: str, lines: list[tuple[str, dict]]) -> None:
    """The proxy's CPU per request against concurrency, one line per (path, plot style)."""
    fig, axes = panels(results, title)
    for i, (ax, workload) in enumerate(axes):
        for path, style in lines:
            cells = sorted((c for c in results["cells"] if c["workload"] == workload and c["path"] == path
                            and c["proxy_cpu_us_per_req"] is not None), key=lambda c: c["conc"])
            if cells:
                ax.plot([c["conc"] for c in cells], [c["proxy_cpu_us_per_req"] for c in cells], marker="o",
                        **style)
        concurrency_axis(ax, results)
        ax.set_ylim(bottom=0)
        ax.set_title(workload)
        if i == 0:
            ax.set_ylabel("proxy CPU µs/request")
            ax.legend(fontsize="small")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def feature_chart(results: dict, png: Path) -> None:
    """The proxy's CPU per request against concurrency, zdm's defaults and each feature."""
    shown = ["zdm", *dict.fromkeys(c["path"] for c in results["cells"] if c.get("feature"))]
    cpu_chart(results, png, "zdm's CPU per request: defaults and each feature",
              [(p, {"label": "defaults" if p == "zdm" else p.removeprefix("zdm ")}) for p in shown])


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


def scale_chart(all_results: list[dict], png: Path) -> None:
    """Marginal rows/s between the two largest sizes, one bar per tool and a panel per job; the
    machine's limits (bench/copylimit, at the largest size) as dashed lines."""
    from _common import marginal

    fig = Figure(figsize=(6.2 * len(all_results), 4.0), layout="constrained")
    axes = fig.subplots(1, len(all_results), squeeze=False)[0]
    for ax, results in zip(axes, all_results):
        rates = [m for m in marginal(results["summary"]) if m["to_rows"] == results["sizes"][-1]]
        names = [m["tool"] for m in rates]
        bars = ax.bar(range(len(rates)), [m["rows_per_s"] or 0 for m in rates],
                      color=["tab:blue" if n.startswith("zdm") else "tab:gray" for n in names])
        for bar, m in zip(bars, rates):
            label = "FAILED" if not m["rows_per_s"] else (
                f"{m['rows_per_s']:,.0f}" + ("" if m["tool"].startswith("zdm") else f"\n(zdm {m['zdm_speedup']:.1f}x)"))
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize="x-small")
        top = max(results["sizes"])
        for m, style in zip([m for m in results.get("limits", ()) if m["ok"] and m["rows"] == top
                             and m["mode"] != "scan"], ("--", ":")):
            ax.axhline(m["rows_per_s"], color="tab:red", linestyle=style, label=f"{m['tool']}: {m['rows_per_s']:,.0f}")
        ax.set_xticks(range(len(rates)), [n.replace(", writetimes and TTLs kept", "\n+ writetimes, TTLs")
                                          for n in names], fontsize="small")
        ax.set_ylabel("marginal rows/s")
        sizes = results["sizes"]
        ax.set_title(f"{JOBS[results['kind']]}, marginal from {sizes[-2]:,} to {sizes[-1]:,} rows")
        ax.grid(alpha=0.3, axis="y")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="upper right")
    m = all_results[0]["machine"]
    fig.suptitle(f"at scale: {m['cores']} cores, Cassandra {m['cassandra']}, one node each side")
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
    ap.add_argument("--png", type=Path, help="the proxy's chart (default: docs/proxy-throughput.png, "
                                             "docs/proxy-tls-throughput.png for TLS results, "
                                             "docs/proxy-feature-costs.png for feature results)")
    ap.add_argument("--copy-png", type=Path, default=DOCS / "copy-throughput.png",
                    help="the copy and validation chart (default: docs/copy-throughput.png)")
    ap.add_argument("--scale-png", type=Path, default=DOCS / "copy-scale.png",
                    help="for results at several sizes (--rows 1M,3M): the chart of marginal rows/s "
                         "(default: docs/copy-scale.png)")
    a = ap.parse_args()
    loaded = [json.loads(p.read_text()) for p in a.results]
    where = a.md.parent if a.md else DOCS
    sections = []
    for results in loaded:
        if "cells" not in results:
            continue
        if has_features(results):
            png = a.png or DOCS / "proxy-feature-costs.png"
            feature_chart(results, png)
            body = ["## Feature costs", "", *machine_md(results), *feature_costs_md(results), *cells_md(results),
                    *memory_md(results), "", f"![zdm's CPU per request, each feature]({os.path.relpath(png, where)})"]
        elif compressions(results):
            png = a.png or DOCS / "proxy-compression.png"
            compression_chart(results, png)
            body = ["## Compression", "", *machine_md(results), *compression_md(results), *ratios_md(results),
                    *cells_md(results), "", f"![proxy CPU per request, with and without compression]"
                    f"({os.path.relpath(png, where)})"]
        elif has_tls(results):
            png = a.png or DOCS / "proxy-tls-throughput.png"
            chart(results, png)
            body = ["## TLS", "", *machine_md(results), *cells_md(results),
                    *ratios_md(results, "zdm-tls", "zdm-proxy-tls"), *added_latency_md(results),
                    *tls_costs_md(results), *ratios_md(results),
                    *memory_md(results), "", f"![ops/s against concurrency, TLS and plaintext]({os.path.relpath(png, where)})"]
        else:
            png = a.png or DOCS / "proxy-throughput.png"
            chart(results, png)
            body = ["## Proxy throughput", "", *machine_md(results), *cells_md(results), *ratios_md(results),
                    *added_latency_md(results),
                    *memory_md(results), "", f"![ops/s against concurrency]({os.path.relpath(png, where)})"]
        sections.append("\n".join([*body, ""]))
    copies = [r for r in loaded if r.get("kind") in JOBS]
    scaled = [r for r in copies if len(r.get("sizes", ())) > 1]
    if scaled:
        scale_chart(scaled, a.scale_png)
        copies = [r for r in copies if r not in scaled]
    if copies:
        copy_chart(copies, a.copy_png)
        sections.append(copy_md(copies, os.path.relpath(a.copy_png, where)))
    md = "\n".join(sections)
    if a.md:
        a.md.write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
