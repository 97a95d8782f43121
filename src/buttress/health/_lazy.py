"""Finding optional sibling components (schema, migrations) at run time.

Health and lifecycle use them when present without importing them at module
import time, which keeps ``import buttress`` light and the packages independent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["find"]


def find(name: str, modules: tuple[str, ...]) -> Callable[..., Any] | None:
    """The callable ``name`` from the first of ``modules`` that has it, else ``None``."""
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found = getattr(module, name, None)
        if callable(found):
            return found  # type: ignore[no-any-return]  # module attribute found at run time
    return None


SCHEMA_VALIDATOR = ("buttress.schema", "buttress.schema.validator")
MIGRATOR = ("buttress.migrations", "buttress.migrations.migrator")
