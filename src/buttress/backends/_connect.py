"""``open_backend(dsn)``: pick the backend for a DSN's scheme and open it.

The returned ``Connecting`` is both awaitable and an async context manager (as
``asyncpg.create_pool`` is), so ``b = await open_backend(dsn)`` and
``async with open_backend(dsn) as b:`` both work. What should happen once a
backend is open (``buttress.connect`` runs buttress's own migrations) is handed
in as ``prepare``: this module knows nothing above the backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final

from buttress._exceptions import BackendError, InvalidDSNError
from buttress.backends._base import Backend
from buttress.backends._dsn import DSN, SUPPORTED_SCHEMES, parse_dsn, spellings
from buttress.log import register_secret

__all__ = ["BACKENDS", "Connecting", "Prepare", "backend_class", "open_backend", "protect"]

Prepare = Callable[[Backend], Awaitable[object]]
"""What runs on a freshly opened backend before it is handed out."""


def _backends() -> tuple[type[Backend], ...]:
    # The backend modules import no driver at import time, only when they open.
    from buttress.backends.memory import MemoryBackend
    from buttress.backends.postgres import PostgresBackend
    from buttress.backends.redis import RedisBackend
    from buttress.backends.sqlite import SqliteBackend

    return (MemoryBackend, SqliteBackend, PostgresBackend, RedisBackend)


BACKENDS: Final[tuple[type[Backend], ...]] = _backends()
"""Every backend class; each declares the DSN schemes it serves (``schemes``)."""

_BY_SCHEME: Final[dict[str, type[Backend]]] = {
    scheme: backend for backend in BACKENDS for scheme in backend.schemes
}


def backend_class(scheme: str) -> type[Backend]:
    """The backend class that serves ``scheme`` (parse_dsn has already refused unknown ones)."""
    try:
        return _BY_SCHEME[scheme]
    except KeyError:
        raise InvalidDSNError(
            f"unsupported scheme {scheme!r}; supported: {SUPPORTED_SCHEMES}"
        ) from None


class Connecting:
    """A backend being opened: ``await`` it, or use it with ``async with``."""

    __slots__ = ("_backend", "_dsn", "_options", "_prepare")

    def __init__(
        self, dsn: str, options: dict[str, object], prepare: Prepare | None = None
    ) -> None:
        self._dsn = dsn
        self._options = options
        self._prepare = prepare
        self._backend: Backend | None = None

    async def _open(self) -> Backend:
        if self._backend is not None:
            raise BackendError("this connect() call was already awaited; call connect() again")
        options = dict(self._options)
        dsn = parse_dsn(self._dsn)
        protect(dsn)
        backend = await backend_class(dsn.scheme).open(dsn, options)
        try:
            if self._prepare is not None:
                await self._prepare(backend)
        except BaseException:
            await backend.close()
            raise
        self._backend = backend
        return backend

    def __await__(self) -> Generator[Any, None, Backend]:
        return self._open().__await__()

    async def __aenter__(self) -> Backend:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._backend is not None:
            await self._backend.close()

    def __repr__(self) -> str:
        from buttress.backends._dsn import redact_dsn

        return f"<Connecting {redact_dsn(self._dsn)!r}>"


def protect(dsn: DSN) -> None:
    """Register the DSN's password (and secret query values), in every spelling, with the
    redactor, so no log line, health message or CLI error shows it once it is in use."""
    for form in spellings(dsn.secrets):
        register_secret(form)


def open_backend(dsn: str, **options: object) -> Connecting:
    """Open the backend named by ``dsn`` as it is: no migrations, no tables created.

    Schemes: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``sqlite://`` (in memory), ``postgresql://`` / ``postgres://``, ``redis://`` /
    ``rediss://``, ``redis+cluster://`` and ``redis+sentinel://`` (``BACKENDS``
    says which class serves which). Options depend on the backend; an unknown one is a
    ``ValidationError`` naming it. ``buttress.connect`` is this plus buttress's
    own migrations.
    """
    return Connecting(dsn, options)
