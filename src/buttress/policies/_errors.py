"""Errors raised by the resilience policies themselves."""

from __future__ import annotations

from buttress._exceptions import ButtressError
from buttress.errors import Classification, ErrorCategory, Severity, register_classification

__all__ = ["BulkheadFullError", "PolicyTimeoutError", "SyncCallNotSupportedError"]


class PolicyTimeoutError(ButtressError, TimeoutError):
    """A call ran past its ``timeout`` and was cancelled.

    A ``TimeoutError``, so ``classify`` calls it retryable and ``retry`` outside
    the timeout tries again.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"call timed out after {seconds:g}s")


class BulkheadFullError(ButtressError):
    """A bulkhead refused a call: every slot is busy and the queue is full (or timed out)."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int) -> None:
        self.bulkhead_name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        super().__init__(
            f"bulkhead {name!r} is full ({max_concurrent} running, {max_queue} queued)"
        )


class SyncCallNotSupportedError(ButtressError, TypeError):
    """A policy that only works on async calls was asked to run a sync call."""

    def __init__(self, policy: str, async_method: str) -> None:
        self.policy = policy
        super().__init__(
            f"{policy} works on async calls only: use 'await policy.{async_method}(...)' "
            "or decorate an async function"
        )


# A policy timeout is worth retrying (outside the timeout); a full bulkhead is
# load shedding, and retrying at once would only add to the load.
register_classification(
    PolicyTimeoutError, Classification(ErrorCategory.TIMEOUT, Severity.MEDIUM, True)
)
register_classification(
    BulkheadFullError, Classification(ErrorCategory.RATE_LIMIT, Severity.MEDIUM, False)
)
