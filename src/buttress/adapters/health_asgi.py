"""ASGI endpoints for ``/health``, ``/health/live`` and ``/health/ready``.

``HealthASGIApp`` answers health paths from a ``HealthRegistry`` (the
refresher's snapshot when one runs) and hands every other request to the
wrapped app, or answers 404 when standing alone. Works with any ASGI server
or framework (Starlette ``Mount``, FastAPI ``app.mount``, Litestar
``asgi(path, is_mount=True)``, middleware style).
"""

from __future__ import annotations

from urllib.parse import unquote

from buttress.adapters._asgi_types import (
    AnyApp,
    AnyReceive,
    AnyScope,
    AnySend,
    ASGIApp,
    Receive,
    Scope,
    Send,
    serve_lifespan,
)
from buttress.adapters._health_routes import ALL, check_base, render, resolve
from buttress.health import HealthRegistry

__all__ = ["ASGIApp", "HealthASGIApp", "Receive", "Scope", "Send"]


_METHODS = ("GET", "HEAD")


class HealthASGIApp:
    """Serve health+json for a registry; everything else goes to ``app``.

    >>> app = HealthASGIApp(registry, app=my_asgi_app)            # doctest: +SKIP
    """

    def __init__(
        self, registry: HealthRegistry, *, app: AnyApp | None = None, path: str = "/health"
    ) -> None:
        self.path = check_base(path)
        self.registry = registry
        self.app = app

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        kind = scope.get("type")
        if kind == "http":
            path = str(scope.get("path", ""))
            root_path = str(scope.get("root_path", "") or "")
            route = resolve(self.registry, self.path, path, root_path)
            raw_path = scope.get("raw_path")
            if route is None and isinstance(raw_path, bytes) and raw_path:
                # Mounts that rewrite ``path`` without setting ``root_path``
                # (Litestar's ``asgi(..., is_mount=True)``): the request's own path.
                route = resolve(self.registry, self.path, unquote(raw_path.decode("latin-1")))
            if route is not None:
                await self._answer(scope, send, None if route is ALL else str(route))
                return
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        if kind == "lifespan":
            await serve_lifespan(receive, send)
        elif kind == "http":
            await _plain(send, 404, b"not found")

    async def _answer(self, scope: AnyScope, send: AnySend, group: str | None) -> None:
        method = str(scope.get("method", "GET")).upper()
        if method not in _METHODS:
            await _plain(send, 405, b"method not allowed", [(b"allow", b"GET, HEAD")])
            return
        report = await self.registry.probe(group)
        status, headers, body = render(report)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _plain(
    send: AnySend, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
