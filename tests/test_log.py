"""buttress.log: redaction of keys, DSNs and registered secrets, get_logger, configure_logging."""

from __future__ import annotations

import io
import json
import logging
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from structlog.typing import EventDict, WrappedLogger

import buttress.log as blog
from buttress.errors import ValidationError
from buttress.log import (
    MASK,
    clear_secrets,
    configure_logging,
    get_logger,
    redact,
    redact_text,
    register_secret,
)


@contextmanager
def pristine_logging() -> Iterator[None]:
    """Restore structlog, the root logger and the secret registry afterwards."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    clear_secrets()
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:  # configure() would mark it configured, with stdout output
            structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
        clear_secrets()


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with pristine_logging():
        yield


def _strings(value: object) -> Iterator[str]:
    """Every string inside a logged value (keys included), however nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    else:
        yield repr(value)


def _leaks(secret: str, logs: list[EventDict]) -> bool:
    return any(secret in text for event in logs for text in _strings(event))


def _run(event: EventDict) -> EventDict:
    return redact(None, "info", dict(event))


# The redact processor on its own.


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "accessToken",
        "refresh-token",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "apikey",
        "authorization",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "credentials",
        "private_key",
    ],
)
def test_sensitive_keys_are_masked_whatever_the_value(key: str) -> None:
    for value in ("hunter22", 12345, {"nested": "x"}, ["a", "b"], None):
        assert _run({"event": "e", key: value})[key] == MASK


@pytest.mark.parametrize(
    "key", ["tokens", "author", "keyboard", "secretary", "user", "component", "url"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert _run({"event": "e", key: "plain value"})[key] == "plain value"


def test_nested_structures_are_redacted() -> None:
    event = {
        "event": "e",
        "request": {"headers": {"Authorization": "Bearer abc", "Accept": "json"}},
        "items": [{"password": "x"}, "postgresql://u:pw12@h/db", ("redis://:pw34@h",)],
    }
    out = _run(event)
    assert out["request"] == {"headers": {"Authorization": MASK, "Accept": "json"}}
    assert out["items"] == [
        {"password": MASK},
        f"postgresql://u:{MASK}@h/db",
        (f"redis://:{MASK}@h",),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:pw1@db:5432/prod", f"postgresql://app:{MASK}@db:5432/prod"),
        ("REDIS://:pw2@cache:6379/0", f"REDIS://:{MASK}@cache:6379/0"),
        ("postgres+asyncpg://u:p@ss@h/db", f"postgres+asyncpg://u:{MASK}@h/db"),
        ("failed: 'mysql://u:p:w@h' refused", f"failed: 'mysql://u:{MASK}@h' refused"),
        ("a sqlite:///tmp/app.db b", "a sqlite:///tmp/app.db b"),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
        ("postgresql://app@db/prod", "postgresql://app@db/prod"),
        ("host=db password=hunter22 user=app", f"host=db password={MASK} user=app"),
        ("dbname=x password='two words'", f"dbname=x password={MASK}"),
        (
            "https://h/cb?code=1&access_token=abc.def&x=2",
            f"https://h/cb?code=1&access_token={MASK}&x=2",
        ),
        ("csrf_token=abcd", f"csrf_token={MASK}"),
        ("Authorization: Bearer eyJhbGciOi.J9", f"Authorization: Bearer {MASK}"),
        ("nothing to hide here", "nothing to hide here"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_objects_whose_repr_leaks_are_replaced_by_masked_text() -> None:
    exc = ConnectionError("cannot reach postgresql://u:topsecret@h/db")
    out = _run({"event": "e", "error": exc, "raw": b"redis://:pw99@h", "n": 3, "ok": True})
    assert "topsecret" not in str(out["error"])
    assert "pw99" not in str(out["raw"])
    assert out["n"] == 3
    assert out["ok"] is True
    harmless = ValueError("fine")
    assert _run({"event": "e", "error": harmless})["error"] is harmless


def test_redact_passes_non_dicts_through() -> None:
    misplaced: Any = "already rendered"  # as if put after a renderer
    result: object = redact(None, "info", misplaced)
    assert result == "already rendered"


# The secret registry.


def test_registered_secret_is_masked_inside_longer_strings() -> None:
    assert register_secret("s3cr3t-value") is True
    assert _run({"event": "using s3cr3t-value!", "x": ["as=s3cr3t-value"]}) == {
        "event": f"using {MASK}!",
        "x": [f"as={MASK}"],
    }


def test_short_values_are_ignored_and_bad_types_refused() -> None:
    assert register_secret("abc") is False
    assert _run({"event": "abc"})["event"] == "abc"
    with pytest.raises(ValidationError) as info:
        register_secret(1234)  # type: ignore[arg-type]  # bad input is the point
    assert info.value.field == "value"


@pytest.mark.parametrize("filler", [0, 100])
def test_longest_secret_wins(filler: int) -> None:
    # 100 unrelated values switch the registry to its indexed lookup.
    for i in range(filler):
        register_secret(f"filler-{i:04}")
    register_secret("abcd")
    register_secret("abcdefgh")
    assert redact_text("xx abcdefgh yy abcd filler-0042") == (
        f"xx {MASK} yy {MASK} {MASK if filler else 'filler-0042'}"
    )


def test_registry_is_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blog, "MAX_SECRETS", 3)
    for value in ("first-secret", "second-secret", "third-secret", "fourth-secret"):
        register_secret(value)
    assert redact_text("first-secret") == "first-secret"
    assert redact_text("second-secret third-secret fourth-secret") == f"{MASK} {MASK} {MASK}"


def test_re_registering_refreshes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blog, "MAX_SECRETS", 2)
    register_secret("aaaa-1")
    register_secret("bbbb-2")
    register_secret("aaaa-1")
    register_secret("cccc-3")
    assert redact_text("aaaa-1 bbbb-2 cccc-3") == f"{MASK} bbbb-2 {MASK}"


def test_registry_is_thread_safe() -> None:
    def worker(n: int) -> None:
        for i in range(200):
            register_secret(f"thread{n}-secret{i}")
            redact_text(f"thread{n}-secret{i // 2}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(6):
        for i in range(200):
            assert redact_text(f"<thread{n}-secret{i}>") == f"<{MASK}>"


# get_logger and the user's structlog configuration.


def test_get_logger_binds_component_and_values() -> None:
    with capture_logs() as logs:
        get_logger("breaker", breaker="db").info("opened", failures=5)
    assert logs == [
        {
            "component": "breaker",
            "breaker": "db",
            "failures": 5,
            "event": "opened",
            "log_level": "info",
        }
    ]


@pytest.mark.parametrize("component", ["", None, 3])
def test_get_logger_refuses_bad_component(component: object) -> None:
    with pytest.raises(ValidationError) as info:
        get_logger(component)  # type: ignore[arg-type]  # bad input is the point
    assert info.value.field == "component"


def test_unconfigured_structlog_routes_through_stdlib_logging_redacted(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    structlog.reset_defaults()
    with caplog.at_level(logging.INFO, logger="buttress"):
        get_logger("config").info("loaded postgresql://u:pass-one@h/db", password="pass-two")
    [record] = [r for r in caplog.records if r.name == "buttress.config"]
    text = record.getMessage()
    assert record.levelno == logging.INFO
    assert "loaded" in text
    assert "pass-one" not in text
    assert "pass-two" not in text
    assert MASK in text
    assert capsys.readouterr().out == ""  # a library never prints to stdout on its own


def test_unconfigured_info_events_are_silent_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    structlog.reset_defaults()
    get_logger("migrations").info("migration.applied", migration="0001_init")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "0001_init" not in captured.err


def test_honours_the_users_processors_and_redacts_before_them() -> None:
    seen: list[EventDict] = []

    def add_app(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict["app"] = "shop"
        return event_dict

    def spy(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        seen.append(dict(event_dict))
        return event_dict

    def render(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
        seen.append({"rendered": json.dumps(event_dict, default=repr)})
        raise structlog.DropEvent

    structlog.configure(processors=[spy, add_app, render])
    get_logger("flags").warning("refresh", token="tok-value")
    assert seen[0] == {"component": "flags", "token": MASK, "event": "refresh"}
    assert "tok-value" not in seen[1]["rendered"]
    assert '"app": "shop"' in seen[1]["rendered"]


def test_text_added_by_the_users_processors_is_redacted_too() -> None:
    captured = structlog.testing.LogCapture()

    def add_hint(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict["hint"] = "postgresql://u:late-pw@h"
        return event_dict

    structlog.configure(processors=[add_hint, captured])
    get_logger("x").info("e")
    assert captured.entries[0]["hint"] == f"postgresql://u:{MASK}@h"


def test_users_own_loggers_are_not_touched_unless_they_add_redact() -> None:
    captured = structlog.testing.LogCapture()
    structlog.configure(processors=[captured])
    structlog.get_logger().info("e", password="visible")
    assert captured.entries[-1]["password"] == "visible"
    structlog.configure(processors=[redact, captured])
    structlog.get_logger().info("e", password="hidden")
    assert captured.entries[-1]["password"] == MASK


# configure_logging.


def test_configure_logging_json_to_stream_with_stdlib_records() -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    get_logger("health").info("checked", dsn="postgresql://u:pw-a@h/db", check="db")
    logging.getLogger("thirdparty").warning("token=pw-b leaked?")
    get_logger("health").debug("hidden below INFO")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["checked", f"token={MASK} leaked?"]
    assert lines[0]["dsn"] == f"postgresql://u:{MASK}@h/db"
    assert lines[0]["component"] == "health"
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "buttress.health"
    assert lines[0]["timestamp"].endswith("Z")
    assert "pw-a" not in stream.getvalue()
    assert "pw-b" not in stream.getvalue()


def test_configure_logging_text_and_exceptions_are_redacted() -> None:
    stream = io.StringIO()
    configure_logging(level=logging.DEBUG, stream=stream)
    register_secret("registered-123")
    try:
        raise ConnectionError("cannot reach redis://:exc-pw@h with registered-123")
    except ConnectionError:
        structlog.get_logger("app").exception("call failed")
    get_logger("x").debug("debug shown", api_key="k-123")
    out = stream.getvalue()
    assert "call failed" in out
    assert "Traceback" in out
    assert "debug shown" in out
    for secret in ("exc-pw", "registered-123", "k-123"):
        assert secret not in out


def test_configure_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    theirs = logging.NullHandler()
    root.addHandler(theirs)
    configure_logging(stream=io.StringIO())
    configure_logging(json=True, stream=io.StringIO())
    ours = [h for h in root.handlers if getattr(h, "_buttress_handler", False)]
    assert len(ours) == 1
    assert theirs in root.handlers


@pytest.mark.parametrize("level", ["LOUD", "", -1, True, 2.5])
def test_configure_logging_refuses_bad_levels(level: Any) -> None:
    with pytest.raises(ValidationError) as info:
        configure_logging(level=level)
    assert info.value.field == "level"


# Properties: a secret never reaches the captured events or the rendered output.

# For rendered output the alphabet avoids characters that renderers escape
# (so "not in the output" cannot pass merely because of escaping) and digits
# (so a secret cannot coincide with a timestamp).
_RENDER_SAFE = "".join(
    c for c in string.printable if c not in "'\"\\" and not c.isspace() and not c.isdigit()
)
any_secrets = st.text(min_size=4, max_size=24)
render_safe_secrets = st.text(alphabet=_RENDER_SAFE, min_size=4, max_size=24)
dsn_passwords = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~!$&()*+,;=%:@", min_size=4, max_size=24
)
sensitive_keys = st.sampled_from(["password", "api_key", "Authorization", "clientSecret", "token"])
HOWS = ("registered", "key", "dsn")

_QUICK = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _emit(secret: str, how: str, key: str) -> None:
    log = get_logger("prop")
    if how == "registered":
        register_secret(secret)
        log.info(f"login with {secret} done", detail={"note": [f"<{secret}>"]})
    elif how == "key":
        log.info("login", **{key: secret}, nested={key: secret, "list": [{key: secret}]})
    else:
        log.info(f"connect postgresql://app:{secret}@db.internal:5432/prod failed")


def _captured(secret: str, how: str, key: str) -> list[EventDict]:
    with pristine_logging(), capture_logs() as logs:
        _emit(secret, how, key)
    return logs


def _rendered(secret: str, how: str, key: str, *, as_json: bool) -> str:
    stream = io.StringIO()
    with pristine_logging():
        configure_logging(json=as_json, stream=stream, level="DEBUG")
        _emit(secret, how, key)
    return stream.getvalue()


def _as_dsn_password(secret: str) -> str:
    # A DSN password cannot hold "/" or whitespace unescaped.
    return "".join(c for c in secret if not c.isspace() and c != "/") + "-pw"


@_QUICK
@given(secret=any_secrets, how=st.sampled_from(HOWS), key=sensitive_keys)
def test_secret_never_in_captured_events(secret: str, how: str, key: str) -> None:
    if how == "dsn":
        secret = _as_dsn_password(secret)
    # What a perfect redaction prints: the same events with the mask as the
    # secret. A secret that this fixed text already contains proves nothing.
    expected = [event for mode in HOWS for event in _captured(MASK, mode, key)]
    if _leaks(secret, expected):
        return
    assert not _leaks(secret, _captured(secret, how, key))


@_QUICK
@given(
    secret=render_safe_secrets,
    how=st.sampled_from(HOWS),
    key=sensitive_keys,
    as_json=st.booleans(),
)
def test_secret_never_in_rendered_output(secret: str, how: str, key: str, as_json: bool) -> None:
    if how == "dsn":
        secret = _as_dsn_password(secret)
    expected = "\n".join(_rendered(MASK, mode, key, as_json=as_json) for mode in HOWS)
    if secret in expected:
        return
    output = _rendered(secret, how, key, as_json=as_json)
    assert output
    assert secret not in output


@_QUICK
@given(password=dsn_passwords)
def test_dsn_password_never_survives_redact_text(password: str) -> None:
    text = f"error: postgresql://app:{password}@db.internal/prod (retrying)"
    assert redact_text(text) == f"error: postgresql://app:{MASK}@db.internal/prod (retrying)"
