"""HTTP pieces shared by the ASGI and WSGI rate-limit middleware: who the client
is (trusted-proxy aware), which paths are exempt, and the 429 response (the
standard envelope of ``buttress.responses``).

Framework-neutral and I/O-free; the adapters only translate scopes and environs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Final, Generic, Literal, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ValidationError
from buttress.log import get_logger
from buttress.ratelimit import OUTAGE_RETRY_AFTER, Decision
from buttress.responses import error as error_envelope
from buttress.responses import rate_limited

__all__ = [
    "UNIX_SOCKET",
    "ClientAddress",
    "ErrorPolicy",
    "Exempt",
    "HTTPOptions",
    "RequestInputError",
    "bad_request",
    "refusal",
]

Request = TypeVar("Request")
App = TypeVar("App")
LimiterArg = TypeVar("LimiterArg")

_logger = get_logger("ratelimit.middleware")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN_CLIENT: Final = "unknown"
"""The key used when the server does not say who the peer is."""


_KEY_CACHE: Final = 4096
"""Client addresses whose key ``ClientAddress`` remembers."""

UNIX_SOCKET: Final = "unix"
"""In ``trusted_proxies``: a peer with no address (a Unix socket) is a trusted proxy."""


class ClientAddress:
    """Resolves the client key. ``X-Forwarded-For`` is only believed when the
    direct peer is a trusted proxy (an address or network in ``trusted_proxies``,
    or any Unix-socket peer when it lists ``"unix"``); then the right-most
    address that is not itself a trusted proxy is the client (left-most entries
    are client-controlled). IPv6 clients are keyed by their ``/ipv6_prefix``
    network (a host usually holds a whole /64, so one address each would give
    it unlimited buckets); IPv4 clients by their address."""

    __slots__ = ("_ipv6_prefix", "_keys", "_trust_unix", "_trusted", "reads_forwarded")

    def __init__(self, trusted_proxies: Iterable[str] = (), *, ipv6_prefix: int = 64) -> None:
        if isinstance(trusted_proxies, str):
            raise ValidationError("trusted_proxies", "must be a list of addresses or networks")
        if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
            raise ValidationError("ipv6_prefix", "must be an integer from 1 to 128")
        if not 1 <= ipv6_prefix <= 128:
            raise ValidationError("ipv6_prefix", "must be an integer from 1 to 128")
        networks: list[_Network] = []
        trust_unix = False
        for proxy in trusted_proxies:
            if proxy == UNIX_SOCKET:
                trust_unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(proxy, strict=False))
            except ValueError:
                raise ValidationError(
                    "trusted_proxies", "must be IP addresses or networks (CIDR), or 'unix'"
                ) from None
        self._trusted = tuple(networks)
        self._trust_unix = trust_unix
        self._ipv6_prefix = ipv6_prefix
        self.reads_forwarded = bool(networks) or trust_unix
        """False when ``X-Forwarded-For`` can never change the answer (no trusted
        proxy): the caller may pass None without looking for the header."""
        # Address -> key: parsing an address costs more than the rest of a
        # request's decision. Bounded; emptied when full (dict operations are
        # atomic, so threads may share it).
        self._keys: dict[str, str] = {}

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def __call__(self, peer: str | None, forwarded_for: str | None) -> str:
        if not peer:
            # A Unix socket has no peer address; trusted, its proxy's header says who.
            if not (self._trust_unix and forwarded_for):
                return UNKNOWN_CLIENT
            return self._key(self._forwarded_client(forwarded_for) or UNKNOWN_CLIENT)
        if not forwarded_for or not self._is_trusted(peer):
            return self._key(peer)
        return self._key(self._forwarded_client(forwarded_for) or peer)

    def _forwarded_client(self, forwarded_for: str) -> str | None:
        # Right to left: the first hop that is not a trusted proxy is the client.
        # An entry that names no address means the client is unknown: keyed as
        # such, never as the entry (a port or junk per request would otherwise
        # give every request a bucket of its own).
        client: _Address | None = None
        for hop in reversed(forwarded_for.split(",")):
            if not hop.strip():
                continue
            client = _hop_address(hop)
            if client is None:
                return UNKNOWN_CLIENT
            if not any(client in net for net in self._trusted):
                break
        return None if client is None else str(client)

    def _key(self, address: str) -> str:
        if type(address) is not str:
            return self._parse_key(address)
        key = self._keys.get(address)
        if key is None:
            key = self._parse_key(address)
            keys = self._keys
            if len(keys) >= _KEY_CACHE:
                keys.clear()
            keys[address] = key
        return key

    def _parse_key(self, address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/{self._ipv6_prefix}", strict=False))
        return str(ip)


def _hop_address(hop: str) -> _Address | None:
    """The IP address an ``X-Forwarded-For`` entry names, with the port some
    proxies add taken off (``203.0.113.5:4711``, ``[2001:db8::1]:4711``); None
    when it names none."""
    text = hop.strip()
    rest = None  # what follows the address: None, or ":" and the port
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        rest = rest or None
    elif text.count(":") == 1:
        text, colon, port = text.partition(":")
        rest = colon + port
    if rest is not None and not (rest[:1] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class Exempt:
    """Paths that are never limited: exact paths, or prefixes written ``/static/*``."""

    __slots__ = ("_exact", "_prefixes", "any")

    def __init__(self, paths: Iterable[str] = ()) -> None:
        if isinstance(paths, str):
            raise ValidationError("exempt", "must be a list of paths")
        items = list(paths)
        if not all(isinstance(p, str) and p.startswith("/") for p in items):
            raise ValidationError("exempt", "must be paths starting with '/'")
        self._exact = frozenset(p for p in items if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in items if p.endswith("*"))
        self.any = bool(items)
        """False when no path is exempt (callers may skip the check)."""

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


class RequestInputError(ValidationError):
    """The request's key or cost could not be had (your ``key`` or ``cost``
    function raised, or returned no string key or no cost from 1 to the limit).
    Not a store failure: the request is refused whatever ``on_backend_error``
    says, so nothing a request carries can switch its limit off. ``error`` is
    the type name of what your function raised, for the log only."""

    def __init__(self, field: str, rule: str, *, error: str | None = None) -> None:
        super().__init__(field, rule)
        self.error = error

    @classmethod
    def raised(cls, field: str, exc: Exception) -> RequestInputError:
        return cls(field, "could not be computed", error=type(exc).__name__)


def bad_request(error: RequestInputError) -> tuple[bytes, list[tuple[str, str]]]:
    """The 400 body (``BAD_REQUEST`` in the standard envelope) and its headers.
    It names the field and the rule, never the value or your function's error."""
    envelope = error_envelope(
        "BAD_REQUEST", f"This request cannot be rate limited: its {error.field} {error.rule}."
    )
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return body, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]


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


class HTTPOptions(Generic[Request, App, LimiterArg]):
    """The constructor and options both middlewares share. ``Request`` is an ASGI
    scope or a WSGI environ, ``App`` the wrapped application and ``LimiterArg``
    what the middleware accepts as its limiter; subclasses say how to take the
    limiter and how to find the client in a request."""

    def __init__(
        self,
        app: App,
        limiter: LimiterArg,
        *,
        key: Callable[[Request], str] | None = None,
        cost: Callable[[Request], int] | None = None,
        exempt: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        ipv6_prefix: int = 64,
        on_backend_error: Literal["allow", "deny"] = "allow",
        headers: bool = True,
        log_refusals: bool = True,
    ) -> None:
        if not isinstance(log_refusals, bool):
            raise ValidationError("log_refusals", "must be True or False")
        limit = self._take_limiter(limiter)
        self._log_refusals = log_refusals
        self._custom_key = key is not None
        self._client = ClientAddress(trusted_proxies, ipv6_prefix=ipv6_prefix)
        self._key = self._client_key if key is None else _checked_key(key)
        self._cost = cost
        self._exempt = Exempt(exempt)
        self._policy = ErrorPolicy(on_backend_error, limit)
        self._headers = headers
        self.app = app

    def _take_limiter(self, limiter: LimiterArg) -> int:
        """Check and keep ``limiter``; the limit its outage refusals report (0: unknown yet)."""
        raise NotImplementedError

    def _client_key(self, request: Request) -> str:
        raise NotImplementedError

    def _request_cost(self, request: Request, limit: int) -> int:
        """What your ``cost`` function charges ``request``; ``RequestInputError``
        when it raises or answers anything but an integer from 1 to ``limit``."""
        assert self._cost is not None
        try:
            cost = self._cost(request)
        except Exception as exc:  # noqa: BLE001 - reported as the request's fault, by type
            raise RequestInputError.raised("cost", exc) from None
        if isinstance(cost, bool) or not isinstance(cost, int):
            raise RequestInputError("cost", "must be an integer")
        if not 1 <= cost <= limit:
            # Above the limit it could never pass: "retry later" would be a lie.
            raise RequestInputError("cost", f"must be from 1 to the limit ({limit})")
        return cost

    def _bad_request(self, error: RequestInputError, limiter: str | None) -> None:
        """Log one request refused for its key or cost: the field and the rule."""
        if self._log_refusals:
            _logger.warning(
                "ratelimit.bad_request",
                field=error.field,
                rule=error.rule,
                error=error.error,
                limiter=limiter,
            )

    def _refused(self, key: str, cost: int, decision: Decision, limiter: str | None) -> None:
        """Log one refusal: who (the client address, or a fingerprint of a key
        your ``key`` function made: it may be an API key), what and for how long."""
        if not self._log_refusals:
            return
        _logger.info(
            "ratelimit.refused",
            client=key_for_log(key, custom=self._custom_key),
            cost=cost,
            limit=decision.limit,
            retry_after=decision.retry_after,
            limiter=limiter,
        )


def _checked_key(key: Callable[[Request], str]) -> Callable[[Request], str]:
    """Your ``key`` function, answering ``RequestInputError`` instead of raising
    or returning anything but a string."""

    def checked(request: Request) -> str:
        try:
            found = key(request)
        except Exception as exc:  # noqa: BLE001 - reported as the request's fault, by type
            raise RequestInputError.raised("key", exc) from None
        if type(found) is not str:
            raise RequestInputError("key", "must be a string")
        return found

    return checked


def key_for_log(key: str, *, custom: bool) -> str:
    """What a log may show of a limiter key: a client address as it is (bounded),
    any other key as ``sha256:`` and 12 hex digits, stable across processes, so
    an operator can match a suspected key without the log holding it."""
    if not custom:
        return key[:64]
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:12]}"
