"""pytest fixtures for testing code that uses buttress: no sleeping, no servers.

Loaded through the ``pytest11`` entry point (or ``-p buttress.testing.pytest_plugin``).
Every fixture is named ``buttress_*`` and imports its component only when a
test asks for it, so loading the plugin pulls in no driver and no hypothesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from buttress.testing._clock import FakeClock

if TYPE_CHECKING:
    from buttress.backends import MemoryBackend, SqlBackend
    from buttress.breaker import BreakerRegistry
    from buttress.config import ConfigStore
    from buttress.flags import FeatureFlags

try:
    # Under pytest-asyncio's strict mode only its own decorator makes an async
    # fixture run; in auto mode, or with anyio's plugin, pytest.fixture is enough.
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - depends on the user's plugins
    # Same call shape; pytest-asyncio's overloads only add loop_scope.
    _async_fixture = pytest.fixture  # type: ignore[assignment]  # see the line above

__all__ = [
    "buttress_backend",
    "buttress_breakers",
    "buttress_clock",
    "buttress_config",
    "buttress_flags",
    "buttress_sqlite_backend",
    "buttress_sqlite_dsn",
]

_CLOCK_MARKER = "buttress_clock"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_CLOCK_MARKER}(start): start the buttress_clock fixture at this aware datetime",
    )


@pytest.fixture
def buttress_clock(request: pytest.FixtureRequest) -> FakeClock:
    """A ``FakeClock`` for this test; ``@pytest.mark.buttress_clock(start=...)`` sets its start."""
    marker = request.node.get_closest_marker(_CLOCK_MARKER)
    if marker is None:
        return FakeClock()
    start = marker.kwargs.get("start", marker.args[0] if marker.args else None)
    if start is not None and not isinstance(start, datetime):
        raise pytest.UsageError(
            f"@pytest.mark.{_CLOCK_MARKER}(start=...) needs an aware datetime, "
            f"got {type(start).__name__}"
        )
    return FakeClock(start)


def _finish(step: Coroutine[object, object, None]) -> None:
    # MemoryBackend.close() never suspends, so it can run to the end without an
    # event loop; the fixture stays sync and works in sync tests and under any
    # async test plugin.
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("a memory backend's close() suspended; it cannot finish outside a loop")


@pytest.fixture
def buttress_backend() -> Iterator[MemoryBackend]:
    """A fresh ``memory://`` backend, closed after the test.

    Components built on the same backend share its state, as instances sharing
    a database would: ``FeatureFlags(buttress_backend)`` sees the flags that
    ``buttress_flags`` wrote.
    """
    from buttress.backends import MemoryBackend

    backend = MemoryBackend()
    try:
        yield backend
    finally:
        _finish(backend.close())


@pytest.fixture
def buttress_flags(buttress_backend: MemoryBackend, buttress_clock: FakeClock) -> FeatureFlags:
    """``FeatureFlags`` on ``buttress_backend`` and ``buttress_clock``, without polling.

    Write flags with ``await buttress_flags.upsert(Flag(...))``, or force them
    synchronously with ``buttress.testing.flags_override``.
    """
    from buttress.flags import FeatureFlags

    return FeatureFlags(buttress_backend, clock=buttress_clock, refresh_interval=None)


@pytest.fixture
def buttress_config(buttress_backend: MemoryBackend, buttress_clock: FakeClock) -> ConfigStore:
    """A ``ConfigStore`` (environment ``"all"``) on ``buttress_backend`` and ``buttress_clock``."""
    from buttress.config import ConfigStore

    return ConfigStore(buttress_backend, clock=buttress_clock)


@pytest.fixture
def buttress_breakers() -> Iterator[BreakerRegistry]:
    """The registry of live circuit breakers, each reset before and after the test.

    Breakers built at import time (module globals) keep their state from test
    to test; with this fixture (or ``usefixtures("buttress_breakers")``) every
    in-process breaker starts the test closed with its failure history cleared.
    Shared breakers (given a ``backend``) keep their state in the store and are
    left alone: reset those with ``await breaker.areset()``.
    """
    from buttress.breaker import breakers

    _reset_all(breakers)
    try:
        yield breakers
    finally:
        _reset_all(breakers)


def _reset_all(registry: BreakerRegistry) -> None:
    from buttress.policies import SyncCallNotSupportedError

    for breaker in registry:
        try:
            breaker.reset()
        except SyncCallNotSupportedError:
            continue  # a shared breaker: its state belongs to the store


@pytest.fixture
def buttress_sqlite_dsn(tmp_path: Path) -> str:
    """An absolute ``sqlite:////...`` DSN for a file under ``tmp_path`` (not created yet).

    ``await buttress.connect(buttress_sqlite_dsn)`` creates it with buttress's tables.
    """
    return f"sqlite:///{tmp_path / 'buttress.db'}"


@_async_fixture
async def buttress_sqlite_backend(buttress_sqlite_dsn: str) -> AsyncIterator[SqlBackend]:
    """A SQLite backend on a fresh file with buttress's migrations applied; closed after.

    Async: needs pytest-asyncio (or another plugin that runs async fixtures).
    """
    from buttress._connect import connect
    from buttress.backends import SqlBackend

    backend = await connect(buttress_sqlite_dsn)
    try:
        assert isinstance(backend, SqlBackend)
        yield backend
    finally:
        await backend.close()
