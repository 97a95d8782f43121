"""``adaptive_limit``: a concurrency limit that finds its own level (AIMD on latency).

``AimdLimit`` is the pure arithmetic: each fast call adds ``1/limit`` (about
+1 per limit's worth of calls), each slow or timed-out call multiplies the limit
by ``backoff``. ``AdaptiveLimit`` applies it around calls, refusing with
``BulkheadFullError`` what is over the current limit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from buttress._checks import check_count, check_seconds
from buttress._exceptions import ValidationError
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.policies._base import Policy
from buttress.policies._errors import BulkheadFullError

__all__ = ["AdaptiveLimit", "AimdLimit", "adaptive_limit"]

P = ParamSpec("P")
R = TypeVar("R")


class AimdLimit:
    """Additive increase, multiplicative decrease of a concurrency limit. No I/O, no clock."""

    __slots__ = ("backoff", "latency_threshold", "limit", "max_limit", "min_limit")

    def __init__(
        self,
        *,
        initial: float,
        min_limit: int,
        max_limit: int,
        latency_threshold: float,
        backoff: float,
    ) -> None:
        self.limit = float(initial)
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.latency_threshold = latency_threshold
        self.backoff = backoff

    @property
    def permits(self) -> int:
        """How many calls may run at once right now."""
        return max(self.min_limit, math.floor(self.limit))

    def on_sample(self, latency: float, overloaded: bool) -> float:
        """Fold in one finished call; returns the new limit."""
        if overloaded or latency > self.latency_threshold:
            self.limit = max(float(self.min_limit), self.limit * self.backoff)
        else:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
        return self.limit


class AdaptiveLimit(Policy):
    """A concurrency limit between ``min_limit`` and ``max_limit`` that adapts (AIMD);
    also named ``adaptive_limit``.

    A call slower than ``latency_threshold`` seconds, or ending in a
    ``TimeoutError``, multiplies the limit by ``backoff``; a faster one raises
    it by ``1/limit``. Calls over the limit are refused with ``BulkheadFullError``.
    """

    __slots__ = ("_clock", "_core", "_in_flight", "_lock", "name")

    def __init__(
        self,
        *,
        latency_threshold: float,
        initial: int = 10,
        min_limit: int = 1,
        max_limit: int = 1000,
        backoff: float = 0.9,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "adaptive_limit",
    ) -> None:
        initial = check_count("initial", initial, at_least=1)
        min_limit = check_count("min_limit", min_limit, at_least=1)
        max_limit = check_count("max_limit", max_limit, at_least=1)
        if not min_limit <= initial <= max_limit:
            raise ValidationError("initial", "must be between min_limit and max_limit")
        latency_threshold = check_seconds("latency_threshold", latency_threshold)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not 0 < backoff < 1:
            raise ValidationError("backoff", "must be a fraction in (0, 1)")
        if not isinstance(clock, Clock):
            raise ValidationError("clock", "must provide monotonic(), now() and sleep()")
        self._core = AimdLimit(
            initial=initial,
            min_limit=min_limit,
            max_limit=max_limit,
            latency_threshold=latency_threshold,
            backoff=float(backoff),
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self.name = name

    def __repr__(self) -> str:
        return f"adaptive_limit(limit={self._core.limit:.1f})"

    @property
    def limit(self) -> float:
        """The current (fractional) limit; ``floor(limit)`` calls may run at once."""
        return self._core.limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` if under the limit, else ``BulkheadFullError``; adapt to its latency."""
        start = self._enter()
        overloaded = False
        try:
            return fn(*args, **kwargs)
        except TimeoutError:
            overloaded = True
            raise
        finally:
            self._leave(start, overloaded=overloaded)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` if under the limit, else ``BulkheadFullError``; adapt to its latency."""
        start = self._enter()
        overloaded = False
        try:
            return await fn(*args, **kwargs)
        except TimeoutError:
            overloaded = True
            raise
        finally:
            self._leave(start, overloaded=overloaded)

    def _enter(self) -> float:
        with self._lock:
            permits = self._core.permits
            if self._in_flight >= permits:
                raise BulkheadFullError(self.name, permits, 0)
            self._in_flight += 1
        return self._clock.monotonic()

    def _leave(self, start: float, *, overloaded: bool) -> None:
        latency = self._clock.monotonic() - start
        with self._lock:
            self._in_flight -= 1
            self._core.on_sample(latency, overloaded)


# The class is its own factory, named like the other policies in a pipeline.
adaptive_limit = AdaptiveLimit
