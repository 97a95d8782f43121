"""Pure ASGI rate-limit middleware (Starlette, FastAPI, Litestar, any ASGI server).

Each HTTP request takes ``cost(scope)`` units for ``key(scope)`` (the client
address by default); a refusal is answered here with 429, the standard error
envelope and the rate-limit headers. The limiter is given ready-made or as a
factory built once the app's lifespan has started (a shared store needs an
async connect). The middleware never raises: a limiter that fails, or is not
there yet, follows ``on_backend_error``, logged once per outage; a request whose
key or cost cannot be had is answered 400, whatever that policy says.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias, cast

from buttress.adapters._asgi_types import (
    AnyApp,
    AnyReceive,
    AnyScope,
    AnySend,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
)
from buttress.adapters._ratelimit_http import (
    HTTPOptions,
    RequestInputError,
    bad_request,
    refusal,
)
from buttress.errors import ValidationError
from buttress.log import get_logger
from buttress.ratelimit import Decision, RateLimiter

__all__ = [
    "ASGIApp",
    "ASGIRateLimitMiddleware",
    "LimiterFactory",
    "Message",
    "Receive",
    "Scope",
    "Send",
]


LimiterFactory: TypeAlias = Callable[[], RateLimiter | Awaitable[RateLimiter]]
"""Builds the middleware's limiter: a plain or ``async`` function of no arguments."""

_logger = get_logger("ratelimit.middleware")


def _header(scope: Scope, name: bytes) -> str | None:
    headers = scope.get("headers")
    if not isinstance(headers, Iterable):
        return None
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


def _retrieve(task: asyncio.Task[RateLimiter]) -> None:
    # Every caller may have been cancelled; the outcome is still consumed, so a
    # failed build is not reported again as "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class _LazyLimiter:
    """The limiter a factory builds: one build at a time, shared by every request
    that arrives meanwhile; a failed build is tried again by the next request.
    ``reset`` forgets it (the app's lifespan has closed what it used)."""

    __slots__ = ("_factory", "_pending", "limiter")

    def __init__(self, factory: LimiterFactory) -> None:
        self._factory = factory
        self._pending: asyncio.Task[RateLimiter] | None = None
        self.limiter: RateLimiter | None = None

    async def get(self) -> RateLimiter:
        if self.limiter is not None:
            return self.limiter
        loop = asyncio.get_running_loop()
        pending = self._pending
        # A build started on another event loop (a test client's previous run)
        # can never finish here.
        if pending is None or pending.get_loop() is not loop:
            pending = loop.create_task(self._build())
            pending.add_done_callback(_retrieve)
            self._pending = pending
        # Shielded: a request cancelled while waiting must not cancel the build
        # the other requests wait for.
        return await asyncio.shield(pending)

    async def _build(self) -> RateLimiter:
        this = asyncio.current_task()
        try:
            made = self._factory()
            if inspect.isawaitable(made):
                made = await made
            if not isinstance(made, RateLimiter):
                raise ValidationError("limiter", "the factory must return a RateLimiter")
        except BaseException:
            if self._pending is this:
                self._pending = None
            raise
        if self._pending is this:  # not reset meanwhile
            self.limiter = made
            self._pending = None
            _logger.info("ratelimit.limiter_ready", limiter=made.name)
        return made

    def reset(self) -> None:
        self.limiter = None
        self._pending = None


class ASGIRateLimitMiddleware(HTTPOptions[Scope, AnyApp, RateLimiter | LimiterFactory]):
    """Limit every HTTP request to ``app`` with ``limiter``.

    >>> app = ASGIRateLimitMiddleware(app, RateLimiter(Rate(100, 60)))  # doctest: +SKIP

    ``limiter`` is a ``RateLimiter``, or a ``LimiterFactory`` (a plain or async
    function of no arguments returning one) for a limiter on a shared store the
    app's lifespan opens: it is called once, when the app has finished starting
    (``lifespan.startup.complete``), or by the first request when the server runs
    no lifespan; a failed call is retried by the next request, and the limiter is
    dropped when the app shuts down (a restart builds a new one). Until it exists,
    requests follow ``on_backend_error``.

    ``key(scope)`` and ``cost(scope)`` default to the client address and 1;
    ``trusted_proxies`` (addresses or CIDR networks, and ``"unix"`` for a proxy on a
    Unix socket) opts in to ``X-Forwarded-For``; IPv6 clients share a bucket per
    ``/ipv6_prefix`` network (64 by default);
    ``exempt`` lists paths never limited (``/static/*`` for a prefix);
    ``headers`` adds the rate-limit fields to admitted responses too;
    ``log_refusals`` logs each refusal (``ratelimit.refused``, INFO) with the
    client address, or a fingerprint of a key your ``key`` function made.
    """

    def _take_limiter(self, limiter: RateLimiter | LimiterFactory) -> int:
        self._ready: RateLimiter | None = None
        self._lazy: _LazyLimiter | None = None
        if isinstance(limiter, RateLimiter):
            self._ready = limiter
            return limiter.capacity
        if not callable(limiter):
            raise ValidationError(
                "limiter", "must be a RateLimiter or a function of no arguments returning one"
            )
        self._lazy = _LazyLimiter(limiter)
        return 0  # known once the factory has built it: see __call__

    @property
    def limiter(self) -> RateLimiter | None:
        """The limiter in use; None while a factory has not built it yet."""
        if self._lazy is not None:
            return self._lazy.limiter
        return self._ready

    def _client_key(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if isinstance(client, (list, tuple)) and client else None
        resolve = self._client
        # Without a trusted proxy the header cannot change the key: not searched for.
        forwarded = _header(scope, b"x-forwarded-for") if resolve.reads_forwarded else None
        return resolve(peer, forwarded)

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        kind = scope.get("type")
        if kind != "http":
            if kind == "lifespan" and self._lazy is not None:
                await self.app(scope, receive, self._lifespan_send(send, self._lazy))
                return
            await self.app(scope, receive, send)
            return
        exempt = self._exempt
        if exempt.any and exempt(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        # Every ASGI scope is a dict; typed read-only above only to accept Litestar's.
        request = cast(Scope, scope)
        # The decision (None: pass the request through untouched) and the limiter
        # that made it (None when there is none yet); written out here rather than
        # in a method of its own, as it runs on every request.
        lazy = self._lazy
        limiter = self._ready if lazy is None else lazy.limiter
        decision: Decision | None
        try:
            if limiter is None:
                assert lazy is not None  # a ready limiter is never None
                limiter = await lazy.get()
            key = self._key(request)
            cost = 1 if self._cost is None else self._request_cost(request, limiter.capacity)
            if limiter.in_process:  # no I/O to wait for: no coroutine to make either
                decision = limiter.hit(key, cost)
            else:
                decision = await limiter.ahit(key, cost)
        except RequestInputError as error:
            # The request's own fault, not the store's: refused whatever the policy.
            self._bad_request(error, None if limiter is None else limiter.name)
            await _respond(send, 400, *bad_request(error))
            return
        except Exception as exc:  # noqa: BLE001 - the middleware must never break the app
            decision = self._policy.failed(exc)
            if decision is not None and limiter is not None:
                decision = decision._replace(limit=limiter.capacity)
        else:
            self._policy.succeeded()
            if not decision.allowed:
                self._refused(key, cost, decision, limiter.name)
        if decision is None:
            await self.app(scope, receive, send)
        elif not decision.allowed:
            window = None if limiter is None else limiter.window
            await _respond(send, 429, *refusal(decision, window, quota=limiter is not None))
        elif self._headers:
            window = None if limiter is None else limiter.window
            await self.app(scope, receive, _HeaderSend(send, decision.raw_headers(window=window)))
        else:
            await self.app(scope, receive, send)

    def _lifespan_send(self, send: Send, lazy: _LazyLimiter) -> Send:
        """``send`` for the lifespan scope: every message goes out unchanged, but
        startup is reported complete only once the limiter is built, after the
        app's own start-up (which may open the store it needs)."""

        async def send_through(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                try:
                    await lazy.get()
                except Exception as exc:  # noqa: BLE001 - requests follow the policy instead
                    _logger.error("ratelimit.limiter_unavailable", error=type(exc).__name__)
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                lazy.reset()  # what the factory used is closed now
            await send(message)

        return send_through


async def _respond(send: Send, status: int, body: bytes, fields: list[tuple[str, str]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in fields],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _HeaderSend:
    """``send`` that adds ``extra`` to the response's start message (a class with
    slots: cheaper to make per request than a closure and its cell)."""

    __slots__ = ("_extra", "_send")

    def __init__(self, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._extra = extra

    def __call__(self, message: Message) -> Awaitable[None]:
        if message.get("type") == "http.response.start":
            existing = message.get("headers")
            if type(existing) is list:
                message["headers"] = existing + self._extra
            else:
                base = list(existing) if isinstance(existing, Iterable) else []
                message["headers"] = [*base, *self._extra]
        return self._send(message)
