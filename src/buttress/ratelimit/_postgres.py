"""Rate-limit state in PostgreSQL: every decision (one key or a whole ``hit_all``)
is one statement, ``SELECT * FROM buttress_rate_limit(...)``, timed by the
server's ``clock_timestamp()``.

The UNLOGGED table and the function come from buttress's packaged migration
``0006_rate_limits`` (the function locks the keys' rows in key order, mirrors
``_algorithms`` in integer microseconds and writes only when every check passed).
A database without them raises ``MissingTableError`` naming what is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from buttress._exceptions import BackendError, BackendUnavailableError, UnsupportedBackendError
from buttress.backends import POSTGRESQL
from buttress.ratelimit._store import Check, Now
from buttress.ratelimit._values import Decision

__all__ = ["FUNCTION", "MIGRATION", "TABLE", "PostgresStore"]

_CODES: Final = {"gcra": "g", "fixed_window": "f", "sliding_window": "s"}

MIGRATION: Final = "0006_rate_limits"
TABLE: Final = "buttress_rate_limits"
FUNCTION: Final = "buttress_rate_limit()"
"""How ``MissingTableError`` names the function (and ``OWN_TABLES`` keys it)."""
_SIGNATURE: Final = (
    "buttress_rate_limit(text[], text[], bigint[], bigint[], bigint[], boolean, bigint)"
)

_SQL: Final = (
    "SELECT allowed, remaining, reset_us, retry_us "
    "FROM buttress_rate_limit($1, $2, $3, $4, $5, $6, $7)"
)


def _period_us(period_ns: int) -> int:
    return max(1, -(-period_ns // 1000))


class PostgresStore:
    """Calls ``buttress_rate_limit`` on a ``PostgresBackend``'s asyncpg pool."""

    kind = "postgresql"

    def __init__(self, backend: Any) -> None:
        self._pool = backend.pool
        self.fixed_now_us: int | None = None
        """Testing hook: decide at this time (µs) instead of ``clock_timestamp()``."""

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        raise UnsupportedBackendError(
            "RateLimiter on PostgreSQL is async-only; use await limiter.ahit() / apeek() / areset()"
        )

    def reset(self, keys: Sequence[str]) -> None:
        self.decide((), False, lambda: 0)  # raises: async-only

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        args = (
            [c[1] for c in checks],
            [_CODES[c[0].name] for c in checks],
            [c[2] for c in checks],
            [_period_us(c[3]) for c in checks],
            [c[4] for c in checks],
            consume,
            self.fixed_now_us,
        )
        rows = await self._run(self._pool.fetch, _SQL, *args)
        return [
            Decision(
                row["allowed"],
                check[2],
                row["remaining"],
                row["reset_us"] / 1e6,
                row["retry_us"] / 1e6,
            )
            for row, check in zip(rows, checks, strict=True)
        ]

    async def areset(self, keys: Sequence[str]) -> None:
        await self._run(self._pool.execute, f"DELETE FROM {TABLE} WHERE key = ANY ($1)", list(keys))

    async def _run(self, call: Callable[..., Awaitable[Any]], *args: object) -> Any:
        """``call(*args)``, its driver failures raised as buttress errors."""
        try:
            return await call(*args)
        except Exception as exc:
            error = await self._explain(exc)
            if error is None:
                raise
            raise error from exc

    async def _explain(self, exc: Exception) -> BackendError | None:
        """The buttress error for a failed call (None: not the driver's, re-raise)."""
        missing = await POSTGRESQL.explain_missing(
            self._pool, exc, "RateLimiter", [TABLE], {FUNCTION: _SIGNATURE}
        )
        return missing if missing is not None else _translate(exc)


def _translate(exc: Exception) -> BackendError | None:
    """The buttress error for a driver failure (None: not the driver's, re-raise)."""
    import asyncpg

    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return BackendUnavailableError(f"postgresql unreachable ({type(exc).__name__})")
    if isinstance(exc, asyncpg.PostgresError):
        return BackendError(f"postgresql rate-limit call failed ({type(exc).__name__}: {exc})")
    return None
