"""Turning an exception raised by a check into a message safe to publish.

Health output is often public, so the message keeps the exception type and a
short, scrubbed text: credentials in URLs and ``password=...``-style pairs are
masked, and the text is cut short.
"""

from __future__ import annotations

import re

__all__ = ["safe_error_message", "scrub"]

_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")
_SECRET_PAIRS = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|authorization)\b)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|\S+)",
    re.IGNORECASE,
)
_LIMIT = 200


def scrub(text: str, limit: int = _LIMIT) -> str:
    """Mask credentials in ``text`` and cut it to ``limit`` characters."""
    text = _URL_CREDENTIALS.sub(r"\g<head>***@", text)
    text = _SECRET_PAIRS.sub(r"\g<key>\g<sep>***", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_error_message(exc: BaseException) -> str:
    """``"TypeName: short scrubbed message"`` (just the type when there is no text)."""
    name = type(exc).__name__
    try:
        detail = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the report
        detail = ""
    detail = scrub(detail)
    return f"{name}: {detail}" if detail else name
