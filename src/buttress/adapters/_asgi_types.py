"""The ASGI shapes buttress's ASGI apps and middleware accept, and the ones they use.

Frameworks type ASGI in ways no one precise signature satisfies (Starlette:
``MutableMapping[str, Any]``; Litestar: a TypedDict per scope and message
type), so wrapped apps and the receive/send callables are taken at any
signature and the scope as a read-only mapping (``Any*``). Inside, buttress
speaks plain ASGI (``Scope``, ``Message``, ``Receive``, ``Send``, ``ASGIApp``).
``serve_lifespan`` is the lifespan protocol of an app that has nothing to start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TypeAlias

__all__ = [
    "ASGIApp",
    "AnyApp",
    "AnyReceive",
    "AnyScope",
    "AnySend",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "serve_lifespan",
]

AnyScope: TypeAlias = Mapping[str, object]
AnyApp: TypeAlias = Callable[..., Awaitable[None]]
AnyReceive: TypeAlias = Callable[..., Awaitable[Mapping[str, object]]]
AnySend: TypeAlias = Callable[..., Awaitable[None]]

Scope: TypeAlias = MutableMapping[str, object]
Message: TypeAlias = MutableMapping[str, object]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


async def serve_lifespan(receive: AnyReceive, send: AnySend) -> None:
    """Answer a lifespan scope for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message.get("type") == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
