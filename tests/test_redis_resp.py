"""buttress's own RESP2 client: the parser as a pure core (any value, any chunking;
any bytes at all, in linear time, within its limits), and the pipelined and
blocking clients against the real, password-protected Redis. A slow or lying
server is in test_redis_resp_hostile.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.backends._resp import (
    INCOMPLETE,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_REPLY,
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


@pytest.mark.parametrize(
    "stream",
    [
        b"!oops\r\n",
        b"$abc\r\n",
        b"*x\r\n",
        b"\r\n",
        b":12a\r\n",
        b"$-2\r\n",  # -1 is null; other negative lengths mean nothing
        b"*-3\r\n",
        b"$3\r\nabcXY",  # a bulk string must end with CRLF
        b"$3\r\nabc\rX",
        b":" + b"9" * 5000 + b"\r\n",  # past int()'s digit limit
    ],
)
def test_garbage_is_a_protocol_error(stream: bytes) -> None:
    parser = Parser()
    parser.feed(stream)
    with pytest.raises(ProtocolError):
        parser.gets()


def test_a_bulk_string_whose_crlf_comes_later_is_still_checked() -> None:
    parser = Parser()
    parser.feed(b"$3\r\nab")
    assert parser.gets() is INCOMPLETE
    parser.feed(b"c:1\r\n")
    with pytest.raises(ProtocolError, match="CRLF"):
        parser.gets()


def test_nesting_is_bounded_without_recursion() -> None:
    deepest = Parser()
    deepest.feed(b"*1\r\n" * MAX_DEPTH + b":1\r\n")
    reply = deepest.gets()
    for _ in range(MAX_DEPTH):
        assert isinstance(reply, list)
        (reply,) = reply
    assert reply == 1
    for depth in (MAX_DEPTH + 1, 2000, 100_000):  # 1000 or so overflowed Python's stack
        parser = Parser()
        parser.feed(b"*1\r\n" * depth + b":1\r\n")
        with pytest.raises(ProtocolError, match="nested"):
            parser.gets()


def test_declared_sizes_are_refused_at_the_header() -> None:
    # Refused before any of the body arrives, not after buffering it.
    for header, match in [
        (b"$100000000\r\n", "bulk string"),
        (b"$%d\r\n" % (MAX_REPLY + 1), "bulk string"),
        (b"*%d\r\n" % (MAX_ITEMS + 1), "array"),
        (b"*2\r\n:1\r\n$%d\r\n" % (MAX_REPLY - 10), "bulk string"),  # counts what came before
    ]:
        parser = Parser()
        parser.feed(header)
        with pytest.raises(ProtocolError, match=match):
            parser.gets()


def test_a_reply_is_bounded_in_bytes_as_it_arrives() -> None:
    parser = Parser(max_reply=1000)
    parser.feed(b"*100\r\n")
    for _ in range(30):  # 30 x 34 bytes: past 1000 before the array is complete
        assert parser.gets() is INCOMPLETE
        parser.feed(b"+" + b"x" * 31 + b"\r\n")
    with pytest.raises(ProtocolError, match="longer than 1000"):
        parser.gets()
    line = Parser(max_reply=1000)  # a line that never ends
    line.feed(b"+" + b"x" * 999)
    assert line.gets() is INCOMPLETE
    line.feed(b"xx")
    with pytest.raises(ProtocolError, match="longer than 1000"):
        line.gets()
    whole = Parser(max_reply=1000)  # or arrives whole
    whole.feed(b"*2\r\n" + (b"+" + b"x" * 500 + b"\r\n") * 2)
    with pytest.raises(ProtocolError, match="longer than 1000"):
        whole.gets()


class _CountingBuffer(bytearray):
    """A parser's buffer that counts the bytes its CRLF searches examine."""

    scanned = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        begin = 0 if start is None else start
        stop = len(self) if end is None else end
        found = super().find(sub, begin, stop)
        self.scanned += (found + len(sub) if found >= 0 else stop) - begin
        return found


def _counting(parser: Parser) -> _CountingBuffer:
    buffer = parser._buf = _CountingBuffer()
    return buffer


def _feed_in_chunks(parser: Parser, stream: bytes, size: int) -> list[Any]:
    replies = []
    for start in range(0, len(stream), size):
        parser.feed(stream[start : start + size])
        while (reply := parser.gets()) is not INCOMPLETE:
            replies.append(reply)
    return replies


def test_a_16_mib_line_in_64_kib_chunks_is_searched_once() -> None:
    # Searching each chunk from the line's start made this quadratic: 3 s.
    parser = Parser()
    buffer = _counting(parser)
    line = b"+" + b"x" * (16 << 20) + b"\r\n"
    assert _feed_in_chunks(parser, line, 64 << 10) == [line[1:-2]]
    assert buffer.scanned <= len(line) + (len(line) >> 16)


def test_a_long_array_in_small_chunks_is_parsed_once() -> None:
    # Finished elements are kept: the array is not parsed again from its start
    # each time a chunk arrives (which scanned about 40 times the bytes here).
    parser = Parser()
    buffer = _counting(parser)
    stream = b"*20000\r\n" + b":7\r\n" * 20_000
    assert _feed_in_chunks(parser, stream, 1024) == [[7] * 20_000]
    assert buffer.scanned <= len(stream) + len(stream) // 1024 + 1


def test_a_16_mib_bulk_string_in_64_kib_chunks() -> None:
    parser = Parser()
    buffer = _counting(parser)
    body = bytes(range(256)) * (1 << 16)
    stream = b"$%d\r\n%s\r\n" % (len(body), body)
    assert _feed_in_chunks(parser, stream, 64 << 10) == [body]
    assert buffer.scanned <= 16  # only the header line is searched
    assert parser.buffered() == 0


# Bytes that look like RESP more often than random ones do.
_resp_pieces = st.sampled_from(
    [b"*", b"$", b":", b"+", b"-", b"\r\n", b"\r", b"\n", b"0", b"1", b"2", b"3", b"-1",
     b"-2", b"x", b"99999999999", b"*1\r\n", b"$3\r\nabc\r\n", b":5\r\n"]
)  # fmt: skip


@st.composite
def _hostile_streams(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "resp-like", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "resp-like":
        return b"".join(draw(st.lists(_resp_pieces, max_size=80)))
    stream = bytearray(b"".join(_encode(v) for v in draw(st.lists(_values, min_size=1))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(stream) - 1))
        stream[at] = draw(st.integers(0, 255))
    return bytes(stream[: draw(st.integers(0, len(stream)))])


def _outcome(parser: Parser, chunks: list[bytes]) -> tuple[list[Any], bool]:
    """The replies read, and whether a ProtocolError ended them; nothing else may happen."""
    replies: list[Any] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.gets()) is not INCOMPLETE:
                replies.append(_comparable(reply))
    except ProtocolError:
        return replies, True
    return replies, False


def _chunked(stream: bytes, data: Any) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@settings(max_examples=400)
@given(_hostile_streams(), st.data())
def test_any_bytes_in_any_chunks_read_the_same_in_linear_time(stream: bytes, data: Any) -> None:
    chunks = _chunked(stream, data)
    parser = Parser()
    buffer = _counting(parser)
    outcome = _outcome(parser, chunks)
    assert outcome == _outcome(Parser(), [stream])  # chunking changes nothing
    # Each byte is searched at most once, plus the CR a chunk may end with.
    assert buffer.scanned <= len(stream) + len(chunks)


@given(
    _hostile_streams(),
    st.data(),
    st.integers(1, 4),  # max_depth
    st.integers(0, 6),  # max_items
    st.integers(0, 200),  # max_reply
)
def test_any_bytes_within_any_limits_read_the_same(
    stream: bytes, data: Any, depth: int, items: int, size: int
) -> None:
    chunked = Parser(max_depth=depth, max_items=items, max_reply=size)
    whole = Parser(max_depth=depth, max_items=items, max_reply=size)
    assert _outcome(chunked, _chunked(stream, data)) == _outcome(whole, [stream])


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


def test_tls_pools_carry_their_tls_and_resp3_pools_have_no_endpoint() -> None:
    tls = redis.asyncio.Redis.from_url("rediss://h:6380/0")
    endpoint = endpoint_from_pool(tls.connection_pool)
    assert endpoint is not None
    assert endpoint.tls is not None
    assert endpoint.tls.verify_mode == ssl.CERT_REQUIRED
    assert endpoint.tls.check_hostname
    # A key password is a redis-py-only option: that pool stays with redis-py.
    locked = redis.asyncio.Redis.from_url("rediss://h:6380/0", ssl_password="pw")
    assert endpoint_from_pool(locked.connection_pool) is None
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
