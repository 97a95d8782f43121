"""Structured logging for buttress on structlog, with secret redaction.

Owns ``get_logger`` (buttress's loggers, which always redact), the ``redact``
processor users can add to their own pipeline, the run-time secret registry
(``register_secret``) and the opt-in ``configure_logging``. Nothing here
configures logging unless ``configure_logging`` is called.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import IO, Any, Final, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from buttress._exceptions import ValidationError

__all__ = [
    "MASK",
    "MAX_SECRETS",
    "MIN_SECRET_LENGTH",
    "clear_secrets",
    "configure_logging",
    "get_logger",
    "log_api_error",
    "log_user_action",
    "redact",
    "redact_text",
    "register_secret",
]

MASK: Final = "***"
"""What a redacted value, or a redacted part of a string, is replaced with."""

MIN_SECRET_LENGTH: Final = 4
"""Registered values shorter than this are ignored: masking every "a" or "42"
would destroy the log without protecting anything worth protecting."""

MAX_SECRETS: Final = 4096
"""The registry keeps at most this many values; the oldest is forgotten first."""

# Key words that make a key sensitive wherever they appear as a word of it
# ("db_password", "accessToken", "X-Api-Key", "set-cookie").
_SENSITIVE_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "privatekey",
    }
)
# Two-word spellings of the same ideas ("api_key", "private-key").
_SENSITIVE_PAIRS: Final = frozenset({("api", "key"), ("private", "key")})
# A key in free text also names a secret when it ends in one of these, run
# together with what precedes it ("PGPASSWORD", "dbpassword", "xapikey").
_SENSITIVE_ENDINGS: Final = tuple(sorted(_SENSITIVE_WORDS))

_DSN_PASSWORD = re.compile(
    # scheme://user:password@ ; the password runs to the last "@" before a "/"
    # or whitespace, so an unescaped "@" inside it does not leak its tail. A
    # scheme is taken where a run of scheme characters starts, possessively, so
    # text such as "a.a.a.a...://" costs one pass, not one pass per dot (log lines
    # can carry attacker-chosen text). The run may start with a digit, and any
    # other character may stand before it: "db_postgresql://" and "1redis://"
    # are masked too.
    r"(?i)(?<![a-z0-9+.\-])([a-z0-9][a-z0-9+.\-]*+://[^\s:/@]*+:)([^\s/]+)(@)"
)
# Cheap test for "could a keyed secret or an auth scheme be in here at all"
# before the full scan: a substring of every sensitive word, pair and scheme,
# looked for in the case-folded text (plain substring search: a case-insensitive
# regex alternation here cost more than the rest of the redactor).
_SECRET_HINTS: Final = (
    "pass", "pwd", "secret", "token", "key", "auth", "bearer", "basic", "cookie", "credential",
)  # fmt: skip
# A key, bare or quoted ('password', "db_password", \"token\"), then "=" or ":"
# (not "://"). Only the key and its separator are matched, so a key that names
# no secret never swallows text in which the next key starts.
# A name starts only where a run of name characters starts, and is taken
# possessively, so "token a.a.a.a..." is one pass however long (no ReDoS).
_KEY = re.compile(
    r"""(?<![\w.\-])(?:[bB](?=['"]))?(?P<quote>\\?["']?)(?P<name>[A-Za-z_][\w.\-]*+)(?P=quote)"""
    r"""\s*(?:=|:(?!//))\s*"""
)
_VALUE = re.compile(
    "|".join(
        (
            r'b?"(?:[^"\\]|\\.)*"',  # "double quoted", escapes honoured
            r"b?'(?:[^'\\]|\\.)*'",  # 'single quoted'
            r'\\"(?:[^"\\]|\\[^"])*\\"',  # \"quoted inside a quoted string\"
            # bare, keeping an HTTP auth scheme in front of its credentials
            r"""(?P<scheme>(?:bearer|basic|digest|token)\s+)?[^\s&;,'"]+""",
            r"""\\?["'].*""",  # a quote that never closes: everything after it
        )
    ),
    re.IGNORECASE | re.DOTALL,
)
_AUTH_SCHEME = re.compile(r"(?i)\b((?:bearer|basic)\s+)([^\s'\"]{4,})")
# camelCase and an acronym before a word: "accessToken", "DBPassword" (DB, Password).
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


_INDEX_ABOVE: Final = 64  # registries larger than this are searched through an index


class _SecretRegistry:
    """Bounded, thread-safe set of values to mask.

    Lookups use an immutable snapshot rebuilt lazily after a change: the
    values longest first (so a secret containing another is masked whole)
    and, for large registries, an index by first ``MIN_SECRET_LENGTH``
    characters so a string is checked against the few candidates it could
    contain rather than against every value. (One regex alternation of
    thousands of literals is far slower than either.)
    """

    __slots__ = ("_dirty", "_lock", "_snapshot", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._snapshot: tuple[tuple[str, ...], dict[str, tuple[str, ...]] | None] = ((), None)
        self._dirty = False

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            while len(self._values) > MAX_SECRETS:
                self._values.popitem(last=False)
            self._dirty = True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._snapshot = ((), None)
            self._dirty = False

    def _current(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]] | None]:
        if not self._dirty:
            return self._snapshot
        with self._lock:
            if self._dirty:
                ordered = tuple(sorted(self._values, key=len, reverse=True))
                index: dict[str, tuple[str, ...]] | None = None
                if len(ordered) > _INDEX_ABOVE:
                    grouped: dict[str, list[str]] = {}
                    for value in ordered:
                        grouped.setdefault(value[:MIN_SECRET_LENGTH], []).append(value)
                    index = {gram: tuple(values) for gram, values in grouped.items()}
                self._snapshot = (ordered, index)
                self._dirty = False
            return self._snapshot

    def scrub(self, text: str) -> str:
        ordered, index = self._current()
        if not ordered or len(text) < MIN_SECRET_LENGTH:
            return text
        if index is None:
            candidates: tuple[str, ...] | list[str] = ordered
        else:
            grams = {text[i : i + MIN_SECRET_LENGTH] for i in range(len(text) - 3)}
            found = [v for gram in grams & index.keys() for v in index[gram]]
            if not found:
                return text
            candidates = sorted(found, key=len, reverse=True)
        for value in candidates:
            if value in text:
                text = text.replace(value, MASK)
        return text


_SECRETS = _SecretRegistry()


def register_secret(value: str) -> bool:
    """Mask ``value`` wherever it appears in a log event from now on.

    Returns False (and registers nothing) for values shorter than
    ``MIN_SECRET_LENGTH``. At most ``MAX_SECRETS`` values are kept.
    """
    if not isinstance(value, str):
        raise ValidationError("value", "must be a string")
    if len(value) < MIN_SECRET_LENGTH:
        return False
    _SECRETS.add(value)
    return True


def clear_secrets() -> None:
    """Forget every registered secret (for tests and secret rotation)."""
    _SECRETS.clear()


@functools.lru_cache(maxsize=1024)
def _is_sensitive_key(key: str) -> bool:
    words = _NON_ALNUM.split(_CAMEL_BOUNDARY.sub("_", key).lower())
    words = [w for w in words if w]
    if any(w in _SENSITIVE_WORDS for w in words):
        return True
    if "".join(words) in _SENSITIVE_WORDS:
        return True
    return any(pair in _SENSITIVE_PAIRS for pair in itertools.pairwise(words))


_EXCEPTION_NAME: Final = re.compile(r"[a-z0-9](?:Error|Exception|Warning)\Z")
"""A CamelCase name ending in Error, Exception or Warning: an exception type's."""


def _names_an_error(key: re.Match[str], name: str) -> bool:
    """``InvalidPasswordError: password authentication failed``: an exception's
    name then ``:`` is not a key; what follows is the error's text."""
    return _EXCEPTION_NAME.search(name) is not None and "=" not in key.group()


@functools.lru_cache(maxsize=1024)
def _is_secret_name(name: str) -> bool:
    """A key in free text that names a secret: a sensitive key, or one that ends in a
    sensitive word written together with its prefix (``PGPASSWORD``, ``xapikey``)."""
    if _is_sensitive_key(name):
        return True
    joined = _NON_ALNUM.sub("", name.lower())
    return joined.endswith(_SENSITIVE_ENDINGS)


def _mask_keyed(text: str) -> str:
    """Mask the value after every key in ``text`` that names a secret."""
    parts: list[str] = []
    done = 0  # text[:done] is settled
    key = _KEY.search(text)
    while key is not None:
        name = key.group("name")
        value = (
            _VALUE.match(text, key.end())
            if _is_secret_name(name) and not _names_an_error(key, name)
            else None
        )
        if value is None:
            key = _KEY.search(text, key.end())
            continue
        parts.append(text[done : key.end()])
        parts.append((value.group("scheme") or "") + MASK)
        done = value.end()
        key = _KEY.search(text, done)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def redact_text(text: str) -> str:
    """Mask secrets in free text; the one redactor behind logs, health output and the CLI.

    Masks, in this order: every value registered with ``register_secret``; DSN
    passwords (``scheme://user:***@host``); credentials after ``Bearer``/``Basic``;
    and the value of every key that names a secret, written ``key=value``,
    ``key: value``, ``'key': 'value'`` or ``"key": "value"`` (``db_password=``,
    ``client_secret=``, ``PGPASSWORD=``, ``Authorization: Bearer ...``).
    """
    text = _SECRETS.scrub(text)
    if "://" in text:
        text = _DSN_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
    folded = text.casefold()
    if not any(hint in folded for hint in _SECRET_HINTS):
        return text
    text = _AUTH_SCHEME.sub(rf"\g<1>{MASK}", text)
    return _mask_keyed(text)


_PLAIN_SCALARS = (bool, int, float, type(None))


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, Mapping):
        return {k: MASK if _sensitive(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
        cleaned = redact_text(text)
        return value if cleaned == text else cleaned
    # Any other object is rendered by repr() or str() downstream: if either
    # would show something to mask, replace the object with its masked repr.
    shown = repr(value)
    cleaned = redact_text(shown)
    if cleaned != shown:
        return cleaned
    as_text = str(value)
    cleaned = redact_text(as_text)
    return value if cleaned == as_text else cleaned


def _sensitive(key: object) -> bool:
    return isinstance(key, str) and _is_sensitive_key(key)


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in ``event_dict`` (keys, DSNs, registered values).

    Values under sensitive keys (password, secret, token, api_key, authorization,
    cookie, ...) become ``MASK`` whatever their type; strings anywhere (nested
    dicts and lists too) have DSN passwords and registered secrets masked.
    """
    given: object = event_dict  # placed after a renderer, it would be a str
    if not isinstance(given, MutableMapping):
        return event_dict
    for key, value in list(event_dict.items()):
        if _sensitive(key):
            event_dict[key] = MASK
        else:
            cleaned = _redact_value(value)
            if cleaned is not value:
                event_dict[key] = cleaned
    return event_dict


_KV_RENDERER: Final = structlog.processors.KeyValueRenderer(
    key_order=["event"], drop_missing=True, sort_keys=True
)


def _to_stdlib(method_name: str, event_dict: EventDict) -> None:
    level = logging.getLevelNamesMapping().get(method_name.upper(), logging.INFO)
    if method_name == "exception":
        level = logging.ERROR
    component = event_dict.get("component")
    std = logging.getLogger(f"buttress.{component}" if component else "buttress")
    if std.isEnabledFor(level):
        std.log(level, "%s", _KV_RENDERER(None, method_name, dict(event_dict)))


def _redacting_pipeline(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
    """Run the *current* global structlog processors with redaction around them.

    Redacts first (so user processors such as error reporters never see a
    secret) and again just before the final renderer (so text added on the
    way, e.g. formatted exceptions, is covered too).
    """
    event_dict = redact(logger, method_name, event_dict)
    if not structlog.is_configured():
        # An application that never set structlog up gets buttress's events
        # through stdlib logging ("buttress.<component>" loggers): silent below
        # WARNING by default, on stderr, and routed wherever its handlers say.
        _to_stdlib(method_name, event_dict)
        raise structlog.DropEvent
    processors = structlog.get_config()["processors"]
    if not processors:
        return event_dict
    *head, last = processors
    result: Any = event_dict
    for processor in head:
        result = processor(logger, method_name, result)
    if head and isinstance(result, MutableMapping):
        result = redact(logger, method_name, result)
    return last(logger, method_name, result)


def get_logger(component: str, **bound: object) -> FilteringBoundLogger:
    """A structlog logger bound with ``component=component`` (and ``bound``) that always redacts.

    It honours the application's structlog configuration (logger factory,
    wrapper class, context class and processors, read at each call) and runs
    ``redact`` around those processors, even if the application never added it.
    """
    if not isinstance(component, str) or not component:
        raise ValidationError("component", "must be a non-empty string")
    initial: dict[str, Any] = {"component": component, **bound}
    proxy = structlog.wrap_logger(
        None,
        processors=[_redacting_pipeline],
        logger_factory_args=(f"buttress.{component}",),
        **initial,
    )
    return cast(FilteringBoundLogger, proxy)


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    return value


def log_api_error(
    error: BaseException,
    *,
    method: str,
    path: str,
    status: int,
    request_id: str | None = None,
    user_id: str | None = None,
    logger: Any = None,
    **fields: object,
) -> None:
    """Log one failed API request as ``api_error``: what failed, where, for whom.

    ``status`` 500 and above logs at ERROR, anything lower at WARNING. The
    path loses its query string (tokens travel there); the exception is
    logged by type (with a ``ContextualError``'s category, severity,
    retryable verdict and error code), never by its message, which may
    carry SQL, row values or a DSN. ``logger`` is any structlog logger, e.g.
    one bound per request (``get_logger("api", request_id=...)``); every
    field passes the usual redaction.
    """
    _check_text("method", method)
    _check_text("path", path)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValidationError("status", "must be an HTTP status code, 100-599")
    if not isinstance(error, BaseException):
        raise ValidationError("error", "must be an exception instance")
    described: dict[str, object] = {}
    error_type = getattr(error, "error_type", None)
    category = getattr(error, "category", None)
    if isinstance(error_type, str) and category is not None:  # a ContextualError
        described = {
            "error_type": error_type,
            "category": str(getattr(category, "value", category)),
            "severity": str(getattr(getattr(error, "severity", None), "value", None)),
            "retryable": bool(getattr(error, "retryable", False)),
            "error_code": getattr(error, "error_code", None),
        }
    else:
        kind = type(error)
        described["error_type"] = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
    target = logger if logger is not None else get_logger("api")
    emit = target.error if status >= 500 else target.warning
    emit(
        "api_error",
        method=method.upper(),
        path=path.split("?", 1)[0].split("#", 1)[0],
        status=status,
        # None leaves a value the logger is bound with (per request) in place
        **{k: v for k, v in (("request_id", request_id), ("user_id", user_id)) if v is not None},
        **described,
        **fields,
    )


def log_user_action(
    action: str,
    *,
    user_id: str,
    outcome: str = "success",
    target: str | None = None,
    logger: Any = None,
    **fields: object,
) -> None:
    """Log what a user did as ``user_action`` (INFO; WARNING when ``outcome`` is
    not ``"success"``): ``action`` (``"invoice.refund"``), who, on what, how it
    ended. Sensitive fields are redacted like every buttress log field."""
    _check_text("action", action)
    _check_text("user_id", user_id)
    _check_text("outcome", outcome)
    if target is not None:
        _check_text("target", target)
    chosen = logger if logger is not None else get_logger("audit")
    emit = chosen.info if outcome == "success" else chosen.warning
    emit("user_action", action=action, user_id=user_id, outcome=outcome, target=target, **fields)


_HANDLER_MARK: Final = "_buttress_handler"


def _parse_level(level: str | int) -> int:
    if isinstance(level, bool):
        raise ValidationError("level", "must be a level name or number")
    if isinstance(level, int):
        if level < 0:
            raise ValidationError("level", "must be >= 0")
        return level
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.upper())
        if number is not None:
            return number
        raise ValidationError("level", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    raise ValidationError("level", "must be a level name or number")


def configure_logging(
    *, json: bool = False, level: str | int = "INFO", stream: IO[str] | None = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr), redacted, as JSON or text.

    Replaces structlog's global configuration and installs one handler on the
    root stdlib logger (replacing the one a previous call installed).
    """
    number = _parse_level(level)
    target = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(target)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        cache_logger_on_first_use=False,
    )
