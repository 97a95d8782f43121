"""buttress's own tables, created by its own migrations in namespace ``buttress``.

The files live in ``builtin/<dialect>/`` inside the package; later modules add
theirs there (next free version number, one directory per dialect).
``apply_builtin`` is what ``connect(dsn, migrate=True)`` runs.
"""

from __future__ import annotations

import importlib.resources

from buttress.backends import Backend, SqlBackend
from buttress.migrations.migrator import Migrator
from buttress.migrations.report import MigrateResult

__all__ = ["BUILTIN_NAMESPACE", "apply_builtin", "builtin_migrator"]

BUILTIN_NAMESPACE = "buttress"


def builtin_migrator(backend: SqlBackend, *, environment: str | None = None) -> Migrator:
    """A ``Migrator`` over buttress's packaged migrations for ``backend``'s dialect."""
    root = importlib.resources.files("buttress.migrations") / "builtin" / backend.dialect
    # Packaged as plain files (wheel or editable install), so the path is real.
    return Migrator(backend, str(root), namespace=BUILTIN_NAMESPACE, environment=environment)


async def apply_builtin(backend: Backend) -> MigrateResult:
    """Bring buttress's own tables up to date; a no-op for memory and Redis backends.

    Cheap when nothing is pending: one read, no lock.
    """
    if not isinstance(backend, SqlBackend):
        return MigrateResult(applied=())
    return await builtin_migrator(backend).migrate()
