"""Correct uses of Result that mypy --strict must accept (checked by test_result_typing)."""

from __future__ import annotations

from typing import assert_never, assert_type

from buttress import Err, Ok, Result, as_result
from buttress.errors import ContextualError, with_error_handling


def by_match(r: Result[int, str]) -> int:
    match r:
        case Ok(value):
            assert_type(value, int)
            return value + 1
        case Err(error):
            assert_type(error, str)
            return len(error)
        case _:
            assert_never(r)


def by_isinstance(r: Result[int, str]) -> str:
    if isinstance(r, Ok):
        assert_type(r, Ok[int])
        return str(r.value)
    assert_type(r, Err[str])
    return r.error


def by_combinators(r: Result[int, str]) -> Result[str, int]:
    return r.map(str).map_err(len)


def chained(r: Result[int, str]) -> Result[float, str]:
    return r.and_then(lambda x: Ok(x / 2) if x else Err("zero"))


@as_result(ValueError)
def parse(text: str) -> int:
    return int(text)


@as_result(ValueError, KeyError)
async def aparse(text: str) -> int:
    return int(text)


@with_error_handling(component="billing")
async def charge(amount: int) -> str:
    return f"charged {amount}"


async def use() -> int:
    assert_type(parse("1"), Ok[int] | Err[ValueError])
    r = await aparse("2")
    # Several exception types are joined by mypy to their common base.
    assert_type(r, Ok[int] | Err[Exception])
    c = await charge(3)
    assert_type(c, Ok[str] | Err[ContextualError])
    if isinstance(c, Err):
        assert_type(c.error.user_message, str)
    if isinstance(r, Err):
        return 0
    return r.value
