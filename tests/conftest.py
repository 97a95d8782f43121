"""Shared fixtures: throwaway PostgreSQL and Redis servers, one per test session.

``postgres_dsn`` gives each test a fresh database, ``redis_dsn`` an emptied
keyspace, ``sqlite_dsn`` a file under ``tmp_path``; ``sql_dsn`` and ``any_dsn``
run one test against several backends, and ``backend`` opens one of memory,
SQLite and PostgreSQL per run. Production topologies (``topology``)
start only when a test asks: ``redis_cluster_dsn``, ``redis_sentinel_dsn``,
``redis_tls_dsn``, ``postgres_tls_dsn``, ``pgbouncer_dsn``. A server that
cannot start skips its tests locally and fails the run under ``CI=true``.

Under ``CI=true`` every skip is a failure unless ``pytest.importorskip`` names a
package in ``OPTIONAL_PACKAGES`` or the skip is raised in a file listed in
``ALLOWED_SKIP_SOURCES`` (see docs/testing.md).
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol, TypeVar

import pytest

from conformance_location import missing_notice
from servers import PRELOAD_PG_STAT_STATEMENTS, PostgresServer, RedisServer, ServerUnavailable
from topology import PgBouncer, PostgresTLS, RedisCluster, RedisSentinel, RedisTLS

if TYPE_CHECKING:
    from buttress.backends import Backend

_IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_ROOT = Path(__file__).resolve().parents[1]

# Marker -> the server kind it stands for in the end-of-run summary.
_KINDS = {"postgres": "PostgreSQL", "redis": "Redis", "postgres_tls": "PostgreSQL TLS",
          "pgbouncer": "PgBouncer", "redis_cluster": "Redis Cluster",
          "redis_sentinel": "Redis Sentinel", "redis_tls": "Redis TLS"}  # fmt: skip
# Fixture name -> the markers every test using it gets, so `-m "not postgres"` works
# (a topology also carries the plain kind it runs on: `-m "not redis"` drops it too).
_FIXTURE_MARKS = {
    "postgres_dsn": ("postgres",), "postgres_server": ("postgres",),
    "redis_dsn": ("redis",), "redis_server": ("redis",),
    "postgres_tls": ("postgres", "postgres_tls"), "postgres_tls_dsn": ("postgres", "postgres_tls"),
    "pgbouncer": ("postgres", "pgbouncer"), "pgbouncer_dsn": ("postgres", "pgbouncer"),
    "redis_cluster": ("redis", "redis_cluster"), "redis_cluster_dsn": ("redis", "redis_cluster"),
    "redis_sentinel": ("redis", "redis_sentinel"),
    "redis_sentinel_dsn": ("redis", "redis_sentinel"),
    "redis_tls": ("redis", "redis_tls"), "redis_tls_dsn": ("redis", "redis_tls"),
}  # fmt: skip
_PARAM_MARKS = {"postgresql": "postgres", "redis": "redis"}


def _terminate(signum: int, frame: FrameType | None) -> None:
    # pytest tears fixtures down on KeyboardInterrupt but simply dies on SIGTERM,
    # which would leave the session's servers running (e.g. under `timeout`).
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    notice = missing_notice()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if notice is not None and reporter is not None:
        # Written at the start, even under -q, so nobody mistakes a green run for conformance.
        reporter.write_line(f"WARNING: {notice}", red=True, bold=True)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        marks = {
            mark for name, kinds in _FIXTURE_MARKS.items() if name in fixtures for mark in kinds
        }
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            for name in ("sql_dsn", "any_dsn"):
                kind = callspec.params.get(name)
                if kind in _PARAM_MARKS:
                    marks.add(_PARAM_MARKS[kind])
        for mark in sorted(marks):
            item.add_marker(getattr(pytest.mark, mark))
            # A test that passed had its fixtures set up, so it used the server. Tests
            # that reach a server through getfixturevalue() are added by the DSN fixture.
            _USED_SERVER[_KINDS[mark]].add(item.nodeid)


# -- under CI=true a skip is a failure, unless it is one of these ---------------------------------

OPTIONAL_PACKAGES = frozenset(
    {
        # extras of buttress (pip install 'buttress[...]')
        "prometheus_client",
        "opentelemetry",
        "openfeature",
        # test tools of the dev extra
        "mypy",
        "pytest_bdd",
        "starlette",
        "flask",
        "fastapi",
        "litestar",
        "django",
    }
)
"""Third-party packages whose absence may skip a test even under CI=true (through
``pytest.importorskip``, whose reason names the module). Not here, so never a
quiet skip: buttress's own modules (imported, never importorskip'd), griffe (the
docs hooks), the database drivers and servers (their fixtures fail under CI)."""

_MISSING = re.compile(r"^could not import '([A-Za-z_][\w.]*)'")

ALLOWED_SKIP_SOURCES: dict[str, str] = {
    "tests/adapter_openfeature/of_conformance/conftest.py": (
        "OpenFeature conformance scenarios that buttress's model cannot express; each reason "
        "comes from the reviewed table in of_conformance/applicability.py"
    ),
}
"""Files whose ``pytest.skip`` is a documented decision, with why."""


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> tuple[str, str]:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, _line, reason = longrepr
        return str(path), str(reason).removeprefix("Skipped: ")
    return "", str(longrepr)


def skip_allowed_in_ci(path: str, reason: str) -> bool:
    """Whether a skip raised in ``path`` with ``reason`` may stand under CI=true."""
    missing = _MISSING.match(reason)
    if missing is not None and missing.group(1).split(".")[0] in OPTIONAL_PACKAGES:
        return True
    where = Path(path).resolve()
    return any(where == _ROOT / source for source in ALLOWED_SKIP_SOURCES)


def _refuse_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (_IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    path, reason = _skip_reason(report)
    if skip_allowed_in_ci(path, reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true, which refuses skips that can hide a regression: {reason}\n"
        f"  (raised at {path}; a skip may stand only when pytest.importorskip names a "
        "package in tests/conftest.py's OPTIONAL_PACKAGES, or in a file listed in "
        "ALLOWED_SKIP_SOURCES)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _refuse_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _refuse_skip_in_ci(report)
    return report


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} unavailable: {reason}"
    if _IN_CI:
        pytest.fail(f"{message} (CI=true: backend tests must run)", pytrace=False)
    pytest.skip(message)


class _Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


def _running(server: _S, what: str) -> Iterator[_S]:
    """Start ``server`` for a session fixture, yield it, stop it (also after a failed start)."""
    try:
        try:
            server.start()
        except (ServerUnavailable, OSError) as exc:
            _unavailable(what, str(exc))
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _protections_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell's ENABLE_CIRCUIT_BREAKER / ENABLE_RATE_LIMIT must not change results."""
    monkeypatch.delenv("ENABLE_CIRCUIT_BREAKER", raising=False)
    monkeypatch.delenv("ENABLE_RATE_LIMIT", raising=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole session (superuser ``postgres``, password auth,
    ``pg_stat_statements`` preloaded)."""
    yield from _running(PostgresServer(settings=PRELOAD_PG_STAT_STATEMENTS), "PostgreSQL")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A password-protected ``redis-server`` on loopback for the whole session."""
    yield from _running(RedisServer(), "Redis")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """Three Redis Cluster masters (no replicas) sharing one password; can reshard live."""
    yield from _running(RedisCluster(), "Redis Cluster")


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    """Master, replica and three sentinels (service ``mymaster``), one password;
    ``kill_master()``, ``wait_for_failover()``, ``restart_old_master_as_replica()``."""
    yield from _running(RedisSentinel(), "Redis Sentinel")


@pytest.fixture(scope="session")
def redis_tls() -> Iterator[RedisTLS]:
    """A TLS-only redis-server (own CA) where only ACL user ``app`` can log in."""
    yield from _running(RedisTLS(), "TLS Redis")


@pytest.fixture(scope="session")
def postgres_tls() -> Iterator[PostgresTLS]:
    """A second PostgreSQL accepting only hostssl + SCRAM; role ``app`` for tests."""
    yield from _running(PostgresTLS(), "TLS PostgreSQL")


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer (pool_mode = transaction) in front of the session's PostgreSQL."""
    yield from _running(PgBouncer(postgres_server), "PgBouncer")


# Test ids that really used a server, to print how many backend tests passed:
# CI must show that the PostgreSQL and Redis tests ran, not only that nothing failed.
_USED_SERVER: dict[str, set[str]] = {kind: set() for kind in _KINDS.values()}
_PASSED: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        _PASSED.add(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    notice = missing_notice()
    if notice is not None:
        terminalreporter.write_sep(
            "!", "OpenFeature conformance suites missing", red=True, bold=True
        )
        terminalreporter.write_line(notice, red=True, bold=True)
    counts = ", ".join(
        f"{server} {len(ids & _PASSED)} passed" for server, ids in _USED_SERVER.items()
    )
    terminalreporter.write_line(f"tests against real servers: {counts}")


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test; dropped (forcibly) afterwards."""
    _USED_SERVER["PostgreSQL"].add(request.node.nodeid)
    name = postgres_server.create_database()
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def redis_dsn(redis_server: RedisServer, request: pytest.FixtureRequest) -> str:
    """Database 0 of the session's Redis, emptied before this test."""
    _USED_SERVER["Redis"].add(request.node.nodeid)
    redis_server.flushall()
    return redis_server.dsn(0)


@pytest.fixture
def redis_cluster_dsn(redis_cluster: RedisCluster, request: pytest.FixtureRequest) -> str:
    """``redis+cluster://:PASSWORD@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``: every node
    emptied, unfinished migrations dropped, slots back with their first owners."""
    _USED_SERVER["Redis Cluster"].add(request.node.nodeid)
    redis_cluster.reset()
    return redis_cluster.dsn()


@pytest.fixture
def redis_sentinel_dsn(redis_sentinel: RedisSentinel, request: pytest.FixtureRequest) -> str:
    """``redis+sentinel://:PASSWORD@127.0.0.1:S1,…/mymaster/0``: a master with an
    online replica (a master killed by an earlier test is back as a replica), emptied."""
    _USED_SERVER["Redis Sentinel"].add(request.node.nodeid)
    redis_sentinel.heal()
    redis_sentinel.flushall()
    return redis_sentinel.dsn(0)


@pytest.fixture
def redis_tls_dsn(redis_tls: RedisTLS, request: pytest.FixtureRequest) -> str:
    """``rediss://app:PASSWORD@127.0.0.1:PORT/0?ssl_ca_certs=CA``, emptied; client
    certificates optional again."""
    _USED_SERVER["Redis TLS"].add(request.node.nodeid)
    redis_tls.require_client_certs(False)
    redis_tls.flushall()
    return redis_tls.dsn(0)


@pytest.fixture
def postgres_tls_dsn(postgres_tls: PostgresTLS, request: pytest.FixtureRequest) -> Iterator[str]:
    """``postgresql://app:PASSWORD@127.0.0.1:PORT/DB?sslmode=verify-full&sslrootcert=CA``
    for a fresh database owned by ``app``; dropped afterwards."""
    _USED_SERVER["PostgreSQL TLS"].add(request.node.nodeid)
    name = postgres_tls.create_database()
    try:
        yield postgres_tls.app_dsn(name)
    finally:
        postgres_tls.drop_database(name)


@pytest.fixture
def pgbouncer_dsn(
    postgres_server: PostgresServer, pgbouncer: PgBouncer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``postgresql://postgres:PASSWORD@127.0.0.1:PGBOUNCER_PORT/DB?pgbouncer=true``: a
    fresh database reached through the pooler. Strip ``?pgbouncer=true`` (or use
    ``pgbouncer.dsn(db, pgbouncer_param=False)``) for a raw driver."""
    _USED_SERVER["PgBouncer"].add(request.node.nodeid)
    name = postgres_server.create_database()
    try:
        yield pgbouncer.dsn(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def sqlite_dsn(tmp_path: os.PathLike[str]) -> str:
    """An absolute ``sqlite:////…`` DSN for a file that does not exist yet."""
    return f"sqlite:///{os.fspath(tmp_path)}/buttress.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_dsn(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_dsn" if request.param == "sqlite" else "postgres_dsn"
    dsn: str = request.getfixturevalue(fixture)
    return dsn


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def any_dsn(request: pytest.FixtureRequest) -> str:
    """Runs the test once per backend kind."""
    if request.param == "memory":
        return "memory://"
    fixture = {"sqlite": "sqlite_dsn", "postgresql": "postgres_dsn", "redis": "redis_dsn"}
    dsn: str = request.getfixturevalue(fixture[request.param])
    return dsn


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """An open backend, once per kind the SQL-or-memory capabilities run on
    (config, flags, deployments, health history); a test file may define its own."""
    from buttress import connect

    if request.param == "memory":
        dsn = "memory://"
    else:
        dsn = request.getfixturevalue("sqlite_dsn" if request.param == "sqlite" else "postgres_dsn")
    async with connect(dsn) as opened:
        yield opened


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """Logs go to stderr as the ``buttress`` command sends them, so stdout carries
    only a command's output; structlog and the root logger are restored after
    (an unconfigured structlog stays unconfigured)."""
    import logging
    import sys

    import structlog

    from buttress.log import configure_logging

    was_configured = structlog.is_configured()
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging(level="WARNING", stream=sys.stderr)
    yield
    if was_configured:
        structlog.configure(**saved_config)
    else:  # configure() would mark it configured, printing to stdout
        structlog.reset_defaults()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
