"""Fixtures of the fault suite: proxied DSNs to the session's real servers, and the summary.

``pg_proxy``/``redis_proxy`` put a ``FaultProxy`` in front of the session's
PostgreSQL/Redis; ``proxied_postgres_dsn`` and ``proxied_redis_dsn`` reach the
test's fresh database through it, while ``postgres_dsn``/``redis_dsn`` still go
direct (to check what really got written). ``scenario`` adds a row to the table
printed at the end of the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from faults.driver import LEDGER, ScenarioRow
from faults.proxy import FaultProxy
from servers import PostgresServer, RedisServer


def _via(dsn: str, server_port: int, proxy: FaultProxy) -> str:
    direct = f"@127.0.0.1:{server_port}/"
    assert direct in dsn
    return dsn.replace(direct, f"@127.0.0.1:{proxy.port}/")


@pytest.fixture
async def pg_proxy(postgres_server: PostgresServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(postgres_server.port, name="postgresql")
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def redis_proxy(redis_server: RedisServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(redis_server.port, name="redis")
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
def proxied_postgres_dsn(
    postgres_dsn: str, postgres_server: PostgresServer, pg_proxy: FaultProxy
) -> str:
    """The test's fresh database, reached through ``pg_proxy``."""
    return _via(postgres_dsn, postgres_server.port, pg_proxy)


@pytest.fixture
def proxied_redis_dsn(redis_dsn: str, redis_server: RedisServer, redis_proxy: FaultProxy) -> str:
    """The session's (emptied) Redis, reached through ``redis_proxy``."""
    return _via(redis_dsn, redis_server.port, redis_proxy)


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[ScenarioRow]:
    """This test's row of the summary table; the faults of its proxies are added at the end."""
    row = ScenarioRow(request.node.name.removeprefix("test_"))
    started = time.perf_counter()
    yield row
    row.seconds = time.perf_counter() - started
    for name in ("pg_proxy", "redis_proxy"):
        if name in request.fixturenames:
            proxy: FaultProxy = request.getfixturevalue(name)
            row.faults.update({f"{proxy.name} {kind}": n for kind, n in proxy.faults.items()})
    LEDGER.append(row)


def _cell(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "-"


def summary_lines(rows: list[ScenarioRow]) -> list[str]:
    """The summary table as Markdown lines (also pasted into docs/faults.md)."""
    lines = [
        "| scenario | faults injected | requests | served | errors by kind | data lost | s |",
        "|---|---|---|---|---|---|---|",
    ]
    total_faults: Counter[str] = Counter()
    total_errors: Counter[str] = Counter()
    for row in rows:
        total_faults.update(row.faults)
        total_errors.update(row.errors)
        lines.append(
            f"| {row.scenario} | {_cell(row.faults)} | {row.requests} | {row.served} | "
            f"{_cell(row.errors)} | {row.data_lost} | {row.seconds:.1f} |"
        )
    lines.append(
        f"| **total** | {sum(total_faults.values())} | {sum(r.requests for r in rows)} | "
        f"{sum(r.served for r in rows)} | {sum(total_errors.values())} | "
        f"{sum(r.data_lost for r in rows)} | {sum(r.seconds for r in rows):.1f} |"
    )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER:
        return
    terminalreporter.section("fault injection summary")
    for line in summary_lines(LEDGER):
        terminalreporter.write_line(line)
