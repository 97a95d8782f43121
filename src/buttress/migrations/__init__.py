"""Checksummed SQL migrations and buttress's own tables.

``Migrator(backend, directory)`` applies ``NNNN_name.sql`` files in dependency
then version order, once each, under a per-database lock, recording them in one
``schema_migrations`` table by namespace. ``apply_builtin`` runs buttress's own.
"""

from buttress.migrations.builtin import BUILTIN_NAMESPACE, apply_builtin, builtin_migrator
from buttress.migrations.errors import (
    DestructiveMigrationError,
    MigrationError,
    MigrationFailedError,
    MigrationValidationError,
)
from buttress.migrations.files import CHECKSUM_ALGORITHM, Migration, checksum
from buttress.migrations.lock import MigrationLockTimeout
from buttress.migrations.migrator import Migrator
from buttress.migrations.report import (
    MIGRATION_RAN,
    MigrateResult,
    MigrationOutcome,
    MigrationRan,
    MigrationReport,
    MigrationState,
    MigrationStatus,
)

__all__ = [
    "BUILTIN_NAMESPACE",
    "CHECKSUM_ALGORITHM",
    "MIGRATION_RAN",
    "DestructiveMigrationError",
    "MigrateResult",
    "Migration",
    "MigrationError",
    "MigrationFailedError",
    "MigrationLockTimeout",
    "MigrationOutcome",
    "MigrationRan",
    "MigrationReport",
    "MigrationState",
    "MigrationStatus",
    "MigrationValidationError",
    "Migrator",
    "apply_builtin",
    "builtin_migrator",
    "checksum",
]
