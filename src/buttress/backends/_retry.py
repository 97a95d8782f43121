"""Bounded connect retries (tenacity), shared by the network backends.

Only errors that mean "the server is not reachable yet" are retried; bad
credentials or a missing database fail at once. Attempts and total time are both
capped, so an unreachable server costs at most ``deadline`` plus one attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from buttress._exceptions import BackendUnavailableError
from buttress._safe import strip_reprs
from buttress.backends._dsn import DSN, scrub
from buttress.log import redact_text

__all__ = ["Attempts", "connect_with_retry", "unavailable"]

T = TypeVar("T")


class Attempts:
    """Counts connection attempts so the final error can say how many were made."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


async def connect_with_retry(
    open_once: Callable[[], Awaitable[T]],
    *,
    should_retry: Callable[[BaseException], bool],
    attempts: int,
    deadline: float,
    counter: Attempts,
) -> T:
    import tenacity  # lazily: keeps `import buttress` light

    async def counted() -> T:
        counter.count += 1
        return await open_once()

    # No log line per retry: buttress must not write to an unconfigured
    # application's stdout (it would corrupt `buttress doctor --json`); the
    # final error says how many attempts were made.
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_before_delay(deadline),
        wait=tenacity.wait_exponential(multiplier=0.1, max=2.0) + tenacity.wait_random(0, 0.1),
        retry=tenacity.retry_if_exception(should_retry),
        reraise=True,
    )
    return await retrying(counted)


def unavailable(dsn: DSN, exc: BaseException, attempts: int = 1) -> BackendUnavailableError:
    """A ``BackendUnavailableError`` for ``exc`` that names the address, never a secret.

    The driver's text is kept (it says what went wrong) but scrubbed of every
    spelling of the DSN's secrets, and of object reprs. Raise it *outside* the ``except`` block (or
    ``from None``) so the driver's exception does not ride along as context.
    """
    # Some driver messages embed whole client reprs (redis-py's MasterNotFoundError):
    # each shrinks to its class name, so no setting, address or object id leaks.
    detail = redact_text(scrub(strip_reprs(str(exc)), dsn.secrets)) or type(exc).__name__
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return BackendUnavailableError(
        f"cannot connect to {dsn.kind} at {dsn.address}{tries}: {type(exc).__name__}: {detail}"
    )
