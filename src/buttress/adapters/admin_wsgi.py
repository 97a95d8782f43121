"""The admin endpoints as a WSGI app (Flask, Django, any WSGI server).

WSGI has no event loop, and the components an ``AdminEndpoints`` reads are
async: a request's section runs on ``loop`` (the loop that owns the
components, running in another thread) or, without one, on a private loop in
a daemon thread. The token, the method and the path are checked in the
request's own thread, so refused requests never reach the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterable
from http import HTTPStatus
from typing import TypeVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from buttress.adapters._loop import LoopThread
from buttress.adapters.admin import AdminEndpoints, AdminResponse
from buttress.errors import ValidationError
from buttress.log import get_logger

__all__ = ["AdminWSGIApp"]

T = TypeVar("T")
_log = get_logger("admin")

_NOT_OURS = AdminResponse(
    404, (("content-type", "text/plain; charset=utf-8"), ("content-length", "9")), b"not found"
)
_GRACE = 5.0
"""How much longer than ``section_timeout`` a request waits for the loop itself."""


class AdminWSGIApp:
    """Serve ``endpoints`` over WSGI; everything else goes to ``app`` (or 404).

    ``loop`` is the event loop the components belong to (an asyncpg pool works
    only on the loop that opened it); it must be running in another thread.
    Without it the app starts a private loop on first use, which suits
    in-memory and SQLite components; ``close()`` stops it.
    """

    def __init__(
        self,
        endpoints: AdminEndpoints,
        *,
        app: WSGIApplication | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(endpoints, AdminEndpoints):
            raise ValidationError("endpoints", "must be an AdminEndpoints")
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise ValidationError("loop", "must be an asyncio event loop or None")
        self.endpoints = endpoints
        self.app = app
        self._loop = loop
        self._own = LoopThread("buttress-admin") if loop is None else None
        self._wait = endpoints.section_timeout + _GRACE

    def __repr__(self) -> str:
        return f"AdminWSGIApp({self.endpoints!r})"

    def _submit(self, coro: Coroutine[object, object, T]) -> concurrent.futures.Future[T]:
        if self._own is not None:
            return self._own.submit(coro)
        assert self._loop is not None  # one of the two is set at construction
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        """Stop the private loop, if one was started (a given ``loop`` is left alone)."""
        if self._own is not None:
            self._own.close()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "") or "")
        script_name = str(environ.get("SCRIPT_NAME", "") or "")
        section = self.endpoints.locate(script_name + path, script_name)
        if section is None:
            if self.app is not None:
                return self.app(environ, start_response)
            return _respond(start_response, "GET", _NOT_OURS)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        header = environ.get("HTTP_AUTHORIZATION")
        # PEP 3333 hands headers over as latin-1 text: this gives back their bytes.
        authorization = header.encode("latin-1") if isinstance(header, str) else None
        response = self.endpoints.refuse(section, method, authorization)
        if response is None:
            response = self._read(section)
        return _respond(start_response, method, response)

    def _read(self, section: str) -> AdminResponse:
        reading = self.endpoints.read(section)
        try:
            future = self._submit(reading)
        except Exception as exc:  # noqa: BLE001 - the given loop is closed: answer, don't crash
            reading.close()
            _log.warning("admin.loop_unavailable", section=section, error=type(exc).__name__)
            return self.endpoints.unavailable(section)
        try:
            return future.result(timeout=self._wait)
        except Exception as exc:  # noqa: BLE001 - timed out, or the loop stopped meanwhile
            future.cancel()
            _log.warning("admin.loop_unavailable", section=section, error=type(exc).__name__)
            return self.endpoints.unavailable(section)


def _respond(start_response: StartResponse, method: str, response: AdminResponse) -> list[bytes]:
    status = response.status
    start_response(f"{status} {HTTPStatus(status).phrase}", list(response.headers))
    return [b"" if method == "HEAD" else response.body]
