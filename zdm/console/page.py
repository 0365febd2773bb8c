"""The console's page, rendered on the server from the model (:mod:`zdm.console.model`).

Theory of operation: :func:`render_page` is a pure function of the ``/api/state`` document
and the CSRF token (put in a ``<meta>`` for the page's script to send back).  What changes
lives in ``<main>``, a list of ``<section>`` elements with ids, which :func:`render_live`
renders alone: the page's script (``static/console.js``) fetches it from ``/view`` once a
second and swaps the sections whose HTML changed, so the page stays live without one
renderer in Python and another in JavaScript.  Without the script the page reloads itself.

The diagram is inline SVG drawn by :func:`diagram_svg` from the model's nodes and edges, so
what it shows is exactly the routing the model derived from the phase.  Each action the
machine offers from here is a button carrying its guard report (as JSON in ``data-report``):
the script shows that verdict in a confirmation dialog before it POSTs.  Every text from
the state is escaped.  No script, stylesheet or font comes from elsewhere: the page works
offline and under a CSP of ``default-src 'none'; script-src 'self'``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

#: Seconds between the page's reloads when scripts are off (the script polls every second).
REFRESH_S = 5

#: Where each box of the diagram stands (x, y of its centre) and its caption.
_BOX = {"applications": (80, 130, "applications"), "proxies": (330, 130, "zdm proxies"),
        "origin": (620, 40, "origin"), "target": (620, 220, "target")}
_BOX_W, _BOX_H = 130, 44

#: How each kind of edge is drawn: colour, dash pattern, caption.
_EDGE = {"all": ("#334", "", "reads + writes"), "writes": ("#b35900", "", "writes"),
         "reads": ("#1f6fb2", "", "reads"), "async_reads": ("#1f6fb2", "6 4", "async reads")}

_STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:1em auto;max-width:1100px;padding:0 1em;color:#223}
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:.5em}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.2em 0 .4em}
#live-note{color:#556;font-size:.85em;margin:0}
ol.steps{display:flex;flex-wrap:wrap;gap:.4em;list-style:none;padding:0;margin:.5em 0}
ol.steps li{flex:1 1 9em;border:1px solid #ccd;border-radius:4px;padding:.4em;font-size:.85em}
ol.steps li.current{border:2px solid #1f6fb2;background:#eef5fc}
ol.steps li.done{color:#667}
svg.diagram{width:100%;max-width:700px;height:auto}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #dde;padding:.25em .5em;
text-align:left;vertical-align:top} .pass{color:#176b2c} .fail{color:#b3261e;font-weight:600}
.todo{color:#556;font-size:.9em} .warn{color:#b3261e} code{background:#f3f3f6;padding:0 .2em}
.action{display:flex;flex-wrap:wrap;align-items:center;gap:.6em;margin:.4em 0}
button{font:inherit;padding:.35em .9em;border-radius:4px;border:1px solid #557;background:#f4f6fb;cursor:pointer}
button.primary{background:#1f6fb2;color:#fff;border-color:#1f6fb2}
button:focus-visible,input:focus-visible{outline:3px solid #f0a500;outline-offset:1px}
dialog{max-width:min(40em,95vw);border:1px solid #99a;border-radius:6px}
dialog label{display:block;margin:.5em 0}
dialog input[type=text]{width:100%;font:inherit;padding:.3em}
dialog .buttons{display:flex;gap:.6em;justify-content:flex-end;margin-top:1em}
#outcome:empty{display:none}
#outcome{border:2px solid #556;border-radius:6px;padding:.6em 1em;margin:1em 0}
#outcome.refused,#outcome.error{border-color:#b3261e} #outcome.done{border-color:#176b2c}
details summary{cursor:pointer}
"""


def render_page(doc: dict[str, Any], csrf_token: str) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        # live without a script: the browser reloads the page (the script polls instead)
        f"<noscript><meta http-equiv=refresh content={REFRESH_S}></noscript>",
        f"<meta name=csrf-token content=\"{escape(csrf_token)}\">",
        f"<title>{escape(page_title(doc))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<header><h1>zdm migration console</h1>",
        f"<p id=live-note>As of {escape(doc['generated_at'])}</p></header>",
        "<div id=outcome role=alert aria-live=assertive></div>",
        f"<main id=live>{render_live(doc)}</main>",
        _DIALOG,
        "<script src=/static/console.js></script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def page_title(doc: dict[str, Any]) -> str:
    return f"zdm console: phase {doc['phase']['number']} {doc['phase']['name']}"


def render_live(doc: dict[str, Any]) -> str:
    """The sections of ``<main>``, each with its id (what ``/view`` returns)."""
    phase = doc["phase"]
    warnings = [*[f"<p class=warn>INSECURE: {escape(w['what'])}<br><span class=todo>→ "
                  f"{escape(w['todo'])}</span></p>" for w in doc.get("insecure_settings", ())],
                *[f"<p class=warn>{escape(p)}</p>" for p in doc.get("problems", ())]]
    sections = [  # id, heading, body
        ("phase", f"Phase {phase['number']} {escape(phase['title'])}",
         f"<p>{escape(phase['description'])}</p>{_steps(doc['steps'])}"),
        ("diagram", "Routing", diagram_svg(doc["diagram"]) + _routing(doc["routing"]) + "".join(warnings)),
        ("advance", "Next step", _actions(doc["actions"]["advance"], doc["next"])),
        ("rollback", "Rollback", _actions(doc["actions"]["rollback"], None)),
        ("proxies", "Proxies", _proxies(doc["proxies"])),
        ("preflight", "Preflight", _preflight(doc["evidence"].get("preflight"))),
        ("progress", "Copy and validation", _progress(doc["progress"])),
        ("divergences", "Divergences pending", _divergences(doc["divergences"])),
        ("journal", "Journal", _journal(doc["journal"])),
    ]
    return "\n".join(f'<section id="{sid}" aria-labelledby="{sid}-h"><h2 id="{sid}-h">{heading}</h2>'
                     f"{body}</section>" for sid, heading, body in sections)


#: The confirmation dialog; the script fills it from the clicked button's report.
_DIALOG = """<dialog id=confirm aria-labelledby=confirm-title>
<form method=dialog id=confirm-form>
<h2 id=confirm-title></h2>
<p id=confirm-verdict></p>
<ul id=confirm-reasons></ul>
<div id=confirm-checks></div>
<label for=operator>Your name, for the journal</label>
<input type=text id=operator name=operator required maxlength=100 autocomplete=username>
<label for=why>Why (optional)</label>
<input type=text id=why name=why maxlength=500>
<div class=buttons><button type=button id=confirm-cancel>Cancel</button>
<button type=submit id=confirm-go class=primary>Confirm</button></div>
</form></dialog>"""


def diagram_svg(diagram: dict[str, Any]) -> str:
    """The boxes and arrows of the model's diagram; an inactive box (the proxies in phases 0
    and 5) is drawn faded.  Its accessible name says every arrow in words."""
    said = "; ".join(f"{e['from']} to {e['to']}: {_EDGE[e['kind']][2]}" for e in diagram["edges"])
    out = ['<svg class=diagram xmlns="http://www.w3.org/2000/svg" viewBox="0 0 700 260" '
           f'width="700" height="260" role="img" aria-label="routing: {escape(said)}">',
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
        offset = 18 * k - 9 * (n - 1)
        (x1, y1, _), (x2, y2, _) = _BOX[edge["from"]], _BOX[edge["to"]]
        colour, dash, caption = _EDGE[edge["kind"]]
        sx, ex = x1 + _BOX_W // 2, x2 - _BOX_W // 2
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        label_y = (y1 + y2) // 2 + offset + (-7 if k == 0 else 15)
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
        f'<li class="{"current" if s["current"] else "done" if s["done"] else ""}"'
        f'{" aria-current=step" if s["current"] else ""}>'
        f'<b>{s["number"]} {escape(s["title"])}</b><br>{escape(s["description"])}</li>'
        for s in steps)
    return f"<ol class=steps aria-label=phases>{items}</ol>"


def _routing(routing: dict[str, Any]) -> str:
    applied = "applied by every proxy" if routing["applied"] else (
        f"waiting for {escape(', '.join(routing['lagging']))}" if routing["lagging"]
        else "not yet confirmed")
    return (f"<p id=routing>Routing revision {routing['revision']}: primary cluster "
            f"<b>{escape(routing['primary'])}</b>, reads {escape(routing['read_mode'])}; "
            f"{applied}.</p>")


def _actions(reports: list[dict[str, Any]], next_step: dict[str, Any] | None) -> str:
    """A button per phase the action can reach, with the machine's verdict beside it and the
    default move's guards in a table (the other moves' in a disclosure)."""
    first = reports[0]
    if first["to"] is None:  # nowhere to go from here: the reason is the answer
        return "".join(f"<p>{escape(r['what'])} <span class=todo>({escape(r['todo'])})</span></p>"
                       for r in first["reasons"]) or "<p>Nothing to do.</p>"
    out = []
    if next_step is not None and next_step.get("command") == "zdm phase confirm-routing":
        out.append(f"<p class=todo>{escape(next_step['summary'])} (the proxies pick it up within "
                   "a second or two).</p>")
    for report in reports:
        verb = "Advance" if report["action"] == "advance" else "Roll back"
        label = f"{verb} to {report['to_label']}"
        bid = f"{report['action']}-{report['to']}"
        data = escape(json.dumps(report, separators=(",", ":")), quote=True)
        out.append(f'<div class=action><button type=button id="{bid}" data-report="{data}" '
                   f'aria-describedby="{bid}-verdict"{" class=primary" if report["allowed"] else ""}>'
                   f'{escape(label)}…</button><span id="{bid}-verdict">{_verdict(report)}</span></div>')
        table = _guard_table(report)
        if table and report["default"]:
            out.append(table)
        elif table:
            out.append(f"<details><summary>The conditions of {escape(label.lower())}</summary>"
                       f"{table}</details>")
    return "".join(out)


def _verdict(report: dict[str, Any]) -> str:
    if report["allowed"]:
        return "<span class=pass>allowed</span>"
    if report["allowed_if_confirmed"]:
        return "<span class=pass>allowed once you confirm</span>"
    unmet = sum(1 for g in report["guards"] if not g["passed"]) or len(report["reasons"])
    return f"<span class=fail>refused</span>: {unmet} condition{'s' if unmet != 1 else ''} unmet"


def _guard_table(report: dict[str, Any]) -> str:
    if not report["guards"] and not report["reasons"]:
        return ""
    rows = []
    for g in report["guards"]:
        mark = ("<span class=pass>pass</span>" if g["passed"] else
                "<span class=todo>confirm</span>" if g["confirm"] else "<span class=fail>FAIL</span>")
        why = "".join(f"<div>{escape(r['what'])}<br><span class=todo>→ {escape(r['todo'])}</span></div>"
                      for r in g["reasons"])
        rows.append(f"<tr><td>{mark}</td><td>{escape(g['label'])}</td><td>{why}</td></tr>")
    rows += [f"<tr><td><span class=fail>FAIL</span></td><td>{escape(r['what'])}</td>"
             f"<td class=todo>→ {escape(r['todo'])}</td></tr>" for r in report["structural"]]
    return ("<div class=scroll><table><tr><th>check</th><th>condition</th><th>reasons</th></tr>"
            f"{''.join(rows)}</table></div>")


def _proxies(proxies: list[dict[str, Any]]) -> str:
    if not proxies:
        return "<p>None registered (a proxy registers itself on <code>zdm proxy start</code>).</p>"
    rows = []
    for p in proxies:
        live = p.get("live") or {}
        p99 = live.get("p99_ms") or {}
        routing = (f"revision {p['acked_revision']} applied" if p["routing_applied"] else
                   f"LAGGING (has {p['acked_revision'] if p['acked_revision'] is not None else 'none'})")
        rows.append(f'<tr data-proxy="{escape(p["name"])}">' + "".join(
            f"<td>{escape(str(v))}</td>" for v in (
                p["name"], p["address"] or "-", "yes" if p["running"] else "NO", routing,
                _connected(p), p["workers"] or "-", "-" if p["client_connections"] is None else p["client_connections"],
                live.get("requests_per_s", "-"), live.get("error_rate", "-"),
                _or_dash(p99.get("origin")), _or_dash(p99.get("target")),
                live.get("divergences", "-"))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("name", "address", "running", "routing", "connected to", "workers",
                                             "clients", "req/s", "errors", "p99 origin ms",
                                             "p99 target ms", "divergences"))
    return f"<div class=scroll><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def _connected(proxy: dict[str, Any]) -> str:
    up = [c for c in ("origin", "target") if proxy.get(f"{c}_connected")]
    return "both" if len(up) == 2 else up[0] + " only" if up else "NEITHER"


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _preflight(evidence: dict[str, Any] | None) -> str:
    if not evidence:
        return "<p>Not run yet: <code>zdm preflight</code>.</p>"
    verdict = "<span class=pass>passed</span>" if evidence.get("passed") else "<span class=fail>FAILED</span>"
    head = (f"<p>{verdict} at {escape(str(evidence.get('at', '')))}: "
            f"{escape(evidence.get('summary', ''))}</p>")
    rows = []
    for t in evidence.get("tables") or ():
        schema = ("<span class=pass>identical</span>" if not t["differences"] else
                  "<span class=fail>differs</span><ul>" + "".join(
                      f"<li>{escape(d)}</li>" for d in t["differences"]) + "</ul>")
        if t["warnings"]:
            schema += "<ul class=todo>" + "".join(f"<li>{escape(w)}</li>" for w in t["warnings"]) + "</ul>"
        rows.append(f"<tr><td>{escape(t['table'])}</td><td>{schema}</td>"
                    f"<td>{escape(t['copy'] or '-')}</td></tr>")
    if not rows:
        return head
    return (head + "<div class=scroll><table><tr><th>table</th><th>schema on target</th>"
            f"<th>copy</th></tr>{''.join(rows)}</table></div>")


def _progress(progress: dict[str, Any]) -> str:
    rows = []
    for kind, label in (("copy", "copy"), ("validation", "validation")):
        for t in progress[kind]:
            if not t["started"]:
                rows.append(f"<tr><td>{label}</td><td>{escape(t['table'])}</td>"
                            "<td colspan=4>not started</td></tr>")
                continue
            carried = f" ({t['carried']} carried from an earlier run)" if t.get("carried") else ""
            extra = f", {t['with_differences']} with differences" if t.get("with_differences") else ""
            failed = ""
            if t.get("failed"):
                errors = "".join(f"<li><code>{escape(f['range'])}</code>: {escape(f['error'])}</li>"
                                 for f in t.get("failed_ranges", ()))
                failed = (f"<div class=fail>{t['failed']} failed</div>"
                          f"<details><summary>errors</summary><ul>{errors}</ul></details>")
            rows.append(f"<tr><td>{label}</td><td>{escape(t['table'])}</td>"
                        f"<td>{t['done']} / {t['ranges']} ranges done{carried}{extra}{failed}</td>"
                        f"<td>{t['remaining']} to do</td><td>{t['rows']} rows</td>"
                        f"<td>{'complete' if t['complete'] else ''}</td></tr>")
    if not rows:
        return "<p>No table known yet (the copy has not run).</p>"
    return ("<div class=scroll><table><tr><th>run</th><th>table</th><th>ranges</th><th>left</th>"
            f"<th>rows</th><th></th></tr>{''.join(rows)}</table></div>")


def _divergences(div: dict[str, Any]) -> str:
    if not div["pending"] and not div["summary"]:
        return "<p>None.</p>"
    rows = "".join(f"<tr><td>{escape(t)}</td><td>{escape(', '.join(f'{n} {k}' for k, n in kinds.items()))}</td></tr>"
                   for t, kinds in div["summary"].items())
    records = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
        r.get("at") or "", r.get("kind") or "", f"{r.get('keyspace')}.{r.get('table')}",
        r.get("key") if r.get("key") is not None else "-", r.get("proxy") or "-")) + "</tr>"
        for r in reversed(div.get("records", ())))
    shown = (f"<details><summary>the {len(div.get('records', ()))} latest records</summary>"
             "<div class=scroll><table><tr><th>at</th><th>kind</th><th>table</th><th>key</th>"
             f"<th>proxy</th></tr>{records}</table></div></details>") if records else ""
    return (f"<p class=warn>{div['pending']} record(s) pending: run <code>zdm repair</code>.</p>"
            f"<table><tr><th>table</th><th>pending</th></tr>{rows}</table>{shown}")


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
    return ("<div class=scroll><table><tr><th>at</th><th>what</th><th>who</th><th>from</th>"
            "<th>why</th></tr>" + "".join(rows) + "</table></div>")
