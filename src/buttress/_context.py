"""``async with`` for buttress's components, and the ending of their background tasks.

``AsyncContext`` is the one ``__aenter__``/``__aexit__`` pair: a class says what
begins and ends the block (``_begin_block``, ``_end_block``). ``Running`` is the
common case, a component with ``start()`` and ``stop()``; ``cancel_and_wait``
ends a background task. Nothing here knows a component.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self

__all__ = ["AsyncContext", "Running", "cancel_and_wait"]


class AsyncContext:
    """``async with x:`` awaits ``x._begin_block()``, gives ``x``, then ``x._end_block(exc)``."""

    __slots__ = ()

    async def _begin_block(self) -> None:
        """What entering the block does; nothing by default."""

    async def _end_block(self, exc: BaseException | None) -> None:
        """What leaving the block does; ``exc`` is what ended it, None on success."""

    async def __aenter__(self) -> Self:
        await self._begin_block()
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await self._end_block(exc)


class Running(AsyncContext):
    """A component that runs between ``start()`` and ``stop()``, or for an ``async with`` block."""

    __slots__ = ()

    async def start(self) -> None:
        """Begin the component's work; nothing by default."""

    async def stop(self) -> None:
        """End what ``start`` began; nothing by default."""

    async def _begin_block(self) -> None:
        await self.start()

    async def _end_block(self, exc: BaseException | None) -> None:
        await self.stop()


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
