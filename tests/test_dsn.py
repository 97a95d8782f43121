"""DSN parsing and redaction: schemes, paths, ports, and that secrets never show."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from buttress.backends import redact_dsn
from buttress.backends._dsn import parse_dsn, scrub
from buttress.errors import InvalidDSNError, ValidationError

passwords = st.text(min_size=4, max_size=40).filter(lambda s: s.strip() != "")
network_schemes = st.sampled_from(["postgresql", "postgres", "redis", "rediss"])


@pytest.mark.parametrize(
    ("dsn", "kind", "database"),
    [
        ("memory://", "memory", None),
        ("sqlite://", "sqlite", ":memory:"),
        ("sqlite:///:memory:", "sqlite", ":memory:"),
        ("sqlite:///app.db", "sqlite", "app.db"),
        ("sqlite:///data/app.db", "sqlite", "data/app.db"),
        ("sqlite:////var/lib/app.db", "sqlite", "/var/lib/app.db"),
        ("sqlite:///with%20space.db", "sqlite", "with space.db"),
        ("postgresql://u:p@db.example:6543/app", "postgresql", "app"),
        ("postgres://u@db/app", "postgresql", "app"),
        ("redis://localhost:6379/2", "redis", "2"),
        ("rediss://:p@cache.example", "redis", None),
    ],
)
def test_parse_kinds_and_databases(dsn: str, kind: str, database: str | None) -> None:
    parsed = parse_dsn(dsn)
    assert parsed.kind == kind
    assert parsed.database == database


@pytest.mark.parametrize(
    ("dsn", "host", "port"),
    [
        ("postgresql://u:p@db.example:6543/app", "db.example", 6543),
        ("postgresql://db.example/app", "db.example", 5432),
        ("postgresql:///app?host=/run/postgresql", "/run/postgresql", 5432),
        ("postgresql://h1:5433,h2:5434/app", "h1", 5433),
        ("postgresql://[::1]:5439/app", "::1", 5439),
        ("redis://:secret@cache:6380/0", "cache", 6380),
        ("redis://cache", "cache", 6379),
        ("redis://", "localhost", 6379),
    ],
)
def test_parse_host_and_port(dsn: str, host: str, port: int) -> None:
    parsed = parse_dsn(dsn)
    assert (parsed.host, parsed.port) == (host, port)
    assert parsed.address == f"{host}:{port}"


def test_parse_user_and_percent_encoded_password() -> None:
    parsed = parse_dsn("postgresql://app%40corp:p%40ss%2Fw%3Ard@db/app")
    assert parsed.user == "app@corp"
    assert parsed.password == "p@ss/w:rd"
    assert parsed.secrets == ("p@ss/w:rd",)


def test_unknown_scheme_names_it_and_the_supported_ones() -> None:
    with pytest.raises(InvalidDSNError) as info:
        parse_dsn("mysql://root:hunter2@db/app")
    message = str(info.value)
    assert "'mysql'" in message
    for scheme in ("memory://", "sqlite://", "postgresql://", "redis://"):
        assert scheme in message
    assert "hunter2" not in message
    assert info.value.field == "dsn"
    assert isinstance(info.value, ValidationError)


@pytest.mark.parametrize("dsn", ["", "hunter2", "db.example:5432", "://x", "1abc://x"])
def test_missing_scheme_is_refused_without_echoing_the_input(dsn: str) -> None:
    with pytest.raises(InvalidDSNError, match="must start with a scheme") as info:
        parse_dsn(dsn)
    if dsn:
        assert dsn not in str(info.value)


def test_non_string_dsn_is_refused() -> None:
    with pytest.raises(InvalidDSNError, match="must be a string"):
        parse_dsn(42)  # type: ignore[arg-type]  # checking the runtime guard


@pytest.mark.parametrize(
    ("dsn", "rule"),
    [
        ("memory://somewhere", "takes no host"),
        ("sqlite://host/app.db", "take no host"),
        ("sqlite:///app.db?mode=ro", "no query string"),
        ("postgresql://db:notaport/app", "port must be a number"),
        ("postgresql://db:70000/app", "port must be a number"),
        ("redis://cache/not-a-number", "must be a number"),
    ],
)
def test_malformed_dsns(dsn: str, rule: str) -> None:
    with pytest.raises(InvalidDSNError, match=rule):
        parse_dsn(dsn)


def test_unencoded_special_characters_in_password_are_refused_without_echo() -> None:
    with pytest.raises(InvalidDSNError, match="percent-encoded") as info:
        parse_dsn("postgresql://app:pa/ss@w0rd@db/app")
    assert "pa/ss" not in str(info.value)
    assert "w0rd" not in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://db/app?password=s3cret&sslmode=require",
         "postgresql://db/app?password=***&sslmode=require"),
        ("redis://cache/0?auth_token=s3cret", "redis://cache/0?auth_token=***"),
        ("sqlite:////var/app.db", "sqlite:////var/app.db"),
        ("memory://", "memory://"),
        ("not a dsn", "***"),
        ("", ""),
    ],
)  # fmt: skip
def test_redact_dsn_examples(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


def test_parsed_dsn_repr_is_redacted() -> None:
    parsed = parse_dsn("postgresql://app:s3cret@db/app")
    assert "s3cret" not in repr(parsed)
    assert "s3cret" not in str(parsed)
    assert parsed.redacted == "postgresql://app:***@db/app"


def test_scrub_masks_raw_and_quoted_forms() -> None:
    text = "failed for p@ss/1 (p%40ss%2F1, p%40ss/1)"
    assert scrub(text, ("p@ss/1",)) == "failed for *** (***, ***)"
    assert scrub("nothing here", ("",)) == "nothing here"


def _without(text: str, password: str) -> str:
    return text.replace(quote(password, safe=""), "")


@given(scheme=network_schemes, user=st.sampled_from(["", "app", "a%40b"]), password=passwords)
def test_quoted_password_never_shown(scheme: str, user: str, password: str) -> None:
    encoded = quote(password, safe="")
    dsn = f"{scheme}://{user}:{encoded}@db.example:1234/0"
    # A password that happens to spell part of the rest of the DSN cannot be told apart.
    assume(password not in _without(dsn, password) and encoded not in _without(dsn, password))
    parsed = parse_dsn(dsn)
    assert parsed.password == password
    for shown in (redact_dsn(dsn), repr(parsed), str(parsed), parsed.redacted):
        assert password not in shown
        assert encoded not in shown


@given(scheme=network_schemes, password=passwords)
def test_raw_password_never_shown_or_echoed(scheme: str, password: str) -> None:
    dsn = f"{scheme}://app:{password}@db.example:1234/0"
    assume(password not in f"{scheme}://app:@db.example:1234/0")
    assert password not in redact_dsn(dsn)
    try:
        shown = repr(parse_dsn(dsn))
    except InvalidDSNError as exc:
        shown = str(exc)
    assert password not in shown


@given(key=st.sampled_from(["password", "sslpassword", "token", "client_secret"]), value=passwords)
def test_secret_query_values_never_shown(key: str, value: str) -> None:
    encoded = quote(value, safe="")
    dsn = f"postgresql://db.example/app?sslmode=require&{key}={encoded}"
    assume(encoded not in dsn.replace(encoded, "", 1))
    redacted = redact_dsn(dsn)
    assert encoded not in redacted
    assert redacted.endswith(f"{key}=***")
    assert value in parse_dsn(dsn).secrets
