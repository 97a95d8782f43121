"""Fixed examples that kill the mutants of the redaction in buttress.log that the
pattern table and the property tests let live (scripts/mutation.py; docs/testing.md,
"Mutation testing")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.errors import ValidationError
from buttress.log import (
    MASK,
    MAX_SECRETS,
    MIN_SECRET_LENGTH,
    _SecretRegistry,
    clear_secrets,
    redact,
    redact_text,
    register_secret,
)


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def many_secrets(count: int = 70) -> None:
    """Enough registered values that the registry searches through its index."""
    for i in range(count):
        assert register_secret(f"filler-{i:03d}")


# -- the secret registry ---------------------------------------------------------------------


def test_a_fresh_registry_masks_nothing_then_what_it_is_given() -> None:
    # _SECRETS is built once at import; a fresh registry runs __init__ again.
    registry = _SecretRegistry()
    assert registry.scrub("nothing registered yet") == "nothing registered yet"
    registry.add("Zq9-secret")
    assert registry.scrub("a Zq9-secret here") == f"a {MASK} here"
    registry.clear()
    assert registry.scrub("a Zq9-secret here") == "a Zq9-secret here"


def test_the_limits_are_the_documented_ones() -> None:
    assert (MIN_SECRET_LENGTH, MAX_SECRETS) == (4, 4096)


def test_a_secret_of_exactly_the_minimum_length_is_masked_alone() -> None:
    assert register_secret("Zq9x")
    assert not register_secret("Zq9")
    assert redact_text("Zq9x") == MASK
    assert redact_text("Zq9") == "Zq9"


@pytest.mark.parametrize("indexed", [False, True])
def test_a_secret_containing_another_is_masked_whole(indexed: bool) -> None:
    # Longest first, not in reverse alphabetical order ("zzzz" sorts after "azzzz").
    if indexed:
        many_secrets()
    register_secret("zzzz")
    register_secret("azzzz")
    assert redact_text("azzzz") == MASK
    assert redact_text("key azzzz zzzz") == f"key {MASK} {MASK}"


def test_an_indexed_secret_at_the_very_end_of_a_string_is_masked() -> None:
    many_secrets()
    register_secret("Zq9x")
    assert redact_text("x Zq9x") == f"x {MASK}"
    assert redact_text("x filler-069") == f"x {MASK}"


def test_the_oldest_secret_is_forgotten_first() -> None:
    for i in range(MAX_SECRETS + 1):
        register_secret(f"old-{i:05d}")
    assert redact_text("old-00000") == "old-00000"
    assert redact_text("old-00001") == MASK


def test_register_secret_refuses_a_non_string_with_the_rule() -> None:
    with pytest.raises(ValidationError, match="must be a string") as caught:
        register_secret(b"bytes")  # type: ignore[arg-type]  # the check under test
    assert caught.value.field == "value"


# -- values other than strings ---------------------------------------------------------------


def test_bytes_are_masked_as_text_or_left_alone() -> None:
    clean = b"plain bytes"
    event = {"raw": clean, "bad": b"\xff password=Zq9 \xfe", "event": "e"}
    redacted = redact(None, "info", event)
    assert redacted["raw"] is clean
    assert redacted["bad"] == f"\ufffd password={MASK} \ufffd"


class _ShowsInRepr:
    def __repr__(self) -> str:
        return "Conn(password=Zq9-v4l, db=x)"

    def __str__(self) -> str:
        return "a connection"


class _ShowsInStr:
    def __repr__(self) -> str:
        return "<Conn>"

    def __str__(self) -> str:
        return "postgresql://app:Zq9-v4l@db/prod"


class _ShowsNothing:
    def __repr__(self) -> str:
        return "<Conn>"

    def __str__(self) -> str:
        return "a connection"


def test_an_object_is_replaced_by_its_masked_repr_or_str_only_when_they_show_a_secret() -> None:
    nothing = _ShowsNothing()
    event = {"a": _ShowsInRepr(), "b": _ShowsInStr(), "c": nothing, "event": "e"}
    redacted = redact(None, "info", event)
    assert redacted["a"] == f"Conn(password={MASK}, db=x)"
    assert redacted["b"] == f"postgresql://app:{MASK}@db/prod"
    assert redacted["c"] is nothing


# -- the patterns in free text ---------------------------------------------------------------

# (text, after redaction): each row puts one documented rule on an edge the pattern
# table in test_redaction_patterns.py does not reach.
IN_TEXT = [
    # DSN passwords, for any scheme spelling: letters, digits, "+", ".", "-", one letter
    ("to POSTGRESQL://app:Zq9@db/prod", f"to POSTGRESQL://app:{MASK}@db/prod"),
    ("to db2://app:Zq9@db/prod", f"to db2://app:{MASK}@db/prod"),
    ("to x.y://app:Zq9@db/prod", f"to x.y://app:{MASK}@db/prod"),
    ("to my-db://app:Zq9@db/prod", f"to my-db://app:{MASK}@db/prod"),
    ("to r://app:Zq9@db/prod", f"to r://app:{MASK}@db/prod"),
    ("postgresql://:Zq9@db/prod", f"postgresql://:{MASK}@db/prod"),
    # the password runs to the last "@" before a "/" or whitespace
    ("postgresql://app:Z@q9@db/prod", f"postgresql://app:{MASK}@db/prod"),
    ("postgresql://app:Zq9@db/p@x", f"postgresql://app:{MASK}@db/p@x"),
    ("postgresql://app:Zq9 x@db/prod", "postgresql://app:Zq9 x@db/prod"),
    ("postgresql://app:Zq/9@db/prod", "postgresql://app:Zq/9@db/prod"),
    # key=value: a value ends at whitespace, "&", ";", ",", or a quote; quoted
    # values (empty ones too) are masked whole
    ("Password=Zq9;Server=db", f"Password={MASK};Server=db"),
    ("password=Zq9, retrying", f"password={MASK}, retrying"),
    ("dsn=\"host=db password=Zq9\"", f"dsn=\"host=db password={MASK}\""),
    ("dsn='host=db password=Zq9'", f"dsn='host=db password={MASK}'"),
    ("password='' host=db", f"password={MASK} host=db"),
    ('password="" host=db', f"password={MASK} host=db"),
    # a key ending in a sensitive word run together with what precedes it is
    # sensitive ("mypassword", like "PGPASSWORD"); one that only starts with it is not
    ("mypassword=Zq9", f"mypassword={MASK}"),
    ("passwordless=Zq9", "passwordless=Zq9"),
    # HTTP credentials: every token68 character, and four of them are enough
    ("sent Bearer a.b_c~d+e/f=g-h", f"sent Bearer {MASK}"),
    ("sent Bearer abcd", f"sent Bearer {MASK}"),
]


@pytest.mark.parametrize(("text", "expected"), IN_TEXT)
def test_a_documented_edge_in_free_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# -- sensitive keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    # an acronym before a word, a digit before a word (camelCase boundaries)
    ["DBPassword", "JWTToken", "SSLPassword", "HTTPCookie", "s3Secret", "oauth2Token"],
)
def test_a_camel_case_key_is_split_at_acronyms_and_digits(key: str) -> None:
    assert redact(None, "info", {key: "v", "event": "e"})[key] == MASK


@pytest.mark.parametrize("key", ["MyPASSWORD", "userTOKEN", "dbSECRET"])
def test_an_all_capitals_word_after_a_lower_case_one_stays_one_word(key: str) -> None:
    # Kills the splitter that cuts before every capital ("user_T_O_K_E_N").
    assert redact(None, "info", {key: "v", "event": "e"})[key] == MASK


@pytest.mark.parametrize("key", ["user_name", "XMLHttpRequest", "IPAddress", "max_tokens"])
def test_a_key_of_several_plain_words_is_kept(key: str) -> None:
    assert redact(None, "info", {key: "v", "event": "e"})[key] == "v"


def test_registering_what_is_not_a_string_says_so() -> None:
    with pytest.raises(ValidationError) as caught:
        register_secret(42)  # type: ignore[arg-type]  # the check under test
    assert str(caught.value) == "value: must be a string"


@pytest.mark.parametrize("glue", ["db_", "1", "x"])
def test_a_dsn_glued_to_a_word_still_has_its_password_masked(glue: str) -> None:
    # The scheme may follow a letter, digit or underscore directly (no word
    # boundary): "db_postgresql://app:pw@h" must not leak "pw".
    text = f"url {glue}postgresql://app:Zq9-pw@db/app"
    assert redact_text(text) == f"url {glue}postgresql://app:{MASK}@db/app"
