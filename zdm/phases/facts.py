"""What a command observed live just before asking for a transition.

The caller (CLI) gathers these; the phase machine never does I/O to learn them, so guards
stay pure functions of (state, facts, thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from zdm.clock import iso, utcnow
from zdm.phases.evidence import AsyncReadStats, to_record


@dataclass(frozen=True)
class ProxyHealth:
    """One registered proxy as probed now."""

    name: str
    running: bool
    origin_connected: bool
    target_connected: bool
    applied_revision: int | None = None
    #: seconds since its last heartbeat (None: it never sent one)
    heartbeat_age_s: float | None = None


@dataclass(frozen=True)
class Facts:
    """Live observations and CLI flags for one transition attempt.

    ``tables`` is the migration scope from the config (None: whatever the migration
    recorded). ``async_reads``, when given, is preferred over recorded async-read evidence.
    """

    now: datetime = field(default_factory=utcnow)
    schema_fingerprint: str | None = None
    proxies: Sequence[ProxyHealth] = ()
    async_reads: AsyncReadStats | None = None
    tables: Sequence[str] | None = None
    confirm_clients_on_proxy: bool = False
    confirm_clients_on_target: bool = False
    skip_async_reads: bool = False
    #: rows the proxies recorded as divergent and nobody resolved yet: "ks.table" -> {kind: n}
    divergences: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """For the journal."""
        return {
            "now": iso(self.now),
            "schema_fingerprint": self.schema_fingerprint,
            "proxies": [vars(p) for p in self.proxies],
            "async_reads": to_record(self.async_reads) if self.async_reads else None,
            "tables": list(self.tables) if self.tables is not None else None,
            "confirm_clients_on_proxy": self.confirm_clients_on_proxy,
            "confirm_clients_on_target": self.confirm_clients_on_target,
            "skip_async_reads": self.skip_async_reads,
            "divergences": self.divergences,
        }
