"""Rate-limit state in a SQLite file, exact across the processes of one machine.

Each decision is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock,
waited for up to the backend's busy timeout): read the keys' states, run the
pure algorithms, write the new states. Sync callers use it directly on a
per-thread connection; async callers run the same code in a worker thread.
The table comes from buttress's packaged migration ``0006_rate_limits``; a
database without it raises ``MissingTableError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Hashable, Sequence
from typing import Any, Final

from buttress._exceptions import BackendError, BackendUnavailableError
from buttress.backends import MissingTableError
from buttress.ratelimit._core import decide_all
from buttress.ratelimit._store import Check, Now
from buttress.ratelimit._values import Decision

__all__ = ["TABLE", "SqliteStore"]

TABLE: Final = "buttress_rate_limits"

SWEEP_EVERY: Final = 1000
"""Commits between two deletions of expired rows (per process)."""


class SqliteStore:
    """Decides on a ``SqliteBackend``'s file with the limiter's clock."""

    kind = "sqlite"

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._local = threading.local()
        self._commits = 0

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._backend.connect_sync()
            self._local.conn = conn
        return conn

    def decide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        try:
            return self._decide(self._connection(), checks, consume, now)
        except sqlite3.Error as exc:
            raise _translate(exc, "step") from exc

    def _decide(
        self, conn: sqlite3.Connection, checks: Sequence[Check], consume: bool, clock: Now
    ) -> list[Decision]:
        keys = list({c[1]: None for c in checks})
        algorithms = {c[1]: c[0] for c in checks}
        conn.execute("BEGIN IMMEDIATE" if consume else "BEGIN")
        try:
            now = clock()  # after the lock: the holder's time is the latest
            rows = conn.execute(
                f"SELECT key, state FROM {TABLE} WHERE key IN ({', '.join('?' * len(keys))})",
                keys,
            ).fetchall()
            stored = {key: algorithms[key].load(state) for key, state in rows}

            def load(key: Hashable) -> Any:
                return stored.get(str(key))

            decisions, states = decide_all(
                [(alg, key, limit, period, cost, now) for alg, key, limit, period, cost in checks],
                load,
            )
            if consume and all(d.allowed for d in decisions):
                periods = {c[1]: c[3] for c in checks}
                conn.executemany(
                    f"INSERT INTO {TABLE} (key, state, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
                    "expires_at = excluded.expires_at",
                    [
                        (
                            key,
                            algorithms[str(key)].dump(state),
                            algorithms[str(key)].expires_at(state, periods[str(key)]),
                        )
                        for key, state in states.items()
                    ],
                )
                self._commits += 1
                if self._commits % SWEEP_EVERY == 0:
                    conn.execute(f"DELETE FROM {TABLE} WHERE expires_at <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return decisions

    async def adecide(self, checks: Sequence[Check], consume: bool, now: Now) -> list[Decision]:
        return await asyncio.to_thread(self.decide, checks, consume, now)

    def reset(self, keys: Sequence[str]) -> None:
        try:
            self._connection().execute(
                f"DELETE FROM {TABLE} WHERE key IN ({', '.join('?' * len(keys))})", list(keys)
            )
        except sqlite3.Error as exc:
            raise _translate(exc, "reset") from exc

    async def areset(self, keys: Sequence[str]) -> None:
        await asyncio.to_thread(self.reset, keys)


def _translate(exc: sqlite3.Error, what: str) -> BackendError:
    if isinstance(exc, sqlite3.OperationalError):
        if str(exc).startswith(f"no such table: {TABLE}"):
            return MissingTableError("RateLimiter", [TABLE])
        if "locked" in str(exc):
            return BackendUnavailableError("sqlite database is locked (busy timeout)")
    return BackendError(f"sqlite rate-limit {what} failed ({type(exc).__name__})")
