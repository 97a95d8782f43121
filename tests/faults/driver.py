"""The application-like load driver of the fault suite, and its ledger.

``Load`` fires requests at a steady rate from one event loop while a test
injects faults, labels every outcome by phase, and marks any request that runs
past its hang limit. ``LEDGER`` collects one row per scenario for the summary
table printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping

import attrs

__all__ = ["HANG", "LEDGER", "Load", "ScenarioRow", "asgi_request"]

HANG = "HANG"
"""The label of a request that was still running at its hang limit."""

Message = MutableMapping[str, object]
ASGIApp = Callable[
    [
        MutableMapping[str, object],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


async def asgi_request(app: ASGIApp, path: str = "/", *, client: str = "10.0.0.1") -> int:
    """One GET through ``app``; returns the response status (an exception propagates)."""
    scope: dict[str, object] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": (client, 40000),
        "server": ("test", 80),
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message.get("type") == "http.response.start":
            value = message.get("status")
            status = value if isinstance(value, int) else -1

    await app(scope, receive, send)
    return status


Request = Callable[[int], Awaitable[str]]


class Load:
    """Run ``request(i)`` about ``rate`` times a second until ``stop()``.

    Every request's label (what ``request`` returned, or the exception's type
    name) is counted under the phase that was current when it started; a
    request still running after ``hang_after`` seconds is counted as ``HANG``
    and left to finish on its own.
    """

    def __init__(self, request: Request, *, rate: float, hang_after: float) -> None:
        self._request = request
        self._interval = 1.0 / rate
        self.hang_after = hang_after
        self.phase = "healthy"
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.escaped: list[BaseException] = []
        self.max_latency = 0.0
        self.slowest: dict[str, float] = {}  # phase -> longest request
        self.sent = 0
        self.max_lag = 0.0  # longest the event loop was late: time this process was not running
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        started = time.perf_counter()
        while True:
            # Catch up in bursts: a loaded loop wakes late, the rate still holds.
            due = int((time.perf_counter() - started) / self._interval) + 1
            while self.sent < due:
                task = asyncio.ensure_future(self._one(self.sent, self.phase))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                self.sent += 1
            asleep = time.perf_counter()
            await asyncio.sleep(self._interval)
            self.max_lag = max(self.max_lag, time.perf_counter() - asleep - self._interval)

    async def _one(self, index: int, phase: str) -> None:
        began = time.perf_counter()
        task = asyncio.ensure_future(self._request(index))
        done, _ = await asyncio.wait({task}, timeout=self.hang_after)
        if not done:
            # A loaded machine can leave this process unscheduled for a while (the
            # lag is measured): a request late by no more than that is not hanging.
            done, _ = await asyncio.wait({task}, timeout=self.max_lag)
        if not done:
            task.cancel()
            label = HANG
        elif (exc := task.exception()) is not None:
            label = type(exc).__name__
            self.escaped.append(exc)
        else:
            label = task.result()
        took = time.perf_counter() - began
        self.max_latency = max(self.max_latency, took)
        self.slowest[phase] = max(self.slowest.get(phase, 0.0), took)
        self.outcomes[phase, label] += 1

    async def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks)

    def count(self, label: str | None = None, phase: str | None = None) -> int:
        return sum(
            n
            for (p, lab), n in self.outcomes.items()
            if (phase is None or p == phase) and (label is None or lab == label)
        )

    def labels(self, phase: str | None = None) -> Counter[str]:
        out: Counter[str] = Counter()
        for (p, lab), n in self.outcomes.items():
            if phase is None or p == phase:
                out[lab] += n
        return out


@attrs.define
class ScenarioRow:
    """One scenario's line in the summary table."""

    scenario: str
    faults: Counter[str] = attrs.Factory(Counter)
    requests: int = 0
    served: int = 0
    errors: Counter[str] = attrs.Factory(Counter)
    data_lost: int = 0
    seconds: float = 0.0


LEDGER: list[ScenarioRow] = []
"""Rows of the scenarios that ran in this session, in order."""
