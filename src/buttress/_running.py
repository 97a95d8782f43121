"""What components that run in the background share: ``async with`` and stopping a task.

``Running`` derives the async context manager from ``start()`` and ``stop()``
(``ConfigStore``, ``FeatureFlags``, ``ErrorStats``);
``cancel_and_wait`` ends one background task. Nothing here knows a component.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self

__all__ = ["Running", "cancel_and_wait"]


class Running:
    """``async with component:`` awaits ``start()`` on entry and ``stop()`` on exit."""

    __slots__ = ()

    async def start(self) -> None:
        """Begin the component's work; nothing by default."""

    async def stop(self) -> None:
        """End what ``start`` began; nothing by default."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
