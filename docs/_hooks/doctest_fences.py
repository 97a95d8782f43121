"""Griffe extension for the API reference: doctest examples render as code.

buttress docstrings show examples as bare ``>>>`` sessions (no "Examples:"
section), which Markdown would read as nested block quotes; this wraps each
session, up to the next blank line, in a ``pycon`` fence before rendering.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Return ``text`` with every bare ``>>>`` session inside a pycon fence."""
    out: list[str] = []
    in_fence = in_session = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not in_fence and not in_session and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            in_session = True
        elif in_session and not stripped:
            out.append(f"{indent}```")
            in_session = False
        out.append(line)
    if in_session:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest sessions of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
