"""The console's page as data: :func:`console_state`, what ``GET /api/state`` returns.

Theory of operation: one look at the migration (:func:`zdm.phases.live.observe`, the very
facts and status document `zdm status --json` prints) is turned into what the page draws:
the phase and the six steps, the routing as the edges of a diagram, the proxies, the guards
of every advance and rollback possible from here (each guard pass or fail, with its reasons
and what to do, the default move first), the copy's and the validation's progress per table, the pending divergence
records and the journal.  Nothing here writes; the actions are :mod:`zdm.console.actions`.

Invariants:
- The document is plain JSON (str, int, float, bool, None, lists, dicts) and holds no
  secret: it is built from the state, the proxies' records, the checkpoints and the journal,
  never from the config's credentials; journal entries are reduced to their timeline fields.
- The edges are a pure function of the phase (:func:`diagram_edges`), through
  :func:`zdm.phases.routing_for`, so the diagram cannot disagree with what the proxies route.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Any, Callable, Iterable

from zdm.clock import iso
from zdm.config import Config
from zdm.errors import ZdmError
from zdm.phases import Cluster, Facts, MigrationState, Phase, ReadMode, Thresholds, evaluate, routing_for
from zdm.phases.live import LiveSchema, observe
from zdm.phases.machine import MOVES, Verdict
from zdm.state import StateStore, open_checkpoints
from zdm.state.checkpoint import CheckpointStore
from zdm.validate.findings import detail_clean

#: The boxes of the diagram: who talks to whom.
NODES = ("applications", "proxies", "origin", "target")

#: What each guard checks, for people (the guards' reasons say what is wrong and what to do).
GUARD_LABELS = {
    "routing_applied": "every proxy applied the current routing",
    "preflight_current": "a passing preflight, and the schema unchanged since",
    "proxies_connected": "a proxy runs, connected to origin and target",
    "proxies_running": "every registered proxy is running",
    "clients_on_proxy": "every client connects through the proxy (confirmed)",
    "migration_complete": "the copy of every table completed after clients moved to the proxy",
    "validation_clean": "a validation after the copy found no difference",
    "async_reads_skipped": "skipping the async reads was asked for",
    "async_window_current": "the async-read counters describe this stay in phase 3",
    "async_reads_healthy": "enough async reads, errors and mismatches under their thresholds",
    "divergences_resolved": "no row recorded as divergent is pending",
    "reads_on_target": "reads have been served by target long enough",
    "final_validation_clean": "a final validation after reads moved found no difference",
    "clients_on_target": "every client connects to target directly (confirmed)",
}

#: The guards an operator satisfies by saying so: guard -> (the action's flag, the checkbox's
#: label); the flags are those of `zdm phase advance` (--confirm-clients-on-proxy, ...).
CONFIRMATIONS = {
    "clients_on_proxy": ("confirm_clients_on_proxy",
                         "I confirm that every client now connects through the proxy"),
    "async_reads_skipped": ("skip_async_reads",
                            "Skip phase 3: do not compare async reads before reads move to target"),
    "clients_on_target": ("confirm_clients_on_target",
                          "I confirm that every client now connects to target directly"),
}

#: How many journal entries and pending divergence records the page lists.
JOURNAL_LIMIT = 50
DIVERGENCE_LIMIT = 50

#: The journal fields the timeline shows (an entry's facts and evidence stay out of the page).
_JOURNAL_FIELDS = ("at", "operator", "source", "event", "trigger", "from", "to", "why",
                   "revision", "kind", "phase", "routing_revision")


def console_state(config: Config, store: StateStore, *, live_schema: LiveSchema | None,
                  now: datetime | None = None, thresholds: Thresholds | None = None,
                  on_problem: Callable[[str], None] | None = None,
                  checkpoints: Callable[[str], CheckpointStore] | None = None) -> dict[str, Any]:
    """The whole page as JSON-able data. ``live_schema`` as for
    :func:`~zdm.phases.live.gather_facts` (None: never contact the clusters); problems met on
    the way (a cluster unreachable) are listed under ``problems`` and given to ``on_problem``.
    ``checkpoints(kind)`` gives the open checkpoint store of a kind, which stays open (the
    console keeps its stores for its lifetime); by default they are opened from the config
    and closed before returning."""
    problems: list[str] = []

    def problem(text: str) -> None:
        problems.append(text)
        if on_problem:
            on_problem(text)

    seen = observe(config, store, live_schema=live_schema, now=now, on_problem=problem)
    state, facts, status = seen.state, seen.facts, seen.status
    thresholds = thresholds or Thresholds()
    phase = state.phase
    tables = _tables_known(state, facts)
    with ExitStack() as opened:
        get = checkpoints or (lambda kind: opened.enter_context(open_checkpoints(config, kind)))
        progress = {"copy": _progress(get, "migrate", tables, problem),
                    "validation": _progress(get, "validate", tables, problem)}
    return {
        "generated_at": iso(facts.now),
        "phase": {"number": int(phase), "name": phase.name, "label": phase.label,
                  "title": phase.title, "description": phase.description,
                  "entered_at": status["entered_at"], "revision": state.revision},
        "steps": [{"number": int(p), "name": p.name, "title": p.title,
                   "description": p.description, "current": p == phase, "done": p < phase}
                  for p in Phase],
        "routing": status["routing"],
        "diagram": {"nodes": [{"id": n, "active": n in _active_nodes(phase)} for n in NODES],
                    "edges": diagram_edges(phase)},
        "proxies": status["proxies"],
        "async_reads": status["async_reads"],
        "actions": {action: action_reports(state, facts, action, thresholds)
                    for action in ("advance", "rollback")},
        "next": status["next"],
        "evidence": status["evidence"],
        "progress": progress,
        "divergences": _divergences(store, status["divergences"]),
        "insecure_settings": status["insecure_settings"],
        # newest first, as a timeline reads
        "journal": [_timeline_entry(e) for e in reversed(store.read_journal(limit=JOURNAL_LIMIT))],
        "problems": problems,
    }


def diagram_edges(phase: Phase) -> list[dict[str, str]]:
    """Who sends what to whom in ``phase``. ``kind`` is ``all`` (reads and writes),
    ``writes``, ``reads`` or ``async_reads`` (mirrored to target, compared, never returned).

    Without a proxy (phase 0, and phase 5 once it is retired) the applications talk to the
    primary cluster directly; with one, writes go to both clusters and reads to the primary.
    """
    routing = routing_for(phase)
    primary = routing.primary.value
    if phase in (Phase.PLAN, Phase.CUTOVER):
        return [{"from": "applications", "to": primary, "kind": "all"}]
    edges = [{"from": "applications", "to": "proxies", "kind": "all"},
             {"from": "proxies", "to": Cluster.ORIGIN.value, "kind": "writes"},
             {"from": "proxies", "to": Cluster.TARGET.value, "kind": "writes"},
             {"from": "proxies", "to": primary, "kind": "reads"}]
    if routing.read_mode == ReadMode.DUAL_ASYNC:
        other = Cluster.TARGET if routing.primary == Cluster.ORIGIN else Cluster.ORIGIN
        edges.append({"from": "proxies", "to": other.value, "kind": "async_reads"})
    return edges


def _active_nodes(phase: Phase) -> set[str]:
    return {n for e in diagram_edges(phase) for n in (e["from"], e["to"])}


def action_reports(state: MigrationState, facts: Facts, action: str,
                   thresholds: Thresholds) -> list[dict[str, Any]]:
    """One :func:`guard_report` per phase ``action`` can reach from here, the default one
    (what the command does without ``--to``) first; a single report, of the refusal, when
    the action goes nowhere (rolling back from phase 0 or 5, advancing from 5)."""
    default = guard_report(state, facts, action, thresholds)
    others = [guard_report(state, facts, action, thresholds, to=dest)
              for dest in sorted(default["options"], reverse=True) if dest != default["to"]]
    return [default, *others]


def guard_report(state: MigrationState, facts: Facts, action: str,
                 thresholds: Thresholds, to: int | None = None) -> dict[str, Any]:
    """The machine's verdict on ``action`` (to ``to``, else to its default phase) from here,
    with each guard of the move it would make, pass or fail (the guards run exactly as the
    machine runs them), and the phases that action can reach from here.

    A guard an operator satisfies by confirming (:data:`CONFIRMATIONS`) names its flag under
    ``confirm``; ``allowed_if_confirmed`` says whether the move would be allowed once every
    failing one of those is confirmed, and ``confirmations`` lists their checkboxes."""
    verdict: Verdict = evaluate(state, facts, action=action, to=to, thresholds=thresholds)  # type: ignore[arg-type]
    move = MOVES.get((action, state.phase, verdict.dest)) if verdict.dest is not None else None
    guards = []
    for guard in move.guards if move else ():
        reasons = guard(state, facts, thresholds)
        flag = CONFIRMATIONS.get(guard.__name__, (None, ""))[0]
        guards.append({"name": guard.__name__, "label": GUARD_LABELS.get(guard.__name__, guard.__name__),
                       "passed": not reasons, "confirm": flag,
                       "reasons": [{"what": r.what, "todo": r.todo} for r in reasons]})
    reasons = [{"what": r.what, "todo": r.todo} for r in verdict.reasons]
    by_guards = [r for g in guards for r in g["reasons"]]
    structural = [r for r in reasons if r not in by_guards]
    unconfirmed = [g for g in guards if not g["passed"] and g["confirm"]]
    return {
        "action": action, "allowed": verdict.allowed, "from": int(state.phase),
        "to": None if verdict.dest is None else int(verdict.dest),
        "to_label": None if verdict.dest is None else verdict.dest.label,
        "default": to is None,
        "reasons": reasons,
        "guards": guards,
        #: the refusal's reasons no guard gave (routing not applied yet, nowhere to go)
        "structural": structural,
        "allowed_if_confirmed": move is not None and not structural and all(
            g["passed"] or g["confirm"] for g in guards),
        "confirmations": [{"flag": g["confirm"], "label": CONFIRMATIONS[g["name"]][1]}
                          for g in unconfirmed],
        "options": sorted(int(m.dest) for m in MOVES.values()
                          if m.action == action and m.source == state.phase),
    }


def _tables_known(state: MigrationState, facts: Facts) -> list[str]:
    """The tables in scope as far as known: the live scope (when it was read) and those the
    copy and the validations recorded."""
    tables = set(facts.tables or ())
    for kind in ("migration", "validation", "final_validation"):
        tables.update(state.evidence.get(kind, {}).get("tables", ()))
    return sorted(tables)


def _progress(get: Callable[[str], CheckpointStore], kind: str, tables: Iterable[str],
              problem: Callable[[str], None]) -> list[dict[str, Any]]:
    """Per table, the ranges of the last run of ``kind`` (``migrate``, ``validate``): planned,
    done (of which ``carried`` from an earlier run), still to do, ``failed`` (given up on
    after every retry; the first ten in token order with their errors), and for a validation
    those whose comparison left differences."""
    out = []
    try:
        store = get(kind)
        for table in tables:
            cp = store.load(table)
            if cp is None:
                out.append({"table": table, "started": False})
                continue
            row = {"table": table, "started": True, "started_at": cp.started_at or None,
                   "ranges": len(cp.plan), "done": len(cp.done),
                   "remaining": len(cp.remaining()), "rows": cp.rows_done,
                   "complete": cp.complete, "carried": len(cp.carried), "failed": len(cp.failed),
                   "failed_ranges": [{"range": r.key(), "error": e}
                                     for r, e in sorted(cp.failed.items())[:10]]}
            if kind == "validate":
                row["with_differences"] = sum(1 for r in cp.done if r in cp.details
                                              and not detail_clean(cp.details[r]))
            out.append(row)
    except (ZdmError, OSError) as exc:  # an unreadable checkpoint must not hide the page
        problem(f"cannot read the {kind} checkpoints: {exc}")
    return out


def _divergences(store: StateStore, summary: dict[str, dict[str, int]]) -> dict[str, Any]:
    pending = store.divergences().pending()
    return {"summary": summary, "pending": len(pending),
            "records": [{k: r.get(k) for k in ("id", "kind", "keyspace", "table", "key", "source",
                                               "at", "proxy", "detail")}
                        for r in pending[-DIVERGENCE_LIMIT:]]}


def _timeline_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _JOURNAL_FIELDS if k in entry}
