"""Docs-ready markdown and a chart from bench/proxy_cluster.py's JSON results.

    python bench/proxy_cluster.py --sandbox DIR --zdm-proxy PATH --json-out docs/proxy-cluster-results.json
    python bench/report_cluster.py docs/proxy-cluster-results.json [--md OUT.md] [--png docs/proxy-cluster.png]

The section gives the machine and the clusters, one table per workload (ops/s, p50/p99, the
proxy's CPU per request, each cluster's CPU per request, the share of origin's requests a
replica coordinated, the load around the cell), zdm against zdm-proxy and against itself
without token awareness, and a chart: ops/s and origin's CPU per request, per path, at each
concurrency.  Needs matplotlib: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from report import DOCS, num

PATHS = ("direct", "zdm", "zdm-ta-off", "zdm-proxy")


def _cells(results: dict, workload: str) -> list[dict]:
    return [c for c in results["cells"] if c["workload"] == workload]


def _workloads(results: dict) -> list[str]:
    return list(dict.fromkeys(c["workload"] for c in results["cells"]))


def machine_md(results: dict) -> list[str]:
    m, s, nodes = results["machine"], results["settings"], results["nodes"]
    return [
        f"- Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Python {m['python']} "
        f"(uvloop: {'yes' if m['uvloop'] else 'no'}), {m['go']}; every node and proxy on this one machine.",
        f"- Clusters: origin {len(nodes['origin'])} nodes ({', '.join(nodes['origin'])}), target "
        f"{len(nodes['target'])} nodes ({', '.join(nodes['target'])}), Cassandra 5.0 (`zdm sandbox up "
        f"--origin-nodes N --target-nodes M`); the table at RF 1, so each key has one replica.",
        "- Paths: `direct`: gocql straight on origin, token-aware; `zdm`: one contact point per cluster, "
        "token-aware forwarding on (its default); `zdm-ta-off`: the same with `proxy.token_aware: false`; "
        "`zdm-proxy`: `ZDM_ORIGIN_CONTACT_POINTS`/`ZDM_TARGET_CONTACT_POINTS` one node each. The proxies "
        "write to both clusters and read from origin; `direct` writes origin only.",
        f"- Settings: protocol v{s['protocol']}, {s['seconds']:g} s measured per cell after {s['warmup']:g} s "
        f"of warm-up, {s['rows']:,} rows, load generator with {s['conns']} connections per host.",
        "- Cluster CPU: the Cassandra processes' utime+stime (/proc) over the measured window, per request. "
        "Replica share: of origin's requests, those a replica coordinated, from origin's own counters "
        "(`system_views.internode_outbound`: a request coordinated elsewhere costs two messages between "
        f"nodes; gossip's {results['gossip_messages_per_s']:.1f} messages/s, measured idle, taken off).",
    ]


def cells_md(results: dict) -> list[str]:
    lines = []
    for workload in _workloads(results):
        lines += ["", f"**{workload}**", "",
                  "| in flight | path | ops/s | p50 ms | p99 ms | errors | proxy CPU µs/req | origin CPU µs/req "
                  "| target CPU µs/req | replica share | load (1 min) |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in _cells(results, workload):
            share = c.get("replica_share")
            lines.append(f"| {c['conc']} | {c['path']} | {c['ops_s']:,.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | "
                         f"{c['errors']} | {num(c.get('proxy_cpu_us_per_req'), '.1f')} | "
                         f"{num(c.get('origin_cpu_us_per_req'), '.0f')} | {num(c.get('target_cpu_us_per_req'), '.0f')} | "
                         f"{num(None if share is None else share * 100, '.1f')}% | "
                         f"{c['load'][0]:.1f}-{c['load'][1]:.1f} |")
    return lines


def ratios_md(results: dict) -> list[str]:
    """zdm against zdm-proxy and against zdm-ta-off, per workload and concurrency."""
    lines = ["", "| workload | in flight | zdm / zdm-proxy ops/s | zdm / zdm-ta-off ops/s | zdm / direct ops/s "
                 "| origin CPU/req, zdm / zdm-ta-off |", "|---|---:|---:|---:|---:|---:|"]
    for workload in _workloads(results):
        for conc in sorted({c["conc"] for c in _cells(results, workload)}):
            by = {c["path"]: c for c in _cells(results, workload) if c["conc"] == conc}
            zdm = by.get("zdm")
            if zdm is None:
                continue

            def ratio(other: str, key: str = "ops_s") -> str:
                o = by.get(other)
                return f"{zdm[key] / o[key]:.2f}" if o and o.get(key) and zdm.get(key) is not None else "-"
            lines.append(f"| {workload} | {conc} | {ratio('zdm-proxy')} | {ratio('zdm-ta-off')} | {ratio('direct')} "
                         f"| {ratio('zdm-ta-off', 'origin_cpu_us_per_req')} |")
    return lines


def chart(results: dict, png: Path) -> None:
    """Per workload: ops/s (top) and origin's CPU per request (bottom), one bar per path and concurrency."""
    names = _workloads(results)
    fig = Figure(figsize=(4.4 * len(names), 6.4), layout="constrained")
    fig.suptitle(f"proxies on a {len(results['nodes']['origin'])}-node origin, RF 1: throughput and the "
                 "origin's CPU per request")
    axes = fig.subplots(2, len(names), squeeze=False)
    shown = [p for p in PATHS if any(c["path"] == p for c in results["cells"])]
    for col, workload in enumerate(names):
        concs = sorted({c["conc"] for c in _cells(results, workload)})
        width = 0.8 / len(shown)
        for row, (key, label) in enumerate((("ops_s", "ops/s"), ("origin_cpu_us_per_req", "origin CPU µs/request"))):
            ax = axes[row][col]
            for i, path in enumerate(shown):
                by = {c["conc"]: c for c in _cells(results, workload) if c["path"] == path}
                ax.bar([x + i * width for x in range(len(concs))], [by.get(c, {}).get(key) or 0 for c in concs],
                       width, label=path, color=f"C{PATHS.index(path)}")
            ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(concs))], [str(c) for c in concs])
            ax.set_xlabel("requests in flight")
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(workload)
            if col == 0:
                ax.set_ylabel(label)
                if row == 0:
                    ax.legend(fontsize="small")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


def section(results: dict, png: Path, where: Path) -> str:
    chart(results, png)
    body = ["## Real clusters: token-aware forwarding", "", *machine_md(results), *ratios_md(results),
            *cells_md(results), "", f"![ops/s and origin's CPU per request, per path]({os.path.relpath(png, where)})"]
    return "\n".join([*body, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="JSON written by bench/proxy_cluster.py")
    ap.add_argument("--md", type=Path, help="write the markdown here instead of stdout")
    ap.add_argument("--png", type=Path, default=DOCS / "proxy-cluster.png")
    a = ap.parse_args()
    md = section(json.loads(a.results.read_text()), a.png, a.md.parent if a.md else DOCS)
    if a.md:
        a.md.write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
