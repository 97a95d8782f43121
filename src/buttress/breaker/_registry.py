"""Look breakers up by name, for health checks, metrics and the CLI.

A breaker registers itself in ``breakers`` when built (unless given
``registry=None``). Entries are weak: a breaker nobody holds disappears.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from buttress._exceptions import ValidationError

if TYPE_CHECKING:
    from buttress.breaker._service import BreakerStats, CircuitBreaker

__all__ = ["BreakerRegistry", "breakers"]


class BreakerRegistry:
    """Breakers by name; the newest breaker built with a name wins the name."""

    def __init__(self) -> None:
        self._by_name: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()

    def register(self, breaker: CircuitBreaker) -> None:
        with self._lock:
            self._by_name[breaker.name] = breaker

    def unregister(self, name: str) -> None:
        with self._lock:
            self._by_name.pop(name, None)

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``; ``ValidationError`` when there is none."""
        breaker = self._by_name.get(name)
        if breaker is None:
            raise ValidationError("name", f"no circuit breaker is registered as {name!r}")
        return breaker

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._by_name.keys())

    def stats(self) -> dict[str, BreakerStats]:
        """Every live breaker's ``stats()``, by name."""
        with self._lock:
            items = sorted(self._by_name.items())
        return {name: breaker.stats() for name, breaker in items}

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            items = sorted(self._by_name.items())
        return iter([breaker for _, breaker in items])

    def __len__(self) -> int:
        return len(self._by_name)

    def clear(self) -> None:
        with self._lock:
            self._by_name.clear()


breakers = BreakerRegistry()
"""The default registry every ``CircuitBreaker`` joins unless told otherwise."""
