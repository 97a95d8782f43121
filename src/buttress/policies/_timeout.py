"""``timeout``: cancel an async call that runs longer than a limit.

The call runs as its own task: at the deadline it is cancelled and the caller
gets ``PolicyTimeoutError``, even when the call defers its cancellation (a
driver waiting on a dead socket is abandoned after a short grace, not awaited).
A sync call cannot be interrupted safely, so sync use is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from buttress._checks import check_seconds
from buttress.log import get_logger
from buttress.policies._base import Policy
from buttress.policies._errors import PolicyTimeoutError, SyncCallNotSupportedError

__all__ = ["Timeout", "timeout"]

P = ParamSpec("P")
R = TypeVar("R")

_GRACE = 0.05
"""Longest wait, after cancelling at the deadline, for the call to finish its cleanup."""

_log = get_logger("policies", policy="timeout")


def _retrieve(task: asyncio.Future[Any]) -> None:
    # An abandoned call's late outcome is of no use to anyone; retrieving it
    # keeps asyncio from reporting "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class Timeout(Policy):
    """Limit an async call to ``seconds`` (build it with ``timeout``)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = check_seconds("seconds", seconds)

    def __repr__(self) -> str:
        return f"timeout({self.seconds:g})"

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise SyncCallNotSupportedError("timeout()", "acall")

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn``; cancel it and raise ``PolicyTimeoutError`` after ``seconds``."""
        task: asyncio.Future[R] = asyncio.ensure_future(fn(*args, **kwargs))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.seconds)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            task.cancel()
            raise
        if done:
            return task.result()
        task.add_done_callback(_retrieve)
        task.cancel()
        # asyncio.timeout() alone cannot end the wait for a call that swallows or
        # defers its cancellation (asyncpg releasing a connection whose server
        # went silent), so the deadline would not hold: give cleanup a moment,
        # then abandon the call.
        await asyncio.wait((task,), timeout=min(_GRACE, self.seconds))
        if not task.done():
            _log.warning("timeout.abandoned", seconds=self.seconds)
        raise PolicyTimeoutError(self.seconds)


def timeout(seconds: float) -> Timeout:
    """A policy that cancels an async call after ``seconds`` with ``PolicyTimeoutError``."""
    return Timeout(seconds)
