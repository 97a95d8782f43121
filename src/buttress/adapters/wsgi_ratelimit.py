"""WSGI rate-limit middleware (Flask, Django, any WSGI server).

Each request takes ``cost(environ)`` units for ``key(environ)`` (the client
address by default) from a limiter with a sync store (memory, SQLite or Redis); a
refusal is answered with 429, the standard error envelope and the rate-limit
headers. The middleware never raises: a limiter failure follows
``on_backend_error``, logged once per outage; a request whose key or cost cannot
be had is answered 400, whatever that policy says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from buttress.adapters._ratelimit_http import (
    HTTPOptions,
    RequestInputError,
    bad_request,
    refusal,
)
from buttress.errors import ValidationError
from buttress.ratelimit import Decision, RateLimiter

__all__ = ["WSGIRateLimitMiddleware"]


class WSGIRateLimitMiddleware(HTTPOptions[WSGIEnvironment, WSGIApplication, RateLimiter]):
    """Limit every request to ``app`` with ``limiter``.

    >>> app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, limiter)  # doctest: +SKIP

    Options mirror ``ASGIRateLimitMiddleware``: ``key``, ``cost``, ``exempt``,
    ``trusted_proxies`` (``"unix"`` included), ``ipv6_prefix``, ``on_backend_error``
    and ``headers``.
    """

    def _take_limiter(self, limiter: RateLimiter) -> int:
        if not isinstance(limiter, RateLimiter):
            raise ValidationError("limiter", "must be a RateLimiter")
        self.limiter = limiter
        self._window = limiter.window
        return limiter.capacity

    def _client_key(self, environ: WSGIEnvironment) -> str:
        return self._client(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._exempt(str(environ.get("PATH_INFO", "") or "/")):
            return self.app(environ, start_response)
        try:
            decision = self._decide(environ)
        except RequestInputError as error:
            self._bad_request(error, self.limiter.name)
            body, fields = bad_request(error)
            start_response("400 Bad Request", fields)
            return [body]
        if decision is None:
            return self.app(environ, start_response)
        if not decision.allowed:
            body, fields = refusal(decision, self._window)
            start_response("429 Too Many Requests", fields)
            return [body]
        if not self._headers:
            return self.app(environ, start_response)
        extra = list(decision.headers(window=self._window).items())

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], object]:
            return start_response(status, [*headers, *extra], exc_info)  # type: ignore[arg-type]  # exc_info is passed through as received

        return self.app(environ, start_with_headers)

    def _decide(self, environ: WSGIEnvironment) -> Decision | None:
        """The decision, or None to pass the request through untouched;
        ``RequestInputError`` when the request's key or cost cannot be had."""
        key = self._key(environ)
        cost = 1 if self._cost is None else self._request_cost(environ, self.limiter.capacity)
        try:
            decision = self.limiter.hit(key, cost)
        except Exception as exc:  # noqa: BLE001 - the middleware must never break the app
            return self._policy.failed(exc)
        self._policy.succeeded()
        if not decision.allowed:
            self._refused(key, cost, decision, self.limiter.name)
        return decision
