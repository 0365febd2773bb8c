"""Errors raised by the phase machine and the state stores (:mod:`zdm.state`), all under
:class:`ZdmError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from zdm.errors import ZdmError

if TYPE_CHECKING:
    from zdm.phases.guards import Reason
    from zdm.phases.model import Phase


class TransitionRefused(ZdmError):
    """A phase change was refused; ``reasons`` lists every unmet condition."""

    def __init__(self, action: str, source: "Phase", dest: "Phase | int | None",
                 reasons: Sequence["Reason"]) -> None:
        self.action = action
        self.source = source
        self.dest = dest
        self.reasons = list(reasons)
        where = f"{source.label}" + (f" to {_label(dest)}" if dest is not None else "")
        lines = [f"cannot {action} from {where}:"]
        lines += [f"  - {r.what}" for r in self.reasons]
        todos = dict.fromkeys(r.todo for r in self.reasons if r.todo)
        hint = "\n".join(f"- {todo}" for todo in todos) or None
        super().__init__("\n".join(lines), hint=hint)


def _label(dest: "Phase | int") -> str:
    return getattr(dest, "label", f"phase {dest}")


class StateCorrupt(ZdmError):
    """The state file exists but cannot be trusted; zdm never overwrites it."""

    def __init__(self, path: object, detail: str, *, journal: object) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"migration state file {path} is damaged: {detail}",
            hint=(f"zdm will not overwrite it. Restore it from a backup, or rebuild it from the "
                  f"journal {journal} (one JSON line per change), then retry."),
        )


class ConcurrentModification(ZdmError):
    """The state changed on disk between reading it and writing it."""

    def __init__(self, expected: int, found: int) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"migration state changed while this command ran (expected revision {expected}, "
            f"found {found})",
            hint="another zdm command wrote the state; re-run this one to act on the new state",
        )


class RoutingPending(ZdmError):
    """Some registered proxies have not applied the current routing revision yet."""

    def __init__(self, revision: int, lagging: Sequence[str]) -> None:
        self.revision = revision
        self.lagging = list(lagging)
        super().__init__(
            f"routing revision {revision} not yet applied by: {', '.join(self.lagging)}",
            hint=("check those proxies are running (`zdm status`), then run "
                  "`zdm phase confirm-routing`; a proxy that is gone for good can be removed "
                  "with `zdm proxy deregister NAME`"),
        )


class UnknownProxy(ZdmError):
    """A proxy acknowledged routing without being registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"proxy {name!r} is not registered",
                         hint="a proxy registers itself when started with `zdm proxy start`")
