"""A retry budget: retries allowed as a fraction of recent calls, so outages don't multiply load.

Calls are counted with a bare integer increment (no clock read, no lock) so an
attempt that succeeds stays almost free; the clock and the lock are only
touched when a retry asks to spend from the budget.
"""

from __future__ import annotations

import math
import threading

from buttress._checks import check_number, check_seconds
from buttress._exceptions import ValidationError
from buttress.clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]


class RetryBudget:
    """Allow ``ratio`` retries per call over the last ``window`` seconds, plus a floor.

    The floor, ``min_retries_per_second * window`` retries per window, lets a
    quiet service still retry. Share one budget between several ``retry``
    policies to cap their retries together. The window slides approximately:
    the previous window's counts are weighted by how much of it still overlaps.
    """

    __slots__ = (
        "_calls_mark",
        "_clock",
        "_current_retries",
        "_lock",
        "_previous_calls",
        "_previous_retries",
        "_window_start",
        "calls",
        "min_retries_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_retries_per_second: float = 1.0,
        window: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio >= 0:
            raise ValidationError("ratio", "must be a number >= 0")
        self.ratio = float(ratio)
        self.min_retries_per_second = check_number(
            "min_retries_per_second", min_retries_per_second, at_least=0
        )
        self.window = check_seconds("window", window)
        self._clock = clock
        self._lock = threading.Lock()
        # Incremented by Retry for every call, lock-free: a lost update only
        # makes the budget very slightly stricter.
        self.calls = 0
        self._calls_mark = 0
        self._previous_calls = 0.0
        self._previous_retries = 0.0
        self._current_retries = 0
        self._window_start = clock.monotonic()

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, "
            f"min_retries_per_second={self.min_retries_per_second}, window={self.window})"
        )

    def try_spend(self) -> bool:
        """Take one retry from the budget; ``False`` means the retry must not happen."""
        now = self._clock.monotonic()
        with self._lock:
            elapsed = now - self._window_start
            if elapsed >= self.window:
                windows = math.floor(elapsed / self.window)
                current_calls = self.calls - self._calls_mark
                self._previous_calls = float(current_calls) if windows == 1 else 0.0
                self._previous_retries = float(self._current_retries) if windows == 1 else 0.0
                self._calls_mark = self.calls
                self._current_retries = 0
                self._window_start += windows * self.window
                elapsed = now - self._window_start
            overlap = 1.0 - elapsed / self.window
            calls = (self.calls - self._calls_mark) + self._previous_calls * overlap
            retries = self._current_retries + self._previous_retries * overlap
            allowance = self.ratio * calls + self.min_retries_per_second * self.window
            if retries + 1 > allowance:
                return False
            self._current_retries += 1
            return True
