"""What a preflight found: :class:`PreflightReport`, and the evidence it leaves.

Theory of operation: a report is a frozen value made by :func:`~zdm.preflight.checks.assess`
(or by :func:`~zdm.preflight.run.run_preflight` alone, when a cluster cannot be reached):
one :class:`Check` per concern, the schema differences table by table, and the copy plan
(:class:`TableCopy`). It passes when no check failed and both schemas were read (the
fingerprint is known). :func:`record_preflight` keeps the outcome, passing or not, as the
phase machine's ``preflight`` evidence: the fingerprint is what the 0->1 guard compares
with the live schemas.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from zdm.clock import utcnow
from zdm.phases.evidence import PreflightEvidence, record_evidence
from zdm.phases.state import MigrationState
from zdm.preflight.schema import TableDiff
from zdm.state.store import StateStore

if TYPE_CHECKING:  # topology.py makes Checks: it imports this module
    from zdm.preflight.topology import ClusterLayout


class Status(enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    todo: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "todo": self.todo}


@dataclass(frozen=True)
class TableCopy:
    """How ``zdm migrate`` will copy one table: exactly, or with ``fallback`` columns
    ((column, CQL type, what the fallback keeps of it), see zdm.migrate.fallback)."""

    name: str
    fallback: tuple[tuple[str, str, str], ...] = ()

    @property
    def exact(self) -> bool:
        return not self.fallback

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.name, "exact": self.exact,
                "fallback": [{"column": c, "type": t, "keeps": k} for c, t, k in self.fallback]}


@dataclass(frozen=True)
class PreflightReport:
    checks: tuple[Check, ...]
    #: one entry per table (or missing keyspace) with a difference or a warning
    tables: tuple[TableDiff, ...] = ()
    keyspaces: tuple[str, ...] = ()
    tables_in_scope: tuple[str, ...] = ()
    fingerprint: str | None = None
    at: datetime = field(default_factory=utcnow)
    #: per table in scope, how the copy will treat it
    copy: tuple[TableCopy, ...] = ()
    #: origin's and target's nodes, DCs and replication of the keyspaces in scope
    topology: tuple[ClusterLayout, ...] = ()

    @property
    def passed(self) -> bool:
        return self.fingerprint is not None and all(c.status != Status.FAIL for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == Status.FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == Status.WARN]

    def summary(self) -> str:
        if self.passed:
            return (f"{len(self.tables_in_scope)} table(s) in {len(self.keyspaces)} keyspace(s) "
                    f"identical; {len(self.warnings)} warning(s)")
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)[:500]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "fingerprint": self.fingerprint,
                "keyspaces": list(self.keyspaces), "tables_in_scope": list(self.tables_in_scope),
                "checks": [c.to_dict() for c in self.checks],
                "tables": [t.to_dict() for t in self.tables],
                "copy": [c.to_dict() for c in self.copy], "summary": self.summary(),
                "topology": [t.to_dict() for t in self.topology]}


#: How many tables' findings the evidence keeps (the state is read by every proxy each
#: time it changes: a scope of thousands of tables keeps the first ones, in name order).
PREFLIGHT_TABLES_KEPT = 500


def table_findings(report: PreflightReport) -> list[dict[str, Any]]:
    """Per table in scope (and per missing keyspace): its schema differences, which fail
    the preflight, its warnings, and how the copy will treat it (``exact``, or the columns
    taking the fallback)."""
    diffs = {t.name: t for t in report.tables}
    copies = {c.name: c for c in report.copy}
    names = sorted(set(report.tables_in_scope) | set(diffs))
    out = []
    for name in names[:PREFLIGHT_TABLES_KEPT]:
        d, c = diffs.get(name), copies.get(name)
        out.append({"table": name,
                    "differences": list(d.differences) if d else [],
                    "warnings": list(d.warnings) if d else [],
                    "copy": None if c is None else "exact" if c.exact else
                    "fallback for " + ", ".join(col for col, _, _ in c.fallback)})
    return out


def record_preflight(store: StateStore, report: PreflightReport, operator: str) -> MigrationState:
    """Record the outcome (passing or not) as the ``preflight`` evidence, with each table's
    findings."""
    evidence = PreflightEvidence(report.passed, report.fingerprint or "", report.at,
                                 report.summary(), table_findings(report))
    return record_evidence(store, evidence, operator, now=report.at)
