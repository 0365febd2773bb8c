"""Docs-ready markdown and a throughput chart from bench/proxy.py's JSON results.

    python bench/proxy.py --zdm-proxy PATH --json-out proxy-results.json
    python bench/report.py proxy-results.json [--md docs/benchmarks.md] [--png docs/proxy-throughput.png]

The markdown (stdout, or the --md file) gives the machine, the settings, one table per workload
(ops/s, p50/p99 latency, errors, the proxy's CPU per request, the load generator's CPU), the
zdm / zdm-proxy ratios and the memory per client connection. The chart plots ops/s against
concurrency: one panel per workload, one line per path. Needs matplotlib: `pip install -e '.[bench]'`.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="JSON written by bench/proxy.py --json-out")
    ap.add_argument("--md", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--png", type=Path, default=DOCS / "proxy-throughput.png", help="the chart (default: docs/proxy-throughput.png)")
    a = ap.parse_args()
    results = json.loads(a.results.read_text())
    chart(results, a.png)
    image = os.path.relpath(a.png, a.md.parent if a.md else DOCS)
    md = "\n".join(["## Proxy throughput", "", *machine_md(results), *cells_md(results),
                    *ratios_md(results), *memory_md(results), "", f"![ops/s against concurrency]({image})", ""])
    if a.md:
        a.md.write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
