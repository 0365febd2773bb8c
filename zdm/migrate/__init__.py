"""``zdm migrate``: copy pre-existing data from origin to target, cell for cell.

Public API: ``migrate(config, settings) -> MigrationReport`` and the per-range
``copy_range(ctx, spec, range)`` it is built on.
"""

from zdm.migrate.context import RunSettings
from zdm.migrate.report import MigrationReport
from zdm.migrate.run import MigrationSettings, Scope, migrate

__all__ = ["MigrationReport", "MigrationSettings", "RunSettings", "Scope", "migrate"]
