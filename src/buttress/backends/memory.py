"""The in-process backend: nothing to connect to, nothing shared between processes.

Components given a ``MemoryBackend`` (or no backend) keep their state in their
own Python objects; this class only gives them the common ``Backend`` lifecycle.
"""

from __future__ import annotations

from buttress.backends._base import Backend
from buttress.backends._dsn import DSN
from buttress.backends._options import check_known

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """``memory://``: state lives in this process and dies with it."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__("memory://")

    @classmethod
    async def open(cls, dsn: DSN, options: dict[str, object]) -> MemoryBackend:
        check_known("memory", options, frozenset())
        return cls()

    async def _ping(self) -> None:
        return None

    async def _close(self) -> None:
        return None
