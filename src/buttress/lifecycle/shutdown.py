"""Graceful shutdown: stop taking traffic, then release resources in order.

``GracefulShutdown.run()`` flips readiness to failing (liveness keeps passing),
waits a deregistration delay so load balancers notice, then runs hooks by
priority, each within its own timeout and the overall deadline. A hook that
overruns is abandoned and logged; the run never outlasts the deadline and never
runs twice. A second signal forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal, Protocol, TypeAlias

import attrs

from buttress._checks import check_seconds
from buttress._exceptions import ValidationError
from buttress._safe import safe_error_message
from buttress._threads import run_in_daemon_thread
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.health import HealthRegistry
from buttress.log import get_logger

__all__ = ["GracefulShutdown", "HookOutcome", "ReadinessFlag", "ShutdownHook", "ShutdownReport"]

ShutdownHook: TypeAlias = Callable[[], object | Awaitable[object]]
"""A sync or async callable taking no arguments; its return value is ignored."""

HookStatus = Literal["ok", "failed", "timed_out", "skipped"]

_log = get_logger("lifecycle")
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_DEFAULT_DELAY = 5.0
_GRACE_ON_EXIT = 0.1


class ReadinessFlag(Protocol):
    """What shutdown needs from a health registry: a readiness switch."""

    def set_ready(self, flag: bool) -> None: ...


@attrs.frozen(slots=True)
class HookOutcome:
    """How one hook ended: ``ok``, ``failed`` (raised), ``timed_out`` or ``skipped``."""

    name: str
    status: HookStatus
    duration_ms: float = 0.0
    message: str | None = None


@attrs.frozen(slots=True)
class ShutdownReport:
    """The hooks in the order they were considered, and whether all finished."""

    hooks: tuple[HookOutcome, ...]
    duration_s: float
    reason: str

    @property
    def completed(self) -> bool:
        """True when every hook ran and returned within its time."""
        return all(h.status == "ok" for h in self.hooks)


@attrs.frozen(slots=True)
class _Hook:
    fn: ShutdownHook
    name: str
    priority: float
    sequence: int
    timeout: float | None
    is_async: bool


def _seconds(field: str, value: float, *, allow_zero: bool) -> float:
    return check_seconds(field, value, allow_zero=allow_zero)


def _force_exit(code: int) -> None:
    os._exit(code)


class GracefulShutdown:
    """Ordered, deadline-bound shutdown; see the module docstring.

    ``timeout`` is the whole budget (keep it under Kubernetes'
    ``terminationGracePeriodSeconds``, 30 s by default), and it includes the
    ``deregistration_delay`` (default: 5 s, or a fifth of ``timeout`` when
    that is shorter). Hooks run lowest
    ``priority`` first; equal priorities (the default, 0) run in reverse order
    of registration, like start-up undone.
    """

    def __init__(
        self,
        timeout: float = 25.0,
        health: ReadinessFlag | None = None,
        *,
        deregistration_delay: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        force_exit: Callable[[int], None] = _force_exit,
    ) -> None:
        self._hooks: list[_Hook] = []
        self.timeout = _seconds("timeout", timeout, allow_zero=False)
        if deregistration_delay is None:
            deregistration_delay = min(_DEFAULT_DELAY, self.timeout * 0.2)
        self.deregistration_delay = _seconds(
            "deregistration_delay", deregistration_delay, allow_zero=True
        )
        if self.deregistration_delay >= self.timeout:
            raise ValidationError("deregistration_delay", "must be shorter than timeout")
        self.health = health
        self._clock = clock
        self._force_exit = force_exit
        self._task: asyncio.Task[ShutdownReport] | None = None
        self._signalled = 0
        self._installed: list[tuple[signal.Signals, object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = asyncio.Event()

    def __repr__(self) -> str:
        return f"GracefulShutdown(timeout={self.timeout:g}, hooks={[h.name for h in self._hooks]})"

    def add_hook(
        self,
        fn: ShutdownHook,
        *,
        name: str | None = None,
        priority: float = 0,
        timeout: float | None = None,
    ) -> None:
        """Register ``fn`` to run at shutdown (sync hooks run in a daemon thread)."""
        if not callable(fn):
            raise ValidationError("fn", "must be callable")
        if isinstance(priority, bool) or not isinstance(priority, int | float):
            raise ValidationError("priority", "must be a number")
        if not math.isfinite(priority):
            raise ValidationError("priority", "must be finite")
        hook_name = name if name is not None else getattr(fn, "__qualname__", repr(fn))
        if not isinstance(hook_name, str) or not hook_name:
            raise ValidationError("name", "must be a non-empty string")
        self._hooks.append(
            _Hook(
                fn=fn,
                name=hook_name,
                priority=float(priority),
                sequence=len(self._hooks),
                timeout=None if timeout is None else _seconds("timeout", timeout, allow_zero=False),
                is_async=inspect.iscoroutinefunction(fn)
                or inspect.iscoroutinefunction(getattr(fn, "__call__", None)),  # noqa: B004
            )
        )

    def hook_order(self) -> list[str]:
        """Hook names in the order ``run()`` will consider them."""
        return [h.name for h in self._ordered()]

    @property
    def started(self) -> bool:
        """Whether shutdown has begun (by signal or by ``run()``)."""
        return self._task is not None

    # running

    async def run(self, reason: str = "requested") -> ShutdownReport:
        """Shut down once; later and concurrent calls get the same report."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._shutdown(reason), name="buttress-shutdown"
            )
            self._started.set()
        return await asyncio.shield(self._task)

    async def wait(self) -> ShutdownReport:
        """Wait until a shutdown (e.g. triggered by a signal) has finished."""
        await self._started.wait()
        assert self._task is not None  # set together with the event
        return await asyncio.shield(self._task)

    def run_sync(self, reason: str = "requested") -> ShutdownReport:
        """The sync entry point: run the shutdown on a fresh event loop.

        Unlike ``asyncio.run`` it does not wait for abandoned hooks on the way
        out (one that ignores cancellation would otherwise hold the exit).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("run_sync() called inside a running event loop; use `await run()`")
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self.run(reason))
        finally:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=_GRACE_ON_EXIT))
            loop.close()

    def _ordered(self) -> list[_Hook]:
        return sorted(self._hooks, key=lambda h: (h.priority, -h.sequence))

    async def _shutdown(self, reason: str) -> ShutdownReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.timeout
        _log.info("shutdown.started", reason=reason, timeout=self.timeout, hooks=len(self._hooks))
        if self.health is not None:
            try:
                if isinstance(self.health, HealthRegistry):
                    self.health.set_ready(False, reason="shutting down")
                else:
                    self.health.set_ready(False)
            except Exception as exc:  # noqa: BLE001 - a broken flag must not stop the shutdown
                _log.error("shutdown.readiness_failed", error=safe_error_message(exc))
        if self.deregistration_delay > 0:
            # Load balancers learn of the shutdown when we do; keep serving
            # while they take us out of rotation.
            delay = min(self.deregistration_delay, max(0.0, deadline - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._clock.sleep(delay), timeout=delay + 0.05)
        outcomes: list[HookOutcome] = []
        for hook in self._ordered():
            remaining = deadline - loop.time()
            if remaining <= 0:
                outcomes.append(HookOutcome(hook.name, "skipped", message="deadline passed"))
                _log.error("shutdown.hook_skipped", hook=hook.name, reason="deadline passed")
                continue
            budget = remaining if hook.timeout is None else min(hook.timeout, remaining)
            outcomes.append(await self._run_hook(hook, budget, loop))
        report = ShutdownReport(tuple(outcomes), loop.time() - started, reason)
        _log.info(
            "shutdown.finished",
            completed=report.completed,
            duration_s=round(report.duration_s, 3),
        )
        return report

    async def _run_hook(
        self, hook: _Hook, budget: float, loop: asyncio.AbstractEventLoop
    ) -> HookOutcome:
        started = loop.time()
        work: asyncio.Future[HookOutcome] = loop.create_task(_call_hook(hook, loop))
        done, _ = await asyncio.wait({work}, timeout=budget)
        elapsed_ms = (loop.time() - started) * 1000
        if not done:
            work.cancel()  # abandoned: we do not wait for it to notice
            _log.error("shutdown.hook_overran", hook=hook.name, budget_s=round(budget, 3))
            return HookOutcome(
                hook.name, "timed_out", elapsed_ms, f"abandoned after {budget:.3g} s"
            )
        outcome = work.result()
        if outcome.status == "failed":
            _log.error("shutdown.hook_failed", hook=hook.name, error=outcome.message)
        else:
            _log.info("shutdown.hook_done", hook=hook.name, duration_ms=round(elapsed_ms, 3))
        return attrs.evolve(outcome, duration_ms=elapsed_ms)

    # signals

    def install_signal_handlers(self, signals: Iterable[signal.Signals] = _DEFAULT_SIGNALS) -> None:
        """Start the shutdown on SIGTERM/SIGINT; a second signal forces the exit.

        With an event loop running in this thread the handlers go on the loop
        and the shutdown runs there (``await shutdown.wait()`` in your main).
        Without one (sync programs) the handler runs ``run_sync()`` and then
        exits with status 0.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for sig in signals:
            if loop is not None:
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append((sig, None))
            else:
                previous = signal.signal(sig, self._on_signal_sync)
                self._installed.append((sig, previous))
        self._loop = loop

    def remove_signal_handlers(self) -> None:
        """Undo ``install_signal_handlers``."""
        for sig, previous in self._installed:
            if self._loop is not None:
                self._loop.remove_signal_handler(sig)
            else:
                signal.signal(sig, previous)  # type: ignore[arg-type]  # as signal.signal returned it
        self._installed.clear()

    def _second_signal(self, sig: int) -> bool:
        """True when this signal must not start a shutdown (one is under way)."""
        self._signalled += 1
        if self._signalled == 1:
            if self._task is None:
                return False
            _log.info("shutdown.signal_while_shutting_down", signal=signal.Signals(sig).name)
            return True
        _log.error("shutdown.forced", signal=signal.Signals(sig).name)
        self._force_exit(128 + sig)
        return True

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._second_signal(sig):
            return
        _log.info("shutdown.signal", signal=sig.name)
        loop = self._loop or asyncio.get_running_loop()
        self._task = loop.create_task(
            self._shutdown(f"signal {sig.name}"), name="buttress-shutdown"
        )
        self._started.set()

    def _on_signal_sync(self, signum: int, frame: object) -> None:
        if self._second_signal(signum):
            return
        _log.info("shutdown.signal", signal=signal.Signals(signum).name)
        self.run_sync(f"signal {signal.Signals(signum).name}")
        sys.exit(0)


async def _call_hook(hook: _Hook, loop: asyncio.AbstractEventLoop) -> HookOutcome:
    try:
        if hook.is_async:
            result = hook.fn()
        else:
            result = await run_in_daemon_thread(hook.fn, name=f"buttress-shutdown-{hook.name}")
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return HookOutcome(hook.name, "failed", message=safe_error_message(exc))
    except GeneratorExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - one hook's failure must not stop the others
        return HookOutcome(hook.name, "failed", message=safe_error_message(exc))
    return HookOutcome(hook.name, "ok")
