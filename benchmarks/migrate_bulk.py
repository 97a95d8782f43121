"""Applying a large data migration: buttress's Migrator next to ``psql -1 -f``.

Run: ``python benchmarks/migrate_bulk.py [--statements 20000] [--rounds 3]``. Starts
a throwaway PostgreSQL (as the tests do), writes one migration of N INSERT
statements (pg_dump --inserts style), and applies it to a fresh database with
each contender in turn, round by round; prints the medians and the ratio. The
aim (issue #15): buttress at most 3x psql at 20,000 statements.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from buttress import connect
from buttress.backends import require_sql
from buttress.migrations import Migrator
from servers import PostgresServer  # type: ignore[import-not-found, unused-ignore]  # tests/ joins sys.path at run time


def migration_text(statements: int) -> str:
    lines = ["CREATE TABLE public.rental (id integer PRIMARY KEY, customer text, amount numeric);"]
    lines += [
        f"INSERT INTO public.rental VALUES ({i}, 'customer {i % 599}', {i % 97}.99);"
        for i in range(statements)
    ]
    return "\n".join(lines) + "\n"


async def with_buttress(dsn: str, directory: Path) -> float:
    async with connect(dsn, migrate=False) as raw:
        migrator = Migrator(require_sql(raw, "bench"), directory)
        started = time.perf_counter()
        await migrator.migrate()
        return time.perf_counter() - started


def with_psql(psql: str, dsn: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [psql, "-q", "-X", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(path), dsn],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    psql = shutil.which("psql")
    if psql is None:
        sys.exit("psql is not on PATH (Debian: apt-get install postgresql-client)")
    server = PostgresServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "migrations"
            directory.mkdir()
            path = directory / "0001_rentals.sql"
            path.write_text(migration_text(args.statements))
            times: dict[str, list[float]] = {"psql -1 -f": [], "buttress Migrator": []}
            for _ in range(args.rounds):
                database = server.create_database()
                times["psql -1 -f"].append(with_psql(psql, server.dsn(database), path))
                database = server.create_database()
                times["buttress Migrator"].append(
                    await with_buttress(server.dsn(database), directory)
                )
        base = statistics.median(times["psql -1 -f"])
        print(f"{args.statements:,} statements, {args.rounds} rounds, medians")
        for label, values in times.items():
            median = statistics.median(values)
            print(f"  {label:<20} {median:8.2f} s  {median / base:5.2f}x psql")
        ratio = statistics.median(times["buttress Migrator"]) / base
        print(f"  aim: at most 3x psql: {ratio:.2f}x, {'met' if ratio <= 3 else 'NOT met'}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
