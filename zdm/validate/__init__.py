"""``zdm validate``: prove origin and target agree, range by range, and optionally repair target.

Public API: ``validate(config, settings) -> ValidationReport`` and the per-range
``compare_range(ctx, spec, range, params)`` it is built on.
"""

from zdm.validate.compare import ValidationParams
from zdm.validate.run import ValidationReport, ValidationSettings, validate

__all__ = ["ValidationParams", "ValidationReport", "ValidationSettings", "validate"]
