"""Read-only admin endpoints behind a bearer token, framework-free.

``AdminEndpoints`` answers ``/admin`` (the sections served) and one path per
component it was given: ``/admin/errors``, ``/admin/migrations``,
``/admin/health``, ``/admin/flags``, ``/admin/config``, as JSON in the standard
response envelope. It refuses to exist without a token; every request is
authenticated before anything else is looked at. ``AdminASGIApp``
(``admin_asgi``) and ``AdminWSGIApp`` (``admin_wsgi``) put it on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Final, TypeAlias, TypeVar

import attrs

from buttress import responses
from buttress._checks import check_count, check_seconds
from buttress.adapters._admin_auth import MIN_TOKEN_LENGTH, BearerToken
from buttress.adapters._admin_sections import (
    config_entries,
    error_statistics,
    feature_flags,
    health_history,
    migration_status,
)
from buttress.config import ConfigStore
from buttress.errors import ValidationError
from buttress.flags import FeatureFlags
from buttress.log import get_logger
from buttress.migrations import Migrator
from buttress.monitoring import DropRule, FlatRule, HealthHistory, Rule, SpikeRule
from buttress.monitoring.errors import ErrorRateRule, ErrorStats

__all__ = [
    "MIN_TOKEN_LENGTH",
    "SECTIONS",
    "AdminEndpoints",
    "AdminResponse",
    "Provided",
]

T = TypeVar("T")

Provided: TypeAlias = T | Callable[[], T]
"""A component, or a function of no arguments returning it when a request needs it
(for components an application opens in its lifespan: ``lambda: app.state.flags``)."""

SECTIONS: Final = ("errors", "migrations", "health", "flags", "config")
"""Every section the endpoints know, in the order the index lists them."""

_METHODS: Final = ("GET", "HEAD")
_REALM: Final = 'Bearer realm="buttress-admin"'
_log = get_logger("admin")


@attrs.frozen
class AdminResponse:
    """Status, headers and body of one admin answer (a HEAD request sends no body)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _response(
    status: int, envelope: Mapping[str, object], *extra: tuple[str, str]
) -> AdminResponse:
    body = json.dumps(envelope, separators=(",", ":"), allow_nan=False).encode()
    headers = (
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("content-length", str(len(body))),
        *extra,
    )
    return AdminResponse(status, headers, body)


def _provider(field: str, value: object, kind: type[T]) -> Callable[[], T]:
    if isinstance(value, kind):
        # A component given as is.
        return lambda: value
    if not callable(value):
        raise ValidationError(field, f"must be a {kind.__name__} or a function returning one")
    factory: Callable[[], object] = value

    def provide() -> T:
        made = factory()
        if not isinstance(made, kind):
            raise ValidationError(field, f"the function must return a {kind.__name__}")
        return made

    return provide


def _migrators(value: object) -> Callable[[], list[Migrator]]:
    def checked(made: object) -> list[Migrator]:
        items = [made] if isinstance(made, Migrator) else made
        if isinstance(items, Sequence) and items and all(isinstance(m, Migrator) for m in items):
            return list(items)
        raise ValidationError("migrations", "must be a Migrator or a non-empty list of them")

    if isinstance(value, Migrator | Sequence):
        fixed = checked(value)
        return lambda: fixed
    if not callable(value):
        raise ValidationError(
            "migrations", "must be a Migrator, a list of them, or a function returning either"
        )
    factory: Callable[[], object] = value
    return lambda: checked(factory())


def _health_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    checked = tuple(rules)
    for index, rule in enumerate(checked):
        if not isinstance(rule, DropRule | SpikeRule | FlatRule):
            raise ValidationError(f"rules[{index}]", "must be a DropRule, SpikeRule or FlatRule")
    return checked


def _error_rules(rules: Iterable[ErrorRateRule]) -> tuple[ErrorRateRule, ...]:
    checked = tuple(rules)
    for index, rule in enumerate(checked):
        if not isinstance(rule, ErrorRateRule):
            raise ValidationError(f"error_rules[{index}]", "must be an ErrorRateRule")
    return checked


def _base(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
        raise ValidationError("path", "must start with '/' and not end with '/'")
    return path


class AdminEndpoints:
    """The admin sections for the components given, behind ``token``.

    >>> admin = AdminEndpoints(token=os.environ["ADMIN_TOKEN"], flags=flags)  # doctest: +SKIP

    Each component is optional and may be given as a function returning it;
    only the sections of the components given are served (others answer 404).
    ``error_rules`` judge the error rate (default: warn above 10 a minute),
    ``rules`` the health history (none by default); ``history_limit`` runs are
    listed. A section that fails or takes longer than ``section_timeout``
    seconds answers 503 with a fixed message; the failure is logged by type only.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        errors: Provided[ErrorStats] | None = None,
        error_rules: Iterable[ErrorRateRule] | None = None,
        migrations: Provided[Migrator | Sequence[Migrator]] | None = None,
        history: Provided[HealthHistory] | None = None,
        rules: Iterable[Rule] = (),
        history_limit: int = 20,
        flags: Provided[FeatureFlags] | None = None,
        config: Provided[ConfigStore] | None = None,
        path: str = "/admin",
        section_timeout: float = 10.0,
    ) -> None:
        self._token = BearerToken(token)
        self.path = _base(path)
        self.section_timeout = check_seconds("section_timeout", section_timeout)
        limit = check_count("history_limit", history_limit, at_least=1)
        checked_rules = _health_rules(rules)
        checked_error_rules = _error_rules(
            (ErrorRateRule(),) if error_rules is None else error_rules
        )
        readers: dict[str, Callable[[], Awaitable[dict[str, object]]]] = {}
        if errors is not None:
            stats = _provider("errors", errors, ErrorStats)
            readers["errors"] = lambda: error_statistics(stats(), checked_error_rules)
        if migrations is not None:
            migrators = _migrators(migrations)
            readers["migrations"] = lambda: migration_status(migrators())
        if history is not None:
            recorded = _provider("history", history, HealthHistory)
            readers["health"] = lambda: health_history(recorded(), checked_rules, limit)
        if flags is not None:
            flag_source = _provider("flags", flags, FeatureFlags)
            readers["flags"] = lambda: feature_flags(flag_source())
        if config is not None:
            config_source = _provider("config", config, ConfigStore)
            readers["config"] = lambda: config_entries(config_source())
        if not readers:
            raise ValidationError(
                "sections", "give at least one of errors, migrations, history, flags or config"
            )
        self._readers = readers

    def __repr__(self) -> str:
        return f"AdminEndpoints(path={self.path!r}, sections={self.sections!r}, token=***)"

    @property
    def sections(self) -> tuple[str, ...]:
        """The sections served, in index order."""
        return tuple(name for name in SECTIONS if name in self._readers)

    def locate(self, path: str, root_path: str = "") -> str | None:
        """The section ``path`` asks for (``""`` for the index), or None when not ours.

        Accepts the full path (``/admin/flags``) and, when mounted at the base
        (``root_path`` ends with it), the path relative to the mount (``/flags``).
        """
        base = self.path
        route = path.rstrip("/")
        if route == base:
            return ""
        if route.startswith(base + "/"):
            return route[len(base) + 1 :]
        mount = root_path.rstrip("/")
        if mount and mount.endswith(base):
            relative = (path[len(mount) :] if path.startswith(mount) else path).rstrip("/")
            if relative == "":
                return ""
            if relative.startswith("/"):
                return relative[1:]
        return None

    def refuse(
        self, section: str, method: str, authorization: bytes | None
    ) -> AdminResponse | None:
        """401, 405 or 404 for a request that may not read ``section``; None when it may.

        The token is checked first, so without it nothing tells which sections exist.
        """
        credentials = self._token.check(authorization)
        if not credentials.matched:
            challenge = _REALM + (', error="invalid_token"' if credentials.presented else "")
            envelope = responses.error("UNAUTHORIZED", "A valid bearer token is required.")
            return _response(401, envelope, ("www-authenticate", challenge))
        if method.upper() not in _METHODS:
            envelope = responses.error("METHOD_NOT_ALLOWED", "Only GET and HEAD are allowed.")
            return _response(405, envelope, ("allow", ", ".join(_METHODS)))
        if section and section not in self._readers:
            return _response(404, responses.not_found("admin section"))
        return None

    async def read(self, section: str) -> AdminResponse:
        """The 200 answer for ``section`` (``""``: the index), or the 503 if it fails."""
        if section == "":
            return _response(200, responses.success({"sections": list(self.sections)}))
        reader = self._readers[section]
        try:
            async with asyncio.timeout(self.section_timeout):
                data = await reader()
            return _response(200, responses.success(data, {"section": section}))
        except Exception as exc:  # noqa: BLE001 - a section fails alone, with a fixed reason
            _log.warning("admin.section_failed", section=section, error=type(exc).__name__)
            return self.unavailable(section)

    def unavailable(self, section: str) -> AdminResponse:
        """The 503 for ``section``: a fixed message, never what went wrong."""
        name = section if section in SECTIONS else "admin"
        return _response(503, responses.unavailable(f"The {name} section is unavailable."))
