"""The one redactor: a secret written in any supported form, inside any text, never survives.

Each form is how secrets really reach an error message or a log line: an HTTP
header, a Python or JSON mapping, an environment-style assignment, a DSN, a
value registered by ``ConfigStore`` or by opening a backend. The property
embeds a random secret in random text in each form and runs every path that
shows text: ``redact_text``, the health scrubber, the structlog processor.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from buttress import connect
from buttress._safe import safe_error_message, scrub
from buttress.errors import BackendError
from buttress.log import MASK, clear_secrets, redact, redact_text, register_secret

# A bare value runs to whitespace, '&', ';' or ',' (and a quoted one to its quote), so
# secrets here avoid those, '@' and '/' (DSN syntax) and '*' (the mask itself).
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.~+!$%^()[]{}<>|?=:"
secrets = st.text(alphabet=SECRET_ALPHABET, min_size=8, max_size=40)
surrounding = st.text(max_size=60)

FORMS: dict[str, Callable[[str], str]] = {
    "Authorization header": lambda s: f"Authorization: Bearer {s}",
    "bare Bearer": lambda s: f"sent Bearer {s}",
    "Basic credentials": lambda s: f"authorization=Basic {s}",
    "python dict": lambda s: f"{{'password': '{s}', 'user': 'app'}}",
    "python dict of bytes": lambda s: f"{{b'password': b'{s}'}}",
    "JSON": lambda s: f'{{"password": "{s}", "user": "app"}}',
    "JSON without spaces": lambda s: f'{{"client_secret":"{s}"}}',
    "JSON inside a string": lambda s: f'"{{\\"access_token\\": \\"{s}\\"}}"',
    "db_password=": lambda s: f"db_password={s}",
    "client_secret=": lambda s: f"client_secret={s}",
    "access_token=": lambda s: f"access_token={s}",
    "api_key=": lambda s: f"api_key={s}",
    "PGPASSWORD=": lambda s: f"PGPASSWORD={s}",
    "MYSQL_PWD=": lambda s: f"MYSQL_PWD={s}",
    "quoted libpq": lambda s: f"host=db password='{s}' port=5432",
    "api_key: value": lambda s: f"api_key: {s}",
    "X-Api-Key header": lambda s: f"X-Api-Key: {s}",
    "URL query": lambda s: f"https://api.example.com/v1?user=app&access_token={s}&page=2",
    "DSN user-info": lambda s: f"postgresql://app:{s}@db.internal:5432/prod",
}

PATHS: dict[str, Callable[[str], str]] = {
    "redact_text": redact_text,
    "health scrub": lambda text: scrub(text, limit=10_000),
    "exception message": lambda text: safe_error_message(RuntimeError(text)),
    "log event": lambda text: str(redact(None, "info", {"event": "e", "note": text})["note"]),
}


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


@pytest.mark.parametrize("form", FORMS, ids=str)
@settings(max_examples=400, deadline=None)
@given(secret=secrets, before=surrounding, after=surrounding)
def test_a_secret_in_any_form_never_survives(
    form: str, secret: str, before: str, after: str
) -> None:
    written = FORMS[form](secret)
    # The secret must not also be written elsewhere (in the surrounding text or in
    # the form itself: a secret "password" is also the key of the dict form).
    assume(secret not in before and secret not in after and secret not in FORMS[form](""))
    text = f"{before} {written} {after}"
    for path, shown in PATHS.items():
        assert secret not in shown(text), (form, path)


@settings(max_examples=400, deadline=None)
@given(secret=secrets, before=surrounding, after=surrounding)
def test_a_registered_value_never_survives_anywhere(secret: str, before: str, after: str) -> None:
    assume(secret not in before + after)
    register_secret(secret)
    for text in (before + secret + after, f"{before}{secret}{secret}{after}"):
        for path, shown in PATHS.items():
            assert secret not in shown(text), path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJ0eXAi.Zq9", "Authorization: Bearer ***"),
        ("{'password': 'Zq9-v4l', 'user': 'app'}", "{'password': ***, 'user': 'app'}"),
        ('{"password": "Zq9-v4l"}', '{"password": ***}'),
        ("PGPASSWORD=Zq9-v4l psql", "PGPASSWORD=*** psql"),
        ("client_secret=Zq9-v4l&x=1", "client_secret=***&x=1"),
    ],
)
def test_the_forms_keep_their_key_and_lose_only_the_value(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PasswordError=hunter2", f"PasswordError={MASK}"),  # "=": a key after all
        ("AuthenticationError: token=abc123", f"AuthenticationError: token={MASK}"),
        (
            "InvalidPasswordError: postgresql://u:pw@h/db",
            f"InvalidPasswordError: postgresql://u:{MASK}@h/db",
        ),
    ],
)
def test_after_an_exception_name_secrets_are_still_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tokens=5 author=bob secretary=ann",
        "ConnectionError: connection refused by db.internal:5432",
        "see https://example.com/a:b",
        "max_tokens: 100",
        # An exception's name is not a key: asyncpg's wrong-password error.
        'InvalidPasswordError: password authentication failed for user "postgres"',
        "TokenExpiredError: the session ended at 12:00",
    ],
)
def test_words_that_only_look_like_secrets_are_kept(text: str) -> None:
    assert redact_text(text) == text


async def test_opening_a_backend_registers_its_password_even_when_the_open_fails() -> None:
    password = "Zq9-dsn-password-4711"
    encoded = "Zq9%2Fdsn%40pass-4711"  # '/' and '@' percent-encoded in the DSN
    with pytest.raises(BackendError):
        await connect(f"postgresql://app:{password}@127.0.0.1:1/db", connect_timeout=0.5)
    with pytest.raises(BackendError):
        await connect(f"postgresql://app:{encoded}@127.0.0.1:1/db", connect_timeout=0.5)
    # The raw value now masks wherever it appears, not only inside a DSN.
    assert redact_text(f"driver said: auth failed for {password}") == (
        f"driver said: auth failed for {MASK}"
    )
    assert redact_text("got Zq9/dsn@pass-4711 back") == f"got {MASK} back"
    assert redact_text(f"echo {encoded}") == f"echo {MASK}"


@pytest.mark.postgres
async def test_a_connected_backend_password_is_masked_in_free_text(postgres_dsn: str) -> None:
    from urllib.parse import urlsplit

    password = urlsplit(postgres_dsn).password
    assert password
    async with connect(postgres_dsn):
        assert password not in redact_text(f"the server said {password!r} was wrong")


@pytest.mark.parametrize(
    "text",
    [
        "token " + "a." * 20_000,  # a dotted run after a hint: each dot used to restart the key
        "token " + "a-" * 20_000,
        "token '" + "a." * 20_000,
        "token " + '\\"a.' * 20_000,
        "a." * 20_000 + "://",  # a dotted run before "://": each dot restarted the scheme
        "password" + " " * 40_000 + "x",
        "x://u:" + "p:" * 20_000,
    ],
    ids=["dots", "hyphens", "quoted dots", "escaped quotes", "scheme dots", "spaces", "colons"],
)
def test_redaction_is_linear_in_hostile_text(text: str) -> None:
    # Log lines carry request paths and headers: 40 KB of chosen text took 30 s
    # (quadratic backtracking) before names and schemes were matched possessively.
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 2.0
