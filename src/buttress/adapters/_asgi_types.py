"""The ASGI shapes buttress's ASGI apps and middleware accept from frameworks.

Frameworks type ASGI in ways no one precise signature satisfies (Starlette:
``MutableMapping[str, Any]``; Litestar: a TypedDict per scope and message
type), so wrapped apps and the receive/send callables are taken at any
signature and the scope as a read-only mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeAlias

__all__ = ["AnyApp", "AnyReceive", "AnyScope", "AnySend"]

AnyScope: TypeAlias = Mapping[str, object]
AnyApp: TypeAlias = Callable[..., Awaitable[None]]
AnyReceive: TypeAlias = Callable[..., Awaitable[Mapping[str, object]]]
AnySend: TypeAlias = Callable[..., Awaitable[None]]
