"""The migration phases and the routing each one implies.

Invariant: routing is a pure function of the phase (:func:`routing_for`); nothing
stores a routing that disagrees with its phase.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.IntEnum):
    """The documented ZDM phases, in order. Advancing moves up by one (2->4 may skip 3)."""

    PLAN = 0
    PROXY = 1
    MIGRATE = 2
    ASYNC_READS = 3
    TARGET_READS = 4
    CUTOVER = 5

    @property
    def title(self) -> str:
        return _TITLES[self][0]

    @property
    def description(self) -> str:
        return _TITLES[self][1]

    @property
    def label(self) -> str:
        """``"2 MIGRATE"``: how phases are named in messages."""
        return f"{int(self)} {self.name}"


_TITLES = {
    Phase.PLAN: ("Plan", "Preflight checks; clients talk to origin directly."),
    Phase.PROXY: ("Proxy deployed",
                  "Clients go through the proxy: writes to both clusters, reads from origin."),
    Phase.MIGRATE: ("Migrate data",
                    "Existing data is copied to target and validated; routing as in phase 1."),
    Phase.ASYNC_READS: ("Asynchronous dual reads",
                        "Reads are also sent to target in the background and compared, "
                        "never returned."),
    Phase.TARGET_READS: ("Reads from target",
                         "Reads are served by target; writes still go to both clusters."),
    Phase.CUTOVER: ("Cutover",
                    "Clients connect to target directly; the proxy is retired; no way back."),
}


class Cluster(enum.Enum):
    ORIGIN = "origin"
    TARGET = "target"


class ReadMode(enum.Enum):
    PRIMARY_ONLY = "primary_only"
    DUAL_ASYNC = "dual_async"


@dataclass(frozen=True)
class Routing:
    """Where the proxy sends reads. Writes always go to both clusters while a proxy exists."""

    primary: Cluster
    read_mode: ReadMode

    def to_dict(self) -> dict[str, str]:
        return {"primary": self.primary.value, "read_mode": self.read_mode.value}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> "Routing":
        return cls(Cluster(data["primary"]), ReadMode(data["read_mode"]))


_ROUTING = {
    Phase.PLAN: Routing(Cluster.ORIGIN, ReadMode.PRIMARY_ONLY),
    Phase.PROXY: Routing(Cluster.ORIGIN, ReadMode.PRIMARY_ONLY),
    Phase.MIGRATE: Routing(Cluster.ORIGIN, ReadMode.PRIMARY_ONLY),
    Phase.ASYNC_READS: Routing(Cluster.ORIGIN, ReadMode.DUAL_ASYNC),
    Phase.TARGET_READS: Routing(Cluster.TARGET, ReadMode.PRIMARY_ONLY),
    Phase.CUTOVER: Routing(Cluster.TARGET, ReadMode.PRIMARY_ONLY),  # proxy retired
}


def routing_for(phase: Phase) -> Routing:
    return _ROUTING[Phase(phase)]
