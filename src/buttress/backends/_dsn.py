"""DSN parsing and password redaction for every backend scheme.

Owns the one rule that matters most here: a password (in the user-info part or
a ``password=``-like query parameter) never leaves this module except inside
``DSN.secret_url``, which only the driver sees. Everything printable is redacted.
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import parse_qsl, quote, unquote

import attrs

from buttress._exceptions import InvalidDSNError

__all__ = ["DSN", "BackendKind", "parse_dsn", "redact_dsn", "scrub", "spellings"]

BackendKind = Literal["memory", "sqlite", "postgresql", "redis"]

MASK = "***"

# Scheme -> the kind of backend whose state it holds. Redis Cluster and Sentinel
# are still "redis" (the same stores serve them); which class opens a scheme is
# the backends' own declaration (``Backend.schemes``, read by ``_connect``).
_KINDS: dict[str, BackendKind] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "redis": "redis",
    "rediss": "redis",
    "redis+cluster": "redis",
    "redis+sentinel": "redis",
}
SUPPORTED_SCHEMES = (
    "memory://, sqlite://, postgresql://, postgres://, redis://, rediss://, "
    "redis+cluster://, redis+sentinel://"
)
_DEFAULT_PORTS: dict[str, int] = {
    "postgresql": 5432,
    "postgres": 5432,
    "redis": 6379,
    "rediss": 6379,
    "redis+cluster": 6379,
    "redis+sentinel": 26379,
}

# The query parameters each Redis scheme takes: redis-py's own names, which it reads
# from the DSN. Anything else would reach redis-py as a keyword argument and fail
# there as a TypeError, or be ignored; it is refused when the DSN is parsed.
_REDIS_QUERY: Final = (
    "client_name",
    "db",
    "health_check_interval",
    "max_connections",
    "protocol",
    "retry_on_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_timeout",
    "timeout",
)
_REDIS_TLS_QUERY: Final = (
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_ca_path",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_check_hostname",
    "ssl_ciphers",
    "ssl_exclude_verify_flags",
    "ssl_include_verify_flags",
    "ssl_keyfile",
    "ssl_min_version",
    "ssl_password",
)
_QUERY_PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    "redis": _REDIS_QUERY,
    "rediss": tuple(sorted(_REDIS_QUERY + _REDIS_TLS_QUERY)),
    # redis-py builds cluster and sentinel clients from buttress's options, not a URL.
    "redis+cluster": (),
    "redis+sentinel": (),
}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
# A query parameter whose key looks secret: mask up to the next '&' or '#'.
_SECRET_QUERY = re.compile(r"([?&][^=&#]*(?:pass|pwd|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """Split ``user:pass@host...`` at the LAST '@' so an unquoted '@' in a password stays inside."""
    at = rest.rfind("@")
    if at < 0:
        return None, rest
    return rest[:at], rest[at + 1 :]


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password (and secret-looking query values) replaced by ``***``.

    Never raises; anything it cannot make sense of is masked wholesale rather
    than risked (a malformed DSN prints as ``<scheme>://***``).

    >>> redact_dsn("postgresql://app:s3cret@db:5432/app")
    'postgresql://app:***@db:5432/app'
    """
    match = _SCHEME.match(dsn)
    if match is None:
        return MASK if dsn else ""
    scheme = match.group(1)
    userinfo, after = _split_userinfo(dsn[match.end() :])
    if userinfo is not None:
        user, sep, _password = userinfo.partition(":")
        # Everything after the first ':' is the password, however it is spelled.
        userinfo = f"{user}:{MASK}" if sep else user
        head = f"{scheme}://{userinfo}@"
    else:
        head = f"{scheme}://"
    return head + _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, after)


def spellings(secrets: tuple[str, ...]) -> list[str]:
    """Every way each secret can appear in text: raw and percent-encoded, longest first."""
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote(s))}
    return sorted(forms, key=len, reverse=True)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every spelling of each secret (raw, quoted) replaced by ``***``."""
    for form in spellings(secrets):
        text = text.replace(form, MASK)
    return text


@attrs.frozen(repr=False)
class DSN:
    """A parsed DSN. ``redacted`` is safe to show; ``secret_url`` goes to the driver only."""

    scheme: str
    kind: BackendKind
    secret_url: str = attrs.field(repr=False)
    redacted: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    database: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    hosts: tuple[tuple[str, int], ...] = ()
    """Every ``host:port`` the DSN names, in order (cluster seeds, sentinels, libpq's
    multi-host list); ``host``/``port`` are the first."""
    service: str | None = None
    """``redis+sentinel://``: the name of the master Sentinel watches."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (the password and secret query values)."""
        found = [self.password] if self.password else []
        found.extend(value for key, value in self.query if value and _SECRET_QUERY_KEY.search(key))
        return tuple(found)

    @property
    def address(self) -> str:
        """``host:port`` for messages (no credentials)."""
        return f"{self.host}:{self.port}"

    def option(self, name: str) -> str | None:
        """The last value of query parameter ``name``, or None."""
        found = None
        for key, value in self.query:
            if key == name:
                found = value
        return found

    def without_query(self, *names: str) -> str:
        """``secret_url`` without the query parameters ``names`` (buttress's own,
        such as ``pgbouncer``), the rest kept exactly as written. Goes to a driver only."""
        base, mark, rest = self.secret_url.partition("?")
        if not mark:
            return self.secret_url
        query, hash_mark, fragment = rest.partition("#")
        kept = [
            part
            for part in query.split("&")
            if part and unquote(part.partition("=")[0]) not in names
        ]
        url = base + ("?" + "&".join(kept) if kept else "")
        return url + hash_mark + fragment

    def __repr__(self) -> str:
        return f"DSN({self.redacted!r})"

    __str__ = __repr__


def parse_dsn(dsn: str) -> DSN:
    """Parse and validate ``dsn``; raise ``InvalidDSNError`` naming the scheme and the rule."""
    if not isinstance(dsn, str):
        raise InvalidDSNError(f"must be a string like 'sqlite:///app.db', got {type(dsn).__name__}")
    match = _SCHEME.match(dsn)
    if match is None:
        raise InvalidDSNError(
            f"must start with a scheme such as 'sqlite:///app.db'; supported: {SUPPORTED_SCHEMES}"
        )
    scheme = match.group(1).lower()
    kind = _KINDS.get(scheme)
    if kind is None:
        raise InvalidDSNError(f"unsupported scheme {scheme!r}; supported: {SUPPORTED_SCHEMES}")
    rest = dsn[match.end() :]
    redacted = redact_dsn(dsn)
    if kind == "memory":
        if rest:
            raise InvalidDSNError("memory:// takes no host, path or options")
        return DSN(scheme=scheme, kind=kind, secret_url=dsn, redacted=redacted)
    if kind == "sqlite":
        return _parse_sqlite(scheme, rest, dsn, redacted)
    return _parse_network(scheme, kind, rest, dsn, redacted)


def _parse_sqlite(scheme: str, rest: str, dsn: str, redacted: str) -> DSN:
    # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db, sqlite:// = memory.
    if "?" in rest or "#" in rest:
        raise InvalidDSNError("sqlite DSNs take no query string; pass options to connect()")
    if rest and not rest.startswith("/"):
        raise InvalidDSNError(
            "sqlite DSNs take no host: use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    path = unquote(rest[1:]) if rest else ":memory:"
    if path in ("", ":memory:"):
        path = ":memory:"
    if "\x00" in path:
        raise InvalidDSNError("sqlite path must not contain NUL characters")
    return DSN(scheme=scheme, kind="sqlite", secret_url=dsn, redacted=redacted, database=path)


def _parse_network(scheme: str, kind: BackendKind, rest: str, dsn: str, redacted: str) -> DSN:
    userinfo, after = _split_userinfo(rest)
    user = password = None
    if userinfo is not None:
        if any(c in userinfo for c in "@/?#"):
            raise InvalidDSNError(
                f"{scheme}:// user name and password must be percent-encoded "
                "(use urllib.parse.quote(password, safe='') for @ / ? # characters)"
            )
        raw_user, sep, raw_password = userinfo.partition(":")
        user = unquote(raw_user) or None
        password = unquote(raw_password) if sep else None
    cut = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    hostport, tail = after[:cut], after[cut:]
    path, _, query_string = tail.partition("?")
    query_string = query_string.partition("#")[0]
    path = path.partition("#")[0]
    query = tuple(parse_qsl(query_string, keep_blank_values=True))
    _check_query(scheme, query)
    hosts = _hosts(scheme, hostport, dict(query))
    database = unquote(path.lstrip("/")) or None
    service = None
    if scheme == "redis+sentinel":
        service, database = _sentinel_path(database)
    if kind == "redis" and database is not None and not database.isdigit():
        raise InvalidDSNError(f"{scheme}:// database must be a number like /0, got a path")
    if scheme == "redis+cluster" and database not in (None, "0"):
        raise InvalidDSNError("redis+cluster:// has only database 0 (Redis Cluster has one)")
    return DSN(
        scheme=scheme,
        kind=kind,
        secret_url=dsn,
        redacted=redacted,
        host=hosts[0][0],
        port=hosts[0][1],
        user=user,
        password=password,
        database=database,
        query=query,
        hosts=hosts,
        service=service,
    )


def _check_query(scheme: str, query: tuple[tuple[str, str], ...]) -> None:
    """Refuse the query parameters ``scheme`` does not take, naming them (never their
    values) and the ones it does take."""
    supported = _QUERY_PARAMETERS.get(scheme)
    if supported is None:
        return  # PostgreSQL: libpq's parameters and server settings, asyncpg decides
    unknown = sorted({key for key, _value in query if key not in supported})
    if not unknown:
        return
    names = ", ".join(repr(name[:60]) for name in unknown)
    plural = "s" if len(unknown) > 1 else ""
    if supported:
        listing = ", ".join(supported)
    else:
        listing = "none (pass options such as socket_timeout to connect())"
    hint = ""
    if scheme == "redis" and any(name in _REDIS_TLS_QUERY for name in unknown):
        hint = "; ssl_* parameters need TLS: use rediss://"
    raise InvalidDSNError(
        f"unknown query parameter{plural} {names} for {scheme}://; supported: {listing}{hint}"
    )


def _sentinel_path(path: str | None) -> tuple[str, str | None]:
    """``service_name[/db]`` of a ``redis+sentinel://`` DSN."""
    service, _, database = (path or "").partition("/")
    if not service:
        raise InvalidDSNError(
            "redis+sentinel:// needs the master's service name as its path: "
            "redis+sentinel://host:26379/mymaster[/db]"
        )
    return service, database or None


def _hosts(scheme: str, hostport: str, query: dict[str, str]) -> tuple[tuple[str, int], ...]:
    """Every ``host[:port]`` of a comma-separated list (libpq's multi-host form,
    cluster seeds, sentinels), each with the scheme's default port."""
    default_port = _DEFAULT_PORTS[scheme]
    hosts = []
    for part in hostport.split(","):
        if part.startswith("["):
            host, _, port_text = part[1:].partition("]")
            port_text = port_text.removeprefix(":")
        elif part.count(":") == 1:
            host, _, port_text = part.partition(":")
        else:
            host, port_text = part, ""
        host = unquote(host) or query.get("host") or "localhost"
        port_text = port_text or query.get("port", "")
        if not port_text:
            hosts.append((host, default_port))
            continue
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidDSNError(f"port must be a number between 1 and 65535 (scheme {scheme})")
        hosts.append((host, int(port_text)))
    return tuple(hosts)
