"""Messages from failing checks are safe to publish; importing stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from buttress._safe import safe_error_message, scrub, strip_reprs

secrets = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="!$%^*-_"),
    min_size=6,
    max_size=30,
)


@given(secrets)
def test_url_passwords_never_survive(secret: str) -> None:
    # e.g. "intern": it is also part of the host name, which stays in the text
    assume(secret not in "cannot connect to postgresql://app:***@db.internal:5432/prod")
    text = f"cannot connect to postgresql://app:{secret}@db.internal:5432/prod"
    assert secret not in scrub(text)
    assert "postgresql://app:***@db.internal:5432/prod" in scrub(text)


@given(secrets, st.sampled_from(["password", "PASSWORD", "token", "api_key", "secret", "pwd"]))
def test_secret_pairs_are_masked(secret: str, key: str) -> None:
    assume(secret not in f"login failed {key} for user")  # e.g. "failed": it stays in the text
    for sep in ("=", ": ", " = "):
        assert secret not in scrub(f"login failed {key}{sep}{secret} for user")


def test_long_messages_are_cut_and_whitespace_folded() -> None:
    out = scrub("a\n\n  b " + "x" * 1000)
    assert out.startswith("a b x")
    assert len(out) == 200
    assert out.endswith("…")


def test_safe_error_message_shapes() -> None:
    assert safe_error_message(ValueError("bad")) == "ValueError: bad"
    assert safe_error_message(TimeoutError()) == "TimeoutError"


@given(text=st.text(max_size=600), name=st.from_regex(r"[A-Z][A-Za-z]{0,240}", fullmatch=True))
def test_safe_error_message_is_200_characters_at_most_type_included(text: str, name: str) -> None:
    error_type = type(name, (Exception,), {})
    message = safe_error_message(error_type(text))
    assert len(message) <= 200
    if len(name) < 200:
        assert message == name or message.startswith(f"{name}: ")


def test_a_long_message_keeps_its_type_and_ends_cut() -> None:
    message = safe_error_message(RuntimeError("y" * 185 + " and more text after it"))
    assert len(message) == 200
    assert message.startswith("RuntimeError: yyy")
    assert message.endswith("…")


_POOL_REPR = (
    "<redis.asyncio.client.Redis(<redis.asyncio.connection.ConnectionPool("
    "<redis.asyncio.connection.Connection(db=0,username=<REDACTED>,host=10.0.0.7,"
    "retry=<redis.asyncio.retry.Retry object at 0x7f96a9c1c290>,"
    "socket_keepalive_options=<object object at 0x7f69523a5260>)>)>)>"
)


def test_driver_object_reprs_shrink_to_their_class_name() -> None:
    text = f"No master found : {_POOL_REPR} - ConnectionError: refused"
    assert strip_reprs(text) == "No master found : <Redis> - ConnectionError: refused"
    assert strip_reprs("at <Foo object at 0x1f> now") == "at <Foo> now"
    assert strip_reprs("cut <pkg.Conn(host=h, retry=<x.Retry(") == "cut <Conn>"  # unclosed
    assert "object at" not in scrub(f"lost {_POOL_REPR} twice {_POOL_REPR}")


@pytest.mark.parametrize(
    "text", ["a < b and c > d", "<html>", "list<int>", "x <y> (z)", "ERR <wrong> (args)"]
)
def test_text_with_angle_brackets_but_no_repr_is_kept(text: str) -> None:
    assert strip_reprs(text) == text


def test_importing_health_and_lifecycle_pulls_in_no_driver_or_framework() -> None:
    code = (
        "import sys, buttress.health, buttress.health.builtin, buttress.lifecycle, "
        "buttress.adapters.health_asgi, buttress.adapters.health_wsgi; "
        "print(sorted(m for m in ('asyncpg', 'redis', 'starlette', 'flask', 'httpx') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
