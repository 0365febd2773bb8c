"""A proxy instance's record in the migration's state store.

Theory of operation: an instance registers under its name, polls the stored state for
routing changes (a cheap ``stat`` first, the file only when it changed), acknowledges a
routing revision once every one of its workers routes by it, and publishes its health
about once a second.  With a cluster state store it also ships the divergence records its
workers wrote on this host, so validate and the guards see them from any host; until a
record is shipped its count rides in the heartbeat (and holds the guards).  Every method
does I/O and blocks: the instance calls them on a thread, never on its event loop.  An
operator may deregister an instance while it runs (`zdm proxy deregister`); its next write
registers it again.
"""

from __future__ import annotations

import logging

from zdm.state.divergences import DivergenceLog, Divergences
from zdm.phases.model import Phase, Routing
from zdm.errors import ZdmError
from zdm.phases import UnknownProxy

log = logging.getLogger("zdm.proxy")


class Registration:
    def __init__(self, store, name: str, address: str, *, local: DivergenceLog | None = None) -> None:
        self.store = store
        self.name = name
        self.address = address
        self._stamp = object()  # never equal to a real stamp: the first poll reads the state
        #: the records written on this host, when the store is elsewhere (None: the same)
        self.local = local if store.kind != "file" else None
        self._shipped: set[str] = set()

    def register(self) -> None:
        self.store.register_proxy(self.name, self.address)

    def poll_routing(self) -> tuple[Routing, int, Phase] | None:
        """(routing, revision, phase) when the stored state changed since the last poll."""
        stamp = self.store.state_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        state = self.store.load()
        return state.routing, state.routing_status.revision, state.phase

    def ack(self, revision: int) -> None:
        self._write(self.store.ack_routing, self.name, revision)

    def publish(self, **health) -> None:
        if self.local is not None:
            health["divergences_unshipped"] = self.ship_divergences()
        self._write(self.store.update_proxy, self.name, address=self.address, **health)

    def ship_divergences(self) -> int:
        """Copy this host's new divergence records to the store; returns how many are not
        there yet (the store could not be written)."""
        new = [r for r in self.local.records() if r.get("id") not in self._shipped]
        shipped = 0
        try:
            for record in new:
                self.store.divergences().ship([record])
                self._shipped.add(record["id"])
                shipped += 1
        except ZdmError as exc:
            log.warning("cannot ship %d divergence record(s) to the state store yet: %s",
                        len(new) - shipped, exc.message)
        return len(new) - shipped

    def divergences(self) -> Divergences:
        """What this instance reports in its metrics: the records written on this host,
        resolved as the store says."""
        if self.local is None:
            return self.store.divergences()
        return _Resolved(self.local, self.store.divergences())

    def deregister(self) -> None:
        self.store.deregister_proxy(self.name)

    def _write(self, write, *args, **fields) -> None:
        try:
            write(*args, **fields)
        except UnknownProxy:
            log.warning("proxy %s was deregistered while running; registering it again", self.name)
            self.register()
            write(*args, **fields)


class _Resolved(Divergences):
    def __init__(self, records: Divergences, resolution: Divergences) -> None:
        self._records, self._resolution = records, resolution

    def records(self):
        return self._records.records()

    def resolved_ids(self):
        return self._resolution.resolved_ids()
