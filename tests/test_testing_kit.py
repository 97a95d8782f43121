"""buttress.testing for users: the pytest plugin, ``flags_override`` and the strategies.

The plugin is exercised the way a user meets it: ``pytester`` runs a small test
file that uses its fixtures. Strategies are checked to draw only valid values
that buttress's components accept and decide on without raising.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress._checks import validate_key
from buttress.backends import Backend
from buttress.config import ConfigStore, JSONValue
from buttress.config._core import check_json, dumps, loads
from buttress.errors import ValidationError
from buttress.flags import FeatureFlags, Flag, FlagContext, Reason, evaluate
from buttress.ratelimit import ALGORITHMS, Rate, RateLimiter
from buttress.schema import Schema
from buttress.testing import FakeClock, flags_override
from buttress.testing import pytest_plugin as plugin
from buttress.testing.strategies import (
    HOSTILE_IDENTIFIERS,
    SCHEDULE_ORIGIN,
    flag_contexts,
    flag_keys,
    flags,
    identifiers,
    json_values,
    percentages,
    rates,
    schemas,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

# -- the pytest plugin, run as a user would ----------------------------------------

USER_TESTS = """
from datetime import UTC, datetime

import pytest

from buttress.breaker import BreakerState, CircuitBreaker
from buttress.config import ConfigStore
from buttress.flags import FeatureFlags, Flag
from buttress.ratelimit import Rate, RateLimiter
from buttress.testing import FakeClock, flags_override

PAYMENTS = CircuitBreaker("payments", failure_threshold=1, recovery_timeout=30)
SEEN = []


def boom():
    raise ConnectionError("down")


def test_clock_is_a_fresh_fake(buttress_clock):
    assert isinstance(buttress_clock, FakeClock)
    assert buttress_clock.monotonic() == 0.0
    buttress_clock.advance(3600)
    assert buttress_clock.monotonic() == 3600.0


@pytest.mark.buttress_clock(start=datetime(2030, 5, 1, tzinfo=UTC))
def test_marker_sets_the_start(buttress_clock):
    assert buttress_clock.now() == datetime(2030, 5, 1, tzinfo=UTC)


@pytest.mark.buttress_clock(start="yesterday")
def test_marker_with_a_string_is_a_usage_error(buttress_clock):
    raise AssertionError("unreachable: the fixture refuses the marker")


def test_breaker_recovers_without_sleeping(buttress_clock):
    breaker = CircuitBreaker(
        "search", failure_threshold=2, recovery_timeout=30, clock=buttress_clock, registry=None
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state is BreakerState.OPEN
    buttress_clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is BreakerState.CLOSED


def test_rate_limit_window_passes_instantly(buttress_clock):
    limiter = RateLimiter(Rate(2, 60), clock=buttress_clock)
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    buttress_clock.advance(30)
    assert limiter.hit("k").allowed


def test_backend_is_memory_and_open(buttress_backend):
    assert buttress_backend.kind == "memory"
    assert not buttress_backend.closed
    SEEN.append(buttress_backend)


def test_backend_was_closed_after_its_test(buttress_backend):
    assert SEEN[0].closed
    assert SEEN[0] is not buttress_backend


def test_flags_override_forces_and_restores(buttress_flags):
    assert not buttress_flags.is_enabled("new-checkout")
    with flags_override(buttress_flags, {"new-checkout": True, "legacy": False}):
        assert buttress_flags.is_enabled("new-checkout")
        assert not buttress_flags.is_enabled("legacy")
    assert not buttress_flags.is_enabled("new-checkout")


@pytest.mark.asyncio
async def test_flags_and_config_share_the_backend_and_clock(
    buttress_flags, buttress_config, buttress_backend, buttress_clock
):
    await buttress_flags.upsert(Flag("beta", "Beta", enabled=True))
    other = FeatureFlags(buttress_backend, refresh_interval=None)
    await other.refresh()
    assert other.is_enabled("beta")
    await buttress_config.set("timeout", 2.5)
    buttress_clock.advance(10)
    entry = await ConfigStore(buttress_backend).get_entry("timeout")
    assert entry.value == 2.5
    assert entry.updated_at == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.asyncio
async def test_sqlite_backend_has_buttress_tables(buttress_sqlite_backend, buttress_clock):
    assert buttress_sqlite_backend.kind == "sqlite"
    store = ConfigStore(buttress_sqlite_backend, clock=buttress_clock)
    await store.set("limits", {"burst": 5})
    assert await store.get("limits") == {"burst": 5}
    SEEN.append(buttress_sqlite_backend)


def test_sqlite_backend_was_closed():
    assert SEEN[-1].kind == "sqlite" and SEEN[-1].closed


def test_sqlite_dsn_is_under_tmp_path(buttress_sqlite_dsn, tmp_path):
    assert buttress_sqlite_dsn == f"sqlite:///{tmp_path}/buttress.db"


def test_a_module_breaker_opens(buttress_breakers):
    with pytest.raises(ConnectionError):
        PAYMENTS.call(boom)
    assert PAYMENTS.state is BreakerState.OPEN
    assert "payments" in buttress_breakers


def test_the_next_test_finds_it_closed(buttress_breakers):
    assert PAYMENTS.state is BreakerState.CLOSED
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Only the plugins named on the command line: the run must not depend on
    # whether the pytest11 entry point is installed yet.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_fixtures_work_in_a_user_suite(user_project: pytest.Pytester, mode: str) -> None:
    user_project.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = user_project.runpytest(
        *("-p", "buttress.testing.pytest_plugin", "-p", "pytest_asyncio.plugin"),
        *("--strict-markers", "-W", "ignore::pytest.PytestAssertRewriteWarning"),
    )
    result.assert_outcomes(passed=13, errors=1)
    result.stdout.fnmatch_lines(["*buttress_clock(start=...) needs an aware datetime, got str*"])


def test_plugin_registers_its_marker(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest("-p", "buttress.testing.pytest_plugin", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.buttress_clock(start):*"])


def test_plugin_fixture_names_cannot_clash_with_buttress_own_conftest() -> None:
    # Once the entry point is installed, pytest loads the plugin into buttress's
    # own suite too: the two sets of names must stay apart.
    conftest_functions = {
        node.name
        for conftest in (ROOT / "tests").rglob("conftest.py")
        for node in ast.parse(conftest.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef)
    }
    assert "postgres_dsn" in conftest_functions  # the scan does see the fixtures
    assert all(name.startswith("buttress_") for name in plugin.__all__)
    assert not {name for name in conftest_functions if name.startswith("buttress_")}
    assert set(plugin.__all__) <= set(vars(plugin))


def test_the_declared_entry_point_names_the_plugin() -> None:
    # A missing entry point is the regression this test exists for: it fails, never skips.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get("pytest11", {})
    assert declared.get("buttress") == "buttress.testing.pytest_plugin", declared
    installed = importlib.metadata.entry_points(group="pytest11", name="buttress")
    assert [ep.value for ep in installed] == ["buttress.testing.pytest_plugin"], (
        "the installed buttress declares no pytest11 entry point: pip install -e '.[dev]'"
    )


# -- staying light ------------------------------------------------------------------


def _probe(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_importing_testing_and_the_plugin_loads_no_hypothesis_driver_or_component() -> None:
    heavy = ["hypothesis", "asyncpg", "redis", "buttress.flags", "buttress.backends"]
    out = _probe(
        "import sys, buttress.testing, buttress.testing.pytest_plugin; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    assert out == "[]"


def test_testing_works_without_hypothesis_and_strategies_say_what_to_install() -> None:
    out = _probe(
        "import sys; sys.modules['hypothesis'] = None\n"
        "from buttress.testing import FakeClock, flags_override\n"
        "FakeClock().advance(1)\n"
        "from buttress.errors import MissingDependencyError\n"
        "try:\n"
        "    import buttress.testing.strategies\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.package, exc.extra)\n"
    )
    assert out == "hypothesis testing"


# -- flags_override -------------------------------------------------------------------


def test_override_forces_for_every_context_and_restores_the_previous_flag() -> None:
    flags = FeatureFlags(refresh_interval=None)
    targeted = Flag("search-v2", "Search", enabled=True, users={"ann"})
    flags._apply(targeted.key, targeted)  # as if loaded from the store
    with flags_override(flags, {"search-v2": True}) as same:
        assert same is flags
        assert flags.is_enabled("search-v2", FlagContext(user_id="bob"))
        assert flags.is_enabled("search-v2")
        assert flags.snapshot["search-v2"].name == "Search"
    assert flags.snapshot["search-v2"] is targeted
    with flags_override(flags, {"search-v2": False}):
        assert not flags.is_enabled("search-v2", FlagContext(user_id="ann"))
    assert flags.is_enabled("search-v2", FlagContext(user_id="ann"))


def test_override_of_an_unknown_flag_removes_it_again_and_notifies_listeners() -> None:
    flags = FeatureFlags(refresh_interval=None)
    seen: list[frozenset[str]] = []
    flags.on_change(seen.append)
    with flags_override(flags, {"a": True}):
        with flags_override(flags, {"a": False}):
            assert not flags.is_enabled("a")
        assert flags.is_enabled("a")
    assert "a" not in flags.snapshot
    assert seen == [frozenset({"a"})] * 4


async def test_override_never_writes_the_store_and_a_real_change_wins() -> None:
    flags = FeatureFlags(refresh_interval=None)
    with flags_override(flags, {"dark-mode": True}):
        assert await flags.get("dark-mode") is None
        await flags.upsert(Flag("dark-mode", "Dark mode", enabled=False))
    assert not flags.is_enabled("dark-mode")
    assert flags.snapshot["dark-mode"].name == "Dark mode"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ok": "yes"}, "overrides['ok']: must be True or False"),
        ({"bad key": True}, "overrides key: must be 1-200 characters"),
        ([("a", True)], "overrides: must be a mapping"),
    ],
)
def test_override_refuses_bad_input_before_changing_anything(overrides: object, field: str) -> None:
    flags = FeatureFlags(refresh_interval=None)
    override = flags_override(flags, overrides)  # type: ignore[arg-type]  # bad input under test
    with pytest.raises(ValidationError, match=re.escape(field)), override:
        pass
    assert dict(flags.snapshot) == {}


@pytest.fixture
async def sql_backend(sql_dsn: str) -> AsyncIterator[Backend]:
    async with connect(sql_dsn) as backend:
        yield backend


# -- strategies -------------------------------------------------------------------------

FORTY_DAYS = 40 * 86_400
NOW_SPAN = st.integers(-FORTY_DAYS, FORTY_DAYS).map(lambda s: timedelta(seconds=s))


@settings(max_examples=60)
@given(flags(), flag_contexts(), NOW_SPAN)
def test_generated_flags_evaluate_without_error_for_any_context(
    flag: Flag, context: FlagContext, offset: timedelta
) -> None:
    now = FakeClock().now() + offset
    for who in (context, None):
        decision = evaluate(flag, who, now)
        assert decision.reason is not Reason.ERROR
        assert decision.key == flag.key
    assert Flag.from_dict(json.loads(json.dumps(flag.to_dict()))) == flag


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(flags(), flag_contexts(), NOW_SPAN)
async def test_feature_flags_agree_with_the_pure_core_on_generated_flags(
    flag: Flag, context: FlagContext, offset: timedelta
) -> None:
    clock = FakeClock(SCHEDULE_ORIGIN + offset)
    feature_flags = FeatureFlags(clock=clock, refresh_interval=None)
    await feature_flags.upsert(flag)
    expected = evaluate(flag, context, clock.now())
    assert feature_flags.evaluate(flag.key, context) == expected
    assert feature_flags.is_enabled(flag.key, context) is expected.enabled


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flag=flags())
async def test_generated_flags_round_trip_through_sql_stores(
    sql_backend: Backend, flag: Flag
) -> None:
    feature_flags = FeatureFlags(sql_backend, refresh_interval=None)
    await feature_flags.upsert(flag)
    assert await feature_flags.get(flag.key) == flag


@settings(max_examples=40)
@given(flags(users=(), roles=()), flag_contexts(user_ids=(), roles=()))
def test_empty_pools_give_untargeted_flags_and_free_form_contexts(
    flag: Flag, context: FlagContext
) -> None:
    assert flag.users == frozenset()
    assert flag.roles == frozenset()
    assert evaluate(flag, context, FakeClock().now()).reason not in {
        Reason.USER_TARGET,
        Reason.ROLE_TARGET,
    }


@given(flag_keys(max_size=5), percentages())
def test_keys_and_percentages_are_accepted(key: str, percentage: float) -> None:
    assert validate_key("key", key) == key
    assert len(key) <= 5
    Flag(key, "x", percentage=percentage)


@given(
    rates(max_limit=50, min_per_seconds=0.5, max_per_seconds=120),
    st.sampled_from(sorted(ALGORITHMS)),
)
def test_generated_rates_admit_a_first_hit_on_any_algorithm(rate: Rate, algorithm: str) -> None:
    assert isinstance(rate, Rate)
    assert 1 <= rate.limit <= 50
    assert 0.5 <= rate.per_seconds <= 120
    decision = RateLimiter(rate, algorithm=algorithm, clock=FakeClock()).hit("k")
    assert decision.allowed
    assert decision.remaining == rate.limit - 1


@given(rates(min_per_seconds=1e-9, max_per_seconds=1e-6))
def test_rates_reach_the_nanosecond_floor(rate: Rate) -> None:
    assert rate.per_ns >= 1


@settings(max_examples=50)
@given(json_values())
def test_json_values_are_accepted_and_round_trip(value: JSONValue) -> None:
    check_json(value)
    assert dumps(loads(dumps(value))) == dumps(value)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(json_values(max_leaves=4))
async def test_json_values_round_trip_through_a_config_store(value: JSONValue) -> None:
    config = ConfigStore(clock=FakeClock())
    await config.set("k", value)
    assert dumps(await config.get("k")) == dumps(value)


@settings(max_examples=20)
@given(schemas(max_tables=2, hostile=False))
def test_plain_schemas_use_plain_names(schema: Schema) -> None:
    assert 1 <= len(schema.tables) <= 2
    for table in schema.tables:
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,10}", table.name)
        assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,10}", c.name) for c in table.columns)


@settings(max_examples=40)
@given(identifiers())
def test_identifiers_are_plain_or_hostile(name: str) -> None:
    assert name in HOSTILE_IDENTIFIERS or re.fullmatch(r"[a-z][a-z0-9_]{0,10}", name)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: flag_keys(max_size=0), "max_size"),
        (lambda: flags(around=datetime(2024, 1, 1)), "around"),
        (lambda: flags(span=timedelta(0)), "span"),
        (lambda: flags(users="ann"), "users"),
        (lambda: flags(roles=["admin", ""]), "roles"),
        (lambda: flag_contexts(user_ids=[1]), "user_ids"),  # type: ignore[list-item]  # bad on purpose
        (lambda: rates(max_limit=0), "max_limit"),
        (lambda: rates(min_per_seconds=10, max_per_seconds=1), "min_per_seconds"),
        (lambda: json_values(max_leaves=0), "max_leaves"),
        (lambda: schemas(max_tables=0), "max_tables"),
    ],
)
def test_strategy_arguments_are_checked(build: object, field: str) -> None:
    assert callable(build)
    with pytest.raises(ValidationError, match=f"^{field}: "):
        build()


def test_default_schedules_straddle_where_a_fake_clock_starts() -> None:
    assert FakeClock().now() == SCHEDULE_ORIGIN


# -- docs/testing.md runs as written ---------------------------------------------------

DOC_BLOCKS = re.findall(
    r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(encoding="utf-8"), re.S
)


def test_doc_test_files_pass_through_the_plugin(user_project: pytest.Pytester) -> None:
    files = {
        match.group(1): block
        for block in DOC_BLOCKS
        if (match := re.match(r"# (test_\w+)\.py\n", block))
    }
    assert len(files) >= 2
    user_project.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    for name, code in files.items():
        user_project.makepyfile(**{name: code})
    user_project.makeconftest(
        "from hypothesis import settings\n"
        "settings.register_profile('quick', max_examples=25)\n"
        "settings.load_profile('quick')\n"
    )
    result = user_project.runpytest(
        *("-p", "buttress.testing.pytest_plugin", "-p", "pytest_asyncio.plugin"),
        *("-W", "ignore::pytest.PytestAssertRewriteWarning"),
        *(f"{name}.py" for name in files),
    )
    result.assert_outcomes(passed=8)


@pytest.mark.parametrize("code", [block for block in DOC_BLOCKS if not block.startswith("# test_")])
def test_doc_snippets_run(code: str) -> None:
    exec(compile(code, "docs/testing.md", "exec"), {})
