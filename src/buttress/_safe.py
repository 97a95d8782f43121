"""Turning an exception into text safe to show, with the one redactor logs use.

``scrub`` is ``buttress.log.redact_text`` (registered secrets, DSN passwords,
keyed secrets, bearer tokens) plus whitespace folding, a length cap, and
``strip_reprs`` (a driver object's repr shrinks to its class name);
``safe_error_message`` and ``error_text`` apply it to an exception's text.
``failure_reason`` is the short, fixed phrase public output carries instead of
that text.
"""

from __future__ import annotations

import re
from typing import Final

from buttress.log import redact_text

__all__ = ["error_text", "failure_reason", "safe_error_message", "scrub", "strip_reprs"]

_LIMIT = 200

# Where an object's default-style repr starts: ``<package.module.Class(`` (redis-py's
# clients, pools and connections) or ``<Class object at 0x``.
_REPR_START: Final = re.compile(
    r"<(?P<qualified>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\("
    r"|<(?P<plain>[A-Za-z_][\w.]*) object at 0x"
)


def strip_reprs(text: str) -> str:
    """``text`` with each object repr a driver put into its message (``<redis.asyncio.
    client.Redis(<…ConnectionPool(<…Connection(host=…,retry=<… object at 0x…>…)>)>)>``)
    replaced by ``<Redis>``: its class name, without the settings and addresses inside."""
    found = _REPR_START.search(text)
    if found is None:
        return text
    parts: list[str] = []
    done = 0
    while found is not None:
        name = (found.group("qualified") or found.group("plain")).rpartition(".")[2]
        depth = 0
        end = len(text)  # an unclosed repr runs to the end of the text
        for index in range(found.start(), len(text)):
            char = text[index]
            if char == "<":
                depth += 1
            elif char == ">":
                depth -= 1
                if depth == 0:
                    end = index + 1
                    break
        parts.append(text[done : found.start()])
        parts.append(f"<{name}>")
        done = end
        found = _REPR_START.search(text, done)
    parts.append(text[done:])
    return "".join(parts)


def scrub(text: str, limit: int = _LIMIT) -> str:
    """``text`` redacted, without object reprs, on one line, cut to ``limit`` characters."""
    text = " ".join(redact_text(strip_reprs(text)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def error_text(exc: BaseException, limit: int = _LIMIT) -> str:
    """``exc``'s own text, scrubbed (``""`` when it has none, or its ``__str__`` fails)."""
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the report
        return ""
    return scrub(detail, limit) if limit > 1 else ""


def safe_error_message(exc: BaseException, limit: int = _LIMIT) -> str:
    """``"TypeName: short redacted message"`` (just the type when there is no
    text), ``limit`` characters at most, the type's name included."""
    name = type(exc).__name__
    if len(name) >= limit:
        return name[: limit - 1] + "…"
    detail = error_text(exc, limit - len(name) - len(": "))
    return f"{name}: {detail}" if detail else name


def failure_reason(exc: BaseException) -> str:
    """``"raised TypeName"``: what a failure says where its text must not be shown."""
    return f"raised {type(exc).__name__}"
