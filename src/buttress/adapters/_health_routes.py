"""Routing and response shape shared by the ASGI and WSGI health endpoints.

Maps a request path to a check group (``/health`` → all, ``/health/live``,
``/health/ready``, ``/health/<custom group>``) and a report to status, headers
and body. No I/O and no framework here.
"""

from __future__ import annotations

import json

from buttress.errors import ValidationError
from buttress.health import HealthRegistry, HealthReport

__all__ = ["ALL", "CONTENT_TYPE", "Route", "check_base", "error_body", "render", "resolve"]

CONTENT_TYPE = "application/health+json"


class _All:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL"


ALL = _All()
"""The route that runs every check (``group=None``)."""

Route = _All | str | None
"""``ALL``, a group name, or ``None`` when the path is not a health path."""


def check_base(path: str) -> str:
    """``path`` if it can be the health endpoints' base (``/health``), else ``ValidationError``."""
    if not path.startswith("/") or path.endswith("/"):
        raise ValidationError("path", "must start with '/' and not end with '/'")
    return path


def resolve(registry: HealthRegistry, base: str, path: str, root_path: str = "") -> Route:
    """Which group ``path`` asks for, or ``None`` when it is not ours.

    Accepts the full path (``/health/ready``) and, when mounted at ``base``
    (``root_path`` ends with it), the path relative to the mount (``/ready``).
    """
    route = path.rstrip("/")
    if route == base:
        return ALL
    if route.startswith(base + "/"):
        return _group(registry, route[len(base) + 1 :])
    mount = root_path.rstrip("/")
    if mount and mount.endswith(base):
        relative = (path[len(mount) :] if path.startswith(mount) else path).rstrip("/")
        if relative == "":
            return ALL
        return _group(registry, relative[1:])
    return None


def _group(registry: HealthRegistry, name: str) -> str | None:
    if name in ("live", "ready"):
        return name
    if name and "/" not in name and registry.names(name):
        return name
    return None


def render(report: HealthReport) -> tuple[int, list[tuple[str, str]], bytes]:
    """HTTP status, headers and body for a report (200 pass/warn, 503 fail)."""
    body = json.dumps(report.to_health_json(), separators=(",", ":")).encode()
    return _answer(report.http_status, body)


def error_body(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A small health+json failure (used when the report itself cannot be produced)."""
    return _answer(status, json.dumps({"status": "fail", "output": message}).encode())


def _answer(status: int, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [
        ("content-type", CONTENT_TYPE),
        ("cache-control", "no-store"),
        ("content-length", str(len(body))),
    ]
    return status, headers, body
