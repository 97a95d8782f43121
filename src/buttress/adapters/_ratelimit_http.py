"""HTTP pieces shared by the ASGI and WSGI rate-limit middleware: who the client
is (trusted-proxy aware), which paths are exempt, and the 429 response (the
standard envelope of ``buttress.responses``).

Framework-neutral and I/O-free; the adapters only translate scopes and environs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Final, Generic, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.log import get_logger
from buttress.ratelimit import OUTAGE_RETRY_AFTER, Decision, RateLimiter
from buttress.responses import rate_limited

__all__ = ["ClientAddress", "ErrorPolicy", "Exempt", "HTTPOptions", "MiddlewareBase", "refusal"]

Request = TypeVar("Request")

_logger = get_logger("ratelimit.middleware")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT: Final = "unknown"
"""The key used when the server does not say who the peer is."""


class ClientAddress:
    """Resolves the client address. ``X-Forwarded-For`` is only believed when the
    direct peer is a trusted proxy; then the right-most address that is not itself
    a trusted proxy is the client (left-most entries are client-controlled)."""

    __slots__ = ("_trusted",)

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        if isinstance(trusted_proxies, str):
            raise ValidationError("trusted_proxies", "must be a list of addresses or networks")
        networks: list[_Network] = []
        for proxy in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(proxy, strict=False))
            except ValueError:
                raise ValidationError(
                    "trusted_proxies", "must be IP addresses or networks (CIDR)"
                ) from None
        self._trusted = tuple(networks)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None) -> str:
        if not peer:
            return UNKNOWN_CLIENT
        if not self._trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


class Exempt:
    """Paths that are never limited: exact paths, or prefixes written ``/static/*``."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, paths: Iterable[str] = ()) -> None:
        if isinstance(paths, str):
            raise ValidationError("exempt", "must be a list of paths")
        items = list(paths)
        if not all(isinstance(p, str) and p.startswith("/") for p in items):
            raise ValidationError("exempt", "must be paths starting with '/'")
        self._exact = frozenset(p for p in items if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in items if p.endswith("*"))

    def __call__(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)


def refusal(
    decision: Decision,
    window: float | None,
    *,
    quota: bool = True,
    request_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[bytes, list[tuple[str, str]]]:
    """The 429 body (``buttress.responses.rate_limited``) and its headers.

    ``quota=False`` keeps only ``Retry-After``: for a refusal made before any
    limiter exists, when there is no limit to report.
    """
    headers = decision.headers(window=window)
    # The body's retry_after is the Retry-After header's, so the two never disagree.
    retry_after = int(headers.get("Retry-After", "1"))
    envelope = rate_limited(retry_after, request_id=request_id, clock=clock)
    body = json.dumps(envelope, separators=(",", ":")).encode()
    fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    fields.extend(headers.items() if quota else [("Retry-After", str(retry_after))])
    return body, fields


class ErrorPolicy:
    """What middleware does when deciding fails: let the request through
    (``"allow"``) or refuse it (``"deny"``); logged once per run of failures."""

    __slots__ = ("_deny", "_failing", "limit")

    def __init__(self, on_backend_error: str, limit: int = 0) -> None:
        if on_backend_error not in ("allow", "deny"):
            raise ValidationError("on_backend_error", "must be 'allow' or 'deny'")
        self._deny = on_backend_error == "deny"
        # Reported by the refusals; set again when a lazily built limiter arrives.
        self.limit = limit
        self._failing = False

    def failed(self, exc: Exception) -> Decision | None:
        """The decision to apply instead, or None to pass the request through."""
        if not self._failing:
            self._failing = True
            _logger.error(
                "ratelimit.middleware_error",
                error=type(exc).__name__,
                policy="deny" if self._deny else "allow",
            )
        if self._deny:
            return Decision(False, self.limit, 0, OUTAGE_RETRY_AFTER, OUTAGE_RETRY_AFTER)
        return None

    def succeeded(self) -> None:
        if self._failing:
            self._failing = False
            _logger.info("ratelimit.middleware_recovered")


class HTTPOptions(Generic[Request]):
    """The options both middlewares share, limiter aside; ``Request`` is an ASGI
    scope or a WSGI environ, and subclasses say how to find the client in it."""

    def __init__(
        self,
        *,
        key: Callable[[Request], str] | None,
        cost: Callable[[Request], int] | None,
        exempt: Iterable[str],
        trusted_proxies: Iterable[str],
        on_backend_error: str,
        headers: bool,
    ) -> None:
        self._client = ClientAddress(trusted_proxies)
        self._key = key or self._client_key
        self._cost = cost
        self._exempt = Exempt(exempt)
        self._policy = ErrorPolicy(on_backend_error)
        self._headers = headers

    def _client_key(self, request: Request) -> str:
        raise NotImplementedError

    def _key_and_cost(self, request: Request) -> tuple[str, int]:
        return self._key(request), 1 if self._cost is None else self._cost(request)


class MiddlewareBase(HTTPOptions[Request]):
    """``HTTPOptions`` with a limiter given up front."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        key: Callable[[Request], str] | None,
        cost: Callable[[Request], int] | None,
        exempt: Iterable[str],
        trusted_proxies: Iterable[str],
        on_backend_error: str,
        headers: bool,
    ) -> None:
        if not isinstance(limiter, RateLimiter):
            raise ValidationError("limiter", "must be a RateLimiter")
        super().__init__(
            key=key,
            cost=cost,
            exempt=exempt,
            trusted_proxies=trusted_proxies,
            on_backend_error=on_backend_error,
            headers=headers,
        )
        self.limiter = limiter
        self._policy.limit = limiter.capacity
        self._window = limiter.window
