"""The Murmur3 token ring, cut into ranges for parallel copy and compare.

Theory of operation: a Murmur3 key's token lies in ``(MIN_TOKEN, MAX_TOKEN]`` (the
partitioner maps the one hash equal to -2**63 to 2**63-1), so the half-open ranges
``(start, end]`` that chain from MIN_TOKEN to MAX_TOKEN cover every key exactly once.
A range is read with ``WHERE token(pk) > start AND token(pk) <= end``.

:func:`split_ring` first cuts the ring at the cluster's ownership boundaries (each
node's tokens), so no range straddles two owners, then cuts each owned range into
equal pieces.  Invariants (tested with Hypothesis): the result is sorted, contiguous,
covers the ring exactly once, and every ownership boundary is a range end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1


@dataclass(frozen=True, order=True, slots=True)
class TokenRange:
    """Tokens ``t`` with ``start < t <= end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not MIN_TOKEN <= self.start < self.end <= MAX_TOKEN:
            raise ValueError(f"not a token range: ({self.start}, {self.end}]")

    @property
    def width(self) -> int:
        return self.end - self.start

    def split(self, pieces: int) -> list["TokenRange"]:
        """``pieces`` contiguous sub-ranges of near-equal width (fewer if the range is narrower)."""
        pieces = max(1, min(pieces, self.width))
        cuts = [self.start + (self.width * i) // pieces for i in range(pieces)] + [self.end]
        return [TokenRange(a, b) for a, b in zip(cuts, cuts[1:])]

    def key(self) -> str:
        """A stable name for checkpoints and reports."""
        return f"{self.start}:{self.end}"

    @classmethod
    def parse(cls, key: str) -> "TokenRange":
        start, _, end = key.partition(":")
        return cls(int(start), int(end))


FULL_RING = TokenRange(MIN_TOKEN, MAX_TOKEN)


def owned_ranges(boundaries: Iterable[int]) -> list[TokenRange]:
    """The ring cut at every ownership boundary (a node's token)."""
    cuts = sorted({b for b in boundaries if MIN_TOKEN < b < MAX_TOKEN})
    points = [MIN_TOKEN, *cuts, MAX_TOKEN]
    return [TokenRange(a, b) for a, b in zip(points, points[1:])]


def split_ring(boundaries: Iterable[int], target_count: int) -> list[TokenRange]:
    """At least ``target_count`` ranges (when the ring allows), aligned with ``boundaries``.

    Each owned range is split in proportion to its width, so ranges come out of similar
    size whatever the token layout.
    """
    owned = owned_ranges(boundaries)
    target_count = max(target_count, len(owned))
    ring_width = FULL_RING.width
    ranges: list[TokenRange] = []
    for r in owned:
        pieces = max(1, -(-target_count * r.width // ring_width))  # ceiling division
        ranges.extend(r.split(pieces))
    return ranges


def cluster_boundaries(cluster) -> list[int]:
    """Ownership boundaries from a connected driver Cluster's token map ([] if unknown)."""
    token_map = cluster.metadata.token_map
    if token_map is None:
        return []
    return [t.value for t in token_map.ring]


def subtract(ranges: Iterable[TokenRange], done: Iterable[TokenRange]) -> list[TokenRange]:
    """The parts of ``ranges`` not covered by ``done`` (both sets of half-open ranges)."""
    done_sorted = sorted(done)
    out: list[TokenRange] = []
    for r in sorted(ranges):
        cursor = r.start
        for d in done_sorted:
            if d.end <= cursor or d.start >= r.end:
                continue
            if d.start > cursor:
                out.append(TokenRange(cursor, d.start))
            cursor = max(cursor, d.end)
            if cursor >= r.end:
                break
        if cursor < r.end:
            out.append(TokenRange(cursor, r.end))
    return out
