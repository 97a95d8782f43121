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


@pytest.mark.parametrize(
    ("dsn", "port"),
    [
        ("postgresql://h/db", 5432),
        ("postgres://h/db", 5432),
        ("redis://h/0", 6379),
        ("rediss://h/0", 6379),
        ("redis+cluster://h", 6379),
        ("redis+sentinel://h/mymaster", 26379),
    ],
)
def test_every_scheme_has_its_default_port(dsn: str, port: int) -> None:
    assert parse_dsn(dsn).port == port


def test_a_scheme_is_read_in_any_case() -> None:
    assert parse_dsn("PostgreSQL://h/db").scheme == "postgresql"
    assert parse_dsn("REDIS://h/0").kind == "redis"


@pytest.mark.parametrize("scheme", ["x", "my-db.v2", "mysql+aiomysql", "db2"])
def test_an_unsupported_scheme_is_named(scheme: str) -> None:
    # Any RFC 3986 scheme (a letter, then letters, digits, + . -) is read and named.
    with pytest.raises(InvalidDSNError) as caught:
        parse_dsn(f"{scheme}://h/db")
    assert str(caught.value).startswith(f"dsn: unsupported scheme {scheme!r}; supported: ")


def test_a_fragment_is_not_part_of_the_database() -> None:
    assert parse_dsn("postgresql://h/app#section").database == "app"
    assert parse_dsn("redis://h/2#x").database == "2"


def test_a_bracketed_host_with_a_stray_bracket_is_refused() -> None:
    with pytest.raises(InvalidDSNError):
        parse_dsn("postgresql://[::1]]:5432/db")
    assert parse_dsn("postgresql://[::1]:5433/db").hosts == (("::1", 5433),)


@pytest.mark.parametrize(
    "dsn",
    [
        # a value that merely mentions a secret word, before an "=" of its own
        "redis://h/0?client_name=passive=1&x=2",
        # a secret-looking name with no value, then an ordinary parameter
        "postgresql://h/db?passive&application_name=x",
        # a fragment is not a parameter
        "postgresql://h/db?ssl#passive=1",
        "postgresql://h/db?passthrough#x=1",
    ],
)
def test_redact_dsn_keeps_parameters_whose_name_is_not_secret(dsn: str) -> None:
    assert redact_dsn(dsn) == dsn


def test_redact_dsn_masks_a_secret_value_whole() -> None:
    # base64 padding: the "=" inside the value must not end the name
    assert (
        redact_dsn("postgresql://h/db?password=Zq9v==&x=1")
        == f"postgresql://h/db?password={MASK}&x=1"
    )
    # an empty value is masked too: the redacted DSN does not say it is empty
    assert redact_dsn("postgresql://h/db?password=&x=1") == f"postgresql://h/db?password={MASK}&x=1"
    # the value ends at "&" or "#"
    assert redact_dsn("redis://h/0?token=Zq9#frag") == f"redis://h/0?token={MASK}#frag"
