"""``retry``: exponential backoff with full jitter, attempt and time limits, a budget.

The first attempt runs inside a bare ``try``; nothing is built, no clock is read
(unless a ``deadline`` is set) until it fails. What is retried is decided by
``buttress.errors.classify(exc).retryable`` unless ``retry_on`` says otherwise;
refusals that carry ``retry_after`` (an open circuit, a rate limit) are never
retried blindly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from buttress._checks import check_number, check_seconds
from buttress._exceptions import ButtressError, ValidationError
from buttress.clock import SYSTEM_CLOCK, Clock, SystemClock
from buttress.errors import classify
from buttress.log import get_logger
from buttress.policies._base import ExceptionFilter, Policy, exception_matcher
from buttress.policies._budget import RetryBudget

__all__ = ["Retry", "backoff_cap", "refusal_retry_after", "retry"]

P = ParamSpec("P")
R = TypeVar("R")

RetryOn = ExceptionFilter

_log = get_logger("policies", policy="retry")


def backoff_cap(attempt: int, base_delay: float, multiplier: float, max_delay: float) -> float:
    """The longest wait before retry number ``attempt`` (1 = the first retry).

    Full jitter draws the actual wait uniformly from ``[0, cap]``.
    """
    try:
        return min(max_delay, base_delay * multiplier ** (attempt - 1))
    except OverflowError:  # a long chain with a large multiplier: the cap applies
        return max_delay


def refusal_retry_after(exc: BaseException) -> float | None:
    """``retry_after`` of a refusal (``CircuitOpenError``, ``RateLimitExceeded``), else None.

    Recognised by shape, not by import: a buttress error with a numeric ``retry_after``.
    """
    if not isinstance(exc, ButtressError):
        return None
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _check_seconds(field: str, value: object, *, optional: bool = False) -> None:
    check_seconds(field, value, optional=optional, allow_zero=True)


class Retry(Policy):
    """Run a call again when it fails with a retryable error; also named ``retry``,
    used as ``@retry(...)``, ``retry(...).call(fn)`` or in a pipeline.

    ``attempts`` counts the first call. Waits grow as ``base_delay * multiplier**n``
    up to ``max_delay``, each drawn uniformly from ``[0, cap]`` (full jitter).
    ``deadline`` bounds the total time from the first attempt; a wait that would
    overrun it is not taken. ``retry_on`` overrides ``classify(exc).retryable``.
    A refusal with ``retry_after`` is retried only with ``honor_retry_after=True``
    and when that wait fits in ``max_delay`` and the deadline.
    """

    __slots__ = (
        "_random",
        "_retry_on",
        "_sleep",
        "attempts",
        "base_delay",
        "budget",
        "clock",
        "deadline",
        "honor_retry_after",
        "jitter",
        "max_delay",
        "multiplier",
    )

    def __init__(
        self,
        *,
        attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        deadline: float | None = None,
        retry_on: RetryOn | None = None,
        budget: RetryBudget | None = None,
        honor_retry_after: bool = False,
        jitter: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValidationError("attempts", "must be an integer >= 1 (1 means no retry)")
        _check_seconds("base_delay", base_delay)
        _check_seconds("max_delay", max_delay)
        _check_seconds("deadline", deadline, optional=True)
        check_number("multiplier", multiplier, at_least=1)
        if base_delay > max_delay:
            raise ValidationError("base_delay", "must be <= max_delay")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise ValidationError("budget", "must be a RetryBudget or None")
        if not isinstance(clock, Clock):
            raise ValidationError("clock", "must provide monotonic(), now() and sleep()")
        if sleep is not None and not callable(sleep):
            raise ValidationError("sleep", "must be callable")
        self.attempts = attempts
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.multiplier = float(multiplier)
        self.deadline = None if deadline is None else float(deadline)
        self.budget = budget
        self.honor_retry_after = bool(honor_retry_after)
        self.jitter = bool(jitter)
        self.clock = clock
        self._retry_on = (
            _classified_retryable if retry_on is None else exception_matcher("retry_on", retry_on)
        )
        if sleep is None:
            # A fake clock moves instead of waiting, so tests of sync retries don't sleep.
            advance = getattr(clock, "advance", None)
            sleep = time.sleep if type(clock) is SystemClock or advance is None else advance
        self._sleep = sleep
        self._random = (rng if rng is not None else random.Random()).random

    def __repr__(self) -> str:
        return (
            f"retry(attempts={self.attempts}, base_delay={self.base_delay}, "
            f"max_delay={self.max_delay}, deadline={self.deadline})"
        )

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn``; on a retryable failure wait and run it again, within the limits."""
        if self.budget is not None:
            self.budget.calls += 1
        started = self.clock.monotonic() if self.deadline is not None else None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (the retry decision below looks at it)
            error = exc
        started = self.clock.monotonic() if started is None else started
        attempt = 1
        while (delay := self._next_delay(error, attempt, started)) is not None:
            self._sleep(delay)
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  (the retry decision above looks at it)
                error = exc
        raise error

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn``; on a retryable failure wait (``clock.sleep``) and await it again."""
        if self.budget is not None:
            self.budget.calls += 1
        started = self.clock.monotonic() if self.deadline is not None else None
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (the retry decision below looks at it)
            error = exc
        started = self.clock.monotonic() if started is None else started
        attempt = 1
        while (delay := self._next_delay(error, attempt, started)) is not None:
            await self.clock.sleep(delay)
            attempt += 1
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  (the retry decision above looks at it)
                error = exc
        raise error

    def _next_delay(self, error: Exception, attempt: int, started: float) -> float | None:
        """How long to wait before attempt ``attempt + 1``, or None to give up (and say why)."""
        reason = None
        delay = 0.0
        retry_after = refusal_retry_after(error)
        if attempt >= self.attempts:
            reason = "attempts"
        elif retry_after is not None:
            if not self.honor_retry_after or retry_after > self.max_delay:
                reason = "refused"
            delay = retry_after
        elif not self._retry_on(error):
            reason = "not_retryable"
        else:
            cap = backoff_cap(attempt, self.base_delay, self.multiplier, self.max_delay)
            delay = cap * self._random() if self.jitter else cap
        elapsed = self.clock.monotonic() - started
        if reason is None and self.deadline is not None and elapsed + delay > self.deadline:
            reason = "deadline"
        if reason is None and self.budget is not None and not self.budget.try_spend():
            reason = "budget"
        if reason is not None:
            if reason != "not_retryable" or attempt > 1:
                error.add_note(
                    f"buttress retry: gave up after {attempt} attempt(s) "
                    f"in {elapsed:.3f}s ({reason})"
                )
                _log.warning(
                    "retry.gave_up",
                    attempts=attempt,
                    reason=reason,
                    error=type(error).__name__,
                    elapsed=round(elapsed, 6),
                )
            return None
        _log.info(
            "retry.scheduled",
            attempt=attempt,
            delay=round(delay, 6),
            error=type(error).__name__,
        )
        return delay


def _classified_retryable(exc: BaseException) -> bool:
    return classify(exc).retryable


# The class is its own factory; the lower-case name reads like the other
# policies in a pipeline: ``fallback(...) >> retry(...) >> timeout(2.0)``.
retry = Retry
