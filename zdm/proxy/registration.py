"""A proxy instance's record in the migration's state store.

Theory of operation: an instance registers under its name, polls the stored state for
routing changes (a cheap ``stat`` first, the file only when it changed), acknowledges a
routing revision once every one of its workers routes by it, and publishes its health
about once a second.  Every method does file I/O and blocks: the instance calls them
on a thread, never on its event loop.  An operator may deregister an instance while it
runs (`zdm proxy deregister`); its next write registers it again.
"""

from __future__ import annotations

import logging

from zdm.phases.model import Phase, Routing

log = logging.getLogger("zdm.proxy")


class Registration:
    def __init__(self, store, name: str, address: str) -> None:
        self.store = store
        self.name = name
        self.address = address
        self._stamp = object()  # never equal to a real stamp: the first poll reads the state

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
        self._write(self.store.update_proxy, self.name, address=self.address, **health)

    def deregister(self) -> None:
        self.store.deregister_proxy(self.name)

    def _write(self, write, *args, **fields) -> None:
        from zdm.phases import UnknownProxy

        try:
            write(*args, **fields)
        except UnknownProxy:
            log.warning("proxy %s was deregistered while running; registering it again", self.name)
            self.register()
            write(*args, **fields)
