"""Pure ASGI rate-limit middleware (Starlette, FastAPI, Litestar, any ASGI server).

Each HTTP request takes ``cost(scope)`` units for ``key(scope)`` (the client
address by default); a refusal is answered here with 429, the standard error
envelope and the rate-limit headers. The middleware never raises: a limiter
failure follows ``on_backend_error``, logged once per outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Literal

from buttress.ratelimit import Decision, RateLimiter
from buttress.ratelimit._http import MiddlewareBase, refusal

__all__ = ["ASGIRateLimitMiddleware"]

Scope = MutableMapping[str, object]
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    headers = scope.get("headers")
    if not isinstance(headers, Iterable):
        return None
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


class ASGIRateLimitMiddleware(MiddlewareBase[Scope]):
    """Limit every HTTP request to ``app`` with ``limiter``.

    >>> app = ASGIRateLimitMiddleware(app, RateLimiter(Rate(100, 60)))  # doctest: +SKIP

    ``key(scope)`` and ``cost(scope)`` default to the client address and 1;
    ``trusted_proxies`` (addresses or CIDR networks) opts in to ``X-Forwarded-For``;
    ``exempt`` lists paths never limited (``/static/*`` for a prefix);
    ``headers`` adds the rate-limit fields to admitted responses too.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        *,
        key: Callable[[Scope], str] | None = None,
        cost: Callable[[Scope], int] | None = None,
        exempt: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        on_backend_error: Literal["allow", "deny"] = "allow",
        headers: bool = True,
    ) -> None:
        super().__init__(
            limiter,
            key=key,
            cost=cost,
            exempt=exempt,
            trusted_proxies=trusted_proxies,
            on_backend_error=on_backend_error,
            headers=headers,
        )
        self.app = app

    def _client_key(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if isinstance(client, list | tuple) and client else None
        return self._client(peer, _header(scope, b"x-forwarded-for"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or self._exempt(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        decision = await self._decide(scope)
        if decision is None:
            await self.app(scope, receive, send)
        elif not decision.allowed:
            body, fields = refusal(decision, self._window)
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in fields],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif self._headers:
            await self.app(scope, receive, self._with_headers(send, decision))
        else:
            await self.app(scope, receive, send)

    async def _decide(self, scope: Scope) -> Decision | None:
        """The decision, or None to pass the request through untouched."""
        try:
            decision = await self.limiter.ahit(*self._key_and_cost(scope))
        except Exception as exc:  # noqa: BLE001 - the middleware must never break the app
            return self._policy.failed(exc)
        self._policy.succeeded()
        return decision

    def _with_headers(self, send: Send, decision: Decision) -> Send:
        extra = [
            (k.lower().encode(), v.encode())
            for k, v in decision.headers(window=self._window).items()
        ]

        async def send_with_headers(message: Message) -> None:
            if message.get("type") == "http.response.start":
                existing = message.get("headers")
                base = list(existing) if isinstance(existing, Iterable) else []
                message["headers"] = [*base, *extra]
            await send(message)

        return send_with_headers
