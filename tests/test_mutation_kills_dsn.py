"""Fixed examples that kill the mutants of buttress.backends._dsn that the parsing
and redaction tests let live (scripts/mutation.py; docs/testing.md, "Mutation
testing")."""

from __future__ import annotations

import pytest

from buttress.backends._dsn import MASK, parse_dsn, redact_dsn, scrub
from buttress.errors import InvalidDSNError


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("sqlite:///a.db?x=1", "sqlite DSNs take no query string; pass options to connect()"),
        ("sqlite:///a.db#x", "sqlite DSNs take no query string; pass options to connect()"),
        (
            "sqlite://host/a.db",
            "sqlite DSNs take no host: use sqlite:///relative.db or sqlite:////absolute/path.db",
        ),
        ("sqlite:///a%00b.db", "sqlite path must not contain NUL characters"),
        (
            "redis+sentinel://s1:26379/",
            "redis+sentinel:// needs the master's service name as its path: "
            "redis+sentinel://host:26379/mymaster[/db]",
        ),
        ("memory://x", "memory:// takes no host, path or options"),
        (
            "postgresql://a@b:pw@h/db",
            "postgresql:// user name and password must be percent-encoded "
            "(use urllib.parse.quote(password, safe='') for @ / ? # characters)",
        ),
        ("redis+cluster://h/1", "redis+cluster:// has only database 0 (Redis Cluster has one)"),
        ("redis://h:0/0", "port must be a number between 1 and 65535 (scheme redis)"),
        ("redis://h:65536/0", "port must be a number between 1 and 65535 (scheme redis)"),
    ],
)
def test_a_refused_dsn_says_exactly_which_rule(dsn: str, message: str) -> None:
    with pytest.raises(InvalidDSNError) as caught:
        parse_dsn(dsn)
    assert str(caught.value) == f"dsn: {message}"


def test_a_dsn_that_is_not_a_string_names_its_type() -> None:
    with pytest.raises(InvalidDSNError) as caught:
        parse_dsn(42)  # type: ignore[arg-type]  # the check under test
    assert str(caught.value) == "dsn: must be a string like 'sqlite:///app.db', got int"


def test_a_memory_dsn_keeps_every_field() -> None:
    parsed = parse_dsn("memory://")
    assert (parsed.scheme, parsed.kind, parsed.secret_url, parsed.redacted) == (
        "memory",
        "memory",
        "memory://",
        "memory://",
    )


def test_a_network_dsn_keeps_every_field() -> None:
    parsed = parse_dsn("postgresql://app:pw:x@DBX1:5433/Xdb?application_name=&sslmode=require#f")
    assert (parsed.scheme, parsed.kind, parsed.user, parsed.password) == (
        "postgresql",
        "postgresql",
        "app",
        "pw:x",  # everything after the first ":" is the password
    )
    got = (parsed.host, parsed.port, parsed.database, parsed.service)
    assert got == ("DBX1", 5433, "Xdb", None)
    # blank values are kept; the fragment belongs to neither the path nor the query
    assert parsed.query == (("application_name", ""), ("sslmode", "require"))


def test_a_user_without_a_password_has_none() -> None:
    parsed = parse_dsn("postgresql://app@h/db")
    assert (parsed.user, parsed.password) == ("app", None)
    empty = parse_dsn("redis://@h:6379/0")
    assert (empty.user, empty.password, empty.host) == (None, None, "h")


def test_redact_dsn_masks_up_to_the_last_at() -> None:
    assert redact_dsn("postgresql://app:p@ss@db/app") == f"postgresql://app:{MASK}@db/app"


def test_the_port_range_ends_are_accepted() -> None:
    assert parse_dsn("redis://h:1/0").port == 1
    assert parse_dsn("redis://h:65535/0").port == 65535


def test_a_sqlite_dsn_keeps_every_field() -> None:
    parsed = parse_dsn("sqlite:///app.db")
    assert (parsed.scheme, parsed.kind, parsed.secret_url, parsed.redacted) == (
        "sqlite",
        "sqlite",
        "sqlite:///app.db",
        "sqlite:///app.db",
    )
    assert parsed.database == "app.db"
    # Three slashes and nothing after them: in memory, like sqlite://.
    assert parse_dsn("sqlite:///").database == ":memory:"


def test_no_user_info_means_no_user_and_no_password() -> None:
    parsed = parse_dsn("redis://h:6379/0")
    assert parsed.user is None
    assert parsed.password is None
    assert parsed.secrets == ()


def test_libpq_host_and_port_query_parameters_are_read() -> None:
    parsed = parse_dsn("postgresql:///app?host=/var/run/postgresql&port=5433")
    assert (parsed.host, parsed.port) == ("/var/run/postgresql", 5433)
    assert parsed.hosts == (("/var/run/postgresql", 5433),)


def test_option_is_none_for_a_missing_parameter() -> None:
    parsed = parse_dsn("postgresql://h/app?sslmode=require&sslmode=verify-full")
    assert parsed.option("sslmode") == "verify-full"
    assert parsed.option("application_name") is None


@pytest.mark.parametrize(
    ("dsn", "kept"),
    [
        # a "?" or "=" inside a value, and a fragment, stay where they were
        (
            "postgresql://h/app?pgbouncer=true&application_name=a?b",
            "postgresql://h/app?application_name=a?b",
        ),
        ("postgresql://h/app?pgbouncer=x=y&sslmode=require", "postgresql://h/app?sslmode=require"),
        ("postgresql://h/app?pgbouncer=true#frag", "postgresql://h/app#frag"),
    ],
)
def test_without_query_drops_exactly_the_named_parameter(dsn: str, kept: str) -> None:
    assert parse_dsn(dsn).without_query("pgbouncer") == kept


def test_scrub_skips_an_empty_secret_and_masks_the_rest() -> None:
    assert scrub("user pw:Zq9 x", ("", "Zq9")) == f"user pw:{MASK} x"


def test_redact_dsn_of_what_is_not_a_dsn() -> None:
    assert redact_dsn("") == ""
    assert redact_dsn("not a dsn") == MASK
