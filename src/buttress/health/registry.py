"""The health registry: registering checks and running them safely.

Each check runs in its own task under its own timeout, so a run lasts about as
long as its slowest check, and a check that hangs, raises or swallows
cancellation becomes a status, never an exception. Results are cached per check
(separate lifetimes for success and failure); concurrent runs share in-flight
executions; an optional refresher keeps a snapshot that probes can read at once.
Given a ``history``, every full run that ran checks (the refresher's too) is
recorded there, without ever failing the run.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol, TypedDict, TypeVar, Unpack

from buttress._checks import check_names
from buttress._exceptions import ValidationError
from buttress._safe import failure_reason, safe_error_message
from buttress._threads import run_in_daemon_thread
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.health._attempt import (
    Attempt,
    Busy,
    CheckResult,
    HealthCheck,
    Registered,
    TimerGroup,
    Waiter,
    consume,
    interpret,
    is_async_callable,
    seconds,
)
from buttress.health.report import HEALTH_CHECKED, ComponentStatus, HealthChecked, HealthReport
from buttress.health.status import Status
from buttress.log import get_logger, redact_text

__all__ = [
    "READINESS_COMPONENT",
    "CheckResult",
    "HealthCheck",
    "HealthRegistry",
    "RunMetrics",
    "RunRecorder",
]

F = TypeVar("F", bound=HealthCheck)


class CheckOptions(TypedDict, total=False):
    """The keyword options of ``HealthRegistry.register``, which ``check`` passes on."""

    timeout: float | None
    critical: bool
    groups: Iterable[str]
    success_ttl: float | None
    failure_ttl: float | None
    run_in_thread: bool | None


class RunRecorder(Protocol):
    """Where a registry records its runs (``buttress.monitoring.HealthHistory`` is one)."""

    async def record(
        self, report: HealthReport, metrics: Mapping[str, float] | None = None
    ) -> None: ...


RunMetrics = Callable[[], Awaitable[Mapping[str, float]]]
"""Numbers to record with each run (``collect_postgres_metrics`` bound to a backend)."""


READINESS_COMPONENT = "readiness"
"""The component a not-ready registry adds to the ``ready`` group (and full runs)."""

LIVE = "live"
READY = "ready"

_log = get_logger("health")


class HealthRegistry:
    """Named dependency checks, run concurrently with timeouts and aggregated.

    >>> registry = HealthRegistry(version="1.4.2")
    >>> @registry.check("cache", timeout=1.0)
    ... async def cache_ok() -> bool:
    ...     return True
    >>> report = asyncio.run(registry.run())
    >>> report.status
    <Status.HEALTHY: 'healthy'>
    """

    def __init__(
        self,
        version: str | None = None,
        default_timeout: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        *,
        release_id: str | None = None,
        success_ttl: float = 0.0,
        failure_ttl: float = 0.0,
        history: RunRecorder | None = None,
        run_metrics: RunMetrics | None = None,
        expose_details: bool = False,
        probe_interval: float = 1.0,
    ) -> None:
        if not isinstance(expose_details, bool):
            raise ValidationError("expose_details", "must be a bool")
        self.version = version
        self.release_id = release_id
        self.default_timeout = seconds("default_timeout", default_timeout, allow_zero=False)
        self.success_ttl = seconds("success_ttl", success_ttl, allow_zero=True)
        self.failure_ttl = seconds("failure_ttl", failure_ttl, allow_zero=True)
        self.probe_interval = seconds("probe_interval", probe_interval, allow_zero=True)
        self.expose_details = expose_details
        self._clock = clock
        self._checks: dict[str, Registered] = {}
        self._cache: dict[str, tuple[ComponentStatus, float]] = {}
        self._latest: dict[str, ComponentStatus] = {}
        self._finished_at: dict[str, float] = {}
        self._inflight: dict[str, Attempt] = {}
        self._work: dict[str, Busy] = {}
        self._ready = True
        self._not_ready_reason = "not ready"
        self._refresher: asyncio.Task[None] | None = None
        if history is not None and not callable(getattr(history, "record", None)):
            raise ValidationError("history", "must have an async record(report, metrics)")
        if run_metrics is not None and not callable(run_metrics):
            raise ValidationError("run_metrics", "must be an async function returning numbers")
        self._history = history
        self._run_metrics = run_metrics
        self._recording_failed = False

    def __repr__(self) -> str:
        return (
            f"HealthRegistry(version={self.version!r}, checks={list(self._checks)!r}, "
            f"ready={self._ready})"
        )

    # registration

    def register(
        self,
        name: str,
        check: HealthCheck,
        *,
        timeout: float | None = None,
        critical: bool = True,
        groups: Iterable[str] = (READY,),
        success_ttl: float | None = None,
        failure_ttl: float | None = None,
        run_in_thread: bool | None = None,
    ) -> None:
        """Add a check under ``name``.

        ``groups`` tags the check (``"live"``, ``"ready"`` or your own); a run
        of a group runs only the checks tagged with it, a run without a group
        runs them all. Sync checks run in a daemon thread so their timeout
        holds even when they block; pass ``run_in_thread=False`` for cheap sync
        checks that never block.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", "must be a non-empty string")
        if ":" in name:
            raise ValidationError(
                "name", "must not contain ':' (health+json keys are name:measurement)"
            )
        if name == READINESS_COMPONENT:
            raise ValidationError(
                "name", f"{READINESS_COMPONENT!r} is reserved for the readiness flag"
            )
        if name in self._checks:
            raise ValidationError("name", f"a check named {name!r} is already registered")
        if not callable(check):
            raise ValidationError("check", "must be callable")
        group_set = check_names("groups", groups)
        is_async = is_async_callable(check)
        self._checks[name] = Registered(
            name=name,
            fn=check,
            in_thread=(not is_async) if run_in_thread is None else (run_in_thread and not is_async),
            timeout=self.default_timeout
            if timeout is None
            else seconds("timeout", timeout, allow_zero=False),
            critical=bool(critical),
            groups=group_set,
            success_ttl=self.success_ttl
            if success_ttl is None
            else seconds("success_ttl", success_ttl, allow_zero=True),
            failure_ttl=self.failure_ttl
            if failure_ttl is None
            else seconds("failure_ttl", failure_ttl, allow_zero=True),
        )

    def check(self, name: str, **options: Unpack[CheckOptions]) -> Callable[[F], F]:
        """Decorator form of ``register`` (the same options); returns the function unchanged."""

        def decorate(fn: F) -> F:
            self.register(name, fn, **options)
            return fn

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a check (and its cached results); unknown names are an error."""
        if name not in self._checks:
            raise ValidationError("name", f"no check named {name!r} is registered")
        del self._checks[name]
        self._cache.pop(name, None)
        self._latest.pop(name, None)
        self._finished_at.pop(name, None)
        # A re-registered check under this name must not join the old one's run.
        self._inflight.pop(name, None)

    def names(self, group: str | None = None) -> list[str]:
        """Registered check names (in the given group), in registration order."""
        return [reg.name for reg in self._select(group)]

    # readiness

    @property
    def ready(self) -> bool:
        """Whether the service says it can take traffic (True until ``set_ready(False)``)."""
        return self._ready

    def set_ready(self, flag: bool, *, reason: str | None = None) -> None:
        """Flip readiness; while False the ``ready`` group (and full runs) report unhealthy."""
        if flag != self._ready:
            _log.info("health.readiness_changed", ready=bool(flag), reason=reason)
        previous = Status.HEALTHY if self._ready else Status.UNHEALTHY
        self._ready = bool(flag)
        self._not_ready_reason = redact_text(reason) if reason else "not ready"
        if HEALTH_CHECKED.listeners:
            status = Status.HEALTHY if self._ready else Status.UNHEALTHY
            message = None if self._ready else self._not_ready_reason
            result = ComponentStatus(status, message, checked_at=self._clock.now())
            HEALTH_CHECKED.publish(HealthChecked(READINESS_COMPONENT, result, previous))

    # running

    async def run(self, group: str | None = None, *, fresh: bool = False) -> HealthReport:
        """Run the checks (of ``group``) concurrently and return the report.

        Cached results younger than their lifetime are reused unless ``fresh``;
        a check already running for another caller is awaited, not restarted.
        Never raises because of a check; cancelling the caller only stops the
        caller's wait. A full run (no ``group``) that started checks is recorded
        in the registry's ``history``, with the run's duration as ``run_ms``.
        """
        return await self._run(group, fresh=fresh, reuse=0.0)

    async def _run(self, group: str | None, *, fresh: bool, reuse: float) -> HealthReport:
        """``run``, also taking a check's latest result when it finished under
        ``reuse`` seconds ago (what ``probe`` uses to bound a probe storm)."""
        loop = asyncio.get_running_loop()
        selected = self._select(group)
        now = self._clock.monotonic()
        began = now
        results: dict[str, ComponentStatus] = {}
        waiting: list[Attempt] = []
        started: dict[float, list[Attempt]] = {}
        for reg in selected:
            if not fresh:
                cached = self._cache.get(reg.name)
                if cached is not None and cached[1] > now:
                    results[reg.name] = cached[0]
                    continue
                finished = self._finished_at.get(reg.name)
                if reuse > 0 and finished is not None and now - finished < reuse:
                    results[reg.name] = self._latest[reg.name]
                    continue
            attempt = self._inflight.get(reg.name)
            if attempt is None or attempt.loop is not loop:
                attempt = self._start(reg, loop)
                if attempt.task is not None:
                    started.setdefault(reg.timeout, []).append(attempt)
            waiting.append(attempt)
        for timeout, attempts in started.items():
            timers = TimerGroup(len(attempts))
            for attempt in attempts:
                attempt.timers = timers
            timers.handle = loop.call_later(timeout, self._on_timeouts, attempts)
        if waiting:
            waiter = Waiter(loop.create_future())
            for attempt in waiting:
                if attempt.status is None:
                    attempt.waiters.append(waiter)
                    waiter.remaining += 1
            if waiter.remaining:
                await waiter.future
            for attempt in waiting:
                assert attempt.status is not None  # every waited attempt has resolved
                results[attempt.reg.name] = attempt.status
        report = self._build(selected, results, group)
        # Only the caller that started checks records: shared runs are stored once.
        if self._history is not None and group is None and started:
            await self._record(report, (self._clock.monotonic() - began) * 1000.0)
        return report

    async def _record(self, report: HealthReport, run_ms: float) -> None:
        """Store the run in ``history``; a failure is logged (once per streak), never raised."""
        assert self._history is not None
        try:
            async with asyncio.timeout(self.default_timeout):
                metrics: dict[str, float] = {"run_ms": run_ms}
                if self._run_metrics is not None:
                    metrics.update(await self._run_metrics())
                await self._history.record(report, metrics)
        except Exception as exc:  # noqa: BLE001 - recording must never fail a health run
            if not self._recording_failed:
                self._recording_failed = True
                _log.warning("health.record_failed", error=safe_error_message(exc))
            return
        if self._recording_failed:
            self._recording_failed = False
            _log.info("health.record_recovered")

    async def probe(self, group: str | None = None) -> HealthReport:
        """What an endpoint should answer: the refresher's snapshot when there is
        one (immediately), else a run that reuses any check result younger than
        ``probe_interval`` seconds, so a probe storm runs each check about once
        per interval whatever the request rate."""
        if self.refreshing:
            snapshot = self.snapshot(group)
            if snapshot is not None:
                return snapshot
        return await self._run(group, fresh=False, reuse=self.probe_interval)

    def snapshot(self, group: str | None = None) -> HealthReport | None:
        """A report from the latest result of each check, without running anything.

        ``None`` until every selected check has finished at least once.
        """
        selected = self._select(group)
        results: dict[str, ComponentStatus] = {}
        for reg in selected:
            latest = self._latest.get(reg.name)
            if latest is None:
                return None
            results[reg.name] = latest
        return self._build(selected, results, group)

    # background refresher

    @property
    def refreshing(self) -> bool:
        """Whether a background refresher is running."""
        return self._refresher is not None and not self._refresher.done()

    def start_refresher(self, interval: float = 10.0) -> None:
        """Run all checks now and then every ``interval`` seconds in the background.

        Must be called with an event loop running; ``stop_refresher`` ends it.
        """
        interval = seconds("interval", interval, allow_zero=False)
        if self.refreshing:
            raise ValidationError("interval", "a refresher is already running; stop it first")
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh_forever(interval), name="buttress-health-refresher"
        )

    async def stop_refresher(self) -> None:
        """Stop the background refresher (no-op when none runs)."""
        task, self._refresher = self._refresher, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _refresh_forever(self, interval: float) -> None:
        while True:
            try:
                await self.run()
            except Exception as exc:  # noqa: BLE001 - the refresher must outlive a bad run
                _log.error("health.refresh_failed", error=safe_error_message(exc))
            await self._clock.sleep(interval)

    # internals

    def _select(self, group: str | None) -> list[Registered]:
        if group is None:
            return list(self._checks.values())
        return [reg for reg in self._checks.values() if group in reg.groups]

    def _build(
        self,
        selected: list[Registered],
        results: dict[str, ComponentStatus],
        group: str | None,
    ) -> HealthReport:
        components = {reg.name: results[reg.name] for reg in selected}
        if not self._ready and group in (None, READY):
            components[READINESS_COMPONENT] = ComponentStatus(
                Status.UNHEALTHY, self._not_ready_reason, checked_at=self._clock.now()
            )
        return HealthReport.from_components(
            components,
            version=self.version,
            timestamp=self._clock.now(),
            release_id=self.release_id,
            group=group,
        )

    def _start(self, reg: Registered, loop: asyncio.AbstractEventLoop) -> Attempt:
        attempt = Attempt(reg, loop, self._clock.monotonic())
        previous = self._work.get(reg.name)
        if previous is not None and not previous.done():
            # Still stuck in an earlier, abandoned execution: starting another
            # would pile up threads or connections on a dependency that hangs.
            self._resolve(
                attempt,
                ComponentStatus(
                    Status.DEGRADED,
                    "still running from an earlier check that timed out",
                ),
                0.0,
            )
            return attempt
        self._inflight[reg.name] = attempt
        task = loop.create_task(self._invoke(attempt))
        attempt.task = task
        self._work[reg.name] = task
        return attempt

    def _failed(self, exc: BaseException) -> tuple[ComponentStatus, str]:
        """The status a raising check gets, and the redacted text for the log.

        Public output carries only ``raised TypeName`` unless the registry was
        built with ``expose_details=True``; the exception's own text can name
        hosts, users or secrets the redactor does not know.
        """
        detail = safe_error_message(exc)
        message = detail if self.expose_details else failure_reason(exc)
        return ComponentStatus(Status.UNHEALTHY, message), detail

    async def _invoke(self, attempt: Attempt) -> None:
        reg = attempt.reg
        started = self._clock.monotonic()
        detail: str | None = None
        try:
            outcome: object
            if reg.in_thread:
                work = run_in_daemon_thread(reg.fn, name=f"buttress-health-{reg.name}")
                work.add_done_callback(consume)
                self._work[reg.name] = work
                # shield: on timeout the thread keeps running; the future must
                # stay pending so the next run knows the check is still busy.
                outcome = await asyncio.shield(work)
            else:
                outcome = reg.fn()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            status = interpret(outcome)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                if attempt.status is None:
                    self._finish(
                        attempt,
                        ComponentStatus(Status.DEGRADED, "check was cancelled before it finished"),
                        started,
                    )
                raise
            status, detail = self._failed(exc)
        except GeneratorExit as exc:
            # Also what closing an abandoned coroutine throws in: record it, but
            # a closing coroutine must not carry on.
            if attempt.status is None:
                status, detail = self._failed(exc)
                self._finish(attempt, status, started, detail)
            task = asyncio.current_task()
            if task is not None:
                task.add_done_callback(consume)
            raise
        except BaseException as exc:  # noqa: BLE001 - whatever a check raises becomes a status
            status, detail = self._failed(exc)
        if attempt.status is None:
            self._finish(attempt, status, started, detail)

    def _finish(
        self, attempt: Attempt, status: ComponentStatus, started: float, detail: str | None = None
    ) -> None:
        """Resolve an attempt whose check ran from ``started`` (monotonic) until now."""
        if attempt.timers is not None:
            attempt.timers.one_done()
        self._resolve(attempt, status, (self._clock.monotonic() - started) * 1000.0, detail)

    def _on_timeouts(self, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            if attempt.status is None:
                self._on_timeout(attempt)

    def _on_timeout(self, attempt: Attempt) -> None:
        timeout = attempt.reg.timeout
        self._resolve(
            attempt,
            ComponentStatus(Status.DEGRADED, f"timed out after {timeout:g} s"),
            # the timer is real time; an injected fake clock may not have moved
            max((self._clock.monotonic() - attempt.started) * 1000.0, timeout * 1000.0),
        )
        if attempt.task is not None:
            attempt.task.cancel()
        _log.warning("health.check_timed_out", check=attempt.reg.name, timeout=timeout)

    def _resolve(
        self,
        attempt: Attempt,
        status: ComponentStatus,
        latency_ms: float,
        detail: str | None = None,
    ) -> None:
        reg = attempt.reg
        final = ComponentStatus(
            status.status,
            # A check's own message is published: it goes through the redactor too.
            None if status.message is None else redact_text(status.message),
            max(0.0, latency_ms),
            reg.critical,
            self._clock.now(),
            status.component_type,
            status.measurement,
            status.observed_value,
            status.observed_unit,
        )
        attempt.status = final
        for waiter in attempt.waiters:
            waiter.one_done()
        attempt.waiters.clear()
        if self._inflight.get(reg.name) is attempt:
            del self._inflight[reg.name]
        if reg.name not in self._checks:
            return
        previous = self._latest.get(reg.name)
        self._latest[reg.name] = final
        self._finished_at[reg.name] = self._clock.monotonic()
        if HEALTH_CHECKED.listeners:
            HEALTH_CHECKED.publish(
                HealthChecked(reg.name, final, None if previous is None else previous.status)
            )
        ttl = reg.success_ttl if final.status is Status.HEALTHY else reg.failure_ttl
        if ttl > 0:
            self._cache[reg.name] = (final, self._clock.monotonic() + ttl)
        else:
            self._cache.pop(reg.name, None)
        if previous is None or previous.status is not final.status:
            _log.info(
                "health.status_changed",
                check=reg.name,
                status=final.status.value,
                previous=None if previous is None else previous.status.value,
                message=final.message,
                error=detail,
            )
