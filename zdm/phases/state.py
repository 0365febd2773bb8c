"""The persisted migration state and its on-disk form.

Invariants:
- ``MigrationState`` is immutable; every change is a new value whose ``revision`` is
  exactly one more (:meth:`MigrationState.bump`). The store refuses any other write.
- ``routing`` is derived from ``phase``; the file stores it only for readers (proxies,
  humans) and loading rejects a file where the two disagree.
- The file is ``{"format", "checksum", "state"}`` with sorted keys; the checksum is the
  SHA-256 of the canonical (compact, sorted) JSON of ``state``, so any damage or hand
  edit is detected by :func:`decode` rather than acted upon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from zdm.clock import iso, parse_time
from zdm.phases.evidence import from_record
from zdm.phases.model import Phase, Routing, routing_for

FORMAT = 1


class StateFormatError(ValueError):
    """The bytes are not a valid state document (the store turns this into StateCorrupt)."""


@dataclass(frozen=True)
class RoutingStatus:
    """Whether the current routing has reached every registered proxy.

    ``revision`` is the state revision that set the current routing; proxies acknowledge
    that number. ``acks`` is the snapshot of acknowledgements taken when confirmed.
    """

    revision: int = 0
    applied: bool = True
    applied_at: datetime | None = None
    acks: Mapping[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "applied": self.applied,
                "applied_at": _opt_iso(self.applied_at), "acks": dict(self.acks)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RoutingStatus":
        return cls(int(d["revision"]), bool(d["applied"]), _opt_time(d["applied_at"]),
                   dict(d["acks"]))


@dataclass(frozen=True)
class HistoryEntry:
    revision: int
    at: datetime
    operator: str
    action: str          # "advance" | "rollback"
    trigger: str
    source: Phase
    dest: Phase
    why: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "at": iso(self.at), "operator": self.operator,
                "action": self.action, "trigger": self.trigger, "from": int(self.source),
                "to": int(self.dest), "why": self.why}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HistoryEntry":
        return cls(int(d["revision"]), parse_time(d["at"]), d["operator"], d["action"],
                   d["trigger"], Phase(d["from"]), Phase(d["to"]), d["why"])


@dataclass(frozen=True)
class MigrationState:
    """Where the migration stands. Treat the mappings as read-only."""

    phase: Phase = Phase.PLAN
    revision: int = 0
    entered_at: datetime | None = None       # when ``phase`` was entered
    updated_at: datetime | None = None
    evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    routing_status: RoutingStatus = field(default_factory=RoutingStatus)
    history: tuple[HistoryEntry, ...] = ()

    @property
    def routing(self) -> Routing:
        return routing_for(self.phase)

    @property
    def dual_writes_since(self) -> datetime | None:
        """When the current run of dual writes began: the last advance into phase 1,
        while the migration is in phase 1 or later (None in phase 0: after a rollback
        there, clients wrote to origin alone and the next advance starts a new run)."""
        if self.phase < Phase.PROXY:
            return None
        entries = [h.at for h in self.history
                   if h.action == "advance" and h.dest == Phase.PROXY]
        return entries[-1] if entries else None

    def bump(self, now: datetime, **changes: Any) -> "MigrationState":
        """The next revision, with ``changes`` applied."""
        return dataclasses.replace(self, revision=self.revision + 1, updated_at=now, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": int(self.phase),
            "phase_name": self.phase.name,
            "routing": self.routing.to_dict(),
            "revision": self.revision,
            "entered_at": _opt_iso(self.entered_at),
            "updated_at": _opt_iso(self.updated_at),
            "evidence": {k: dict(v) for k, v in self.evidence.items()},
            "routing_status": self.routing_status.to_dict(),
            "history": [h.to_dict() for h in self.history],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MigrationState":
        phase = Phase(d["phase"])
        if Routing.from_dict(d["routing"]) != routing_for(phase):
            raise StateFormatError(f"routing {d['routing']} does not match phase {phase.label}")
        evidence = {k: dict(v) for k, v in d["evidence"].items()}
        for kind, record in evidence.items():
            from_record(kind, record)  # reject malformed evidence now, not in a guard later
        return cls(phase=phase, revision=int(d["revision"]),
                   entered_at=_opt_time(d["entered_at"]), updated_at=_opt_time(d["updated_at"]),
                   evidence=evidence, routing_status=RoutingStatus.from_dict(d["routing_status"]),
                   history=tuple(HistoryEntry.from_dict(h) for h in d["history"]))


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum(state_dict: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(state_dict)).hexdigest()


def encode(state: MigrationState) -> bytes:
    body = state.to_dict()
    doc = {"format": FORMAT, "checksum": checksum(body), "state": body}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"


def decode(data: bytes) -> MigrationState:
    """Parse and verify a state document; raises :class:`StateFormatError` on any damage."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFormatError(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not {"format", "checksum", "state"} <= doc.keys():
        raise StateFormatError("not a zdm state document (missing format/checksum/state)")
    if doc["format"] != FORMAT:
        raise StateFormatError(f"format {doc['format']!r} is not the supported {FORMAT} "
                               "(written by another zdm version?)")
    if doc["checksum"] != checksum(doc["state"]):
        raise StateFormatError("checksum mismatch (the file was modified or partly written)")
    try:
        return MigrationState.from_dict(doc["state"])
    except StateFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateFormatError(f"invalid content ({type(exc).__name__}: {exc})") from None


def _opt_iso(when: datetime | None) -> str | None:
    return None if when is None else iso(when)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)
