"""The shared validators in ``buttress._checks``: one rule and one message per kind of value."""

from __future__ import annotations

import math

import pytest

from buttress._checks import check_count, check_names, check_number, check_seconds
from buttress.errors import ValidationError


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None])
def test_check_count_refuses_what_is_not_a_whole_number_at_least_the_floor(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_count("size", value, at_least=1)
    assert (info.value.field, info.value.rule) == ("size", "must be an integer >= 1")


def test_check_count_returns_the_count() -> None:
    assert check_count("size", 0, at_least=0) == 0
    assert check_count("size", 7, at_least=1) == 7


@pytest.mark.parametrize("value", [0.5, math.inf, math.nan, True, "2"])
def test_check_number_refuses_what_is_not_a_finite_number_at_least_the_floor(
    value: object,
) -> None:
    with pytest.raises(ValidationError) as info:
        check_number("multiplier", value, at_least=1)
    assert (info.value.field, info.value.rule) == ("multiplier", "must be a finite number >= 1")


def test_check_number_returns_a_float() -> None:
    assert check_number("rate", 3, at_least=0) == 3.0
    assert isinstance(check_number("rate", 3, at_least=0), float)


def test_check_seconds_names_none_only_when_it_is_allowed() -> None:
    with pytest.raises(ValidationError) as info:
        check_seconds("wait", 0, optional=True)
    assert info.value.rule == "must be a finite number of seconds > 0 or None"
    assert check_seconds("wait", None, optional=True) is None


def test_check_names_gives_the_set_and_refuses_a_bare_string_or_empty_names() -> None:
    assert check_names("groups", ["a", "b", "a"]) == frozenset({"a", "b"})
    with pytest.raises(ValidationError, match="not a single str"):
        check_names("groups", "ab")
    with pytest.raises(ValidationError, match="non-empty str"):
        check_names("groups", ["a", ""])
    with pytest.raises(ValidationError, match="non-empty str"):
        check_names("groups", ["a", 3])
