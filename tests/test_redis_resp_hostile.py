"""RateLimiter on Redis against a server that is slow or lies: a small TCP server
started by each test plays Redis well enough to be connected to, then drips its
script reply or answers it with malformed bytes.

Each time the limiter must answer within ``socket_timeout`` by its outage policy,
the connection that carried the bad reply must be closed, and the next call,
once the server behaves, must open a fresh connection and work.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO, Literal

import attrs
import pytest

from buttress import connect
from buttress.backends import Backend
from buttress.backends._resp import Endpoint, PipelinedClient, ProtocolError
from buttress.errors import BackendUnavailableError
from buttress.ratelimit import Decision, Rate, RateLimiter
from buttress.ratelimit._service import OUTAGE_RETRY_AFTER

SOCKET_TIMEOUT = 0.5
SLACK = 1.5
"""Scheduling slack on two loaded cores; a dripped reply takes over 5 s."""
DRIP_INTERVAL = 0.2
LIMIT = 5

HEALTHY = b"*4\r\n:1\r\n:3\r\n:0\r\n:0\r\n"
"""The script's reply for an admission with 3 left: unlike any outage decision."""
ADMITTED = Decision(True, LIMIT, 3, 0.0, 0.0)
DENIED = Decision(False, LIMIT, 0, OUTAGE_RETRY_AFTER, OUTAGE_RETRY_AFTER)

MALFORMED: dict[str, bytes] = {
    # Well-formed RESP of the wrong shape for the rate-limit script.
    "integer-not-array": b":1\r\n",
    "array-too-short": b"*2\r\n:1\r\n:3\r\n",
    "bulk-strings-not-integers": b"*4\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n0\r\n$1\r\n0\r\n",
    "nested-error-and-null": b"*4\r\n:1\r\n-ERR boom\r\n$-1\r\n*0\r\n",
    "null-array": b"*-1\r\n",
    # Not RESP2, or past a limit.
    "bulk-without-crlf": b"$3\r\nabcXY" + HEALTHY,
    "nested-2000-deep": b"*1\r\n" * 2000 + b":1\r\n",
    "declares-100-MB-bulk": b"$100000000\r\n" + b"x" * 1000,
    "garbage-type-byte": b"!oops\r\n",
    "negative-length": b"*-7\r\n",
    "not-a-number": b"*4x\r\n:1\r\n:3\r\n:0\r\n:0\r\n",
}


@attrs.define(eq=False)
class Session:
    """One client connection to the fake server."""

    sock: socket.socket
    commands: list[bytes] = attrs.field(factory=list)
    bad_replies: int = 0
    closed: threading.Event = attrs.field(factory=threading.Event)
    """Set when the client closed or reset the connection."""


class FakeRedis:
    """A threaded TCP server on 127.0.0.1 speaking just enough RESP2 to be opened
    as a Redis backend: HELLO refused as by Redis 5 (redis-py falls back to
    RESP2), PING, +OK for anything else; every EVALSHA/EVAL gets ``script_reply``,
    sent one byte per ``DRIP_INTERVAL`` when ``drip`` is set."""

    def __init__(self) -> None:
        self.script_reply = HEALTHY
        self.drip = False
        self.sessions: list[Session] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="fake-redis", daemon=True).start()

    @property
    def dsn(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def behave(self) -> None:
        self.script_reply = HEALTHY
        self.drip = False

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for session in self.sessions:
            with contextlib.suppress(OSError):  # already gone
                session.sock.shutdown(socket.SHUT_RDWR)
            session.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed
            session = Session(sock)
            self.sessions.append(session)
            threading.Thread(target=self._serve, args=(session,), daemon=True).start()

    def _serve(self, session: Session) -> None:
        reader = session.sock.makefile("rb")
        try:
            while not self._stop.is_set():
                command = _read_command(reader)
                if command is None:
                    break
                name = command[0].upper()
                session.commands.append(name)
                if name in (b"EVALSHA", b"EVAL"):
                    reply = self.script_reply
                    session.bad_replies += reply != HEALTHY
                    if self.drip:
                        for i in range(len(reply)):
                            if self._stop.wait(DRIP_INTERVAL):
                                return
                            session.sock.sendall(reply[i : i + 1])
                    else:
                        session.sock.sendall(reply)
                elif name == b"HELLO":
                    session.sock.sendall(b"-ERR unknown command 'HELLO'\r\n")
                elif name == b"PING":
                    session.sock.sendall(b"+PONG\r\n")
                else:
                    session.sock.sendall(b"+OK\r\n")
        except OSError:
            pass  # reset by the client
        finally:
            session.closed.set()
            reader.close()

    def script_sessions(self) -> list[Session]:
        return [s for s in self.sessions if {b"EVALSHA", b"EVAL"} & set(s.commands)]


def _read_command(reader: BinaryIO) -> list[bytes] | None:
    """One command (an array of bulk strings), or None at the end of the stream."""
    header = reader.readline()
    if not header.startswith(b"*"):
        return None
    args = []
    for _ in range(int(header[1:])):
        size = int(reader.readline()[1:])
        data = reader.read(size + 2)
        if len(data) < size + 2:
            return None
        args.append(data[:size])
    return args


@pytest.fixture
def server() -> Iterator[FakeRedis]:
    fake = FakeRedis()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
async def backend(server: FakeRedis) -> AsyncIterator[Backend]:
    async with connect(
        server.dsn, socket_timeout=SOCKET_TIMEOUT, connect_timeout=2.0, connect_attempts=1
    ) as opened:
        yield opened


Via = Literal["sync", "async"]


async def _hit(limiter: RateLimiter, path: Via) -> tuple[Decision, float]:
    """One decision by the sync or the async path, and the seconds it took.

    The sync ``hit`` runs in a thread: it blocks, and the fake server and this
    event loop must go on meanwhile."""
    started = time.monotonic()
    if path == "sync":
        decision = await asyncio.wait_for(asyncio.to_thread(limiter.hit, "k"), 30)
    else:
        decision = await asyncio.wait_for(limiter.ahit("k"), 30)
    return decision, time.monotonic() - started


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_the_fake_server_is_a_working_redis(
    server: FakeRedis, backend: Backend, path: Via
) -> None:
    limiter = RateLimiter(Rate(LIMIT, 60), backend=backend, on_backend_error="deny")
    assert (await _hit(limiter, path))[0] == ADMITTED
    assert (await _hit(limiter, path))[0] == ADMITTED
    assert len(server.script_sessions()) == 1  # the connection is reused


@pytest.mark.parametrize("policy", ["deny", "allow", "fallback"])
@pytest.mark.parametrize("path", ["sync", "async"])
async def test_a_dripping_server_gets_an_answer_within_the_socket_timeout(
    server: FakeRedis, backend: Backend, path: Via, policy: str
) -> None:
    fallback = RateLimiter(Rate(LIMIT, 60)) if policy == "fallback" else None
    limiter = RateLimiter(
        Rate(LIMIT, 60),
        backend=backend,
        on_backend_error="raise" if fallback else policy,  # type: ignore[arg-type]  # a Literal, from the parameters
        fallback=fallback,
    )
    server.drip = True  # the whole reply would take 21 x 0.2 s
    decision, took = await _hit(limiter, path)
    assert took < SOCKET_TIMEOUT + SLACK
    if policy == "deny":
        assert decision == DENIED
    else:
        assert decision[:3] == (True, LIMIT, LIMIT - 1)  # an admission, not Redis's (3 left)
    if fallback is not None:
        assert fallback.peek("k", 0).remaining == LIMIT - 1  # the fallback decided it
    (slow,) = server.script_sessions()
    assert slow.closed.wait(5)
    server.behave()
    assert (await _hit(limiter, path))[0] == ADMITTED
    assert len(server.script_sessions()) == 2


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("path", ["sync", "async"])
async def test_a_malformed_reply_is_an_outage_then_a_fresh_connection_works(
    server: FakeRedis, backend: Backend, path: Via, reply: bytes
) -> None:
    limiter = RateLimiter(Rate(LIMIT, 60), backend=backend, on_backend_error="deny")
    server.script_reply = reply
    decision, took = await _hit(limiter, path)
    assert decision == DENIED
    assert took < SOCKET_TIMEOUT + SLACK  # refused at once, not left waiting for bytes
    (bad,) = server.script_sessions()
    assert bad.bad_replies == 1
    assert bad.closed.wait(5)
    server.behave()
    assert (await _hit(limiter, path))[0] == ADMITTED
    sessions = server.script_sessions()
    assert len(sessions) == 2
    assert not sessions[1].closed.is_set()


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("path", ["sync", "async"])
async def test_with_no_outage_policy_a_malformed_reply_raises_a_protocol_error(
    server: FakeRedis, backend: Backend, path: Via, reply: bytes
) -> None:
    # The protocol error itself, at once: not a timeout waiting for bytes that
    # make sense, nor a TypeError from decoding what does not.
    limiter = RateLimiter(Rate(LIMIT, 60), backend=backend)
    server.script_reply = reply
    with pytest.raises(ProtocolError) as caught:
        await _hit(limiter, path)
    assert isinstance(caught.value, BackendUnavailableError)
    assert "boom" not in str(caught.value)  # the server's bytes are not quoted


@pytest.mark.parametrize("path", ["sync", "async"])
async def test_a_second_reply_nobody_asked_for_drops_the_connection(
    server: FakeRedis, backend: Backend, path: Via
) -> None:
    # One request, two replies: the second would be read as the next request's
    # answer. The sync client sees both at once and refuses the exchange; the
    # pipelined one has answered its caller already and drops the connection.
    limiter = RateLimiter(Rate(LIMIT, 60), backend=backend, on_backend_error="deny")
    server.script_reply = HEALTHY + HEALTHY
    assert (await _hit(limiter, path))[0] == (DENIED if path == "sync" else ADMITTED)
    (bad,) = server.script_sessions()
    assert bad.closed.wait(5)
    server.behave()
    assert (await _hit(limiter, path))[0] == ADMITTED
    assert len(server.script_sessions()) == 2


async def test_each_pipelined_request_times_out_at_its_own_deadline() -> None:
    # One timer watches a connection: it must re-arm for the next request when the
    # oldest is answered, neither expiring that one early nor forgetting it.
    timeout = 0.4

    async def answer_only_the_first(reader: asyncio.StreamReader, writer: Any) -> None:
        await reader.readuntil(b"PING\r\n")
        writer.write(b"+PONG\r\n")
        await writer.drain()
        await reader.read()  # everything after that goes unanswered

    server = await asyncio.start_server(answer_only_the_first, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PipelinedClient(Endpoint(port=port, timeout=timeout))
    loop = asyncio.get_running_loop()
    try:
        assert await client.call(b"PING") == b"PONG"  # the timer is armed for this one
        await asyncio.sleep(timeout / 2)
        sent = loop.time()
        with pytest.raises(TimeoutError, match="timed out"):
            await asyncio.wait_for(client.call(b"PING"), timeout + 5)
        waited = loop.time() - sent
        assert timeout - 0.01 <= waited < timeout + SLACK
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
