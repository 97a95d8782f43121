"""What every backend is: ``Backend``, and the SQL face shared by SQLite and PostgreSQL.

Backends are the only place buttress does I/O. This module holds the common
lifecycle (ping, idempotent close, async context manager, redacted repr), the
hook through which a backend hands out capability stores, and the
``SqlConnection`` protocol; drivers live in the per-backend modules. It knows
nothing of migrations or of any capability.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from buttress._context import AsyncContext
from buttress._exceptions import UnsupportedBackendError

if TYPE_CHECKING:
    from buttress.backends._dialect import Dialect
    from buttress.backends._dsn import DSN, BackendKind

__all__ = ["Backend", "Row", "SqlBackend", "SqlConnection", "Subscriber", "require_sql"]

T = TypeVar("T")

Row = Mapping[str, Any]
"""One result row: column name -> value (values are whatever the driver decodes)."""


class Backend(AsyncContext, abc.ABC):
    """A connected store. Use ``async with`` or call ``await close()`` when done."""

    kind: ClassVar[BackendKind]
    schemes: ClassVar[tuple[str, ...]] = ()
    """The DSN schemes this class opens (``open_backend`` looks them up)."""

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> Backend:
        """Connect to what ``dsn`` names, with ``connect()``'s ``options``."""
        raise NotImplementedError(f"{cls.__name__} opens no DSN")

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._closed = False

    @property
    def dsn(self) -> str:
        """The DSN with its password replaced by ``***`` (the real one is never kept here)."""
        return self._dsn

    @property
    def closed(self) -> bool:
        return self._closed

    async def ping(self) -> float:
        """Round-trip the store once; return the latency in seconds."""
        started = time.perf_counter()
        await self._ping()
        return time.perf_counter() - started

    async def close(self) -> None:
        """Release connections; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        await self._close()

    def provide(self, capability: str, build: Callable[[], T]) -> T:
        """The store ``build`` makes for ``capability`` on this backend.

        Stores over a shared server hold no state of their own, so each caller
        gets a fresh one; the memory backend overrides this to hand every
        caller the same store, since there the store *is* the state.
        """
        return build()

    @abc.abstractmethod
    async def _ping(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    async def _end_block(self, exc: BaseException | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._dsn!r}{state}>"

    __str__ = __repr__


class Subscriber(Protocol):
    """What ``SqlBackend.listen`` reports to, in order, for as long as it listens."""

    def connected(self) -> None:
        """Subscribed, first or again: reload what may have changed while nobody listened."""
        ...

    async def received(self, payload: str) -> None:
        """One notification's payload; the next waits until this returns."""
        ...

    def lost(self) -> None:
        """The subscription failed; it is being made again."""
        ...


@runtime_checkable
class SqlConnection(Protocol):
    """Statements on one SQL session; placeholders are the driver's (``$1`` or ``?``)."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; return the number of rows it changed (0 when not applicable)."""
        ...

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        """Run one statement once per argument tuple."""
        ...

    async def execute_script(self, sql: str) -> None:
        """Run several ``;``-separated statements without arguments, in order."""
        ...

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def fetchval(self, sql: str, *args: object) -> Any: ...


class SqlBackend(Backend, abc.ABC):
    """A SQL store (``SqliteBackend`` or ``PostgresBackend``).

    Statements on the backend itself run on any pooled connection in autocommit
    mode. ``transaction()`` pins one connection inside BEGIN/COMMIT (ROLLBACK when
    the block raises); ``connection()`` pins one in autocommit mode.
    """

    dialect: ClassVar[Dialect]

    @property
    def pushes(self) -> bool:
        """True when ``listen`` delivers notifications (PostgreSQL's LISTEN/NOTIFY)."""
        return False

    async def listen(self, channel: str, subscriber: Subscriber) -> None:
        """Deliver ``channel``'s notifications to ``subscriber`` until cancelled.

        Returns at once on a backend that cannot push (callers then poll).
        """
        return

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[SqlConnection]: ...

    @abc.abstractmethod
    def connection(self) -> AbstractAsyncContextManager[SqlConnection]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, *args: object) -> int: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None: ...

    @abc.abstractmethod
    async def execute_script(self, sql: str) -> None: ...

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    @abc.abstractmethod
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    @abc.abstractmethod
    async def fetchval(self, sql: str, *args: object) -> Any: ...


def require_sql(backend: Backend, component: str) -> SqlBackend:
    """``backend`` as a ``SqlBackend``, or ``UnsupportedBackendError`` naming ``component``."""
    if isinstance(backend, SqlBackend):
        return backend
    raise UnsupportedBackendError(
        f"{component} needs a SQL backend (sqlite:// or postgresql://), got {backend.kind!r}"
    )
