"""``zdm validate``: prove origin and target agree, range by range, and optionally repair target.

Public API: ``validate(config, settings) -> ValidationReport``, ``repair(config)`` (the rows
the proxies recorded as divergent), and the per-range ``compare_range(ctx, spec, range,
params)`` they are built on.
"""

from zdm.validate.compare import ValidationParams
from zdm.validate.recorded import RecheckReport
from zdm.validate.run import ValidationReport, ValidationSettings, repair, validate

__all__ = ["RecheckReport", "ValidationParams", "ValidationReport", "ValidationSettings", "repair",
           "validate"]
