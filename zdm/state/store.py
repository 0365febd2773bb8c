"""The interface every state store keeps; :func:`zdm.state.open_store` picks one from
``state_store`` in zdm.yaml.

Theory of operation: the state (phase, routing, evidence, history) is one
:class:`~zdm.phases.state.MigrationState` with a revision; every change is a
compare-and-set on that revision, journaled with the change.  Proxies never write the
state: each keeps a record of its own (address, the routing revision it applied, its
health), and polls a cheap :meth:`StateStore.state_stamp` to notice changes.

* ``file`` (:mod:`zdm.state.file_store`, the default): ``state_dir`` on one host.
* ``cassandra`` (:mod:`zdm.state.cassandra_store`): a keyspace on target, so proxies on
  several hosts coordinate with no shared filesystem; the compare-and-set is a
  lightweight transaction.

Divergence records are written where the proxy runs (``state_dir/divergences``, durable
before the client is answered); a cluster store also holds a copy each proxy ships, which
is what `zdm validate` and the phase guards read from any host.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Mapping

from zdm.clock import iso, parse_time, utcnow
from zdm.errors import ZdmError
from zdm.phases.state import MigrationState
from zdm.state.divergences import Divergences

_PROXY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")  # e.g. "10.0.0.1:14002"


def check_proxy_name(name: str) -> str:
    if not isinstance(name, str) or not _PROXY_NAME.match(name):
        raise ZdmError(f"invalid proxy name {name!r}", hint="use letters, digits, '.', ':', '_' or '-'")
    return name


@dataclass(frozen=True)
class ProxyLag:
    """One registered proxy against the routing revision it should have applied."""

    name: str
    address: str
    acked_revision: int | None
    acked_at: datetime | None
    wanted_revision: int

    @property
    def lagging(self) -> bool:
        return self.acked_revision is None or self.acked_revision < self.wanted_revision


class Transaction:
    """The state as read for a read-modify-write; :meth:`commit` writes its successor."""

    def __init__(self, store: "StateStore", state: MigrationState) -> None:
        self.store = store
        self.state = state

    def commit(self, new: MigrationState, *, journal: Mapping[str, Any] | None = None) -> None:
        self.store._commit(new, expected_revision=self.state.revision, journal=journal)
        self.state = new


class StateStore(ABC):
    """A migration's durable state, proxy records and journal."""

    #: "file" or "cassandra"
    kind: str = ""

    # -- the state ---------------------------------------------------------------------
    @abstractmethod
    def load(self) -> MigrationState:
        """The stored state, or the initial phase-0 state when none was written yet."""

    @abstractmethod
    def state_stamp(self) -> object:
        """A value that changes whenever the state does (cheap: proxies poll it)."""

    @abstractmethod
    def read_journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Journal entries, oldest first (the last ``limit`` if given)."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A read-modify-write: nothing is written unless :meth:`Transaction.commit` is
        called, and the commit fails with ConcurrentModification if another one came first."""
        with self._exclusive():
            yield Transaction(self, self._load_for_update())

    def write(self, new: MigrationState, *, expected_revision: int,
              journal: Mapping[str, Any] | None = None) -> None:
        """Optimistic write: succeeds only if the stored revision is still ``expected_revision``."""
        with self._exclusive():
            self._commit(new, expected_revision=expected_revision, journal=journal)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        yield  # a store whose commit is a compare-and-set needs no lock around it

    def _load_for_update(self) -> MigrationState:
        return self.load()

    @abstractmethod
    def _commit(self, new: MigrationState, *, expected_revision: int,
                journal: Mapping[str, Any] | None) -> None:
        """Write ``new`` if the stored revision is ``expected_revision`` (new is one more)."""

    # -- proxies ---------------------------------------------------------------------
    @abstractmethod
    def register_proxy(self, name: str, address: str) -> None:
        """(Re-)register a proxy; it has acknowledged nothing until :meth:`ack_routing`."""

    @abstractmethod
    def deregister_proxy(self, name: str) -> None:
        """Forget a proxy that is gone for good, so it no longer holds up routing changes."""

    @abstractmethod
    def update_proxy(self, name: str, /, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (JSON values) into a registered proxy's record; returns the record.

        The proxy reports its health this way about once a second, e.g. ``address``,
        ``pid``, ``heartbeat_at`` (UTC ISO), ``origin_connected``, ``target_connected`` and
        ``async_reads`` (``{"requests", "errors", "mismatches", "since"}``).
        Raises :class:`UnknownProxy` if ``name`` is not registered (or was deregistered).
        """

    @abstractmethod
    def proxy_records(self) -> dict[str, dict[str, Any]]:
        """Registered proxy name -> its record (as written by register/update/ack), sorted."""

    def ack_routing(self, name: str, revision: int) -> None:
        """Called by a proxy once it routes by ``revision`` (``routing_status.revision``)."""
        self.update_proxy(name, acked_revision=int(revision), acked_at=iso(utcnow()))

    def routing_acks(self) -> dict[str, int | None]:
        """Registered proxy name -> last acknowledged routing revision (None: none yet)."""
        return {name: rec.get("acked_revision") for name, rec in self.proxy_records().items()}

    def wait_for_acks(self, revision: int, timeout: float, poll: float = 0.1) -> list[str]:
        """Wait until every registered proxy acknowledged ``revision``; return those lagging."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = sorted(n for n, r in self.routing_acks().items()
                             if not isinstance(r, int) or r < revision)
            if not lagging or time.monotonic() >= deadline:
                return lagging
            time.sleep(poll)

    def proxy_lag(self, state: MigrationState | None = None) -> list[ProxyLag]:
        """Every registered proxy with what it acknowledged versus the current routing."""
        wanted = (state or self.load()).routing_status.revision
        return [ProxyLag(name, rec.get("address", ""), rec.get("acked_revision"),
                         parse_time(rec["acked_at"]) if rec.get("acked_at") else None, wanted)
                for name, rec in self.proxy_records().items()]

    # -- divergences -----------------------------------------------------------------
    @abstractmethod
    def divergences(self) -> Divergences:
        """The migration's divergence records, as validate and the guards read them."""

    # -- the rest ----------------------------------------------------------------------
    @abstractmethod
    def describe(self) -> str:
        """Where the state is, for messages (``state_dir .zdm/state``)."""

    def close(self) -> None:
        """Release connections (a cluster store's session)."""

    def __enter__(self) -> "StateStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

