"""``connect(dsn)``: the composition root, where backends meet buttress's own migrations.

Backends know nothing of migrations and migrations know nothing of DSNs; this
module joins them. ``connect`` opens the backend for a DSN and, unless told
``migrate=False``, brings buttress's own tables up to date (on SQL backends;
memory and Redis keep none). With nothing pending that is reads only: no DDL,
no lock, no CREATE privilege needed.
"""

from __future__ import annotations

from buttress._exceptions import ValidationError
from buttress.backends import Backend, Connecting

__all__ = ["connect"]


async def _migrate(backend: Backend) -> None:
    from buttress.migrations import apply_builtin

    await apply_builtin(backend)


def connect(dsn: str, *, migrate: bool = True, **options: object) -> Connecting:
    """Open the backend named by ``dsn``; ``await`` it or use ``async with``.

    Schemes: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``sqlite://`` (in memory), ``postgresql://`` / ``postgres://`` (several hosts,
    ``sslmode``, ``pgbouncer=true`` behind a transaction pooler), ``redis://`` /
    ``rediss://``, ``redis+cluster://`` and ``redis+sentinel://`` (see
    docs/backends.md). ``migrate=True`` (the default) applies buttress's own
    migrations after connecting. Other options depend on the backend; an unknown
    one is a ``ValidationError`` naming it.
    """
    if not isinstance(migrate, bool):
        raise ValidationError("migrate", "must be True or False")
    return Connecting(dsn, options, _migrate if migrate else None)
