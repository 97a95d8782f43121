"""The admin endpoints as an ASGI app (Starlette, FastAPI, Litestar, any ASGI server).

``AdminASGIApp`` answers the paths of an ``AdminEndpoints`` and hands every
other request to the wrapped app, or answers 404 when standing alone. Mount it
(``app.mount("/admin", AdminASGIApp(admin))``) or wrap the whole app with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from buttress.adapters._asgi_types import AnyApp, AnyReceive, AnyScope, AnySend, serve_lifespan
from buttress.adapters.admin import AdminEndpoints, AdminResponse
from buttress.errors import ValidationError

__all__ = ["AdminASGIApp"]

_NOT_OURS = AdminResponse(
    404, (("content-type", "text/plain; charset=utf-8"), ("content-length", "9")), b"not found"
)


def _authorization(scope: AnyScope) -> bytes | None:
    headers = scope.get("headers")
    if not isinstance(headers, Iterable):
        return None
    for name, value in headers:
        if isinstance(name, bytes) and name.lower() == b"authorization":
            return value if isinstance(value, bytes) else None
    return None


class AdminASGIApp:
    """Serve ``endpoints`` over ASGI; everything else goes to ``app`` (or 404).

    >>> admin = AdminEndpoints(token=token, flags=flags)      # doctest: +SKIP
    >>> app.mount("/admin", AdminASGIApp(admin))              # doctest: +SKIP
    """

    def __init__(self, endpoints: AdminEndpoints, *, app: AnyApp | None = None) -> None:
        if not isinstance(endpoints, AdminEndpoints):
            raise ValidationError("endpoints", "must be an AdminEndpoints")
        self.endpoints = endpoints
        self.app = app

    def __repr__(self) -> str:
        return f"AdminASGIApp({self.endpoints!r})"

    async def __call__(self, scope: AnyScope, receive: AnyReceive, send: AnySend) -> None:
        kind = scope.get("type")
        if kind == "http":
            section = self._locate(scope)
            if section is not None:
                await self._answer(scope, send, section)
                return
        if self.app is not None:
            await self.app(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(receive, send)
        elif kind == "http":
            await _send(send, "GET", _NOT_OURS)

    def _locate(self, scope: AnyScope) -> str | None:
        path = str(scope.get("path", ""))
        section = self.endpoints.locate(path, str(scope.get("root_path", "") or ""))
        raw_path = scope.get("raw_path")
        if section is None and isinstance(raw_path, bytes) and raw_path:
            # Mounts that rewrite ``path`` without setting ``root_path``
            # (Litestar's ``asgi(..., is_mount=True)``): the request's own path.
            section = self.endpoints.locate(unquote(raw_path.decode("latin-1")))
        return section

    async def _answer(self, scope: AnyScope, send: AnySend, section: str) -> None:
        method = str(scope.get("method", "GET")).upper()
        response = self.endpoints.refuse(section, method, _authorization(scope))
        if response is None:
            response = await self.endpoints.read(section)
        await _send(send, method, response)


async def _send(send: AnySend, method: str, response: AdminResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode(), v.encode()) for k, v in response.headers],
        }
    )
    body = b"" if method == "HEAD" else response.body
    await send({"type": "http.response.body", "body": body})
