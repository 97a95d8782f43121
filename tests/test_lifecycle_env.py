"""Typed environment variables: pure checks, with properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.lifecycle import EnvVar, check_env, parse_bool


@pytest.mark.parametrize(
    ("spec", "value", "ok"),
    [
        ("NAME", "x", True),
        ("NAME", "  ", False),
        (EnvVar("PORT", "int"), "8080", True),
        (EnvVar("PORT", "int"), "80.5", False),
        (EnvVar("RATIO", "float"), "0.25", True),
        (EnvVar("RATIO", "float"), "quarter", False),
        (EnvVar("DEBUG", "bool"), "Yes", True),
        (EnvVar("DEBUG", "bool"), "maybe", False),
        (EnvVar("API", "url"), "https://api.example.com/v1", True),
        (EnvVar("API", "url"), "sqlite:///app.db", True),
        (EnvVar("API", "url"), "api.example.com", False),
        (EnvVar("ENV", choices=("prod", "dev")), "prod", True),
        (EnvVar("ENV", choices=("prod", "dev")), "qa", False),
    ],
)
def test_kinds(spec: EnvVar | str, value: str, ok: bool) -> None:
    name = spec if isinstance(spec, str) else spec.name
    assert (check_env(spec, {name: value}) is None) is ok


def test_missing_and_messages_never_show_values() -> None:
    line = check_env(EnvVar("PORT", "int"), {})
    assert line == (
        "environment variable PORT is not set; set it before starting "
        "(expected: an integer, e.g. 8080)"
    )
    choice = check_env(EnvVar("APP_ENV", choices=("prod", "dev")), {"APP_ENV": "qa"})
    assert choice == (
        "environment variable APP_ENV is not valid (expected: one of prod, dev); "
        "fix its value (not shown here)"
    )
    bad = check_env(EnvVar("SECRET_PORT", "int"), {"SECRET_PORT": "hunter2"})
    assert bad is not None
    assert "hunter2" not in bad
    assert "SECRET_PORT is not valid (expected: an integer" in bad


@given(st.integers())
def test_every_integer_is_an_int(n: int) -> None:
    assert check_env(EnvVar("N", "int"), {"N": str(n)}) is None


@given(
    st.sampled_from(["1", "true", "YES", "On", "t", "y"]),
    st.sampled_from(["0", "False", "no", "OFF"]),
)
def test_bool_spellings(true: str, false: str) -> None:
    assert parse_bool(true) is True
    assert parse_bool(false) is False


@given(st.text(max_size=20))
def test_bool_parse_is_total(text: str) -> None:
    assert parse_bool(text) in (True, False, None)
    line = check_env(EnvVar("B", "bool"), {"B": text})
    assert (line is None) == (parse_bool(text) is not None)


def test_bad_specs() -> None:
    with pytest.raises(ValidationError, match="kind"):
        EnvVar("X", "date")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="name"):
        EnvVar("")
