"""``IntegrityChecker``: check, plan, apply with a backup, undo.

The plan is computed from reads only; a real cleanup plans again inside its
transaction and applies exactly that plan, after writing every affected row to
``buttress_integrity_backup``. Statements come from ``_sql``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import attrs

from buttress._checks import check_count
from buttress._exceptions import ValidationError
from buttress.backends import Backend, SqlBackend, SqlConnection, require_sql
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.log import get_logger
from buttress.schema.identifiers import check_identifier
from buttress.schema.integrity._declare import (
    AUX,
    Expectation,
    ExpectRelation,
    ExpectUnique,
    IntegrityError,
)
from buttress.schema.integrity._report import (
    CleanupResult,
    ExpectationResult,
    IntegrityReport,
    RowChange,
    UndoResult,
    jsonable,
)
from buttress.schema.integrity._sql import (
    C,
    T,
    TableSql,
    dump_row,
    enforcing_keys,
    firing_triggers,
    load_row,
    row_of,
)
from buttress.schema.model import Schema

__all__ = ["BACKUP_TABLE", "IntegrityChecker"]

BACKUP_TABLE = "buttress_integrity_backup"


@attrs.define
class _Plan:
    """The changes found so far, one per row: a delete wins over an update, and
    two updates of one row (two relations set NULL) become one."""

    changes: list[RowChange] = attrs.field(factory=list)
    seen: dict[tuple[str, str], int] = attrs.field(factory=dict)

    def add(self, change: RowChange) -> None:
        ident = (change.table, json.dumps(jsonable(change.key), sort_keys=True))
        at = self.seen.get(ident)
        if at is None:
            self.seen[ident] = len(self.changes)
            self.changes.append(change)
            return
        earlier = self.changes[at]
        if earlier.action == "delete":
            return
        if change.action == "delete":
            self.changes[at] = change
        else:
            merged = {**earlier.changes, **change.changes}
            self.changes[at] = attrs.evolve(
                earlier, changes=merged, reason=f"{earlier.reason}; {change.reason}"
            )

    def ordered(self) -> tuple[RowChange, ...]:
        # Updates first: children are re-pointed before their old parents go.
        updates = [c for c in self.changes if c.action == "update"]
        return tuple(updates + [c for c in self.changes if c.action == "delete"])


def _events(plan: Sequence[RowChange]) -> dict[str, set[str]]:
    """The writes a cleanup and its undo make, per table: an update both ways,
    a delete then an insert."""
    out: dict[str, set[str]] = {}
    for change in plan:
        wanted = out.setdefault(change.table, set())
        wanted.update(("update",) if change.action == "update" else ("delete", "insert"))
    return out


def _same(a: object, b: object) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _refused_because(exc: Exception) -> str:
    """Why the database refused a restoring write, from its SQLSTATE or message
    (neither is repeated: it may quote row values)."""
    state = str(getattr(exc, "sqlstate", "") or "")
    text = str(exc).upper()
    if state == "23505" or "UNIQUE CONSTRAINT" in text or "PRIMARY KEY" in text:
        return "a row with that key exists again"
    if state == "23503" or "FOREIGN KEY" in text:
        return (
            "a foreign key refuses it: the row it refers to is missing, as it was when "
            "the cleanup ran (the key had been bypassed)"
        )
    if state.startswith("23"):
        return "a constraint refuses it"
    return "the database refused it"


class IntegrityChecker:
    """Checks and cleans the declared ``expectations`` on a SQL backend.

    ``schema`` (optional) supplies primary keys for expectations that give no
    ``key``; otherwise the live primary key is used. ``db_schema`` is the
    PostgreSQL schema holding the tables. ``sample_limit`` bounds the samples a
    check returns; ``max_rows`` bounds what one cleanup may change.
    """

    def __init__(
        self,
        backend: Backend,
        expectations: Iterable[Expectation],
        *,
        schema: Schema | None = None,
        db_schema: str = "public",
        sample_limit: int = 5,
        max_rows: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._backend: SqlBackend = require_sql(backend, "IntegrityChecker")
        self.expectations: tuple[Expectation, ...] = tuple(expectations)
        for item in self.expectations:
            if not isinstance(item, ExpectUnique | ExpectRelation):
                raise ValidationError(
                    "expectations", "must contain ExpectUnique or ExpectRelation values"
                )
        self._schema = schema
        self.db_schema = check_identifier(db_schema, field="db_schema")
        self.sample_limit = check_count("sample_limit", sample_limit, at_least=1)
        self.max_rows = check_count("max_rows", max_rows, at_least=1)
        self._clock = clock
        self._pg = self._backend.dialect == "postgresql"
        self._q = TableSql(self._backend.dialect, self.db_schema)
        self._log = get_logger("integrity")

    async def check(self) -> IntegrityReport:
        """Find duplicate groups and orphaned rows: one query per expectation."""
        await self._require_declared_tables(self._backend)
        results = []
        for exp in self.expectations:
            if isinstance(exp, ExpectUnique):
                results.append(await self._check_unique(exp))
            else:
                results.append(await self._check_relation(exp))
        return IntegrityReport(tuple(results))

    async def _check_unique(self, exp: ExpectUnique) -> ExpectationResult:
        cols = ", ".join(self._q.cols(T, exp.columns))
        sql = (
            f"SELECT g.*, count(*) OVER () AS {AUX}groups, sum(g.{AUX}n) OVER () AS {AUX}rows "
            f"FROM (SELECT {cols}, count(*) AS {AUX}n FROM {self._q.table(exp.table)} AS {T} "
            f"WHERE {self._q.not_null(T, exp.columns)} GROUP BY {cols} HAVING count(*) > 1) AS g "
            f"ORDER BY g.{AUX}n DESC LIMIT ?"
        )
        rows = await self._backend.fetch(self._q.sql(sql), self.sample_limit)
        if not rows:
            return ExpectationResult(exp, 0, 0)
        groups, total = int(rows[0][f"{AUX}groups"]), int(rows[0][f"{AUX}rows"])
        samples = tuple(
            {**{c: r[c] for c in exp.columns}, "count": int(r[f"{AUX}n"])} for r in rows
        )
        return ExpectationResult(exp, groups, total - groups, samples)

    async def _check_relation(self, exp: ExpectRelation) -> ExpectationResult:
        key = self._declared_key(exp)
        shown = list(dict.fromkeys([*key, *exp.columns]))
        order = ", ".join(self._q.cols(C, shown))
        sql = (
            f"SELECT {', '.join(self._q.cols(C, shown))}, count(*) OVER () AS {AUX}total "
            f"FROM {self._q.table(exp.table)} AS {C} WHERE {self._q.orphan_where(exp)} "
            f"ORDER BY {order} LIMIT ?"
        )
        rows = await self._backend.fetch(self._q.sql(sql), self.sample_limit)
        total = int(rows[0][f"{AUX}total"]) if rows else 0
        samples = tuple({c: r[c] for c in shown} for r in rows)
        return ExpectationResult(exp, total, total, samples)

    async def _require_declared_tables(self, conn: SqlConnection | SqlBackend) -> None:
        wanted = {e.table for e in self.expectations} | {
            e.references for e in self.expectations if isinstance(e, ExpectRelation)
        }
        missing = await self._q.missing_tables(conn, sorted(wanted))
        if missing:
            raise IntegrityError(f"declared table(s) missing from the database: {missing}")

    def _declared_key(self, exp: Expectation) -> tuple[str, ...]:
        if exp.key:
            return exp.key
        table = self._schema.table(exp.table) if self._schema is not None else None
        return table.primary_key if table is not None else ()

    async def _key(self, conn: SqlConnection | SqlBackend, exp: Expectation) -> tuple[str, ...]:
        declared = self._declared_key(exp)
        if declared:
            return declared
        live = await self._q.live_key(conn, exp.table)
        if not live:
            raise IntegrityError(
                f"{exp.describe()}: table {exp.table!r} has no primary key; "
                "give the expectation a key=(...) to identify rows"
            )
        return live

    async def cleanup(self, *, dry_run: bool = True) -> CleanupResult:
        """Remove surplus duplicates (keeping each group's oldest row) and treat
        orphans per their ``on_orphan``; rows of a declared relation pointing at
        a removed duplicate (by its key) are re-pointed to the kept row.

        ``dry_run`` (the default) reads only. A real run plans and applies in one
        transaction (REPEATABLE READ on PostgreSQL), after writing every row it
        changes to the backup table; ``undo(result.run_id)`` puts them back.
        """
        if dry_run:
            async with self._backend.connection() as conn:
                plan = await self._plan(conn)
                refusals = await self._refusals(conn, plan)
            return CleanupResult(
                None, True, plan, sample_limit=max(self.sample_limit, 20), refusals=refusals
            )
        run_id = f"{self._clock.now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        await self._backend.dialect.require_tables(
            self._backend, "IntegrityChecker", [BACKUP_TABLE]
        )
        async with self._backend.transaction() as tx:
            if self._pg:
                await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            plan = await self._plan(tx)
            if not plan:
                return CleanupResult(None, False, ())
            refusals = await self._refusals(tx, plan)
            if refusals:
                raise IntegrityError(
                    "cleanup refused, undo could not restore the rows exactly: "
                    + "; ".join(refusals)
                    + "; nothing was changed"
                )
            await self._refuse_cascades(tx, plan)
            await self._backup(tx, run_id, plan)
            for change in plan:
                try:
                    await self._apply(tx, change)
                except IntegrityError:
                    raise
                except Exception as exc:
                    # A NOT NULL column under set_null, a restricting foreign key...:
                    # the transaction rolls back; say which change the database refused.
                    raise IntegrityError(
                        f"cleanup stopped at {change.action} of {change.table} "
                        f"{jsonable(change.key)} ({change.reason}): the database refused it "
                        f"({type(exc).__name__}); nothing was changed"
                    ) from exc
        self._log.info(
            "integrity.cleanup",
            run_id=run_id,
            deleted=sum(c.action == "delete" for c in plan),
            updated=sum(c.action == "update" for c in plan),
        )
        return CleanupResult(run_id, False, plan, sample_limit=max(self.sample_limit, 20))

    async def _plan(self, conn: SqlConnection) -> tuple[RowChange, ...]:
        await self._require_declared_tables(conn)
        plan = _Plan()
        keys: dict[str, tuple[str, ...]] = {}

        async def key_of(exp: Expectation) -> tuple[str, ...]:
            if exp.table not in keys:
                keys[exp.table] = await self._key(conn, exp)
            return keys[exp.table]

        for exp in self.expectations:
            if isinstance(exp, ExpectUnique):
                key = await key_of(exp)
                await self._plan_merges(conn, exp, key, plan, key_of)
                await self._plan_duplicates(conn, exp, key, plan)
        for exp in self.expectations:
            if isinstance(exp, ExpectRelation) and exp.on_orphan != "keep":
                await self._plan_orphans(conn, exp, await key_of(exp), plan)
        if len(plan.changes) > self.max_rows:
            raise IntegrityError(
                f"cleanup would change more than max_rows={self.max_rows} rows; "
                "raise max_rows or clean up in steps"
            )
        return plan.ordered()

    async def _fetch_bounded(self, conn: SqlConnection, sql: str) -> list[Mapping[str, object]]:
        return await conn.fetch(self._q.sql(f"{sql} LIMIT ?"), self.max_rows + 1)

    async def _plan_duplicates(
        self, conn: SqlConnection, exp: ExpectUnique, key: tuple[str, ...], plan: _Plan
    ) -> None:
        sql = (
            f"SELECT * FROM ({self._q.ranked(exp, key)}) AS r WHERE r.{AUX}rn > 1 "
            f"ORDER BY {', '.join(f'r.{AUX}k_{i}' for i in range(len(key)))}"
        )
        for raw in await self._fetch_bounded(conn, sql):
            row = row_of(raw, self._pg)
            plan.add(
                RowChange(
                    exp.table,
                    "delete",
                    {k: row[k] for k in key},
                    row,
                    f"duplicate in {exp.describe()}",
                )
            )

    async def _plan_merges(
        self,
        conn: SqlConnection,
        exp: ExpectUnique,
        key: tuple[str, ...],
        plan: _Plan,
        key_of: Callable[[Expectation], Awaitable[tuple[str, ...]]],
    ) -> None:
        for rel in self.expectations:
            if not (
                isinstance(rel, ExpectRelation)
                and rel.references == exp.table
                and rel.ref_columns == key
            ):
                continue
            child_key = await key_of(rel)
            match = " AND ".join(
                f"{c} = d.{AUX}k_{i}" for i, c in enumerate(self._q.cols(C, rel.columns))
            )
            body = f"to_jsonb({C}) AS row" if self._pg else f"{C}.*"
            keeps = ", ".join(f"d.{AUX}keep_{i}" for i in range(len(key)))
            sql = (
                f"SELECT {body}, {keeps} FROM {self._q.table(rel.table)} AS {C} "
                f"JOIN ({self._q.ranked(exp, key)}) AS d ON {match} WHERE d.{AUX}rn > 1 "
                f"ORDER BY {', '.join(self._q.cols(C, child_key))}"
            )
            for raw in await self._fetch_bounded(conn, sql):
                row = row_of(raw, self._pg)
                new = {
                    col: self._q.keep_value(raw[f"{AUX}keep_{i}"])
                    for i, col in enumerate(rel.columns)
                }
                plan.add(
                    RowChange(
                        rel.table,
                        "update",
                        {k: row[k] for k in child_key},
                        row,
                        f"re-pointed to the kept row of {exp.describe()}",
                        new,
                    )
                )

    async def _plan_orphans(
        self, conn: SqlConnection, exp: ExpectRelation, key: tuple[str, ...], plan: _Plan
    ) -> None:
        body = f"to_jsonb({C}) AS row" if self._pg else f"{C}.*"
        sql = (
            f"SELECT {body} FROM {self._q.table(exp.table)} AS {C} "
            f"WHERE {self._q.orphan_where(exp)} ORDER BY {', '.join(self._q.cols(C, key))}"
        )
        for raw in await self._fetch_bounded(conn, sql):
            row = row_of(raw, self._pg)
            ident = {k: row[k] for k in key}
            reason = f"orphan of {exp.describe()}"
            if exp.on_orphan == "delete":
                plan.add(RowChange(exp.table, "delete", ident, row, reason))
            else:
                changes: dict[str, object] = dict.fromkeys(exp.columns)
                plan.add(RowChange(exp.table, "update", ident, row, reason, changes))

    async def _refusals(self, conn: SqlConnection, plan: Sequence[RowChange]) -> tuple[str, ...]:
        """Why ``undo`` could not put the rows of ``plan`` back exactly, if so:
        triggers that fire on the cleanup's or the undo's writes, and orphans
        that exist although a live foreign key enforces their relation (it was
        bypassed), which the key would refuse to re-create."""
        if not plan:
            return ()
        reasons = [
            f"{trigger} fires on the cleanup or its undo and would change rows or "
            "write elsewhere; disable it for both (ALTER TABLE ... DISABLE TRIGGER) "
            "or clean up by hand"
            for trigger in await firing_triggers(
                conn, self._backend.dialect, self.db_schema, _events(plan)
            )
        ]
        orphaned = [
            rel
            for rel in self.expectations
            if isinstance(rel, ExpectRelation)
            and rel.on_orphan != "keep"
            and any(f"orphan of {rel.describe()}" in c.reason for c in plan)
        ]
        keys = await enforcing_keys(conn, self._backend.dialect, self.db_schema, orphaned)
        for rel, name in keys.items():
            count = sum(f"orphan of {rel.describe()}" in c.reason for c in plan)
            reasons.append(
                f"{count} orphan(s) of {rel.describe()} exist although foreign key {name} "
                "enforces that relation (it was bypassed: session_replication_role=replica, "
                "a disabled trigger or a NOT VALID key); undo could not put them back while "
                "the key is enforced; fix them by hand"
            )
        return tuple(reasons)

    async def _refuse_cascades(self, conn: SqlConnection, plan: Sequence[RowChange]) -> None:
        """A live foreign key that cascades a delete would change rows nobody
        backed up; refuse unless a declared relation re-points those rows first."""
        targets = sorted({c.table for c in plan if c.action == "delete"})
        # Children of a removed duplicate are re-pointed (merged) before it goes,
        # so a cascade along such a declared relation reaches nothing; rows
        # removed as orphans have no such cover.
        orphan_parents = {
            c.table for c in plan if c.action == "delete" and c.reason.startswith("orphan of")
        }
        merged = {
            (rel.table, rel.columns, rel.references)
            for rel in self.expectations
            if isinstance(rel, ExpectRelation)
            and rel.references not in orphan_parents
            and any(
                isinstance(u, ExpectUnique) and u.table == rel.references for u in self.expectations
            )
        }
        problems = []
        for child, columns, parent, action in await self._q.live_references(conn, targets):
            covered = (child, columns, parent) in merged
            if action in {"cascade", "set null", "set default"} and not covered:
                problems.append(f"{child}({', '.join(columns)}) -> {parent} ON DELETE {action}")
        if problems:
            raise IntegrityError(
                "cleanup would delete rows that live foreign keys cascade from, changing "
                f"undeclared rows without a backup: {problems}; declare those relations "
                "or clean up by hand"
            )

    async def _backup(self, tx: SqlConnection, run_id: str, plan: Sequence[RowChange]) -> None:
        now = self._backend.dialect.to_db_time(self._clock.now())
        cast = "::jsonb" if self._pg else ""
        await tx.executemany(
            self._q.sql(
                f"INSERT INTO {BACKUP_TABLE} (run_id, seq, schema_name, table_name, action, "
                f"row_key, row_data, changed_columns, reason, created_at) "
                f"VALUES (?, ?, ?, ?, ?, ?{cast}, ?{cast}, ?{cast}, ?, ?)"
            ),
            [
                (
                    run_id,
                    seq,
                    self.db_schema if self._pg else None,
                    change.table,
                    change.action,
                    dump_row(change.key),
                    dump_row(change.row),
                    json.dumps(sorted(change.changes)) if change.action == "update" else None,
                    change.reason,
                    now,
                )
                for seq, change in enumerate(plan)
            ],
        )

    async def _apply(self, tx: SqlConnection, change: RowChange) -> None:
        table = self._q.table(change.table)
        if change.action == "delete":
            sql = (
                f"DELETE FROM {table} WHERE {self._q.match_key(change.table, list(change.key), 1)}"
            )
            count = await tx.execute(sql, *self._q.key_args(change.key))
        else:
            count = await self._q.set_columns(tx, change.table, change.key, change.changes)
        if count != 1:
            raise IntegrityError(
                f"{change.action} of {change.table} {jsonable(change.key)} matched {count} "
                "rows instead of 1; nothing was changed"
            )

    async def undo(self, run_id: str) -> UndoResult:
        """Put back exactly the rows cleanup run ``run_id`` changed, from its
        backup, in one transaction: deleted rows are re-inserted, updated
        columns get their old values. A run can be undone once."""
        if not isinstance(run_id, str) or not run_id:
            raise ValidationError("run_id", "must be a non-empty string")
        await self._backend.dialect.require_tables(
            self._backend, "IntegrityChecker", [BACKUP_TABLE]
        )
        async with self._backend.transaction() as tx:
            rows = await tx.fetch(
                self._q.sql(
                    f"SELECT seq, schema_name, table_name, action, row_key, row_data, "
                    f"changed_columns, undone_at FROM {BACKUP_TABLE} WHERE run_id = ? "
                    "ORDER BY seq DESC"
                ),
                run_id,
            )
            if not rows:
                raise IntegrityError(f"no integrity cleanup run {run_id!r} in the backup")
            if any(r["undone_at"] is not None for r in rows):
                raise IntegrityError(f"integrity cleanup run {run_id!r} was already undone")
            tables: list[str] = []
            generated: dict[str, set[str]] = {}
            undo_events: dict[str, set[str]] = {}
            for r in rows:
                action = "insert" if r["action"] == "delete" else "update"
                undo_events.setdefault(str(r["table_name"]), set()).add(action)
            triggers = await firing_triggers(tx, self._backend.dialect, self.db_schema, undo_events)
            if triggers:
                raise IntegrityError(
                    f"undo of {run_id!r} refused: {', '.join(triggers)} would fire and the "
                    "rows would not come back exactly; disable it for the undo (ALTER TABLE "
                    "... DISABLE TRIGGER) and try again; nothing was restored"
                )
            # Reverse order of application: re-insert deleted rows (parents among
            # them), then give updated rows their old values.
            for r in rows:
                table = str(r["table_name"])
                if self._pg and r["schema_name"] != self.db_schema:
                    raise IntegrityError(
                        f"run {run_id!r} changed schema {r['schema_name']!r}; "
                        f"undo it with db_schema={r['schema_name']!r}"
                    )
                row = load_row(r["row_data"], tagged=not self._pg)
                key = load_row(r["row_key"], tagged=not self._pg)
                if r["action"] == "delete":
                    if table not in generated:
                        generated[table] = await self._q.generated(tx, table)
                    try:
                        await self._q.insert_row(tx, table, row, generated[table])
                    except Exception as exc:
                        raise IntegrityError(
                            f"undo of {run_id!r}: cannot re-insert {jsonable(key)} into "
                            f"{table!r} ({type(exc).__name__}: {_refused_because(exc)}); "
                            "nothing was restored"
                        ) from exc
                    restored = row
                else:
                    changed = json.loads(str(r["changed_columns"]))
                    restored = {c: row[c] for c in changed}
                    try:
                        count = await self._q.set_columns(tx, table, key, restored)
                    except Exception as exc:
                        raise IntegrityError(
                            f"undo of {run_id!r}: cannot restore {sorted(changed)} of "
                            f"{jsonable(key)} in {table!r} ({type(exc).__name__}: "
                            f"{_refused_because(exc)}); nothing was restored"
                        ) from exc
                    if count != 1:
                        raise IntegrityError(
                            f"undo of {run_id!r}: row {jsonable(key)} of {table!r} is gone; "
                            "nothing was restored"
                        )
                pair = await self._q.read_back(tx, table, key, restored)
                if pair is None or any(not _same(pair[0].get(c), pair[1][c]) for c in restored):
                    raise IntegrityError(
                        f"undo of {run_id!r}: row {jsonable(key)} of {table!r} did not come "
                        "back as it was (a trigger or rule changed it); nothing was restored"
                    )
                if table not in tables:
                    tables.append(table)
            await tx.execute(
                self._q.sql(f"UPDATE {BACKUP_TABLE} SET undone_at = ? WHERE run_id = ?"),
                self._backend.dialect.to_db_time(self._clock.now()),
                run_id,
            )
        self._log.info("integrity.undo", run_id=run_id, restored=len(rows))
        return UndoResult(run_id, len(rows), tuple(tables))
