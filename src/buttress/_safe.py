"""Turning an exception into text safe to show, with the one redactor logs use.

``scrub`` is ``buttress.log.redact_text`` (registered secrets, DSN passwords,
keyed secrets, bearer tokens) plus whitespace folding and a length cap;
``safe_error_message`` applies it to an exception's text. ``failure_reason``
is the short, fixed phrase public output carries instead of that text.
"""

from __future__ import annotations

from buttress.log import redact_text

__all__ = ["failure_reason", "safe_error_message", "scrub"]

_LIMIT = 200


def scrub(text: str, limit: int = _LIMIT) -> str:
    """``text`` redacted, on one line, cut to ``limit`` characters."""
    text = " ".join(redact_text(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_error_message(exc: BaseException, limit: int = _LIMIT) -> str:
    """``"TypeName: short redacted message"`` (just the type when there is no
    text), ``limit`` characters at most, the type's name included."""
    name = type(exc).__name__
    if len(name) >= limit:
        return name[: limit - 1] + "…"
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the report
        detail = ""
    room = limit - len(name) - len(": ")
    detail = scrub(detail, room) if room > 1 else ""
    return f"{name}: {detail}" if detail else name


def failure_reason(exc: BaseException) -> str:
    """``"raised TypeName"``: what a failure says where its text must not be shown."""
    return f"raised {type(exc).__name__}"
