"""One event loop in a daemon thread, for the WSGI apps that need to run coroutines.

WSGI has no event loop; ``LoopThread`` starts one on first use and runs every
submitted coroutine there, so requests from any worker thread share it (and
whatever the coroutines keep bound to it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import TypeVar

from buttress.log import get_logger

__all__ = ["LoopThread"]

T = TypeVar("T")
_log = get_logger("adapters")


class LoopThread:
    """One event loop in a daemon thread named ``name``, started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def submit(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name=self.name, daemon=True
                )
                self._thread.start()
                self._loop = loop
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join the thread (each within 5 s)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result(timeout=5)
        except concurrent.futures.TimeoutError:
            _log.warning("loop_close_timed_out", thread=self.name)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


async def _cancel_tasks() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
