"""The design's correctness properties, as hypothesis properties on every backend that
stores the state: environment filtering, sensitive-value protection and the audit
trail of ``ConfigStore``; the side effects of ``DeploymentLog.record``; and the
verdict of PostgreSQL's ``check_system_health()`` against a model of its rules.

Each example works on keys and environments of its own, so examples share one
backend (opened per test) without seeing each other's state. The config round
trip is in test_config_backends.py; start-up validation completeness in
test_env_settings.py.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress.backends import Backend, require_sql
from buttress.config import ConfigStore
from buttress.deploy import DeploymentLog
from buttress.testing import FakeClock

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOWER = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_ids = itertools.count()


scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6)

# -- environment filtering -------------------------------------------------------------

ENVS = ("all", "first", "second")


@PROPERTY
@given(
    writes=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(ENVS), scalars), min_size=1, max_size=8
    )
)
async def test_an_environment_reads_its_own_entry_else_all(
    backend: Backend, writes: list[tuple[int, str, Any]]
) -> None:
    """For every key and environment E: a store for E reads E's entry if there is one,
    else the "all" entry, else the default; list(E) holds exactly E's and all's."""
    n = next(_ids)
    real = {"all": "all", "first": f"first{n}", "second": f"second{n}"}
    writer = ConfigStore(backend)
    model: dict[tuple[str, str], Any] = {}
    for index, env, value in writes:
        key = f"p{n}_k{index}"
        await writer.set(key, value, environment=real[env])
        model[(key, env)] = value
    keys = {key for key, _ in model}
    for env in ENVS:
        store = ConfigStore(backend, environment=real[env])
        for key in keys:
            fallback = model.get((key, "all"), "absent")
            expected = model.get((key, env), fallback)
            assert await store.get(key, "absent") == expected, (key, env)
        listed = {(e.key, e.environment) for e in await writer.list(real[env]) if e.key in keys}
        wanted = {(k, real[e]) for k, e in model if e in (env, "all")}
        assert listed == wanted


# -- sensitive-value protection ------------------------------------------------------

secrets_ = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="*"),
    min_size=6,
    max_size=24,
).map(lambda s: f"zq{s}")


@PROPERTY
@given(secret=secrets_, other=secrets_)
async def test_a_sensitive_value_is_readable_and_never_shown(
    backend: Backend, secret: str, other: str
) -> None:
    """get() returns the value; list(), history(), reprs and the change logs never show
    it, including after it is rotated."""
    n = next(_ids)
    key = f"s{n}_token"
    config = ConfigStore(backend)
    with structlog.testing.capture_logs() as logs:
        await config.set(key, secret, sensitive=True, updated_by="ops")
        await config.set(key, other, sensitive=True, updated_by="ops")
        assert await config.get(key) == other
        entry = await config.get_entry(key)
    assert entry is not None
    [listed] = [e for e in await config.list() if e.key == key]
    history = await config.history(key)
    shown = repr(logs) + repr(entry) + repr(listed) + repr(history) + str(listed)
    for value in (secret, other):
        assert value not in shown
    assert listed.value == "***"
    assert [(c.old_value, c.new_value) for c in history] == [("***", "***"), (None, "***")]


# -- the audit trail -------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.just(0)),
        st.tuples(st.just("revert"), st.integers(1, 12)),
    ),
    min_size=1,
    max_size=10,
)


@PROPERTY
@given(ops=operations)
async def test_every_change_is_in_the_audit_trail(
    backend: Backend, ops: list[tuple[str, int]]
) -> None:
    """Against a model: each set, each delete of a present entry and each effective
    revert records exactly one change, numbered in order, newest first, each old value
    the previous change's new value, the last new value the current one."""
    n = next(_ids)
    key = f"a{n}_key"
    clock = FakeClock()
    config = ConfigStore(backend, clock=clock)
    current: int | None = None
    values_at: dict[int, int | None] = {}  # version -> the value it left
    expected: list[tuple[int, str, int | None, int | None, str]] = []
    for step, (op, arg) in enumerate(ops):
        who = f"user{step}"
        clock.advance(1)
        version = len(expected) + 1
        if op == "set":
            await config.set(key, arg, updated_by=who)
            action = "create" if current is None else "update"
            expected.append((version, action, current, arg, who))
            current = arg
        elif op == "delete":
            deleted = await config.delete(key, updated_by=who)
            assert deleted is (current is not None)
            if current is None:
                continue
            expected.append((version, "delete", current, None, who))
            current = None
        else:
            if arg not in values_at:
                continue  # reverting to a version never recorded is refused: not modelled here
            target = values_at[arg]
            await config.revert(key, arg, updated_by=who)
            if target is None:
                if current is None:
                    continue  # already deleted: nothing to record
                expected.append((version, "delete", current, None, who))
            else:
                expected.append((version, "revert", current, target, who))
            current = target
        values_at[version] = current
    history = await config.history(key, limit=50)
    got = [(c.version, c.action, c.old_value, c.new_value, c.changed_by) for c in history]
    assert got == list(reversed(expected))
    times = [c.changed_at for c in history]
    assert times == sorted(times, reverse=True)
    assert await config.get(key) == current


# -- deployment side effects -----------------------------------------------------------

deploys = st.lists(
    st.tuples(st.sampled_from(["first", "second"]), st.integers(1, 40)),
    min_size=1,
    max_size=8,
)


@SLOWER
@given(records=deploys)
async def test_recording_a_deployment_sets_its_environments_app_version(
    backend: Backend, records: list[tuple[str, int]]
) -> None:
    """After any sequence of records: each environment's app_version is its last
    deployment's version, latest() is that deployment, history() lists every record of
    the environment newest first, and other environments are untouched."""
    n = next(_ids)
    real = {"first": f"dfirst{n}", "second": f"dsecond{n}"}
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    log = DeploymentLog(backend, clock=clock)
    made: dict[str, list[str]] = {"first": [], "second": []}
    for env, number in records:
        clock.advance(60)
        version = f"1.{number}.{len(made[env])}"
        deployment = await log.record(version, real[env], deployed_by="ci")
        assert (deployment.version, deployment.environment) == (version, real[env])
        made[env].append(version)
    for env, versions in made.items():
        app_version = await ConfigStore(backend, environment=real[env]).get("app_version")
        latest = await log.latest(real[env])
        history = await log.history(real[env])
        if not versions:
            assert latest is None
            assert history == []
            continue
        assert app_version == versions[-1]
        assert latest is not None
        assert latest.version == versions[-1]
        assert [d.version for d in history] == list(reversed(versions))
        assert all(d.status == "success" for d in history)
    assert await ConfigStore(backend, environment=f"elsewhere{n}").get("app_version", "none") in (
        "none",
        *(v for vs in made.values() for v in vs[-1:]),
    )


# -- the database health function ----------------------------------------------------


def _verdict(
    errors: int, usage: float, thresholds: tuple[int, int, float, float]
) -> tuple[str, int]:
    """The rules of check_system_health(), as docs/monitoring.md states them."""
    errors_warning, errors_degraded, connections_warning, connections_degraded = thresholds
    reasons = int(errors > errors_warning) + int(usage > connections_warning)
    if errors > errors_degraded or usage > connections_degraded:
        return "degraded", reasons
    if errors > errors_warning or usage > connections_warning:
        return "warning", reasons
    return "healthy", reasons


@pytest.mark.postgres
@SLOWER
@given(
    errors=st.integers(0, 300),
    warning=st.integers(0, 150),
    step=st.integers(0, 150),
    connections=st.tuples(st.floats(0, 1, allow_nan=False), st.floats(0, 1, allow_nan=False)).map(
        sorted
    ),
)
async def test_check_system_health_follows_its_rules(
    postgres_dsn: str,
    errors: int,
    warning: int,
    step: int,
    connections: list[float],
) -> None:
    """For any error count in the last hour and any thresholds, the verdict and the
    number of reasons follow the documented rules, and each call records one run
    whose status is the verdict (warning recorded as degraded)."""
    thresholds = (warning, warning + step, connections[0], connections[1])
    async with connect(postgres_dsn) as raw:
        db = require_sql(raw, "tests")
        await db.execute("DELETE FROM buttress_error_events")
        now = datetime.now(UTC)
        if errors:
            await db.execute(
                "INSERT INTO buttress_error_events (bucket, category, severity, component, count) "
                "VALUES ($1, 'database', 'high', 'props', $2), "
                "($3, 'database', 'high', 'props', 1000)",
                now - timedelta(minutes=5),
                errors,
                now - timedelta(hours=3),  # outside the hour: never counted
            )
        before = await db.fetchval("SELECT count(*) FROM buttress_health_history")
        result = await db.fetchval("SELECT check_system_health($1, $2, $3, $4)::text", *thresholds)
        after = await db.fetchval("SELECT count(*) FROM buttress_health_history")
        recorded = await db.fetchval(
            "SELECT status FROM buttress_health_history ORDER BY id DESC LIMIT 1"
        )
    report = json.loads(result)
    assert report["errors_last_hour"] == errors
    database = report["database"]
    usage = database["connections"] / max(database["max_connections"], 1)
    verdict, reasons = _verdict(errors, usage, thresholds)
    assert report["status"] == verdict
    assert len(report["reasons"]) == reasons
    assert after == before + 1
    assert recorded == ("healthy" if verdict == "healthy" else "degraded")
