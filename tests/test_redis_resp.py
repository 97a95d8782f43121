"""buttress's own RESP2 client: the parser as a pure core (any value, any chunking),
and the pipelined and blocking clients against the real, password-protected Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

from buttress.backends._resp import (
    INCOMPLETE,
    BlockingClient,
    Endpoint,
    Parser,
    PipelinedClient,
    ProtocolError,
    ReplyError,
    endpoint_from_pool,
    pack,
)

# --- the parser -----------------------------------------------------------------

_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=40),
    st.none(),
    st.builds(ReplyError, st.text(alphabet="ABCZ xyz-", min_size=1, max_size=20)),
    st.builds(lambda s: ("simple", s), st.binary(max_size=10).filter(lambda b: b"\r" not in b)),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def _encode(value: Any) -> bytes:
    if isinstance(value, tuple):
        return b"+" + bytes(value[1]) + b"\r\n"
    if isinstance(value, ReplyError):
        return b"-" + str(value).encode() + b"\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n" % len(value) + b"".join(_encode(v) for v in value)


def _expected(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, ReplyError):
        return ("error", str(value))
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


def _comparable(reply: Any) -> Any:
    if isinstance(reply, ReplyError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [_comparable(v) for v in reply]
    return reply


@given(st.lists(_values, min_size=1, max_size=6), st.data())
def test_any_replies_in_any_chunks_parse_back_in_order(values: list[Any], data: Any) -> None:
    stream = b"".join(_encode(v) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = Parser()
    replies = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.feed(stream[start:stop])
        while (reply := parser.gets()) is not INCOMPLETE:
            replies.append(_comparable(reply))
    assert replies == [_expected(v) for v in values]


@given(st.lists(st.one_of(st.binary(max_size=30), st.text(max_size=10), st.integers())))
def test_pack_is_an_array_of_bulk_strings(args: list[bytes | str | int]) -> None:
    parser = Parser()
    parser.feed(pack(args))
    expected = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    assert parser.gets() == expected
    assert parser.gets() is INCOMPLETE


class _Key(str):
    pass


class _Count(int):
    pass


def test_pack_takes_subclasses_as_their_base_type() -> None:
    parser = Parser()
    parser.feed(pack([_Key("key"), _Count(7), bytearray(b"raw")]))  # type: ignore[list-item]
    assert parser.gets() == [b"key", b"7", b"raw"]


def test_pack_refuses_what_redis_would_misread() -> None:
    with pytest.raises(TypeError, match="float"):
        pack(["SET", "k", 1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="bool"):
        pack(["SET", "k", True])


@pytest.mark.parametrize("stream", [b"!oops\r\n", b"$abc\r\n", b"*x\r\n"])
def test_garbage_is_a_protocol_error(stream: bytes) -> None:
    parser = Parser()
    parser.feed(stream)
    with pytest.raises(ProtocolError):
        parser.gets()


def test_reply_error_code() -> None:
    assert ReplyError("NOSCRIPT No matching script").code == "NOSCRIPT"


# --- against the real server ----------------------------------------------------


def _endpoint(dsn: str, **changes: Any) -> Endpoint:
    client = redis.asyncio.Redis.from_url(dsn)
    endpoint = endpoint_from_pool(client.connection_pool)
    assert endpoint is not None
    return attrs.evolve(endpoint, **changes)


@pytest.fixture
async def fast(redis_dsn: str) -> AsyncIterator[PipelinedClient]:
    client = PipelinedClient(_endpoint(redis_dsn))
    yield client
    await client.aclose()


@pytest.mark.redis
def test_endpoint_keeps_the_password_out_of_its_repr(redis_dsn: str) -> None:
    endpoint = _endpoint(redis_dsn)
    assert endpoint.password
    for text in (repr(endpoint), repr(PipelinedClient(endpoint)), repr(BlockingClient(endpoint))):
        assert endpoint.password not in text


def test_tls_and_resp3_pools_have_no_endpoint() -> None:
    tls = redis.asyncio.Redis.from_url("rediss://h:6380/0")
    assert endpoint_from_pool(tls.connection_pool) is None
    resp3 = redis.asyncio.Redis.from_url("redis://h:6379/0", protocol=3)
    assert endpoint_from_pool(resp3.connection_pool) is None
    unix = redis.asyncio.Redis.from_url("unix:///run/redis.sock?db=2").connection_pool
    endpoint = endpoint_from_pool(unix)
    assert endpoint is not None
    assert (endpoint.path, endpoint.db) == ("/run/redis.sock", 2)


@pytest.mark.redis
async def test_concurrent_calls_each_get_their_own_reply(fast: PipelinedClient) -> None:
    replies = await asyncio.gather(*(fast.call("ECHO", f"v{i}") for i in range(300)))
    assert replies == [f"v{i}".encode() for i in range(300)]


@pytest.mark.redis
async def test_an_error_reply_fails_only_its_caller(fast: PipelinedClient) -> None:
    results = await asyncio.gather(
        fast.call("ECHO", "a"), fast.call("NOSUCHCOMMAND"), fast.call("ECHO", "b"),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == b"a"
    assert isinstance(results[1], ReplyError)
    assert results[1].code == "ERR"
    assert results[2] == b"b"


@pytest.mark.redis
async def test_a_cancelled_caller_does_not_shift_later_replies(fast: PipelinedClient) -> None:
    slow = asyncio.ensure_future(fast.call("BLPOP", "nothing-here", "0.2"))
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await fast.call("ECHO", "after") == b"after"
    assert await fast.call("INCR", "n") == 1


@pytest.mark.redis
async def test_a_timed_out_reply_drops_the_connection_and_the_next_call_reconnects(
    redis_dsn: str,
) -> None:
    client = PipelinedClient(_endpoint(redis_dsn, timeout=0.1))
    waiting = asyncio.ensure_future(client.call("ECHO", "queued-behind"))
    with pytest.raises(TimeoutError):
        await client.call("BLPOP", "nothing-here", "1")
    with pytest.raises((TimeoutError, ConnectionError)):
        await waiting
    assert await client.call("ECHO", "again") == b"again"
    await client.aclose()


@pytest.mark.redis
async def test_a_killed_connection_fails_callers_then_reconnects(
    redis_dsn: str, fast: PipelinedClient
) -> None:
    own_id = await fast.call("CLIENT", "ID")
    in_flight = asyncio.ensure_future(fast.call("BLPOP", "nothing-here", "5"))
    await asyncio.sleep(0.05)
    admin = redis.asyncio.Redis.from_url(redis_dsn)
    assert await admin.client_kill_filter(_id=own_id) == 1
    with pytest.raises(ConnectionError):
        await in_flight
    assert await fast.call("ECHO", "back") == b"back"
    assert await fast.call("CLIENT", "ID") != own_id
    await admin.aclose()


@pytest.mark.redis
async def test_selects_the_database_and_refuses_a_wrong_password(redis_dsn: str) -> None:
    on_db3 = PipelinedClient(_endpoint(redis_dsn, db=3))
    await on_db3.call("SET", "where", "db3")
    admin = redis.asyncio.Redis.from_url(redis_dsn.rsplit("/", 1)[0] + "/3")
    assert await admin.get("where") == b"db3"
    await admin.flushdb()
    await admin.aclose()
    await on_db3.aclose()
    wrong = PipelinedClient(_endpoint(redis_dsn, password="not-it"))
    with pytest.raises(ReplyError) as caught:
        await wrong.call("PING")
    assert caught.value.code in ("WRONGPASS", "ERR")
    assert "not-it" not in str(caught.value)


@pytest.mark.redis
def test_each_event_loop_gets_its_own_connection(redis_dsn: str) -> None:
    client = PipelinedClient(_endpoint(redis_dsn))
    assert asyncio.run(client.call("ECHO", "one")) == b"one"
    assert asyncio.run(client.call("ECHO", "two")) == b"two"


@pytest.mark.redis
def test_blocking_client_from_many_threads(redis_dsn: str) -> None:
    client = BlockingClient(_endpoint(redis_dsn), max_idle=4)

    def worker(n: int) -> list[bytes]:
        replies = []
        for i in range(50):
            replies.append(client.call("ECHO", f"{n}:{i}"))
            client.call("INCR", "total")
        return replies

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [[f"{n}:{i}".encode() for i in range(50)] for n in range(8)]
    assert client.call("GET", "total") == b"400"
    with pytest.raises(ReplyError):
        client.call("NOSUCHCOMMAND")
    assert client.call("ECHO", "still-aligned") == b"still-aligned"
    client.close()


@pytest.mark.redis
def test_blocking_client_drops_a_connection_interrupted_mid_reply(redis_dsn: str) -> None:
    client = BlockingClient(_endpoint(redis_dsn, timeout=0.1))
    with pytest.raises(TimeoutError):
        client.call("BLPOP", "nothing-here", "1")
    # The late BLPOP reply must not be read as the answer to this one.
    assert client.call("ECHO", "fresh") == b"fresh"
    client.close()


@pytest.mark.redis
async def test_a_request_on_a_lost_connection_fails_at_once(fast: PipelinedClient) -> None:
    assert await fast.call("PING") == b"PONG"
    protocol = fast._protocol
    assert protocol is not None
    protocol.abort()
    await asyncio.sleep(0.01)  # connection_lost runs
    with pytest.raises(ConnectionError):
        await protocol.request(pack(["PING"]))
    assert await fast.call("PING") == b"PONG"  # the client itself reconnects
