"""The exception a breaker raises when it refuses a call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buttress.errors import (
    ButtressError,
    Classification,
    ErrorCategory,
    Severity,
    register_classification,
)

__all__ = ["CircuitOpenError"]


class CircuitOpenError(ButtressError):
    """The circuit is open (or its half-open probes are all taken): the call never ran.

    ``retry_after`` is how many seconds to wait before a call could be let
    through; ``breaker_name`` says which breaker refused. Retry policies never
    retry this error blindly: they wait ``retry_after`` only if it fits their budget.
    """

    # Raised on the hot path of an open circuit: no Python-level __init__ runs;
    # the attributes are views over ``args``, which BaseException fills in C.
    if TYPE_CHECKING:

        def __init__(self, breaker_name: str, retry_after: float) -> None: ...

    @property
    def breaker_name(self) -> str:
        name: str = self.args[0]
        return name

    @property
    def retry_after(self) -> float:
        seconds: float = self.args[1]
        return seconds

    def __str__(self) -> str:
        return f"circuit breaker {self.breaker_name!r} is open; retry after {self.retry_after:.3f}s"


# The dependency is known to be failing: retrying before retry_after is pointless.
register_classification(
    CircuitOpenError, Classification(ErrorCategory.NETWORK, Severity.MEDIUM, False)
)
