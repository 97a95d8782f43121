"""Every secret pattern the docs promise, one row each, and the docs checked against the rows.

``PATTERNS`` is the single table: each row is a documented pattern with an input
only that pattern masks and the text expected after redaction. The tests below
run every row, and read docs/logging.md and docs/backends.md for the lists they
promise: a pattern documented without a row, or a row for a pattern the docs do
not list, fails. (Removing ``pwd`` from a regex or ``credential`` from the word
list is then caught by that row.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from buttress.backends import redact_dsn
from buttress.backends._dsn import parse_dsn, scrub
from buttress.log import MASK, redact, redact_text

DOCS = Path(__file__).resolve().parents[1] / "docs"

# Kinds of pattern, each with the docs page and the sentence that lists it.
KEY_WORD = "sensitive word"  # a word of a key (logging.md)
KEY_PAIR = "sensitive pair"  # two neighbouring words of a key (logging.md)
ASSIGNED = "keyed form"  # how a key and its value are written, in any string (logging.md)
JOINED = "joined key"  # a key ending in a sensitive word run together (logging.md)
AUTH_SCHEME = "auth scheme"  # in any string (logging.md)
DSN_USERINFO = "DSN password"  # in any string (logging.md)
DSN_QUERY = "DSN query"  # redact_dsn's query parameters (backends.md)


class Pattern(NamedTuple):
    kind: str
    name: str  # as the docs write it
    example: str  # a key (KEY_WORD, KEY_PAIR) or a string that only this pattern masks
    expected: str  # the string after redaction; for keys, the key is masked whole


# The values are unusual on purpose: another test may have registered "hunter2"
# as a secret, which the registry would mask whatever the pattern does.
PATTERNS: tuple[Pattern, ...] = (
    # sensitive words: the word alone as a key (nothing else can match it)
    *(
        Pattern(KEY_WORD, word, word, MASK)
        for word in (
            "password",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "token",
            "apikey",
            "privatekey",
            "authorization",
            "cookie",
            "credential",
            "credentials",
        )
    ),
    # sensitive pairs: keys whose words run together ("xapikey") are no sensitive word
    Pattern(KEY_PAIR, "api key", "X-Api-Key", MASK),
    Pattern(KEY_PAIR, "private key", "ssh_private_key", MASK),
    # the forms a keyed secret is written in, in free text (example key: password)
    Pattern(
        ASSIGNED, "key=value", "db password=Zq9-v4l port=5432", f"db password={MASK} port=5432"
    ),
    Pattern(
        ASSIGNED, "key: value", "db password: Zq9-v4l port=5432", f"db password: {MASK} port=5432"
    ),
    Pattern(
        ASSIGNED,
        "'key': 'value'",
        "{'password': 'Zq9-v4l', 'user': 'app'}",
        f"{{'password': {MASK}, 'user': 'app'}}",
    ),
    Pattern(ASSIGNED, '"key": "value"', '{"password": "Zq9-v4l"}', f'{{"password": {MASK}}}'),
    Pattern(ASSIGNED, "b'key': b'value'", "{b'password': b'Zq9-v4l'}", f"{{b'password': {MASK}}}"),
    Pattern(
        ASSIGNED,
        '\\"key\\": \\"value\\"',
        '"{\\"password\\": \\"Zq9-v4l\\"}"',
        f'"{{\\"password\\": {MASK}}}"',
    ),
    # keys that end in a sensitive word run together with their prefix
    *(
        Pattern(JOINED, key, f"env {key}=Zq9-v4l rest", f"env {key}={MASK} rest")
        for key in ("PGPASSWORD", "MYSQL_PWD", "xapikey")
    ),
    # HTTP credentials
    Pattern(AUTH_SCHEME, "Bearer", "sent Bearer eyJhbGciOi.Zq9", f"sent Bearer {MASK}"),
    Pattern(AUTH_SCHEME, "Basic", "sent Basic dXNlcjpacTk=", f"sent Basic {MASK}"),
    # DSN user-info
    Pattern(
        DSN_USERINFO,
        "scheme://user:PASSWORD@host",
        "to postgresql://app:Zq9-pw@db.internal/prod",
        f"to postgresql://app:{MASK}@db.internal/prod",
    ),
    # redact_dsn: query parameters whose name contains one of these (examples hit one each)
    *(
        Pattern(
            DSN_QUERY,
            part,
            f"postgresql://db/app?sslmode=require&{key}=Zq9-v4l&application_name=x",
            f"postgresql://db/app?sslmode=require&{key}={MASK}&application_name=x",
        )
        for part, key in (
            ("pass", "sslpassword"),
            ("pwd", "PWD"),
            ("secret", "client_secret"),
            ("token", "access_token"),
        )
    ),
)


def _rows(*kinds: str) -> list[Pattern]:
    return [row for row in PATTERNS if row.kind in kinds]


def _id(row: Pattern) -> str:
    return f"{row.kind}:{row.name}"


@pytest.mark.parametrize("row", _rows(KEY_WORD, KEY_PAIR), ids=_id)
def test_a_sensitive_key_is_masked_whole(row: Pattern) -> None:
    event = {row.example: {"nested": "Zq9-v4l"}, "note": "plain", "event": "e"}
    redacted = redact(None, "info", event)
    assert redacted == {row.example: row.expected, "note": "plain", "event": "e"}
    # At any depth, too.
    nested = redact(None, "info", {"outer": [{row.example: 42}], "event": "e"})
    assert nested["outer"] == [{row.example: MASK}]


@pytest.mark.parametrize("row", _rows(KEY_WORD, KEY_PAIR), ids=_id)
def test_a_sensitive_key_in_free_text_masks_its_value(row: Pattern) -> None:
    text = f"db {row.example}=Zq9-v4l port=5432"
    assert redact_text(text) == f"db {row.example}={MASK} port=5432"
    assert redact_text(text.upper()) == f"db {row.example}={MASK} port=5432".upper()


@pytest.mark.parametrize("row", _rows(ASSIGNED, JOINED, AUTH_SCHEME, DSN_USERINFO), ids=_id)
def test_a_secret_in_a_string_is_masked(row: Pattern) -> None:
    assert redact_text(row.example) == row.expected
    assert redact(None, "info", {"note": row.example, "event": "e"})["note"] == row.expected
    if row.kind != DSN_USERINFO:  # any case
        assert redact_text(row.example.upper()) == row.expected.upper()


@pytest.mark.parametrize("row", _rows(DSN_QUERY), ids=_id)
def test_redact_dsn_masks_a_secret_query_parameter(row: Pattern) -> None:
    assert redact_dsn(row.example) == row.expected
    # The same names make the value one of the DSN's secrets, which every error
    # message and usage error is scrubbed of (a driver quoting it is masked).
    parsed = parse_dsn(row.example)
    assert parsed.secrets == ("Zq9-v4l",)
    assert (
        scrub("driver said: bad value Zq9-v4l", parsed.secrets) == f"driver said: bad value {MASK}"
    )


def test_a_quoted_value_is_masked_whole() -> None:
    assert redact_text("password='two Zq9 words' host=db") == f"password={MASK} host=db"
    assert redact_text('token="two Zq9 words" host=db') == f"token={MASK} host=db"


# -- the docs, read for what they promise ----------------------------------------------------------


def _prose(page: str) -> str:
    """The page as one line of prose: bullets and wrapped lines joined by single spaces."""
    return re.sub(r"\s+", " ", (DOCS / page).read_text(encoding="utf-8"))


def _listed(text: str, before: str, after: str) -> list[str]:
    """The `code` items between ``before`` and the first ``after`` that follows it."""
    match = re.search(re.escape(before) + r"(.*?)" + re.escape(after), text)
    assert match is not None, f"docs no longer say {before!r} ... {after!r}: update this test"
    return re.findall(r"`([^`]+)`", match.group(1))


def documented() -> set[tuple[str, str]]:
    logging = _prose("logging.md")
    backends = _prose("backends.md")
    promised = {
        KEY_WORD: _listed(logging, "is a sensitive word:", "; or when"),
        KEY_PAIR: _listed(logging, "are a sensitive pair:", "."),
        ASSIGNED: _listed(logging, "), written", "(JSON inside a string)"),
        JOINED: _listed(logging, "run together with what precedes it (", ")"),
        AUTH_SCHEME: _listed(logging, "after the schemes", ";"),
        DSN_USERINFO: _listed(logging, "DSN passwords:", "→"),
        DSN_QUERY: _listed(backends, "query parameters whose name contains", ", in any case"),
    }
    for kind, names in promised.items():
        assert names, f"no {kind} patterns found in the docs"
    return {(kind, name) for kind, names in promised.items() for name in names}


def test_every_documented_pattern_has_a_row_and_every_row_is_documented() -> None:
    rows = {(row.kind, row.name) for row in PATTERNS}
    assert len(rows) == len(PATTERNS), "a pattern has two rows"
    docs = documented()
    assert docs - rows == set(), "documented but untested: add a row to PATTERNS"
    assert rows - docs == set(), "tested but not documented: list it in the docs"


def test_the_documented_key_examples_match_and_the_counter_examples_do_not() -> None:
    logging = _prose("logging.md")
    matching = _listed(logging, "are a sensitive pair: `api key`, `private key`.", "all match")
    not_matching = _listed(logging, "all match;", "do not")
    assert matching
    assert not_matching
    for key in matching:
        assert redact(None, "info", {key: "v", "event": "e"})[key] == MASK, key
    for key in not_matching:
        assert redact(None, "info", {key: "v", "event": "e"})[key] == "v", key
