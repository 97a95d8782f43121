"""A shared circuit in PostgreSQL: one row, moved by one function call per step.

The table and the PL/pgSQL function ``buttress_breaker_step`` come from
buttress's packaged migration ``0007_breaker_state``; a database without them
(opened with ``migrate=False`` and never migrated) raises ``MissingTableError``
naming what is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from buttress.breaker._store import Op, Snapshot, StepParams
from buttress.breaker._values import BreakerState

if TYPE_CHECKING:
    from buttress.backends import PostgresBackend

__all__ = ["BREAKER_MIGRATION", "PostgresBreakerStore"]

BREAKER_MIGRATION = "0007_breaker_state"
_TABLE = "buttress_breaker_state"
_FUNCTION = (
    "buttress_breaker_step(text, text, bigint, text, integer, "
    "double precision, integer, double precision)"
)
_STEP = "SELECT * FROM buttress_breaker_step($1, $2, $3, $4, $5, $6, $7, $8)"


class PostgresBreakerStore:
    """A shared circuit in one row, moved by one function call (one statement) per step.

    The table and function come from buttress's packaged migration
    ``0007_breaker_state``; a database without them (opened with
    ``migrate=False`` and never migrated) raises ``MissingTableError``.
    """

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return "PostgresBreakerStore()"

    async def step(self, name: str, op: Op, epoch: int, probe: str, params: StepParams) -> Snapshot:
        args = (
            name,
            op,
            epoch,
            probe,
            params.failure_threshold,
            params.recovery_timeout,
            params.half_open_max_calls,
            params.probe_timeout,
        )
        try:
            row = await self._backend.fetchrow(_STEP, *args)
        except Exception as exc:
            missing = await self._backend.dialect.explain_missing(
                self._backend,
                exc,
                "CircuitBreaker",
                [_TABLE],
                {"buttress_breaker_step()": _FUNCTION},
            )
            if missing is not None:
                raise missing from exc
            raise
        assert row is not None  # the function always returns one row
        return Snapshot(
            state=BreakerState(row["out_state"]),
            epoch=int(row["out_epoch"]),
            failures=int(row["out_failures"]),
            open_remaining=float(row["out_open_remaining"]),
            forced=bool(row["out_forced"]),
            decision=row["out_decision"],
            granted=row["out_granted"],
            retry_after=float(row["out_retry_after"]),
            opened_ago=float(row["out_opened_ago"]),
        )
