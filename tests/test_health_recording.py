"""A HealthRegistry given a history records every run it makes, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from structlog.testing import capture_logs

from buttress.backends import Backend
from buttress.errors import ValidationError
from buttress.health import HealthRegistry, HealthReport, Status
from buttress.monitoring import HealthHistory


async def test_every_full_run_is_recorded_with_its_metrics(backend: Backend) -> None:
    history = HealthHistory(backend)

    async def numbers() -> Mapping[str, float]:
        return {"queue_depth": 3.0}

    registry = HealthRegistry(version="1.2.3", history=history, run_metrics=numbers)
    registry.register("db", lambda: True, groups=("ready",))
    registry.register("cache", lambda: False, critical=False)
    first = await registry.run()
    await registry.run()
    [newest, older] = await history.recent(2)
    assert (newest.status, newest.version) == (Status.DEGRADED, "1.2.3")
    assert first.status is Status.DEGRADED
    assert set(newest.components) == {"db", "cache"}
    assert newest.components["cache"].status is Status.UNHEALTHY
    assert newest.metrics["queue_depth"] == 3.0
    assert newest.metrics["run_ms"] >= 0
    assert older.recorded_at <= newest.recorded_at
    # A group's run is a partial view: not recorded.
    await registry.run("ready")
    assert await history.count() == 2


async def test_cached_and_shared_runs_are_recorded_once() -> None:
    history = HealthHistory()
    registry = HealthRegistry(history=history, success_ttl=60.0)
    release = asyncio.Event()

    async def slow() -> bool:
        await release.wait()
        return True

    registry.register("slow", slow)
    runs = [asyncio.ensure_future(registry.run()) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(*runs), 10)
    assert await history.count() == 1  # three callers shared one execution
    await registry.run()  # served from the cache: nothing ran, nothing recorded
    assert await history.count() == 1


async def test_the_refresher_records_its_runs() -> None:
    history = HealthHistory()
    registry = HealthRegistry(history=history)
    registry.register("ok", lambda: True)
    registry.start_refresher(interval=0.01)
    try:
        for _ in range(500):
            if await history.count() >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await registry.stop_refresher()
    assert await history.count() >= 2


async def test_a_failing_history_never_fails_the_run() -> None:
    class Broken:
        calls = 0

        async def record(
            self, report: HealthReport, metrics: Mapping[str, float] | None = None
        ) -> None:
            Broken.calls += 1
            raise ConnectionError("history database down")

    registry = HealthRegistry(history=Broken())
    registry.register("ok", lambda: True)
    with capture_logs() as logs:
        assert (await registry.run()).status is Status.HEALTHY
        assert (await registry.run()).status is Status.HEALTHY
    assert Broken.calls == 2
    assert [e["event"] for e in logs if e["event"].startswith("health.record")] == [
        "health.record_failed"  # once per streak of failures
    ]


def test_history_and_run_metrics_are_checked() -> None:
    with pytest.raises(ValidationError, match="history"):
        HealthRegistry(history=object())  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(ValidationError, match="run_metrics"):
        HealthRegistry(run_metrics=3)  # type: ignore[arg-type]  # bad on purpose
