"""WSGI endpoints for ``/health``, ``/health/live`` and ``/health/ready``.

WSGI has no event loop, so ``HealthWSGIApp`` runs the registry on one private
loop in a daemon thread shared by all requests (concurrent requests still share
in-flight checks), optionally with the background refresher so probes get the
snapshot at once. Other paths go to the wrapped app, or get 404.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Coroutine, Iterable
from typing import TypeAlias, TypeVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from buttress.adapters._health_routes import ALL, check_base, error_body, render, resolve
from buttress.adapters._loop import LoopThread
from buttress.health import HealthRegistry, HealthReport
from buttress.log import get_logger

__all__ = ["HealthWSGIApp", "StartResponse", "WSGIApp", "WSGIEnvironment"]

# The standard library's WSGI types (PEP 3333 as typeshed spells it), so any WSGI
# app - Flask's ``wsgi_app``, Django's handler, our rate-limit middleware - fits.
WSGIApp: TypeAlias = WSGIApplication

T = TypeVar("T")
_log = get_logger("health")
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthWSGIApp:
    """Serve health+json for a registry from WSGI; everything else goes to ``app``.

    ``refresh_interval`` starts the registry's background refresher on the
    private loop, so probes answer from the snapshot without waiting on checks.
    ``request_timeout`` bounds how long a request waits for a run (503 after).
    """

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        app: WSGIApp | None = None,
        path: str = "/health",
        refresh_interval: float | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.path = check_base(path)
        self.registry = registry
        self.app = app
        self.request_timeout = request_timeout
        self._loop = LoopThread("buttress-health")
        if refresh_interval is not None:
            self._call(self._start_refresher(refresh_interval))

    async def _start_refresher(self, interval: float) -> None:
        self.registry.start_refresher(interval)

    def _call(self, coro: Coroutine[object, object, T]) -> T:
        return self._loop.submit(coro).result(timeout=self.request_timeout)

    def close(self) -> None:
        """Stop the refresher (if any) and the private loop."""
        try:
            self._call(self.registry.stop_refresher())
        finally:
            self._loop.close()

    def report(self, group: str | None = None) -> HealthReport:
        """What ``/health`` (or a group) would answer, from sync code."""
        return self._call(self.registry.probe(group))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "") or "")
        script_name = str(environ.get("SCRIPT_NAME", "") or "")
        route = resolve(self.registry, self.path, script_name + path, script_name)
        if route is None:
            if self.app is not None:
                return self.app(environ, start_response)
            return _respond(start_response, 404, [("content-type", "text/plain")], b"not found")
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method not in ("GET", "HEAD"):
            headers = [("content-type", "text/plain"), ("allow", "GET, HEAD")]
            return _respond(start_response, 405, headers, b"method not allowed")
        group = None if route is ALL else str(route)
        try:
            status, headers, body = render(self.report(group))
        except concurrent.futures.TimeoutError:
            _log.warning("health.request_timed_out", group=group, timeout=self.request_timeout)
            status, headers, body = error_body(503, "health report timed out")
        return _respond(start_response, status, headers, b"" if method == "HEAD" else body)


def _respond(
    start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    start_response(f"{status} {_REASONS.get(status, 'Unknown')}", headers)
    return [body]
