"""Running blocking callables in daemon threads, for checks and shutdown hooks.

The default executor's threads are joined when ``asyncio.run`` ends and when
the interpreter exits, so one hung sync check or hook could keep the process
alive forever. A daemon thread per call cannot: abandoning it really abandons it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_in_daemon_thread"]

T = TypeVar("T")


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # result is a T when error is None


def run_in_daemon_thread(fn: Callable[[], T], *, name: str) -> asyncio.Future[T]:
    """Start ``fn`` in a new daemon thread; the future settles on the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def target() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = context.run(fn)
        except StopIteration as exc:
            # a future cannot hold StopIteration; keep the type visible in the message
            error = RuntimeError(f"StopIteration: {exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
