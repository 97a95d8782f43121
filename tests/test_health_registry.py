"""HealthRegistry: concurrency, timeouts, safety, groups, readiness, caching, sharing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from buttress.errors import ValidationError
from buttress.health import (
    READINESS_COMPONENT,
    CheckResult,
    ComponentStatus,
    HealthRegistry,
    Status,
)
from buttress.testing import FakeClock

T = TypeVar("T")


async def within_guard(run: Awaitable[T], seconds: float = 10.0) -> T:
    """Await ``run``; a hang guard (no performance bound): fail if it takes ``seconds``."""
    try:
        return await asyncio.wait_for(run, seconds)
    except TimeoutError:
        pytest.fail(f"still waiting after {seconds} s: it waited for a check it should abandon")


class Counter:
    """An async check that counts its calls and returns a configurable result."""

    def __init__(self, result: CheckResult = True) -> None:
        self.calls = 0
        self.result = result

    async def __call__(self) -> CheckResult:
        self.calls += 1
        return self.result


async def test_checks_run_concurrently_and_each_latency_is_its_own() -> None:
    # Run one after another, the first check would wait at the barrier alone until
    # its timeout and report DEGRADED. (benchmarks/concurrency.py times the run.)
    clock = FakeClock()
    registry = HealthRegistry(version="1", clock=clock)
    all_started = asyncio.Barrier(4)

    async def sleeper() -> None:
        await all_started.wait()
        await clock.sleep(0.1)

    for i in range(4):
        registry.register(f"s{i}", sleeper, timeout=10)
    report = await registry.run()
    assert report.status is Status.HEALTHY, report.components
    # Latency is read on the registry's clock from each check's own start: all four
    # started at 0 and ended after the four 0.1 s steps.
    latencies = [c.latency_ms for c in report.components.values()]
    assert latencies == pytest.approx([400.0] * 4)


async def test_timeout_degrades_that_check_only() -> None:
    registry = HealthRegistry()

    async def hangs() -> None:
        await asyncio.sleep(10)

    registry.register("slow", hangs, timeout=0.05)
    registry.register("fast", Counter())
    with capture_logs() as logs:
        report = await within_guard(registry.run())  # the check alone would take 10 s
    slow = report.components["slow"]
    assert slow.status is Status.DEGRADED
    assert slow.message == "timed out after 0.05 s"
    assert slow.latency_ms >= 40
    assert report.components["fast"].status is Status.HEALTHY
    assert report.status is Status.DEGRADED
    assert any(e["event"] == "health.check_timed_out" and e["check"] == "slow" for e in logs)


async def test_check_that_swallows_cancellation_cannot_hold_the_run() -> None:
    registry = HealthRegistry()
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()

    registry.register("stubborn", stubborn, timeout=0.05)
    report = await within_guard(registry.run())  # `release` is set only at the end
    assert not release.is_set()
    assert report.components["stubborn"].status is Status.DEGRADED
    # The abandoned execution is still running: the next run does not pile on.
    again = await registry.run()
    assert again.components["stubborn"].message == (
        "still running from an earlier check that timed out"
    )
    release.set()
    await asyncio.sleep(0.01)


async def test_blocking_sync_check_runs_in_a_thread_and_times_out() -> None:
    registry = HealthRegistry()
    gate = threading.Semaphore(0)  # one release lets one blocked call return
    returned = threading.Event()

    def blocks() -> bool:
        assert gate.acquire(timeout=30)
        returned.set()
        return True

    registry.register("blocking", blocks, timeout=0.05)
    registry.register("other", Counter())
    report = await within_guard(registry.run())
    assert not returned.is_set()  # the run answered while the thread was still blocked
    assert report.components["blocking"].status is Status.DEGRADED
    assert report.components["other"].status is Status.HEALTHY
    second = await registry.run()
    assert second.components["blocking"].message is not None
    assert "still running" in second.components["blocking"].message
    gate.release()  # the first thread returns...
    assert await asyncio.to_thread(returned.wait, 10)
    for _ in range(1000):  # ...and once its future settled on the loop, a run starts a new one
        third = (await registry.run()).components["blocking"]
        if third.message != "still running from an earlier check that timed out":
            break
        await asyncio.sleep(0.01)
    try:
        assert third.status is Status.DEGRADED  # it blocks (is slow) every time
        assert third.message == "timed out after 0.05 s"
    finally:
        gate.release()
        gate.release()


async def test_sync_check_result_in_thread() -> None:
    registry = HealthRegistry()
    registry.register("sync-ok", lambda: True)
    registry.register("sync-bad", lambda: False)
    registry.register("inline", lambda: None, run_in_thread=False)
    report = await registry.run()
    assert report.components["sync-ok"].status is Status.HEALTHY
    assert report.components["sync-bad"].status is Status.UNHEALTHY
    assert report.components["inline"].status is Status.HEALTHY


class Boom(Exception):
    pass


def _raiser(exc: BaseException) -> object:
    async def check() -> None:
        raise exc

    return check


@pytest.mark.parametrize(
    ("exc", "detail"),
    [
        (Boom("db down"), "Boom: db down"),
        (asyncio.CancelledError(), "CancelledError"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (SystemExit(3), "SystemExit: 3"),
        (GeneratorExit(), "GeneratorExit"),
    ],
)
@pytest.mark.parametrize("expose_details", [False, True])
async def test_whatever_a_check_raises_becomes_unhealthy(
    exc: BaseException, detail: str, expose_details: bool
) -> None:
    registry = HealthRegistry(expose_details=expose_details)
    registry.register("bad", _raiser(exc))  # type: ignore[arg-type]  # returns a coroutine fn
    registry.register("good", Counter())
    report = await registry.run()
    assert report.components["bad"].status is Status.UNHEALTHY
    # By default only the exception's type is published; its text on request.
    expected = detail if expose_details else f"raised {type(exc).__name__}"
    assert report.components["bad"].message == expected
    assert report.components["good"].status is Status.HEALTHY
    assert report.status is Status.UNHEALTHY


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), RuntimeError("x")])
async def test_sync_checks_raising_base_exceptions_in_threads(exc: BaseException) -> None:
    registry = HealthRegistry()

    def check() -> None:
        raise exc

    registry.register("bad", check)
    report = await registry.run()
    assert report.components["bad"].status is Status.UNHEALTHY
    assert report.components["bad"].message == f"raised {type(exc).__name__}"


async def test_exception_messages_are_scrubbed_and_short() -> None:
    registry = HealthRegistry(expose_details=True)

    async def leaky() -> None:
        raise ConnectionError(
            "could not connect to postgresql://app:s3cr3t@db:5432/prod; password=hunter2 "
            + "x" * 500
        )

    registry.register("db", leaky)
    message = (await registry.run()).components["db"].message
    assert message is not None
    assert "s3cr3t" not in message
    assert "hunter2" not in message
    assert message.startswith("ConnectionError: could not connect to postgresql://app:***@db")
    assert len(message) <= 220


async def test_broken_str_in_exception_does_not_break_the_run() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    registry = HealthRegistry(expose_details=True)
    registry.register("nasty", _raiser(Nasty()))  # type: ignore[arg-type]  # coroutine fn
    assert (await registry.run()).components["nasty"].message == "Nasty"


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (None, Status.HEALTHY),
        (True, Status.HEALTHY),
        (False, Status.UNHEALTHY),
        (ComponentStatus.degraded("slow"), Status.DEGRADED),
        ("yes", Status.UNHEALTHY),
    ],
)
async def test_return_values(result: object, status: Status) -> None:
    registry = HealthRegistry()

    async def check() -> object:
        return result

    registry.register("c", check)  # type: ignore[arg-type]  # deliberately loose return type
    assert (await registry.run()).components["c"].status is status


async def test_every_component_appears_with_latency_and_time() -> None:
    clock = FakeClock()
    registry = HealthRegistry(version="2.0", clock=clock)

    async def takes_time() -> None:
        clock.advance(0.25)

    registry.register("a", takes_time)
    registry.register("b", Counter(False))
    report = await registry.run()
    assert list(report.components) == ["a", "b"]
    assert report.components["a"].latency_ms == pytest.approx(250.0)
    assert report.components["a"].checked_at == clock.now()
    assert report.version == "2.0"
    assert report.timestamp == clock.now()


async def test_non_critical_failure_degrades_instead_of_failing() -> None:
    registry = HealthRegistry()
    registry.register("core", Counter())
    registry.register("extra", Counter(False), critical=False)
    report = await registry.run()
    assert report.components["extra"].status is Status.UNHEALTHY
    assert report.components["extra"].critical is False
    assert report.status is Status.DEGRADED
    assert report.http_status == 200


async def test_groups_select_checks() -> None:
    registry = HealthRegistry()
    registry.register("process", Counter(), groups=("live",))
    registry.register("db", Counter())  # default group: ready
    registry.register("search", Counter(), groups=("ready", "search"))
    assert registry.names() == ["process", "db", "search"]
    assert registry.names("live") == ["process"]
    assert registry.names("ready") == ["db", "search"]
    assert list((await registry.run("search")).components) == ["search"]
    assert (await registry.run("nothing-here")).status is Status.HEALTHY


def _ready(registry: HealthRegistry) -> bool:
    return registry.ready


async def test_readiness_flag_fails_ready_group_only() -> None:
    registry = HealthRegistry()
    registry.register("process", Counter(), groups=("live",))
    registry.register("db", Counter())
    assert _ready(registry) is True
    registry.set_ready(False, reason="shutting down")
    assert _ready(registry) is False
    ready = await registry.run("ready")
    assert ready.status is Status.UNHEALTHY
    assert ready.components[READINESS_COMPONENT].message == "shutting down"
    assert (await registry.run("live")).status is Status.HEALTHY
    assert (await registry.run()).status is Status.UNHEALTHY
    registry.set_ready(True)
    assert (await registry.run("ready")).status is Status.HEALTHY


async def test_success_and_failure_cached_for_their_own_lifetimes() -> None:
    clock = FakeClock()
    registry = HealthRegistry(clock=clock)
    check = Counter()
    registry.register("c", check, success_ttl=10, failure_ttl=2)
    await registry.run()
    await registry.run()
    assert check.calls == 1
    clock.advance(10.5)
    await registry.run()
    assert check.calls == 2
    check.result = False
    clock.advance(11)
    assert (await registry.run()).status is Status.UNHEALTHY
    assert check.calls == 3
    clock.advance(1)
    assert (await registry.run()).status is Status.UNHEALTHY
    assert check.calls == 3  # failure still cached
    clock.advance(1.5)
    check.result = True
    assert (await registry.run()).status is Status.HEALTHY
    assert check.calls == 4
    await registry.run(fresh=True)
    assert check.calls == 5


async def test_registry_wide_ttls_apply_by_default() -> None:
    clock = FakeClock()
    registry = HealthRegistry(clock=clock, success_ttl=5)
    check = Counter()
    registry.register("c", check)
    await registry.run()
    clock.advance(4)
    await registry.run()
    assert check.calls == 1


async def test_concurrent_runs_share_one_execution() -> None:
    registry = HealthRegistry()
    gate = asyncio.Event()
    calls = 0

    async def gated() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    registry.register("g", gated, groups=("ready", "live"))
    runs = [asyncio.create_task(registry.run(g)) for g in (None, "ready", "live", None)]
    await asyncio.sleep(0.01)
    gate.set()
    reports = await asyncio.gather(*runs)
    assert calls == 1
    assert all(r.components["g"].status is Status.HEALTHY for r in reports)


async def test_cancelling_one_caller_does_not_cancel_the_shared_check() -> None:
    registry = HealthRegistry()
    gate = asyncio.Event()

    async def gated() -> None:
        await gate.wait()

    registry.register("g", gated)
    first = asyncio.create_task(registry.run())
    second = asyncio.create_task(registry.run())
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    report = await second
    assert report.components["g"].status is Status.HEALTHY


async def test_snapshot_and_probe_without_refresher() -> None:
    clock = FakeClock()
    registry = HealthRegistry(clock=clock)
    check = Counter()
    registry.register("c", check)
    assert registry.snapshot() is None
    await registry.probe()
    assert check.calls == 1
    snapshot = registry.snapshot()
    assert snapshot is not None
    assert snapshot.components["c"].status is Status.HEALTHY
    await registry.probe()
    assert check.calls == 1  # a result younger than probe_interval (1 s) is reused
    clock.advance(1.0)
    await registry.probe()
    assert check.calls == 2  # no refresher: probes run the checks


def _refreshing(registry: HealthRegistry) -> bool:
    return registry.refreshing


async def test_refresher_keeps_a_snapshot_probes_serve_at_once() -> None:
    registry = HealthRegistry()
    check = Counter()
    registry.register("c", check)
    registry.start_refresher(interval=0.02)
    assert _refreshing(registry)
    with pytest.raises(ValidationError):
        registry.start_refresher(interval=1)
    await asyncio.sleep(0.05)
    assert check.calls >= 2
    calls = check.calls
    registry.set_ready(False)
    report = await registry.probe("ready")
    assert report.status is Status.UNHEALTHY  # the flag applies to snapshots at once
    await registry.stop_refresher()
    assert not _refreshing(registry)
    after = check.calls
    await asyncio.sleep(0.05)
    assert check.calls == after >= calls
    await registry.stop_refresher()


class GatedCheck:
    """Answers at once the first time, then blocks until ``gate`` is set (or ``HOLD``
    seconds pass). ``finished`` counts the calls that returned.

    With a refresher running, a probe that answers while ``finished == 1`` can only
    have come from the snapshot: a run would have waited for the blocked call, which
    returns only after HOLD seconds (register it with a longer timeout).
    """

    HOLD = 10.0

    def __init__(self) -> None:
        self.calls = 0
        self.finished = 0
        self.gate = threading.Event()
        self.blocked = threading.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls > 1:
            self.blocked.set()
            await asyncio.to_thread(self.gate.wait, self.HOLD)
        self.finished += 1

    def wait_until_blocked(self) -> None:
        assert self.blocked.wait(5)

    async def await_until_blocked(self) -> None:
        assert await asyncio.to_thread(self.blocked.wait, 5)


async def test_probe_with_refresher_never_waits_on_a_slow_check() -> None:
    registry = HealthRegistry()
    check = GatedCheck()
    registry.register("c", check, timeout=30)
    registry.start_refresher(interval=0.01)
    try:
        await check.await_until_blocked()  # first run done; the second is stuck
        report = await registry.probe()
        assert check.finished == 1, "the probe waited for the stuck check"
        assert report.components["c"].status is Status.HEALTHY
    finally:
        check.gate.set()
        await registry.stop_refresher()


async def test_unregister() -> None:
    registry = HealthRegistry()
    registry.register("c", Counter())
    await registry.run()
    registry.unregister("c")
    assert (await registry.run()).components == {}
    with pytest.raises(ValidationError, match="no check named"):
        registry.unregister("c")


def test_decorator_returns_function_unchanged() -> None:
    registry = HealthRegistry()

    @registry.check("x", timeout=1, critical=False)
    async def x() -> bool:
        return True

    assert registry.names() == ["x"]
    assert asyncio.iscoroutinefunction(x)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a:b"}, "name"),
        ({"name": READINESS_COMPONENT}, "name"),
        ({"name": "dup"}, "name"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"success_ttl": -1}, "success_ttl"),
        ({"groups": "ready"}, "groups"),
        ({"groups": [""]}, "groups"),
    ],
)
def test_bad_registration_is_refused(kwargs: dict[str, object], field: str) -> None:
    registry = HealthRegistry()
    registry.register("dup", Counter())
    args: dict[str, object] = {"name": "ok", **kwargs}
    with pytest.raises(ValidationError) as info:
        registry.register(args.pop("name"), Counter(), **args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bad_registry_options() -> None:
    with pytest.raises(ValidationError, match="default_timeout"):
        HealthRegistry(default_timeout=-1)
    with pytest.raises(ValidationError, match="check"):
        HealthRegistry().register("c", 42)  # type: ignore[arg-type]


def test_repr_is_short() -> None:
    registry = HealthRegistry(version="1")
    registry.register("c", Counter())
    assert repr(registry) == "HealthRegistry(version='1', checks=['c'], ready=True)"


async def test_timed_out_latency_is_at_least_the_timeout_with_a_fake_clock() -> None:
    registry = HealthRegistry("1.0", 0.05, FakeClock())

    async def hangs() -> None:
        await asyncio.sleep(1)

    registry.register("h", hangs)
    component = (await registry.run()).components["h"]
    assert component.latency_ms == pytest.approx(50.0)
    assert registry.version == "1.0"


def test_a_hung_sync_check_does_not_keep_the_process_alive() -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, time
        from buttress.health import HealthRegistry
        registry = HealthRegistry(default_timeout=0.05)
        registry.register("hung", lambda: time.sleep(3600))
        print(asyncio.run(registry.run()).components["hung"].status.value, flush=True)
        """
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process waited for its hung check thread (sleeping an hour)")
    assert out.stdout.strip().splitlines()[-1] == "degraded"


async def test_sync_check_raising_stop_iteration() -> None:
    registry = HealthRegistry(expose_details=True)

    def stops() -> None:
        raise StopIteration("done")

    registry.register("stops", stops)
    component = (await registry.run()).components["stops"]
    assert component.status is Status.UNHEALTHY
    assert component.message == "RuntimeError: StopIteration: done"


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=0, max_value=10),
    st.lists(st.tuples(st.floats(min_value=0, max_value=8), st.booleans()), max_size=15),
)
def test_cache_calls_the_check_exactly_when_no_fresh_result(
    success_ttl: float, failure_ttl: float, steps: list[tuple[float, bool]]
) -> None:
    """A model of the cache: call iff the last result is older than its own lifetime."""

    async def scenario() -> None:
        clock = FakeClock()
        registry = HealthRegistry(clock=clock)
        check = Counter()
        registry.register("c", check, success_ttl=success_ttl, failure_ttl=failure_ttl)
        expected_calls = 0
        expires_at: float | None = None
        last_ok = True
        for advance, healthy in steps:
            clock.advance(advance)
            check.result = healthy
            report = await registry.run()
            if expires_at is None or clock.monotonic() >= expires_at:
                expected_calls += 1
                last_ok = healthy
                ttl = success_ttl if healthy else failure_ttl
                expires_at = clock.monotonic() + ttl if ttl > 0 else None
            assert check.calls == expected_calls
            expected = Status.HEALTHY if last_ok else Status.UNHEALTHY
            assert report.components["c"].status is expected

    asyncio.run(scenario())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.frozensets(st.sampled_from(["live", "ready", "batch"])), max_size=6))
def test_group_runs_contain_exactly_the_tagged_checks(tags: list[frozenset[str]]) -> None:
    async def scenario() -> None:
        registry = HealthRegistry()
        for i, groups in enumerate(tags):
            registry.register(f"c{i}", Counter(), groups=groups)
        for group in ("live", "ready", "batch"):
            report = await registry.run(group)
            assert set(report.components) == {f"c{i}" for i, g in enumerate(tags) if group in g}
        assert len((await registry.run()).components) == len(tags)

    asyncio.run(scenario())


async def test_a_probe_storm_runs_each_check_about_once_per_probe_interval() -> None:
    clock = FakeClock()
    registry = HealthRegistry(clock=clock)  # TTLs 0, probe_interval 1 s by default
    check = Counter()
    registry.register("db", check)
    for _second in range(5):
        reports = await asyncio.gather(*(registry.probe() for _ in range(200)))
        assert all(r.components["db"].status is Status.HEALTHY for r in reports)
        clock.advance(0.5)
        await registry.probe()
        clock.advance(0.5)
    assert check.calls == 5  # 1,000 probes over 5 s: one run a second
    await registry.run()
    assert check.calls == 6  # run() never reuses beyond the TTLs


async def test_probe_interval_zero_runs_every_probe_and_bad_values_are_refused() -> None:
    registry = HealthRegistry(probe_interval=0)
    check = Counter()
    registry.register("db", check)
    await registry.probe()
    await registry.probe()
    assert check.calls == 2
    with pytest.raises(ValidationError, match="probe_interval"):
        HealthRegistry(probe_interval=-1)
    with pytest.raises(ValidationError, match="expose_details"):
        HealthRegistry(expose_details="yes")  # type: ignore[arg-type]


async def test_a_failure_logs_its_redacted_text_but_publishes_a_fixed_reason() -> None:
    registry = HealthRegistry()

    async def leaky() -> None:
        raise ConnectionError("db.internal:5432 refused; PGPASSWORD=hunter2")

    registry.register("db", leaky)
    with capture_logs() as logs:
        report = await registry.run()
    assert report.components["db"].message == "raised ConnectionError"
    (changed,) = [e for e in logs if e["event"] == "health.status_changed"]
    assert changed["error"] == "ConnectionError: db.internal:5432 refused; PGPASSWORD=***"
