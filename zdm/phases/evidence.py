"""Typed evidence records the guards rely on, and how they are stored in the state.

Theory of operation: commands that observe something (preflight, migrate, validate,
the proxy's async-read counters, an operator's confirmation) call
:func:`record_evidence`; guards later read it back with :func:`evidence_of`.

Invariants:
- In the state, evidence is a plain JSON dict keyed by kind; one record per kind, the
  latest wins. Each stored record also carries ``recorded_by`` and ``recorded_at``.
- Every timestamp is timezone-aware UTC (naive datetimes are taken as UTC: :mod:`zdm.clock`).
- :func:`with_evidence` is pure; only :func:`record_evidence` writes, through the store.
"""

from __future__ import annotations

import dataclasses
import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from zdm.clock import iso, parse_time, utcnow

if TYPE_CHECKING:
    from zdm.phases.state import MigrationState
    from zdm.state.store import StateStore  # a real cycle at run time: see machine.py

_TIME_FIELDS = frozenset({"at", "started_at", "finished_at", "since", "dual_writes_since"})


@dataclass(frozen=True)
class PreflightEvidence:
    passed: bool
    schema_fingerprint: str
    at: datetime
    summary: str = ""
    #: per table in scope (at most PREFLIGHT_TABLES_KEPT), what the preflight found:
    #: {"table", "differences", "warnings", "copy"} (see zdm.preflight.report.table_findings)
    tables: list = dataclasses.field(default_factory=list)

    kind = "preflight"


@dataclass(frozen=True)
class ClientsOnProxyConfirmed:
    at: datetime
    operator: str

    kind = "clients_on_proxy"


@dataclass(frozen=True)
class MigrationEvidence:
    tables: list[str]
    complete: bool
    started_at: datetime
    finished_at: datetime | None = None
    #: tables whose non-frozen collections/UDTs took the copy's fallback, the start of dual
    #: writes it relied on, and the timestamp it wrote them at (see zdm.migrate.fallback)
    dual_writes_since: datetime | None = None
    fallback_timestamp: int | None = None
    fallback_tables: tuple[str, ...] = ()

    kind = "migration"


@dataclass(frozen=True)
class ValidationEvidence:
    """A validation run; ``final`` marks the one run after reads moved to target."""

    tables: list[str]
    started_at: datetime
    finished_at: datetime | None
    differences: int
    clean: bool
    final: bool = False

    @property
    def kind(self) -> str:
        return "final_validation" if self.final else "validation"


@dataclass(frozen=True)
class AsyncReadStats:
    """Counters of reads mirrored to target in phase 3 (summed over proxies)."""

    requests: int
    errors: int
    mismatches: int
    since: datetime

    kind = "async_reads"

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ClientsOnTargetConfirmed:
    at: datetime
    operator: str

    kind = "clients_on_target"


Evidence = (PreflightEvidence | ClientsOnProxyConfirmed | MigrationEvidence | ValidationEvidence
            | AsyncReadStats | ClientsOnTargetConfirmed)

KINDS: dict[str, type] = {
    "preflight": PreflightEvidence,
    "clients_on_proxy": ClientsOnProxyConfirmed,
    "migration": MigrationEvidence,
    "validation": ValidationEvidence,
    "final_validation": ValidationEvidence,
    "async_reads": AsyncReadStats,
    "clients_on_target": ClientsOnTargetConfirmed,
}


def to_record(evidence: Evidence) -> dict[str, Any]:
    """The JSON form of one evidence record (without recorder metadata)."""
    record: dict[str, Any] = {}
    for f in dataclasses.fields(evidence):
        value = getattr(evidence, f.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, (list, tuple)):
            value = list(value)
        record[f.name] = value
    return record


def from_record(kind: str, record: Mapping[str, Any]) -> Evidence:
    """Rebuild a typed record; raises ``KeyError``/``TypeError``/``ValueError`` if malformed."""
    cls = KINDS[kind]
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in record:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{kind} evidence lacks {f.name!r}")
            continue
        value = record[f.name]
        if f.name in _TIME_FIELDS and value is not None:
            value = parse_time(value)
        values[f.name] = value
    evidence = cls(**values)
    if evidence.kind != kind:
        raise ValueError(f"record stored as {kind!r} is a {evidence.kind!r}")
    return evidence


def evidence_of(state: "MigrationState", kind: str) -> Evidence | None:
    record = state.evidence.get(kind)
    return None if record is None else from_record(kind, record)


def with_evidence(state: "MigrationState", evidence: Evidence, *, operator: str,
                  at: datetime | None = None) -> "MigrationState":
    """Pure: a new state (next revision) holding ``evidence`` in place of its kind's old one."""
    at = at or utcnow()
    record = {**to_record(evidence), "recorded_by": operator, "recorded_at": iso(at)}
    return state.bump(at, evidence={**state.evidence, evidence.kind: record})


def record_evidence(store: "StateStore", evidence: Evidence, operator: str, *,
                    now: datetime | None = None) -> "MigrationState":
    """Persist one evidence record (under the store lock) and journal it."""
    now = now or utcnow()
    with store.transaction() as txn:
        new = with_evidence(txn.state, evidence, operator=operator, at=now)
        txn.commit(new, journal={
            "at": iso(now), "operator": operator, "event": "evidence", "kind": evidence.kind,
            "phase": int(new.phase), "revision": new.revision, "record": to_record(evidence),
        })
    return new


def operator_name() -> str:
    """Who records the evidence of a copy or a validation: the login name ("zdm" when the
    system has none, as in some containers)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "zdm"
