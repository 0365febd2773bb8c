"""Docs-ready markdown and charts from bench/proxy.py's JSON results.

    python bench/proxy.py --zdm-proxy PATH --json-out proxy-results.json
    python bench/report.py proxy-results.json [--md docs/benchmarks.md] [--png docs/proxy-throughput.png]

The markdown (stdout, or the --md file) gives the machine, the settings, one table per workload
(ops/s, p50/p99 latency, errors, the proxy's CPU per request, the load generator's CPU), the
zdm / zdm-proxy ratios and the memory per client connection. The chart plots ops/s against
concurrency: one panel per workload, one line per path. Needs matplotlib: `pip install -e '.[bench]'`.

Results of a --tls-sandbox run give a "TLS" section instead: the same tables over every path
(TLS paths beside their plaintext counterparts), zdm-tls / zdm-proxy-tls, and the cost of TLS
for each path (chart: docs/proxy-tls-throughput.png). Results with --feature paths give a
"Feature costs" section: each feature against zdm's defaults, and a chart of the proxy's CPU
per request (docs/proxy-feature-costs.png).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from proxy import feature_costs, ratios, tls_costs

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


def feature_chart(results: dict, png: Path) -> None:
    """The proxy's CPU per request against concurrency, zdm's defaults and each feature."""
    fig, axes = panels(results, "zdm's CPU per request: defaults and each feature")
    shown = ["zdm", *dict.fromkeys(c["path"] for c in results["cells"] if c.get("feature"))]
    for i, (ax, workload) in enumerate(axes):
        for path in shown:
            cells = sorted((c for c in results["cells"] if c["workload"] == workload and c["path"] == path
                            and c["proxy_cpu_us_per_req"] is not None), key=lambda c: c["conc"])
            if cells:
                ax.plot([c["conc"] for c in cells], [c["proxy_cpu_us_per_req"] for c in cells], marker="o",
                        label="defaults" if path == "zdm" else path.removeprefix("zdm "))
        concurrency_axis(ax, results)
        ax.set_ylim(bottom=0)
        ax.set_title(workload)
        if i == 0:
            ax.set_ylabel("proxy CPU µs/request")
            ax.legend(fontsize="small")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="JSON written by bench/proxy.py --json-out")
    ap.add_argument("--md", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--png", type=Path, help="the chart (default: docs/proxy-throughput.png, "
                                             "docs/proxy-tls-throughput.png for TLS results, "
                                             "docs/proxy-feature-costs.png for feature results)")
    a = ap.parse_args()
    results = json.loads(a.results.read_text())
    where = a.md.parent if a.md else DOCS
    if has_features(results):
        png = a.png or DOCS / "proxy-feature-costs.png"
        feature_chart(results, png)
        body = ["## Feature costs", "", *machine_md(results), *feature_costs_md(results), *cells_md(results),
                *memory_md(results), "", f"![zdm's CPU per request, each feature]({os.path.relpath(png, where)})"]
    elif has_tls(results):
        png = a.png or DOCS / "proxy-tls-throughput.png"
        chart(results, png)
        body = ["## TLS", "", *machine_md(results), *cells_md(results), *ratios_md(results, "zdm-tls", "zdm-proxy-tls"),
                *tls_costs_md(results), *ratios_md(results), *memory_md(results), "",
                f"![ops/s against concurrency, TLS and plaintext]({os.path.relpath(png, where)})"]
    else:
        png = a.png or DOCS / "proxy-throughput.png"
        chart(results, png)
        body = ["## Proxy throughput", "", *machine_md(results), *cells_md(results), *ratios_md(results),
                *memory_md(results), "", f"![ops/s against concurrency]({os.path.relpath(png, where)})"]
    md = "\n".join([*body, ""])
    if a.md:
        a.md.write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
