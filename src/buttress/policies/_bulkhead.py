"""``bulkhead``: at most N calls at once, a bounded queue behind them, refuse the rest.

One bulkhead may serve threads and asyncio tasks together: slots and the queue
live under one ``threading.Lock`` held only for bookkeeping, and a freed slot
is handed straight to the longest waiter (first come, first served).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from buttress._checks import check_count, check_seconds
from buttress._exceptions import ValidationError
from buttress.policies._base import Policy
from buttress.policies._errors import BulkheadFullError

__all__ = ["Bulkhead", "bulkhead"]

P = ParamSpec("P")
R = TypeVar("R")


class _Waiter:
    """A queued caller: a thread (``event``) or a task (``loop`` and ``future``)."""

    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.granted = False

    def wake(self) -> bool:
        """Tell the waiter it holds a slot now; False if it can no longer be told."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None
        assert self.future is not None
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            return False
        return True


def _thread_waiter() -> _Waiter:
    return _Waiter(event=threading.Event())


def _task_waiter() -> _Waiter:
    loop = asyncio.get_running_loop()
    return _Waiter(loop=loop, future=loop.create_future())


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Bulkhead(Policy):
    """Limit concurrent calls (build it with ``bulkhead``)."""

    __slots__ = (
        "_active",
        "_lock",
        "_waiters",
        "max_concurrent",
        "max_queue",
        "name",
        "queue_timeout",
    )

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        name: str = "bulkhead",
    ) -> None:
        self.max_concurrent = check_count("max_concurrent", max_concurrent, at_least=1)
        self.max_queue = check_count("max_queue", max_queue, at_least=0)
        self.queue_timeout = check_seconds("queue_timeout", queue_timeout, optional=True)
        if not isinstance(name, str) or not name:
            raise ValidationError("name", "must be a non-empty string")
        self.name = name
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    def __repr__(self) -> str:
        return f"bulkhead({self.max_concurrent}, max_queue={self.max_queue})"

    @property
    def active(self) -> int:
        """Calls running now."""
        return self._active

    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._waiters)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` in a slot, waiting in the queue if allowed; else ``BulkheadFullError``."""
        self._acquire_sync()
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn`` in a slot, waiting in the queue if allowed; else ``BulkheadFullError``."""
        await self._acquire_async()
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    def _full(self) -> BulkheadFullError:
        return BulkheadFullError(self.name, self.max_concurrent, self.max_queue)

    def _try_enter(self, waiter: _Waiter) -> bool | None:
        """Under the lock: True = got a slot, None = queued ``waiter``, False = refused."""
        if self._active < self.max_concurrent and not self._waiters:
            self._active += 1
            return True
        if len(self._waiters) >= self.max_queue:
            return False
        self._waiters.append(waiter)
        return None

    def _enter(self, new_waiter: Callable[[], _Waiter]) -> _Waiter | None:
        """A slot (None), else a place in the queue (the waiter to wait on), else
        ``BulkheadFullError``. A waiter is only made when no slot is free."""
        with self._lock:  # the uncontended path, without a call under the lock
            if self._active < self.max_concurrent and not self._waiters:
                self._active += 1
                return None
        if not self.max_queue:
            raise self._full()
        waiter = new_waiter()
        with self._lock:
            entered = self._try_enter(waiter)
        if entered is False:
            raise self._full()
        return None if entered else waiter

    def _acquire_sync(self) -> None:
        waiter = self._enter(_thread_waiter)
        if waiter is None:
            return
        assert waiter.event is not None
        if waiter.event.wait(self.queue_timeout):
            return
        with self._lock:
            if waiter.granted:
                return  # the slot arrived just as the wait gave up
            self._waiters.remove(waiter)
        raise self._full()

    async def _acquire_async(self) -> None:
        waiter = self._enter(_task_waiter)
        if waiter is None:
            return
        assert waiter.future is not None
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter.future
        except BaseException as exc:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:
                self._release()  # handed a slot while being cancelled: pass it on
            if isinstance(exc, TimeoutError):
                raise self._full() from None
            raise

    def _release(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    self._active -= 1
                    return
                waiter = self._waiters.popleft()
                waiter.granted = True  # the slot moves to the waiter; _active is unchanged
            if waiter.wake():
                return


def bulkhead(
    max_concurrent: int,
    *,
    max_queue: int = 0,
    queue_timeout: float | None = None,
    name: str = "bulkhead",
) -> Bulkhead:
    """At most ``max_concurrent`` calls at once; up to ``max_queue`` more wait for a slot.

    A caller beyond that, or one that waited ``queue_timeout`` seconds, gets
    ``BulkheadFullError`` without the call running.
    """
    return Bulkhead(max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout, name=name)
