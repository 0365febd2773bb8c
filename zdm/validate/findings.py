"""What a comparison found: one set of counters, for one range or a whole table.

A range's :class:`Findings` (from :func:`zdm.validate.compare.compare_range`) is checkpointed as
its JSON detail (:meth:`Findings.detail`, the first differences listed, all counted); a table's
findings are the sum of its ranges' details, those compared in this run and those carried from
an earlier one alike (:meth:`Findings.add`).  A range whose every difference was fixed is clean
(:func:`detail_clean`), and a re-check of only the failed ranges carries it over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

#: the counters, as a detail holds them and a table sums them
COUNTS = ("rows_origin", "rows_target", "missing_on_target", "only_on_target", "cells_differ",
          "fixed", "live_resolved")


@dataclass
class Difference:
    kind: str
    key: dict
    cells: list[dict] = field(default_factory=list)
    fixed: bool = False


@dataclass
class Findings:
    rows_origin: int = 0
    rows_target: int = 0
    missing_on_target: int = 0
    only_on_target: int = 0
    cells_differ: int = 0
    fixed: int = 0
    live_resolved: int = 0  # suspects that a re-read showed to be live writes
    #: the differences listed (a range's as :class:`Difference`, a table's as their JSON)
    differences: list = field(default_factory=list)

    @property
    def found(self) -> int:
        return self.missing_on_target + self.only_on_target + self.cells_differ

    @property
    def remaining(self) -> int:
        return self.found - self.fixed

    def detail(self, max_listed: int) -> dict:
        """These findings, JSON-ready, for a range's checkpoint."""
        listed = [vars(d) for d in self.differences[:max_listed]]
        return {**{name: getattr(self, name) for name in COUNTS},
                "differences": json.loads(json.dumps(listed, default=str))}

    def add(self, detail: dict, max_listed: int) -> None:
        """Count one range's findings (its :meth:`detail`), listing at most ``max_listed``."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + detail[name])
        room = max_listed - len(self.differences)
        self.differences.extend(detail["differences"][:max(0, room)])


def detail_clean(detail: dict | None) -> bool:
    """Whether a range's checkpointed findings left nothing to fix."""
    if detail is None:
        return False
    found = detail["missing_on_target"] + detail["only_on_target"] + detail["cells_differ"]
    return found - detail["fixed"] == 0
