"""What zdm knows about Cassandra releases: one definition per fact, used by the sandbox,
the preflight and the copy.

Release numbers are compared as tuples (``"4.1.10"`` -> (4, 1, 10)).  Facts are keyed by
the first release that has them, so a release zdm has never heard of (5.1, say) gets the
facts of the newest one it knows.
"""

from __future__ import annotations

import re

Version = tuple[int, ...]

#: The release the sandbox runs unless told otherwise (origin and target alike).
DEFAULT_SANDBOX_RELEASE = "5.0.8"

#: Release series the sandbox can run from Maven Central's jars (oldest first).
SANDBOX_SERIES: tuple[Version, ...] = ((3, 11), (4, 0), (4, 1), (5, 0))

#: Cassandra 5.0 is the first release whose WRITETIME()/TTL() accept a non-frozen
#: collection (one value per element) or a field of a non-frozen UDT (CASSANDRA-8877).
ELEMENT_METADATA_SINCE: Version = (5, 0)

#: Cassandra 4.0 dropped COMPACT STORAGE to minimal support (CASSANDRA-16217): 4.1 and
#: 5.0 still create such tables, but only while the compact_tables_enabled guardrail
#: allows it (Astra DB does not), and dropping it needs drop_compact_storage_enabled.
COMPACT_STORAGE_REMOVED_IN: Version = (4, 0)

#: Cassandra 4.0 added system.peers_v2 and the broadcast/listen/rpc port columns of
#: system.local (CASSANDRA-7544), and dropped thrift_version: what a driver finds there
#: tells it how to read the topology, so the proxy's virtual tables follow origin's release.
PORTS_IN_SYSTEM_TABLES_SINCE: Version = (4, 0)

#: Table options later releases no longer know (they refuse a CREATE TABLE naming them),
#: with why; any other option target lacks is reported too, found by comparing names.
REMOVED_OPTIONS: dict[str, str] = {
    "read_repair_chance": "removed in Cassandra 4.0 (its `read_repair` option replaces it)",
    "dclocal_read_repair_chance": "removed in Cassandra 4.0 (its `read_repair` option "
                                  "replaces it)",
    "nodesync": "a DSE option that Apache Cassandra does not have",
}

#: Compaction strategies removed, with the release that removed them and the replacement.
REMOVED_COMPACTION: dict[str, tuple[Version, str]] = {
    "DateTieredCompactionStrategy": ((5, 0), "TimeWindowCompactionStrategy"),
}


def parse_version(text: str | None) -> Version | None:
    """``"4.0.0.6816"`` -> (4, 0, 0, 6816); ``"5.0-beta1"`` -> (5, 0); None if no digits."""
    match = re.match(r"\d+(?:\.\d+)*", (text or "").strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else None


def fmt(version: Version) -> str:
    return ".".join(map(str, version))


def series(version: str | Version) -> Version:
    """The (major, minor) of a release: ``"4.1.10"`` -> (4, 1)."""
    parsed = parse_version(version) if isinstance(version, str) else version
    if not parsed or len(parsed) < 2:
        raise ValueError(f"not a Cassandra release number: {version!r}")
    return parsed[:2]


def has_element_metadata(release: str | None, dse: str | None = None) -> bool:
    """Whether a cluster can read the writetime and TTL of each collection element and of
    each field of a non-frozen UDT.  DSE never could (as far as zdm knows): be safe."""
    if dse:
        return False
    version = parse_version(release)
    return version is not None and version >= ELEMENT_METADATA_SINCE
