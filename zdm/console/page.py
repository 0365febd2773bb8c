"""The console's page, rendered on the server from the model (:mod:`zdm.console.model`).

Theory of operation: :func:`render_page` is a pure function of the ``/api/state`` document
and the CSRF token (put in a ``<meta>`` for the page's script to send back); the diagram is
inline SVG drawn by :func:`diagram_svg` from the model's nodes and edges, so what it shows is
exactly the routing the model derived from the phase.  Every text from the state is escaped.
No script, no stylesheet or font from elsewhere: the page works offline and under a CSP of
``default-src 'none'``.
"""

from __future__ import annotations

from html import escape
from typing import Any

#: Seconds between the page's reloads.
REFRESH_S = 5

#: Where each box of the diagram stands (x, y of its centre) and its caption.
_BOX = {"applications": (90, 110, "applications"), "proxies": (300, 110, "zdm proxies"),
        "origin": (520, 50, "origin"), "target": (520, 170, "target")}
_BOX_W, _BOX_H = 130, 44

#: How each kind of edge is drawn: colour, dash pattern, caption.
_EDGE = {"all": ("#334", "", "reads + writes"), "writes": ("#b35900", "", "writes"),
         "reads": ("#1f6fb2", "", "reads"), "async_reads": ("#1f6fb2", "6 4", "async reads")}

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#223}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.4em 0 .4em}
ol.steps{display:flex;gap:.4em;list-style:none;padding:0;margin:.5em 0}
ol.steps li{flex:1;border:1px solid #ccd;border-radius:4px;padding:.4em;font-size:.85em}
ol.steps li.current{border:2px solid #1f6fb2;background:#eef5fc}
ol.steps li.done{color:#667}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #dde;padding:.25em .5em;
text-align:left;vertical-align:top} .pass{color:#176b2c} .fail{color:#b3261e;font-weight:600}
.todo{color:#556;font-size:.9em} .warn{color:#b3261e} code{background:#f3f3f6;padding:0 .2em}
"""


def render_page(doc: dict[str, Any], csrf_token: str) -> str:
    phase = doc["phase"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        # live without a script: the browser reloads the page (until a script polls the API)
        f"<meta http-equiv=refresh content={REFRESH_S}>",
        f"<meta name=csrf-token content=\"{escape(csrf_token)}\">",
        f"<title>zdm console: phase {phase['number']} {escape(phase['name'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Phase {phase['number']} {escape(phase['title'])}</h1>",
        f"<p>{escape(phase['description'])}</p>",
        _steps(doc["steps"]),
        diagram_svg(doc["diagram"]),
        _routing(doc["routing"]),
        *[f"<p class=warn>INSECURE: {escape(w['what'])}<br><span class=todo>→ "
          f"{escape(w['todo'])}</span></p>" for w in doc.get("insecure_settings", ())],
        *[f"<p class=warn>{escape(p)}</p>" for p in doc.get("problems", ())],
        "<h2>Next step</h2>", _guards(doc["guards"]["advance"]),
        "<h2>Rollback</h2>", _guards(doc["guards"]["rollback"]),
        "<h2>Proxies</h2>", _proxies(doc["proxies"]),
        "<h2>Copy and validation</h2>", _progress(doc["progress"]),
        "<h2>Divergences pending</h2>", _divergences(doc["divergences"]),
        "<h2>Journal</h2>", _journal(doc["journal"]),
        f"<p class=todo>As of {escape(doc['generated_at'])}. Actions: `zdm phase advance`, "
        "`zdm rollback`, or POST /api/phase/advance and /api/phase/rollback.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def diagram_svg(diagram: dict[str, Any]) -> str:
    """The boxes and arrows of the model's diagram; an inactive box (the proxies in phases 0
    and 5) is drawn faded."""
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 620 230" width="620" '
           'height="230" role="img" aria-label="routing diagram">',
           '<defs>' + "".join(
               f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
               f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
               f'<path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>'
               for kind, (colour, _, _) in _EDGE.items()) + '</defs>']
    for node in diagram["nodes"]:
        x, y, caption = _BOX[node["id"]]
        opacity = "1" if node["active"] else "0.3"
        out.append(f'<g opacity="{opacity}" data-node="{escape(node["id"])}">'
                   f'<rect x="{x - _BOX_W // 2}" y="{y - _BOX_H // 2}" width="{_BOX_W}" '
                   f'height="{_BOX_H}" rx="6" fill="#f7f8fb" stroke="#556"/>'
                   f'<text x="{x}" y="{y + 5}" text-anchor="middle">{escape(caption)}</text></g>')
    # two edges between the same boxes (writes and reads to origin) are drawn side by side,
    # the first captioned above its line, the second below
    pairs = [(e["from"], e["to"]) for e in diagram["edges"]]
    for i, edge in enumerate(diagram["edges"]):
        pair = pairs[i]
        k, n = pairs[:i].count(pair), pairs.count(pair)
        offset = 12 * k - 6 * (n - 1)
        (x1, y1, _), (x2, y2, _) = _BOX[edge["from"]], _BOX[edge["to"]]
        colour, dash, caption = _EDGE[edge["kind"]]
        sx, ex = x1 + _BOX_W // 2, x2 - _BOX_W // 2
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        label_y = (y1 + y2) // 2 + offset + (-6 if k == 0 else 14)
        out.append(f'<g data-edge="{escape(edge["from"])}-{escape(edge["to"])}-{escape(edge["kind"])}">'
                   f'<line x1="{sx}" y1="{y1 + offset}" x2="{ex - 2}" y2="{y2 + offset}" '
                   f'stroke="{colour}" stroke-width="2"{dash_attr} '
                   f'marker-end="url(#arrow-{edge["kind"]})"/>'
                   f'<text x="{(sx + ex) // 2}" y="{label_y}" font-size="11" '
                   f'text-anchor="middle" fill="{colour}">{escape(caption)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _steps(steps: list[dict[str, Any]]) -> str:
    items = "".join(
        f'<li class="{"current" if s["current"] else "done" if s["done"] else ""}">'
        f'<b>{s["number"]} {escape(s["title"])}</b><br>{escape(s["description"])}</li>'
        for s in steps)
    return f"<ol class=steps>{items}</ol>"


def _routing(routing: dict[str, Any]) -> str:
    applied = "applied by every proxy" if routing["applied"] else (
        f"waiting for {escape(', '.join(routing['lagging']))}" if routing["lagging"]
        else "not yet confirmed")
    return (f"<p>Routing revision {routing['revision']}: primary cluster "
            f"<b>{escape(routing['primary'])}</b>, reads {escape(routing['read_mode'])}; "
            f"{applied}.</p>")


def _guards(report: dict[str, Any]) -> str:
    if report["to"] is None and not report["guards"]:
        return "".join(f"<p>{escape(r['what'])} <span class=todo>({escape(r['todo'])})</span></p>"
                       for r in report["reasons"]) or "<p>Nothing to do.</p>"
    verdict = "<span class=pass>allowed</span>" if report["allowed"] else "<span class=fail>refused</span>"
    rows = []
    for g in report["guards"]:
        mark = "<span class=pass>pass</span>" if g["passed"] else "<span class=fail>FAIL</span>"
        why = "".join(f"<div>{escape(r['what'])}<br><span class=todo>→ {escape(r['todo'])}</span></div>"
                      for r in g["reasons"])
        rows.append(f"<tr><td>{mark}</td><td>{escape(g['label'])}</td><td>{why}</td></tr>")
    structural = [r for r in report["reasons"]
                  if not any(r in g["reasons"] for g in report["guards"])]
    rows += [f"<tr><td><span class=fail>FAIL</span></td><td>{escape(r['what'])}</td>"
             f"<td class=todo>→ {escape(r['todo'])}</td></tr>" for r in structural]
    return (f"<p>{escape(report['action'])} to {escape(report['to_label'] or '-')}: {verdict}</p>"
            f"<table><tr><th></th><th>condition</th><th>reasons</th></tr>{''.join(rows)}</table>")


def _proxies(proxies: list[dict[str, Any]]) -> str:
    if not proxies:
        return "<p>None registered (a proxy registers itself on <code>zdm proxy start</code>).</p>"
    rows = []
    for p in proxies:
        live = p.get("live") or {}
        p99 = live.get("p99_ms") or {}
        rows.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            p["name"], p["address"] or "-", "yes" if p["running"] else "NO",
            "applied" if p["routing_applied"] else f"LAGGING (has {p['acked_revision']})",
            p["workers"] or "-", "-" if p["client_connections"] is None else p["client_connections"],
            live.get("requests_per_s", "-"), live.get("error_rate", "-"),
            p99.get("origin", "-"), p99.get("target", "-"), live.get("divergences", "-"))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("name", "address", "running", "routing", "workers",
                                             "clients", "req/s", "errors", "p99 origin ms",
                                             "p99 target ms", "divergences"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _progress(progress: dict[str, Any]) -> str:
    rows = []
    for kind, label in (("copy", "copy"), ("validation", "validation")):
        for t in progress[kind]:
            if not t["started"]:
                rows.append(f"<tr><td>{label}</td><td>{escape(t['table'])}</td><td colspan=4>not started</td></tr>")
                continue
            extra = f", {t['with_differences']} with differences" if t.get("with_differences") else ""
            rows.append(f"<tr><td>{label}</td><td>{escape(t['table'])}</td>"
                        f"<td>{t['done']} / {t['ranges']} ranges{extra}</td><td>{t['remaining']} to do</td>"
                        f"<td>{t['rows']} rows</td><td>{'complete' if t['complete'] else ''}</td></tr>")
    if not rows:
        return "<p>No table known yet (the copy has not run).</p>"
    return f"<table>{''.join(rows)}</table>"


def _divergences(div: dict[str, Any]) -> str:
    if not div["pending"] and not div["summary"]:
        return "<p>None.</p>"
    rows = "".join(f"<tr><td>{escape(t)}</td><td>{escape(', '.join(f'{n} {k}' for k, n in kinds.items()))}</td></tr>"
                   for t, kinds in div["summary"].items())
    return (f"<p class=warn>{div['pending']} record(s) pending: run <code>zdm repair</code>.</p>"
            f"<table>{rows}</table>")


def _journal(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "<p>Empty.</p>"
    rows = []
    for e in entries:
        what = e.get("event", "")
        if "from" in e and "to" in e:
            what += f" {e['from']} → {e['to']}"
        elif "kind" in e:
            what += f" {e['kind']}"
        rows.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            e.get("at", ""), what, e.get("operator", ""), e.get("source", ""),
            e.get("why") or "")) + "</tr>")
    return ("<table><tr><th>at</th><th>what</th><th>who</th><th>from</th><th>why</th></tr>"
            + "".join(rows) + "</table>")
