"""``timeout``: cancel an async call that runs longer than a limit.

Built on ``asyncio.timeout``: the call is cancelled at the deadline and the
caller gets ``PolicyTimeoutError``. A sync call cannot be interrupted safely,
so sync use is refused with an error naming ``acall``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from buttress.errors import ValidationError
from buttress.policies._base import Policy
from buttress.policies._errors import PolicyTimeoutError, SyncCallNotSupportedError

__all__ = ["Timeout", "timeout"]

P = ParamSpec("P")
R = TypeVar("R")


class Timeout(Policy):
    """Limit an async call to ``seconds`` (build it with ``timeout``)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValidationError("seconds", "must be a finite number of seconds > 0")
        self.seconds = float(seconds)

    def __repr__(self) -> str:
        return f"timeout({self.seconds:g})"

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise SyncCallNotSupportedError("timeout()", "acall")

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn``; cancel it and raise ``PolicyTimeoutError`` after ``seconds``."""
        scope = asyncio.timeout(self.seconds)
        try:
            async with scope:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            # Only our own deadline becomes PolicyTimeoutError; a TimeoutError
            # raised by the call itself propagates unchanged.
            if scope.expired():
                raise PolicyTimeoutError(self.seconds) from exc
            raise


def timeout(seconds: float) -> Timeout:
    """A policy that cancels an async call after ``seconds`` with ``PolicyTimeoutError``."""
    return Timeout(seconds)
