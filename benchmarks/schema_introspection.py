"""Schema introspection: buttress's validate() against SQLAlchemy's Inspector and migra.

Starts a throwaway PostgreSQL (the test suite's server helper), builds 200
tables of 10 columns, 4 indexes and 3 constraints each (PK, UNIQUE, FK), then
times in one run, medians over several interleaved rounds (each round runs
every contender once, the slow peers every third round, so machine noise hits
all of them alike):

- buttress ``SchemaValidator.validate()``: catalog query + full diff;
- SQLAlchemy Inspector, batched (get_multi_columns/indexes/pk/fks/uniques);
- SQLAlchemy Inspector, per table (the same five calls for each table);
- SQLAlchemy ``MetaData.reflect()``;
- migra, if installed: schemainspect's inspection of the database, and
  migra's full diff (inspect the database and an empty one, compute changes).

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

from buttress import connect
from buttress.backends import SqlBackend, require_sql
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


def migra_diff(engine: Any, empty: Any) -> None:
    from migra import Migration  # type: ignore[import-untyped]  # no stubs

    # What `migra` does: inspect both databases, then compute the statements.
    with engine.connect() as live, empty.connect() as target:
        migration = Migration(live, target)
        migration.set_safety(False)
        migration.add_all_changes()


class Contender:
    """One thing to time: ``run`` is sync or async; ``every``: take part in
    every n-th round only (the slow peers, to keep the script short)."""

    def __init__(self, label: str, run: Callable[[], object], every: int = 1) -> None:
        self.label = label
        self.run = run
        self.every = every
        self.times: list[float] = []
        self.trips = 0

    async def time_once(self) -> None:
        started = time.perf_counter()
        result = self.run()
        if asyncio.iscoroutine(result):
            await result
        self.times.append(time.perf_counter() - started)


async def interleaved(contenders: list[Contender], rounds: int) -> None:
    # Round-robin, not one contender after the other: on a shared machine the
    # speed drifts over seconds, and every ratio should compare like with like.
    for number in range(rounds):
        for contender in contenders:
            if number % contender.every == 0:
                await contender.time_once()


def count_trips(engine: Any, fn: Callable[[], object]) -> int:
    engine.statements = 0
    fn()
    return int(engine.statements)


async def measure(server: PostgresServer, count: int, rounds: int, full: bool) -> None:
    name = server.create_database()
    dsn = server.dsn(name)
    schema = declared(count)
    empty_name: str | None = None
    engines: list[Any] = []
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
            ours = Contender("buttress validate()", validator.validate)
            ours.trips = counter.count
            engine = sqlalchemy_engine(dsn)
            engines.append(engine)
            sa_batched(engine)  # warm the connection pool and dialect caches
            contenders = [
                ours,
                Contender("SQLAlchemy batched Inspector", lambda: sa_batched(engine)),
            ]
            if full:
                slow = 3  # the slow peers run every 3rd round
                contenders += [
                    Contender("SQLAlchemy per-table Inspector", lambda: sa_per_table(engine), slow),
                    Contender("SQLAlchemy MetaData.reflect()", lambda: sa_reflect(engine), slow),
                ]
                try:
                    import schemainspect  # noqa: F401
                except ImportError:
                    print("  (migra/schemainspect not installed: skipped)")
                else:
                    empty_name = server.create_database()
                    empty = sqlalchemy_engine(server.dsn(empty_name))
                    engines.append(empty)
                    contenders += [
                        Contender("migra (schemainspect)", lambda: migra_inspect(engine), slow),
                        Contender(
                            "migra diff (both inspections + diff)",
                            lambda: migra_diff(engine, empty),
                            slow,
                        ),
                    ]
            for contender in contenders[1:]:  # also their warm-up run
                contender.trips = count_trips(engine, contender.run)
            await interleaved(contenders, rounds)
    finally:
        for engine in engines:
            engine.dispose()
        if empty_name is not None:
            server.drop_database(empty_name)
        server.drop_database(name)
    report_results(count, contenders)


def report_results(count: int, contenders: list[Contender]) -> None:
    medians = {c.label: statistics.median(c.times) for c in contenders}
    base = medians["buttress validate()"]
    print(
        f"\n{count} tables x 10 columns, 4 indexes, 3 constraints (interleaved rounds; "
        f"medians of {len(contenders[0].times)} runs, slow peers fewer):"
    )
    print(f"  {'':38} {'median ms':>10} {'runs':>5} {'vs buttress':>12} {'round trips':>12}")
    for c in contenders:
        print(
            f"  {c.label:38} {medians[c.label] * 1000:10.1f} {len(c.times):5d} "
            f"{medians[c.label] / base:11.1f}x {c.trips:12d}"
        )
    # The aims, as ratios (peer median / buttress median).
    aims = [
        ("SQLAlchemy batched Inspector", 1.0, "at least as fast as"),
        ("SQLAlchemy per-table Inspector", 10.0, "at least 10x faster than"),
        ("migra diff (both inspections + diff)", 10.0, "at least 10x faster than"),
    ]
    for label, wanted, wording in aims:
        if label in medians:
            ratio = medians[label] / base
            verdict = "met" if ratio >= wanted else "NOT met"
            print(f"  aim: validate() {wording} {label}: {ratio:.1f}x, {verdict}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
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
