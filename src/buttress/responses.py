"""The standard JSON response envelope, framework-free.

Every buttress adapter answers in this shape, and host applications can use the
same helpers for their own endpoints::

    {"success": true,  "data": ..., "meta": {"request_id": ..., "timestamp": ...}}
    {"success": false, "error": {"code": ..., "message": ..., ...}, "meta": {...}}

The helpers return plain dicts ready for ``json.dumps``; they never include
exception text, so nothing internal leaks to clients by accident.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

from buttress._exceptions import ValidationError
from buttress.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "Envelope",
    "error",
    "not_found",
    "rate_limited",
    "success",
    "unavailable",
]

Envelope: TypeAlias = dict[str, Any]

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _meta(
    request_id: str | None, clock: Clock, extra: Mapping[str, object] | None
) -> dict[str, object]:
    meta: dict[str, object] = dict(extra or {})
    meta["request_id"] = request_id if request_id is not None else uuid.uuid4().hex
    meta["timestamp"] = _iso(clock.now())
    return meta


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def success(
    data: object = None,
    meta: Mapping[str, object] | None = None,
    *,
    request_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Envelope:
    """``{"success": true, "data": data, "meta": {...}}``."""
    return {"success": True, "data": data, "meta": _meta(request_id, clock, meta)}


def error(
    code: str,
    message: str,
    details: Mapping[str, object] | None = None,
    *,
    request_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    **fields: object,
) -> Envelope:
    """``{"success": false, "error": {"code", "message", ...}, "meta": {...}}``.

    ``code`` is an upper-case identifier such as ``NOT_FOUND``; ``fields`` are
    added inside ``error`` (e.g. ``retry_after``); ``details`` goes under
    ``error.details`` when given.
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValidationError("code", "must be UPPER_SNAKE_CASE, 1-64 characters")
    if not isinstance(message, str) or not message:
        raise ValidationError("message", "must be a non-empty string")
    body: dict[str, object] = {"code": code, "message": message, **fields}
    if details is not None:
        body["details"] = dict(details)
    return {"success": False, "error": body, "meta": _meta(request_id, clock, None)}


def not_found(what: str, *, request_id: str | None = None, clock: Clock = SYSTEM_CLOCK) -> Envelope:
    """A ``NOT_FOUND`` error naming what was not found."""
    return error("NOT_FOUND", f"{what} not found", request_id=request_id, clock=clock)


def rate_limited(
    retry_after: float, *, request_id: str | None = None, clock: Clock = SYSTEM_CLOCK
) -> Envelope:
    """A ``RATE_LIMITED`` error; ``retry_after`` is in seconds, rounded up to whole seconds."""
    if not isinstance(retry_after, int | float) or not math.isfinite(retry_after):
        raise ValidationError("retry_after", "must be a finite number of seconds")
    seconds = max(0, math.ceil(retry_after))
    return error(
        "RATE_LIMITED",
        f"Too many requests; retry after {seconds} s.",
        request_id=request_id,
        clock=clock,
        retry_after=seconds,
    )


def unavailable(
    message: str = "The service is temporarily unavailable.",
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Envelope:
    """A ``SERVICE_UNAVAILABLE`` error, with ``retry_after`` seconds when known."""
    body = error("SERVICE_UNAVAILABLE", message, request_id=request_id, clock=clock)
    if retry_after is not None:
        if not isinstance(retry_after, int | float) or not math.isfinite(retry_after):
            raise ValidationError("retry_after", "must be a finite number of seconds")
        body["error"]["retry_after"] = max(0, math.ceil(retry_after))
    return body
