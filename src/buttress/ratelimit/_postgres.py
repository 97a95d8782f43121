"""Rate-limit state in PostgreSQL: every decision (one key or a whole ``hit_all``)
is one statement, timed by the server's ``clock_timestamp()``.

A hit on one key (the common case) is ``SELECT ... FROM buttress_rate_limit_one(...)``
(migration ``0010_rate_limit_single_key``), which decides with one
``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE <admitted> RETURNING`` on the
key's row (a refusal then reads the row it holds locked). Peeks and ``hit_all``
batches call ``buttress_rate_limit(...)`` (migration ``0006_rate_limits``), which
locks the keys' rows in key order and writes only when every check passed. Both
mirror ``_core`` in integer microseconds on the same UNLOGGED table and state
format, so a key may be decided by either. A database without them raises
``MissingTableError`` naming what is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from buttress._exceptions import BackendError, BackendUnavailableError, UnsupportedBackendError
from buttress.backends import POSTGRESQL
from buttress.ratelimit._store import Check, Now
from buttress.ratelimit._values import Decision

__all__ = ["FUNCTION", "MIGRATION", "ONE_FUNCTION", "ONE_MIGRATION", "TABLE", "PostgresStore"]

_CODES: Final = {"gcra": "g", "fixed_window": "f", "sliding_window": "s"}

MIGRATION: Final = "0006_rate_limits"
TABLE: Final = "buttress_rate_limits"
FUNCTION: Final = "buttress_rate_limit()"
"""How ``MissingTableError`` names the function (and ``OWN_TABLES`` keys it)."""
_SIGNATURE: Final = (
    "buttress_rate_limit(text[], text[], bigint[], bigint[], bigint[], boolean, bigint)"
)

ONE_MIGRATION: Final = "0010_rate_limit_single_key"
ONE_FUNCTION: Final = "buttress_rate_limit_one()"
_ONE_SIGNATURE: Final = "buttress_rate_limit_one(text, text, bigint, bigint, bigint, bigint)"
_FUNCTIONS: Final = {FUNCTION: _SIGNATURE, ONE_FUNCTION: _ONE_SIGNATURE}

_SQL: Final = (
    "SELECT allowed, remaining, reset_us, retry_us "
    "FROM buttress_rate_limit($1, $2, $3, $4, $5, $6, $7)"
)
_ONE_SQL: Final = (
    "SELECT allowed, remaining, reset_us, retry_us "
    "FROM buttress_rate_limit_one($1, $2, $3, $4, $5, $6)"
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
        if consume and len(checks) == 1 and checks[0][4] >= 1:
            return [await self.adecide_one(checks[0])]
        return await self.adecide_batch(checks, consume)

    async def adecide_one(self, check: Check) -> Decision:
        """Consume ``check`` (cost >= 1) through ``buttress_rate_limit_one``: one
        ``INSERT ... ON CONFLICT DO UPDATE`` on the key's row, no array arguments."""
        algorithm, key, limit, period, cost = check
        row = await self._run(
            self._pool.fetchrow,
            _ONE_SQL,
            key,
            _CODES[algorithm.name],
            limit,
            _period_us(period),
            cost,
            self.fixed_now_us,
        )
        return Decision(row[0], limit, row[1], row[2] / 1e6, row[3] / 1e6)

    async def adecide_batch(self, checks: Sequence[Check], consume: bool) -> list[Decision]:
        """Decide ``checks`` through ``buttress_rate_limit``: all or nothing, rows
        locked in key order (peeks, ``hit_all``)."""
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
            Decision(row[0], check[2], row[1], row[2] / 1e6, row[3] / 1e6)
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
            self._pool, exc, "RateLimiter", [TABLE], _FUNCTIONS
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
