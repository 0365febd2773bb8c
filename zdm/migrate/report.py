"""The migration's outcome, per table (its progress events are range work's: :mod:`zdm.ranges.events`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class TableResult:
    table: str
    ranges_total: int
    #: plan ranges already finished by an earlier run (not redone)
    ranges_skipped: int = 0
    #: ranges (or retry pieces) finished by this run, as "start:end"
    ranges_copied: list[str] = field(default_factory=list)
    rows_copied: int = 0
    rows_total: int = 0
    failed_ranges: list[dict] = field(default_factory=list)
    complete: bool = False
    #: columns copied by the fallback (origin cannot read their cells' writetimes)
    fallback_columns: list[str] = field(default_factory=list)


@dataclass
class MigrationReport:
    tables: list[TableResult]
    started_at: datetime
    finished_at: datetime
    interrupted: bool = False
    #: the start of dual writes the fallback's timestamp was derived from, and that timestamp
    dual_writes_since: datetime | None = None
    fallback_timestamp: int | None = None
    #: a catch-up copy of the cells written at or after this time (None: a full copy)
    since: datetime | None = None

    @property
    def complete(self) -> bool:
        return not self.interrupted and all(t.complete for t in self.tables)

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def rows_copied(self) -> int:
        return sum(t.rows_copied for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows_copied / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "complete": self.complete, "interrupted": self.interrupted,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
            "elapsed_s": round(self.elapsed_s, 3), "rows_copied": self.rows_copied,
            "since": self.since.isoformat() if self.since else None,
            "rows_per_s": round(self.rows_per_s, 1),
            "dual_writes_since": self.dual_writes_since.isoformat() if self.dual_writes_since else None,
            "fallback_timestamp": self.fallback_timestamp,
            "tables": [asdict(t) for t in self.tables],
        }
