"""GracefulShutdown: readiness first, ordering, per-hook timeouts, deadline, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from structlog.testing import capture_logs

from buttress.errors import ValidationError
from buttress.health import HealthRegistry, Status
from buttress.lifecycle import GracefulShutdown
from buttress.testing import FakeClock

T = TypeVar("T")


def make(timeout: float = 5.0, **kwargs: object) -> GracefulShutdown:
    return GracefulShutdown(timeout, clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


async def within_guard(run: Awaitable[T], seconds: float = 10.0) -> T:
    """Await ``run``; a hang guard (no performance bound): fail if it takes ``seconds``."""
    try:
        return await asyncio.wait_for(run, seconds)
    except TimeoutError:
        pytest.fail(f"still waiting after {seconds} s: the shutdown waited for a hook")


def run_script(script: str, waited_for: str) -> str:
    """Run ``script`` in a fresh interpreter; fail if it has not exited within 60 s."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process did not exit: it waited for {waited_for}")
    return done.stdout


async def test_readiness_fails_first_liveness_keeps_passing() -> None:
    registry = HealthRegistry()
    registry.register("process", lambda: True, groups=("live",))
    seen: list[tuple[Status, Status]] = []

    async def record() -> None:
        seen.append(((await registry.run("ready")).status, (await registry.run("live")).status))

    shutdown = make(health=registry)
    shutdown.add_hook(record)
    report = await shutdown.run()
    assert report.completed
    assert registry.ready is False
    assert seen == [(Status.UNHEALTHY, Status.HEALTHY)]


async def test_deregistration_delay_happens_before_hooks() -> None:
    clock = FakeClock()
    at: list[float] = []
    shutdown = GracefulShutdown(10, deregistration_delay=3, clock=clock)
    shutdown.add_hook(lambda: at.append(clock.monotonic()), name="first")
    await shutdown.run()
    assert at == [3.0]


async def test_default_order_is_reverse_registration_and_priority_wins() -> None:
    order: list[str] = []
    shutdown = make(deregistration_delay=0)
    for name in ("db", "cache", "http"):
        shutdown.add_hook(lambda n=name: order.append(n), name=name)  # type: ignore[misc]
    shutdown.add_hook(lambda: order.append("flush"), name="flush", priority=10)
    shutdown.add_hook(lambda: order.append("stop-accepting"), name="stop-accepting", priority=-5)
    assert shutdown.hook_order() == ["stop-accepting", "http", "cache", "db", "flush"]
    await shutdown.run()
    assert order == ["stop-accepting", "http", "cache", "db", "flush"]


async def test_failing_hook_does_not_stop_the_others() -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("password=hunter2 nope")

    def interrupted() -> None:
        raise KeyboardInterrupt

    shutdown = make(deregistration_delay=0)
    shutdown.add_hook(lambda: ran.append("last"), name="last", priority=1)
    shutdown.add_hook(broken, name="broken")
    shutdown.add_hook(interrupted, name="interrupted")
    with capture_logs() as logs:
        report = await shutdown.run()
    assert ran == ["last"]
    statuses = {h.name: (h.status, h.message) for h in report.hooks}
    assert statuses["broken"] == ("failed", "RuntimeError: password=*** nope")
    assert statuses["interrupted"] == ("failed", "KeyboardInterrupt")
    assert not report.completed
    assert any(e["event"] == "shutdown.hook_failed" for e in logs)


async def test_overrunning_hook_is_abandoned_and_logged() -> None:
    ran: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()  # forever

    shutdown = make(deregistration_delay=0)
    shutdown.add_hook(lambda: ran.append("after"), name="after", priority=1)
    shutdown.add_hook(hangs, name="hangs", timeout=0.05)
    with capture_logs() as logs:
        report = await within_guard(shutdown.run())
    assert [(h.name, h.status) for h in report.hooks] == [("hangs", "timed_out"), ("after", "ok")]
    assert ran == ["after"]
    assert any(e["event"] == "shutdown.hook_overran" and e["hook"] == "hangs" for e in logs)


async def test_never_hangs_past_the_deadline_even_with_stubborn_hooks() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()

    ran: list[str] = []

    def blocking() -> None:
        ran.append("blocking")

    shutdown = make(timeout=0.15, deregistration_delay=0)
    shutdown.add_hook(stubborn, name="stubborn", priority=1)
    shutdown.add_hook(blocking, name="blocking", priority=2)
    shutdown.add_hook(lambda: None, name="never", priority=3)
    # `stubborn` swallows its cancellation and waits for `release`, set only after the
    # run: the run returns at the deadline without it (benchmarks/concurrency.py times it).
    report = await within_guard(shutdown.run())
    assert not release.is_set()
    assert ran == []
    assert [(h.name, h.status) for h in report.hooks] == [
        ("stubborn", "timed_out"),
        ("blocking", "skipped"),
        ("never", "skipped"),
    ]
    release.set()
    await asyncio.sleep(0.01)


async def test_deadline_shares_time_between_hooks() -> None:
    # Timer order, not speed: "a" sleeps 0.08 s of the 0.12 s budget, so "b" gets at
    # most 0.04 s and its own 0.08 s sleep ends after that; with a budget of its own
    # (0.12 s) it would finish.
    finished: list[str] = []

    async def slow(name: str) -> None:
        await asyncio.sleep(0.08)
        finished.append(name)

    shutdown = make(timeout=0.12, deregistration_delay=0)
    shutdown.add_hook(lambda: slow("a"), name="a", priority=1)
    shutdown.add_hook(lambda: slow("b"), name="b", priority=2)
    report = await within_guard(shutdown.run())
    assert [(h.name, h.status) for h in report.hooks] == [("a", "ok"), ("b", "timed_out")]
    assert finished == ["a"]  # "b" was abandoned, not waited for


async def test_run_twice_runs_hooks_once() -> None:
    calls = 0

    async def hook() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    shutdown = make(deregistration_delay=0)
    shutdown.add_hook(hook)
    first, second = await asyncio.gather(shutdown.run(), shutdown.run())
    third = await shutdown.run()
    assert calls == 1
    assert first is second is third


async def test_signal_starts_shutdown_and_second_signal_forces_exit() -> None:
    forced: list[int] = []
    gate = asyncio.Event()
    calls = 0

    async def hook() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    shutdown = GracefulShutdown(
        5, deregistration_delay=0, clock=FakeClock(), force_exit=forced.append
    )
    shutdown.add_hook(hook)
    shutdown.install_signal_handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert shutdown.started
        assert forced == []
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.05)
        assert forced == [128 + signal.SIGINT]
        gate.set()
        report = await shutdown.wait()
        assert report.reason == "signal SIGTERM"
        assert calls == 1
    finally:
        shutdown.remove_signal_handlers()


async def test_signal_during_a_programmatic_shutdown_does_not_restart_it() -> None:
    forced: list[int] = []
    shutdown = GracefulShutdown(
        5, deregistration_delay=0, clock=FakeClock(), force_exit=forced.append
    )
    calls = 0

    async def hook() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)

    shutdown.add_hook(hook)
    shutdown.install_signal_handlers([signal.SIGTERM])
    try:
        running = asyncio.create_task(shutdown.run())
        await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        await running
        assert calls == 1
        assert forced == []
    finally:
        shutdown.remove_signal_handlers()


def test_sync_entry_point_and_sync_signal_handler() -> None:
    ran: list[str] = []
    shutdown = make(deregistration_delay=0)
    shutdown.add_hook(lambda: ran.append("x"), name="x")
    report = shutdown.run_sync()
    assert report.completed
    assert ran == ["x"]

    script = textwrap.dedent(
        """
        import os, signal, sys, time
        from buttress.lifecycle import GracefulShutdown
        s = GracefulShutdown(2, deregistration_delay=0)
        s.add_hook(lambda: print("hook ran", flush=True), name="h")
        s.install_signal_handlers()
        print("ready", flush=True)
        time.sleep(10)
        print("not reached", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "hook ran" in out
    assert "not reached" not in out


async def test_run_sync_refuses_inside_a_loop() -> None:
    with pytest.raises(RuntimeError, match="await run"):
        make().run_sync()


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        GracefulShutdown(0)
    with pytest.raises(ValidationError, match="deregistration_delay"):
        GracefulShutdown(5, deregistration_delay=5)
    shutdown = make()
    with pytest.raises(ValidationError, match="fn"):
        shutdown.add_hook(42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="priority"):
        shutdown.add_hook(lambda: None, priority=float("inf"))
    with pytest.raises(ValidationError, match="timeout"):
        shutdown.add_hook(lambda: None, timeout=-1)


def test_shutdown_flips_the_ready_endpoint_while_live_keeps_passing() -> None:
    pytest.importorskip("starlette")
    import warnings

    from buttress.adapters.health_asgi import HealthASGIApp

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from starlette.testclient import TestClient

    registry = HealthRegistry()
    registry.register("process", lambda: True, groups=("live",))
    shutdown = GracefulShutdown(5, health=registry, deregistration_delay=0)
    with TestClient(HealthASGIApp(registry)) as client:
        assert client.get("/health/ready").status_code == 200
        client.portal.call(shutdown.run)  # type: ignore[union-attr]  # portal exists inside `with`
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["readiness:responseTime"][0]["output"] == "shutting down"
        assert client.get("/health/live").status_code == 200


def test_a_hung_sync_hook_does_not_keep_the_process_alive() -> None:
    script = textwrap.dedent(
        """
        import time
        from buttress.lifecycle import GracefulShutdown
        s = GracefulShutdown(0.2, deregistration_delay=0)
        s.add_hook(lambda: time.sleep(3600), name="hung")
        print(s.run_sync().hooks[0].status, flush=True)
        """
    )
    out = run_script(script, "its hung hook thread (sleeping an hour)")
    assert out.strip().splitlines()[-1] == "timed_out"


def test_run_sync_does_not_wait_for_a_hook_that_ignores_cancellation() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from buttress.lifecycle import GracefulShutdown

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    pass

        s = GracefulShutdown(0.1, deregistration_delay=0)
        s.add_hook(stubborn, name="stubborn")
        print(s.run_sync().hooks[0].status, flush=True)
        """
    )
    out = run_script(script, "a hook that never ends")
    assert out.strip().splitlines()[-1] == "timed_out"
