"""``Migrator``: apply a directory of checksummed SQL migrations, safely.

Reads files (``files``), orders them (``resolver``), checks them against the
``schema_migrations`` rows of its namespace, and applies pending ones, each in
its own transaction holding the database's migration lock (``lock``) and
re-checking inside it that the file is still pending, unless the file opts
out. Decisions (what is pending, what is wrong) are pure; this is the I/O shell.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs

from buttress._checks import check_seconds
from buttress._exceptions import ValidationError
from buttress.backends import Backend, SqlBackend, SqlConnection, require_sql
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.log import get_logger
from buttress.migrations import decide
from buttress.migrations.decide import Snapshot
from buttress.migrations.errors import (
    DestructiveMigrationError,
    MigrationFailedError,
    MigrationValidationError,
)
from buttress.migrations.files import CHECKSUM_ALGORITHM, Migration, load_directory
from buttress.migrations.lock import migration_lock
from buttress.migrations.report import (
    MIGRATION_RAN,
    MigrateResult,
    MigrationOutcome,
    MigrationRan,
    MigrationReport,
    MigrationStatus,
)
from buttress.migrations.resolver import resolve
from buttress.migrations.sqltext import split_statements
from buttress.migrations.store import (
    TRACKING_TABLE,
    AppliedMigration,
    Tracking,
    inspect_tracking,
)
from buttress.schema.identifiers import check_identifier

__all__ = ["PRODUCTION_ENVIRONMENTS", "Migrator"]

PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})
_BATCH = 200
"""Statements sent in one round trip while a migration runs in a transaction."""
_SAVEPOINT = "buttress_migration_batch"
LEGACY_RENAME = "schema_migrations_legacy"


def _line_of(text: str, statements: Sequence[str], index: int) -> int:
    """The line of ``text`` on which statement ``index`` starts (1-based).

    One pass over the text, however many statements: finding each in turn from
    where the previous one was found.
    """
    cursor, line = 0, 1
    for statement in statements[: index + 1]:
        found = text.find(statement, cursor)
        if found >= 0:
            line += text.count("\n", cursor, found)
            cursor = found
    return line


def _default_applied_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Migrator:
    """Applies the ``NNNN_name.sql`` files of ``directory`` to a SQL backend.

    ``namespace`` separates independent sets of migrations sharing one database
    (buttress's own use ``"buttress"``). ``environment`` (default: the
    ``BUTTRESS_ENV`` variable) turns on production safety when it is
    ``production`` or ``prod``. ``lock_timeout`` bounds the wait for another
    migrator; ``statement_lock_timeout`` (PostgreSQL) bounds how long one
    migration statement may queue for a table lock behind application traffic
    (None: no bound), so a migration fails instead of stalling the service.
    """

    def __init__(
        self,
        backend: Backend,
        directory: str | os.PathLike[str],
        *,
        namespace: str = "app",
        environment: str | None = None,
        lock_timeout: float = 30.0,
        statement_lock_timeout: float | None = 10.0,
        applied_by: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._backend: SqlBackend = require_sql(backend, "Migrator")
        self.directory = Path(directory)
        self.namespace = check_identifier(namespace, field="namespace")
        self.environment = (
            environment if environment is not None else os.environ.get("BUTTRESS_ENV")
        )
        if (
            isinstance(lock_timeout, bool)
            or not isinstance(lock_timeout, int | float)
            or not (lock_timeout >= 0)
        ):
            raise ValidationError("lock_timeout", "must be a number of seconds >= 0")
        self.lock_timeout = float(lock_timeout)
        self.statement_lock_timeout = check_seconds(
            "statement_lock_timeout", statement_lock_timeout, optional=True
        )
        self.applied_by = applied_by or _default_applied_by()
        self._tracked = False
        self._tracking = Tracking(self._backend.dialect)
        self._clock = clock
        self._dialect = self._backend.dialect
        self._log = get_logger("migrations", namespace=self.namespace)

    @property
    def backend(self) -> SqlBackend:
        """The SQL backend this migrator works on."""
        return self._backend

    @property
    def production(self) -> bool:
        return (self.environment or "").strip().lower() in PRODUCTION_ENVIRONMENTS

    async def _snapshot(self, conn: SqlConnection) -> Snapshot:
        migrations, parse_errors = load_directory(self.directory)
        tracking = await inspect_tracking(conn)
        # Fixed for the whole run: a migration may empty search_path (pg_dump does).
        self._tracking = Tracking(self._backend.dialect, tracking.schema)
        applied = await self._tracking.read_applied(conn, self.namespace) if tracking.exists else {}
        return Snapshot(
            tuple(migrations), tuple(parse_errors), resolve(migrations), tracking, applied
        )

    def _report(self, snap: Snapshot) -> MigrationReport:
        return decide.report(snap, production=self.production)

    async def validate(self) -> MigrationReport:
        """Every problem at once: file names and directives, dependencies
        (missing, cyclic), checksum drift, applied versions without a file,
        conflicting legacy tables, destructive pending files in production."""
        return self._report(await self._snapshot(self._backend))

    async def status(self, *, category: str | None = None) -> MigrationStatus:
        """Each migration's state and category; ``category`` keeps only the
        files tagged with it (``-- category: security``). The validation
        report always covers every file."""
        if category is not None:
            if not isinstance(category, str) or not category.strip():
                raise ValidationError("category", "must be a non-empty string")
            category = category.strip().lower()
        snap = await self._snapshot(self._backend)
        tags = {m.id: m.category for m in snap.migrations}
        entries = tuple(attrs.evolve(e, category=tags.get(e.id)) for e in decide.states(snap))
        if category is not None:
            entries = tuple(e for e in entries if e.category == category)
        return MigrationStatus(
            namespace=self.namespace,
            entries=entries,
            legacy_tables=snap.tracking.legacy,
            report=self._report(snap),
            category=category,
        )

    @asynccontextmanager
    async def _locked(self, conn: SqlConnection) -> AsyncIterator[None]:
        """A transaction on ``conn`` holding the migration lock, statements bounded."""
        async with migration_lock(
            self._backend, conn, lock_timeout=self.lock_timeout, clock=self._clock
        ):
            await self._bound_statements(conn, local=True)
            yield

    async def _bound_statements(self, conn: SqlConnection, *, local: bool) -> None:
        if self._dialect != "postgresql":
            return  # SQLite writers wait for the busy timeout, never longer
        milliseconds = (
            0
            if self.statement_lock_timeout is None
            else max(1, round(self.statement_lock_timeout * 1000))
        )
        scope = "LOCAL " if local else ""
        await conn.execute(f"SET {scope}lock_timeout = {milliseconds}")

    async def migrate(self, *, dry_run: bool = False, force: bool = False) -> MigrateResult:
        """Apply pending migrations in dependency-then-version order.

        Refuses (``MigrationValidationError``) while ``validate()`` finds errors,
        unless ``force``; destructive files in production are refused even then.
        With nothing pending it only reads: no DDL, no lock, no CREATE privilege.
        """
        snap = await self._snapshot(self._backend)
        if not decide.pending(snap) and not self._report(snap).errors:
            return MigrateResult(applied=(), dry_run=dry_run)
        self._check(snap, force=force)
        if dry_run:
            return MigrateResult(tuple(m.id for m in decide.pending(snap)), dry_run=True)
        applied: list[str] = []
        self._tracked = False
        async with self._backend.connection() as conn:
            for migration in decide.pending(snap):
                started = time.perf_counter()
                try:
                    done = await self._apply(conn, migration)
                except Exception:
                    self._announce(migration, "failed", started)
                    raise
                if done:
                    self._announce(migration, "applied", started)
                    applied.append(migration.id)
        return MigrateResult(tuple(applied), dry_run=False)

    def _announce(self, migration: Migration, outcome: MigrationOutcome, started: float) -> None:
        if MIGRATION_RAN.listeners:
            duration = time.perf_counter() - started
            MIGRATION_RAN.publish(MigrationRan(self.namespace, migration.id, outcome, duration))

    def _check(self, snap: Snapshot, *, force: bool) -> None:
        if self.production:
            destructive = decide.destructive_problems(decide.pending(snap))
            if destructive:
                raise DestructiveMigrationError(destructive)
        report = self._report(snap)
        if not force and report.errors:
            raise MigrationValidationError(report.errors)
        blocking = decide.blocking_errors(snap)  # force skips drift, never these
        if blocking:
            raise MigrationValidationError(blocking)

    async def _apply(self, conn: SqlConnection, migration: Migration) -> bool:
        """Run one pending file; False when another migrator applied it meanwhile."""
        statements = split_statements(migration.up)
        started = time.perf_counter()
        if migration.no_transaction:
            async with migration_lock(
                self._backend,
                conn,
                transaction=False,
                lock_timeout=self.lock_timeout,
                clock=self._clock,
            ):
                await self._ensure_tracking(conn)
                if await self._tracking.is_recorded(conn, self.namespace, migration.version):
                    return False
                await self._bound_statements(conn, local=False)
                try:
                    await self._run(conn, migration, statements, in_transaction=False)
                except MigrationFailedError:
                    # Its earlier statements stay applied: record the failure so
                    # status shows it, unless the connection itself is gone (then
                    # the original error is still the one to raise).
                    with contextlib.suppress(Exception):
                        entry = self._entry(migration, started, False)
                        await self._tracking.record_applied(conn, entry)
                    raise
                finally:
                    with contextlib.suppress(Exception):
                        await self._reset_statement_bound(conn)
                await self._tracking.record_applied(conn, self._entry(migration, started, True))
        else:
            async with self._locked(conn):
                await self._ensure_tracking(conn)
                if await self._tracking.is_recorded(conn, self.namespace, migration.version):
                    return False  # another migrator applied it while we waited
                await self._run(conn, migration, statements)
                await self._tracking.record_applied(conn, self._entry(migration, started, True))
        elapsed = int((time.perf_counter() - started) * 1000)
        self._log.info(
            "migration.applied",
            migration=migration.id,
            execution_ms=elapsed,
            transactional=not migration.no_transaction,
        )
        return True

    async def _ensure_tracking(self, conn: SqlConnection) -> None:
        # Once per run, and only when something is pending: with nothing to do,
        # migrate() stays read-only (no CREATE privilege needed).
        if not self._tracked:
            await self._tracking.ensure(conn)
            self._tracked = True

    async def _reset_statement_bound(self, conn: SqlConnection) -> None:
        if self._dialect == "postgresql":
            await conn.execute("RESET lock_timeout")

    def _entry(self, migration: Migration, started: float, success: bool) -> AppliedMigration:
        return AppliedMigration(
            namespace=self.namespace,
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            checksum_algorithm=CHECKSUM_ALGORITHM,
            applied_at=self._clock.now(),
            execution_ms=int((time.perf_counter() - started) * 1000),
            success=success,
            applied_by=self.applied_by,
        )

    async def _run(
        self,
        conn: SqlConnection,
        migration: Migration,
        statements: Sequence[str],
        *,
        source: str | None = None,
        in_transaction: bool = True,
    ) -> None:
        """Run ``statements``; a failure names the file, the statement and its line.

        Inside a transaction, statements go in batches (one round trip per
        ``_BATCH``), each behind a savepoint: a failing batch is rolled back to
        it and replayed one statement at a time, which finds the statement to
        blame. Without a transaction they go one at a time.
        """
        text = source if source is not None else migration.up
        step = _BATCH if in_transaction else 1
        for first in range(0, len(statements), step):
            chunk = statements[first : first + step]
            if len(chunk) > 1:
                await conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    await conn.execute_script(";\n".join(chunk))
                except Exception as batch_error:  # noqa: BLE001 - replayed below to name the statement
                    try:
                        await conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                    except Exception:  # noqa: BLE001 - the connection itself is gone
                        raise self._failed(migration, text, statements, first, batch_error) from (
                            batch_error
                        )
                else:
                    await conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                    continue
            for offset, statement in enumerate(chunk):
                try:
                    await conn.execute(statement)
                except Exception as exc:
                    raise self._failed(migration, text, statements, first + offset, exc) from exc

    def _failed(
        self,
        migration: Migration,
        text: str,
        statements: Sequence[str],
        index: int,
        exc: Exception,
    ) -> MigrationFailedError:
        line = _line_of(text, statements, index)
        self._log.error(
            "migration.failed",
            migration=migration.id,
            statement=index + 1,
            line=line,
            error=type(exc).__name__,
        )
        return MigrationFailedError(migration.filename, index, line, statements[index], exc)

    async def rollback(self, version: int) -> tuple[str, ...]:
        """Undo every applied migration newer than ``version`` (0 undoes all),
        dependants first, each by its ``-- down`` section in its own transaction.
        Checks that every one has a down section before undoing anything."""
        snap = await self._snapshot(self._backend)
        targets = [
            m
            for m in reversed(snap.resolution.order)
            if m.version > version and m.version in snap.applied
        ]
        problems = [f"{m.filename}: has no '-- down' section" for m in targets if not m.down]
        orphans = [
            row.id
            for v, row in snap.applied.items()
            if v > version and v not in {m.version for m in snap.migrations}
        ]
        problems += [f"{name}: applied but its file is missing" for name in orphans]
        if problems:
            raise MigrationValidationError(problems)
        destructive = decide.destructive_problems(targets, down=True) if self.production else []
        if destructive:
            raise DestructiveMigrationError(destructive)
        undone: list[str] = []
        async with self._backend.connection() as conn:
            for migration in targets:
                down = migration.down or ""
                started = time.perf_counter()
                try:
                    async with self._locked(conn):
                        if not await self._tracking.is_recorded(
                            conn, self.namespace, migration.version
                        ):
                            continue  # another migrator undid it while we waited
                        await self._run(conn, migration, split_statements(down), source=down)
                        await self._tracking.roll_back(
                            conn,
                            snap.applied[migration.version],
                            self._clock.now(),
                            self.applied_by,
                        )
                except Exception:
                    self._announce(migration, "failed", started)
                    raise
                self._announce(migration, "rolled_back", started)
                self._log.info("migration.rolled_back", migration=migration.id)
                undone.append(migration.id)
        return tuple(undone)

    async def baseline(self, version: int | None = None) -> tuple[str, ...]:
        """Record the files up to ``version`` (default: all) as applied without
        running them, for a database that already has their effects. A
        ``schema_migrations`` table of another tool is renamed to
        ``schema_migrations_legacy`` first (nothing is dropped)."""
        async with self._backend.connection() as conn, self._locked(conn):
            snap = await self._snapshot(conn)  # read under the lock: nobody moves meanwhile
            if snap.parse_errors or snap.resolution.errors:
                raise MigrationValidationError(snap.parse_errors + snap.resolution.errors)
            if snap.tracking.conflicting:
                await conn.execute(f"ALTER TABLE {self._tracking.table} RENAME TO {LEGACY_RENAME}")
                self._log.warning(
                    "migration.legacy_renamed", table=TRACKING_TABLE, to=LEGACY_RENAME
                )
            await self._tracking.ensure(conn)
            recorded: list[str] = []
            for migration in snap.resolution.order:
                if version is not None and migration.version > version:
                    continue
                if migration.version in snap.applied and not snap.tracking.conflicting:
                    continue
                entry = attrs.evolve(
                    self._entry(migration, time.perf_counter(), True),
                    execution_ms=0,
                    applied_by=f"baseline {self.applied_by}",
                )
                await self._tracking.record_applied(conn, entry)
                recorded.append(migration.id)
        self._log.info("migration.baseline", recorded=len(recorded))
        return tuple(recorded)
