"""Result: functor and monad laws, unwrapping, value semantics and as_result."""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import Err, Ok, Result, UnwrapError, as_result
from buttress.errors import ButtressError

values = st.integers() | st.text(max_size=8) | st.none() | st.tuples(st.integers(), st.booleans())
ints = st.integers(min_value=-(10**6), max_value=10**6)
results: st.SearchStrategy[Result[int, str]] = st.one_of(ints.map(Ok), st.text(max_size=8).map(Err))

# A small family of total functions, so laws are checked over many compositions.
int_fns: st.SearchStrategy[Callable[[int], int]] = st.sampled_from(
    [lambda x: x + 1, lambda x: x * 2, lambda x: -x, lambda x: x // 3, abs]
)
str_fns: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str.upper, lambda s: s + "!", lambda s: s[::-1], lambda s: ""]
)


def _kleisli(f: Callable[[int], int], fail_when: int) -> Callable[[int], Result[int, str]]:
    def g(x: int) -> Result[int, str]:
        return Err(f"bad {x}") if x % 7 == fail_when else Ok(f(x))

    return g


kleislis = st.builds(_kleisli, int_fns, st.integers(min_value=0, max_value=6))


def _recover(f: Callable[[str], str]) -> Callable[[str], Result[int, str]]:
    def g(e: str) -> Result[int, str]:
        return Ok(len(e)) if len(e) % 2 == 0 else Err(f(e))

    return g


recoveries = st.builds(_recover, str_fns)


# Functor laws.


@given(results)
def test_map_identity(r: Result[int, str]) -> None:
    assert r.map(lambda x: x) == r


@given(results, int_fns, int_fns)
def test_map_composition(
    r: Result[int, str], f: Callable[[int], int], g: Callable[[int], int]
) -> None:
    assert r.map(f).map(g) == r.map(lambda x: g(f(x)))


@given(results)
def test_map_err_identity(r: Result[int, str]) -> None:
    assert r.map_err(lambda e: e) == r


@given(results, str_fns, str_fns)
def test_map_err_composition(
    r: Result[int, str], f: Callable[[str], str], g: Callable[[str], str]
) -> None:
    assert r.map_err(f).map_err(g) == r.map_err(lambda e: g(f(e)))


# Monad laws for and_then, and their duals for or_else.


@given(ints, kleislis)
def test_and_then_left_identity(x: int, f: Callable[[int], Result[int, str]]) -> None:
    assert Ok(x).and_then(f) == f(x)


@given(results)
def test_and_then_right_identity(r: Result[int, str]) -> None:
    assert r.and_then(Ok) == r


@given(results, kleislis, kleislis)
def test_and_then_associativity(
    r: Result[int, str],
    f: Callable[[int], Result[int, str]],
    g: Callable[[int], Result[int, str]],
) -> None:
    assert r.and_then(f).and_then(g) == r.and_then(lambda x: f(x).and_then(g))


@given(st.text(max_size=8), recoveries)
def test_or_else_left_identity(e: str, f: Callable[[str], Result[int, str]]) -> None:
    assert Err(e).or_else(f) == f(e)


@given(results)
def test_or_else_right_identity(r: Result[int, str]) -> None:
    assert r.or_else(Err) == r


@given(results, recoveries, recoveries)
def test_or_else_associativity(
    r: Result[int, str],
    f: Callable[[str], Result[int, str]],
    g: Callable[[str], Result[int, str]],
) -> None:
    assert r.or_else(f).or_else(g) == r.or_else(lambda e: f(e).or_else(g))


@given(results, int_fns, str_fns)
def test_map_touches_only_ok_and_map_err_only_err(
    r: Result[int, str], f: Callable[[int], int], g: Callable[[str], str]
) -> None:
    match r:
        case Ok(v):
            assert r.map(f) == Ok(f(v))
            assert r.map_err(g) is r
            assert r.or_else(lambda e: Err(g(e))) is r
        case Err(e):
            assert r.map_err(g) == Err(g(e))
            assert r.map(f) is r
            assert r.and_then(lambda x: Ok(f(x))) is r


# Unwrapping.


@given(values, values)
def test_ok_unwraps(v: object, default: object) -> None:
    ok = Ok(v)
    assert ok.is_ok() is True
    assert ok.is_err() is False
    assert ok.unwrap() == v
    assert ok.value == v
    assert ok.unwrap_or(default) == v
    assert ok.unwrap_or_else(lambda e: default) == v
    with pytest.raises(UnwrapError) as info:
        ok.unwrap_err()
    assert info.value.result is ok


@given(values, values)
def test_err_unwraps(e: object, default: object) -> None:
    err = Err(e)
    assert err.is_ok() is False
    assert err.is_err() is True
    assert err.unwrap_err() == e
    assert err.error == e
    assert err.unwrap_or(default) == default
    assert err.unwrap_or_else(lambda x: (x, default)) == (e, default)
    with pytest.raises(UnwrapError) as info:
        err.unwrap()
    assert info.value.result is err
    assert info.value.__cause__ is None


def test_err_exception_unwrap_chains_cause_without_copying_its_message() -> None:
    original = ConnectionError("cannot reach postgresql://app:pw@db/prod")
    with pytest.raises(UnwrapError) as info:
        Err(original).unwrap()
    assert info.value.__cause__ is original
    assert isinstance(info.value, ButtressError)
    assert str(info.value) == "called unwrap() on an Err value: ConnectionError"


# Value semantics.


@given(values)
def test_equality_and_hash(v: object) -> None:
    assert Ok(v) == Ok(v)
    assert Err(v) == Err(v)
    assert Ok(v) != Err(v)
    assert (Ok(v) != Ok(v)) is False
    assert hash(Ok(v)) == hash(Ok(v))
    assert hash(Err(v)) == hash(Err(v))
    assert len({Ok(v), Ok(v), Err(v)}) == 2


def test_unhashable_payload_makes_unhashable_result() -> None:
    with pytest.raises(TypeError):
        hash(Ok([1]))
    assert Ok([1]) == Ok([1])


@pytest.mark.parametrize("r", [Ok(1), Err("e")])
def test_immutable(r: Result[int, str]) -> None:
    with pytest.raises(AttributeError):
        r.value = 2  # type: ignore[misc]  # assigning a read-only property is the point
    for name in ("_value", "_error", "extra"):
        with pytest.raises(AttributeError):
            setattr(r, name, 2)
        with pytest.raises(AttributeError):
            delattr(r, name)


@given(values)
def test_pickle_and_copy_round_trip(v: object) -> None:
    for r in (Ok(v), Err(v)):
        assert pickle.loads(pickle.dumps(r)) == r
        assert type(pickle.loads(pickle.dumps(r))) is type(r)
        assert copy.deepcopy(r) == r


def test_repr() -> None:
    assert repr(Ok(1)) == "Ok(1)"
    assert repr(Err("x")) == "Err('x')"


@given(results)
def test_match_destructures(r: Result[int, str]) -> None:
    match r:
        case Ok(value=v):
            assert r.is_ok()
            assert v == r.unwrap()
        case Err(error=e):
            assert r.is_err()
            assert e == r.unwrap_err()
        case _:
            pytest.fail("Result was neither Ok nor Err")


# as_result.


class Boom(Exception):
    pass


@as_result(ValueError, Boom)
def parse(text: str) -> int:
    """Parse an int or raise."""
    if text == "boom":
        raise Boom("boom")
    if text == "key":
        raise KeyError(text)
    return int(text)


@as_result(ValueError)
async def aparse(text: str) -> int:
    """Parse an int, asynchronously."""
    await asyncio.sleep(0)
    if text == "key":
        raise KeyError(text)
    return int(text)


@given(st.integers())
def test_as_result_sync_ok(n: int) -> None:
    assert parse(str(n)) == Ok(n)


def test_as_result_sync_listed_and_unlisted() -> None:
    r = parse("nope")
    assert isinstance(r, Err)
    assert isinstance(r.error, ValueError)
    assert isinstance(parse("boom").unwrap_err(), Boom)
    with pytest.raises(KeyError):
        parse("key")


async def test_as_result_async() -> None:
    assert await aparse("12") == Ok(12)
    r = await aparse("x")
    assert isinstance(r, Err)
    assert isinstance(r.error, ValueError)
    with pytest.raises(KeyError):
        await aparse("key")


def test_as_result_keeps_metadata() -> None:
    assert parse.__name__ == "parse"
    assert parse.__doc__ == "Parse an int or raise."
    assert parse.__wrapped__ is not None  # type: ignore[attr-defined]  # set by functools.wraps
    assert aparse.__name__ == "aparse"
    assert asyncio.iscoroutinefunction(aparse)


def test_as_result_subclass_is_caught() -> None:
    @as_result(LookupError)
    def get(d: dict[str, int], k: str) -> int:
        return d[k]

    assert isinstance(get({}, "a").unwrap_err(), KeyError)
    assert get({"a": 1}, "a") == Ok(1)


@pytest.mark.parametrize("bad", [(), (42,), ("ValueError",), (int,), (ValueError, object)])
def test_as_result_refuses_bad_arguments(bad: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        as_result(*bad)  # type: ignore[arg-type]  # wrong types are the point of the test


def test_as_result_does_not_catch_base_exceptions() -> None:
    @as_result(Exception)
    def cancel() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cancel()
