"""Schema introspection: buttress's validate() against SQLAlchemy's Inspector and migra.

Starts a throwaway PostgreSQL (the test suite's server helper), builds 200
tables of 10 columns, 4 indexes and 3 constraints each (PK, UNIQUE, FK), then
times in one run, medians over several rounds:

- buttress ``SchemaValidator.validate()``: catalog query + full diff;
- SQLAlchemy Inspector, batched (get_multi_columns/indexes/pk/fks/uniques);
- SQLAlchemy Inspector, per table (the same five calls for each table);
- SQLAlchemy ``MetaData.reflect()``;
- migra (schemainspect's inspection of the database), if installed.

It also counts round trips (statements sent) at 200 and 1,000 tables.
Run: ``python benchmarks/schema_introspection.py [--rounds N]``.
Needs: sqlalchemy, psycopg2-binary (and optionally migra) — the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from buttress.backends import SqlBackend, connect, require_sql
from buttress.schema import Column, ForeignKey, Index, Schema, Table
from buttress.schema.validator import SchemaValidator
from servers import PostgresServer  # type: ignore[import-not-found, unused-ignore]  # tests/ joins sys.path at run time

COLUMNS = [
    ("id", "bigint", False, None),
    ("parent_id", "bigint", True, None),
    ("code", "varchar(40)", False, None),
    ("name", "text", True, None),
    ("amount", "numeric(12,2)", True, "0"),
    ("active", "boolean", False, "true"),
    ("created_at", "timestamptz", False, "now()"),
    ("updated_at", "timestamp", True, None),
    ("score", "double precision", True, None),
    ("payload", "jsonb", True, None),
]


def declared(count: int) -> Schema:
    tables = []
    for i in range(count):
        name = f"t{i:04d}"
        parent = f"t{i - 1:04d}" if i else name
        tables.append(
            Table(
                name,
                [Column(c, t, nullable=n, default=d) for c, t, n, d in COLUMNS],
                primary_key=["id"],
                unique=[["code"]],
                foreign_keys=[ForeignKey(["parent_id"], parent, ["id"])],
                indexes=[
                    Index(f"{name}_parent_ix", ["parent_id"]),
                    Index(f"{name}_name_ix", ["name"]),
                    Index(f"{name}_created_ix", ["created_at"]),
                    Index(f"{name}_active_score_ix", ["active", "score"]),
                ],
            )
        )
    return Schema(tables)


async def build(db: SqlBackend, schema: Schema) -> None:
    validator = SchemaValidator(db, schema)
    statements = await validator.plan()
    for start in range(0, len(statements), 200):
        await db.execute_script(";\n".join(statements[start : start + 200]))
    await db.execute("ANALYZE")


class Counting:
    """Counts statements sent through a backend's query methods and its asyncpg
    pool (introspection reads Records straight from the pool)."""

    def __init__(self, backend: SqlBackend) -> None:
        self.count = 0
        for method in ("fetch", "fetchrow", "fetchval", "execute"):
            setattr(backend, method, self._wrap(getattr(backend, method)))
        pool = getattr(backend, "pool", None)
        if pool is not None:
            proxy = _PoolProxy(pool)
            for method in ("fetch", "fetchrow", "fetchval", "execute"):
                setattr(proxy, method, self._wrap(getattr(pool, method)))
            backend.pool = proxy  # type: ignore[attr-defined]

    def _wrap(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any) -> Any:
            self.count += 1
            return await fn(*args)

        return counted


class _PoolProxy:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def sqlalchemy_engine(dsn: str) -> Any:
    import sqlalchemy

    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://"))
    engine.statements = 0  # type: ignore[attr-defined]

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        engine.statements += 1  # type: ignore[attr-defined]

    return engine


def sa_batched(engine: Any) -> None:
    import sqlalchemy

    with engine.connect() as conn:
        insp = sqlalchemy.inspect(conn)
        insp.get_multi_columns()
        insp.get_multi_indexes()
        insp.get_multi_pk_constraint()
        insp.get_multi_foreign_keys()
        insp.get_multi_unique_constraints()


def sa_per_table(engine: Any) -> None:
    import sqlalchemy

    with engine.connect() as conn:
        insp = sqlalchemy.inspect(conn)
        for name in insp.get_table_names():
            insp.get_columns(name)
            insp.get_indexes(name)
            insp.get_pk_constraint(name)
            insp.get_foreign_keys(name)
            insp.get_unique_constraints(name)


def sa_reflect(engine: Any) -> None:
    import sqlalchemy

    sqlalchemy.MetaData().reflect(bind=engine)


def migra_inspect(engine: Any) -> None:
    from schemainspect import get_inspector  # type: ignore[import-untyped]  # no stubs

    with engine.connect() as conn:
        get_inspector(conn)


def timed_sync(fn: Callable[[], None], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


async def timed_async(fn: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


def migra_diff(engine: Any, empty: Any) -> None:
    from migra import Migration  # type: ignore[import-untyped]  # no stubs

    # What `migra` does: inspect both databases, then compute the statements.
    with engine.connect() as live, empty.connect() as target:
        migration = Migration(live, target)
        migration.set_safety(False)
        migration.add_all_changes()


async def measure(server: PostgresServer, count: int, rounds: int, full: bool) -> None:
    name = server.create_database()
    dsn = server.dsn(name)
    schema = declared(count)
    try:
        async with connect(dsn, migrate=False) as raw:
            db = require_sql(raw, "benchmark")
            await build(db, schema)
            validator = SchemaValidator(db, schema)
            report = await validator.validate()
            if report.findings:
                raise SystemExit(f"setup drifted:\n{report.render_text()[:2000]}")
            counter = Counting(db)
            await validator.validate()
            trips = counter.count
            buttress_times = await timed_async(validator.validate, rounds)
        engine = sqlalchemy_engine(dsn)
        sa_batched(engine)  # warm the connection pool and dialect caches
        engine.statements = 0
        sa_batched(engine)
        batched_trips = engine.statements
        results = {
            "buttress validate()": buttress_times,
            "SQLAlchemy batched Inspector": timed_sync(lambda: sa_batched(engine), rounds),
        }
        trips_by = {"buttress validate()": trips, "SQLAlchemy batched Inspector": batched_trips}
        if full:
            slow_rounds = max(1, rounds // 3)
            engine.statements = 0
            results["SQLAlchemy per-table Inspector"] = timed_sync(
                lambda: sa_per_table(engine), slow_rounds
            )
            trips_by["SQLAlchemy per-table Inspector"] = engine.statements // slow_rounds
            engine.statements = 0
            results["SQLAlchemy MetaData.reflect()"] = timed_sync(
                lambda: sa_reflect(engine), slow_rounds
            )
            trips_by["SQLAlchemy MetaData.reflect()"] = engine.statements // slow_rounds
            try:
                import schemainspect  # noqa: F401
            except ImportError:
                print("  (migra/schemainspect not installed: skipped)")
            else:
                engine.statements = 0
                results["migra (schemainspect)"] = timed_sync(
                    lambda: migra_inspect(engine), slow_rounds
                )
                trips_by["migra (schemainspect)"] = engine.statements // slow_rounds
                empty_name = server.create_database()
                empty = sqlalchemy_engine(server.dsn(empty_name))
                try:
                    engine.statements = 0
                    results["migra diff (both inspections + diff)"] = timed_sync(
                        lambda: migra_diff(engine, empty), slow_rounds
                    )
                    trips_by["migra diff (both inspections + diff)"] = (
                        engine.statements // slow_rounds
                    )
                finally:
                    empty.dispose()
                    server.drop_database(empty_name)
        engine.dispose()
    finally:
        server.drop_database(name)
    base = statistics.median(results["buttress validate()"])
    print(
        f"\n{count} tables x 10 columns, 4 indexes, 3 constraints (medians of {rounds} "
        "rounds; slow peers fewer):"
    )
    print(f"  {'':34} {'median ms':>10} {'vs buttress':>12} {'round trips':>12}")
    for label, times in results.items():
        median = statistics.median(times)
        print(
            f"  {label:34} {median * 1000:10.1f} {median / base:11.1f}x "
            f"{trips_by.get(label, 0):12d}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--large", type=int, default=1000, help="table count for the 2nd run")
    args = parser.parse_args()
    server = PostgresServer()
    server.start()
    try:
        await measure(server, 200, args.rounds, full=True)
        await measure(server, args.large, max(3, args.rounds // 3), full=False)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
