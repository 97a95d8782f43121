"""Package attributes imported on first use (PEP 562), for ``buttress`` and ``buttress.backends``.

A package lists which module holds each public name; ``lazy_attributes`` gives
it the module ``__getattr__`` that imports that module when the name is first
read and keeps the value, so later reads are plain lookups.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, modules: Mapping[str, str], namespace: MutableMapping[str, object]
) -> Callable[[str], object]:
    """``package``'s ``__getattr__``: ``name`` from ``modules[name]``, kept in ``namespace``."""

    def __getattr__(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    return __getattr__
