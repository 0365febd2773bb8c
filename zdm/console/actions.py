"""The console's actions: advance and roll back, exactly as `zdm phase advance` and
`zdm rollback` do.

Theory of operation: :func:`perform` calls :func:`zdm.phases.live.transition` (the function
the CLI calls, so the guards, the journal and the persisted state are the same), with
``source="console"`` and the operator's name for the journal, then waits up to
``ack_timeout`` for every proxy to apply a new routing (:func:`zdm.phases.confirm_routing`,
as the CLI does).  A refusal is an answer, not an error: :class:`Outcome` carries the
machine's reasons (what is unmet, what to do) and the state is left byte-identical.  A
routing that some proxies have not applied yet is reported in the outcome, the move itself
being done.  Any other :class:`~zdm.errors.ZdmError` (a state changed meanwhile, a damaged
state file) propagates to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from zdm.config import Config
from zdm.errors import ZdmError
from zdm.phases import RoutingPending, TransitionRefused, confirm_routing
from zdm.phases.live import LiveSchema, transition
from zdm.state import StateStore

Action = Literal["advance", "rollback"]

#: Where the journal says a console action came from.
SOURCE = "console"


class BadRequest(ZdmError):
    """An action asked with arguments that make no sense (the page's fault or a script's)."""


@dataclass(frozen=True)
class Outcome:
    """What an action did: moved (``done``) from one phase to another, or was refused."""

    action: Action
    done: bool
    source_phase: int
    dest_phase: int | None
    revision: int
    reasons: list[dict[str, str]] = field(default_factory=list)
    #: after a move that changed the routing: the proxies that have not applied it yet
    routing_pending: dict[str, Any] | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "done": self.done, "from": self.source_phase,
                "to": self.dest_phase, "revision": self.revision, "reasons": self.reasons,
                "routing_pending": self.routing_pending, "message": self.message}


def check_operator(operator: Any) -> str:
    """The operator's name for the journal: required, non-empty, one line."""
    if not isinstance(operator, str) or not operator.strip():
        raise BadRequest("the operator's name is missing",
                         hint="say who you are: the journal records who moved the phase")
    name = operator.strip()
    if len(name) > 100 or any(c in name for c in "\r\n\t"):
        raise BadRequest("the operator's name must be one line of at most 100 characters",
                         hint="give a short name, such as your login")
    return name


def perform(config: Config, store: StateStore, action: Action, *, operator: str,
            live_schema: LiveSchema | None, to: int | None = None, why: str | None = None,
            confirm_clients_on_proxy: bool = False, confirm_clients_on_target: bool = False,
            skip_async_reads: bool = False, ack_timeout: float = 10.0) -> Outcome:
    """Advance or roll back as the CLI does, journaled with ``source="console"``."""
    if action not in ("advance", "rollback"):
        raise BadRequest(f"unknown action {action!r}", hint="use advance or rollback")
    who = check_operator(operator)
    if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
        raise BadRequest(f"the target phase must be a whole number, not {to!r}",
                         hint="give a phase from 0 to 5, or none for the default")
    try:
        before, after = transition(
            config, store, action, live_schema=live_schema if action == "advance" else None,
            operator=who, source=SOURCE, to=to, why=why or None,
            confirm_clients_on_proxy=confirm_clients_on_proxy,
            confirm_clients_on_target=confirm_clients_on_target,
            skip_async_reads=skip_async_reads)
    except TransitionRefused as refused:
        dest = refused.dest
        return Outcome(action, False, int(refused.source), None if dest is None else int(dest),
                       store.load().revision,
                       [{"what": r.what, "todo": r.todo} for r in refused.reasons],
                       message=refused.message)
    pending = None
    if not after.routing_status.applied:
        try:
            after = confirm_routing(store, operator=who, timeout=ack_timeout, source=SOURCE)
        except RoutingPending as exc:
            pending = {"revision": exc.revision, "lagging": exc.lagging, "todo": exc.hint}
    verb = "advanced" if action == "advance" else "rolled back"
    return Outcome(action, True, int(before.phase), int(after.phase), after.revision,
                   routing_pending=pending,
                   message=f"{verb} from {before.phase.label} to {after.phase.label}")
