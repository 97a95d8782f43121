"""A small RESP2 client for buttress's per-request hot paths on Redis.

``PipelinedClient`` shares one connection among every caller on an event loop:
requests are written as they come and replies matched to callers in order, so
32 concurrent decisions cost a handful of socket wake-ups instead of 32 pool
checkouts. ``BlockingClient`` is its sync twin (a pool of plain sockets) for
WSGI apps and threads. redis-py stays the general-purpose client; these run
only the few commands buttress sends per decision, without its per-call cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "BlockingClient",
    "Endpoint",
    "Parser",
    "PipelinedClient",
    "ReplyError",
    "endpoint_from_pool",
    "pack",
]

Arg: TypeAlias = bytes | str | int
INCOMPLETE: Final = object()
"""What ``Parser.gets`` returns while the buffer holds no whole reply yet."""


class ReplyError(Exception):
    """An error reply from the server, e.g. ``NOSCRIPT No matching script``."""

    @property
    def code(self) -> str:
        """The reply's first word (``ERR``, ``NOSCRIPT``, ``WRONGPASS`` …)."""
        return str(self).split(" ", 1)[0]


class ProtocolError(ConnectionError):
    """The byte stream is not RESP2: the connection cannot be trusted any more."""


@attrs.frozen
class Endpoint:
    """Where and how to connect; the password never appears in the repr."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    """A Unix socket path (instead of host and port)."""
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    timeout: float | None = 5.0
    """Seconds a reply may take; past it the connection is dropped."""
    connect_timeout: float | None = 5.0


def endpoint_from_pool(pool: Any) -> Endpoint | None:
    """The ``Endpoint`` of a redis-py connection pool, or None when its
    connections need something this client does not do (TLS, RESP3, a
    credential provider, custom connection classes)."""
    kwargs = pool.connection_kwargs
    kind = getattr(pool, "connection_class", None)
    name = getattr(kind, "__name__", "")
    if name not in ("Connection", "UnixDomainSocketConnection"):
        return None
    if kwargs.get("credential_provider") is not None:
        return None
    if kwargs.get("protocol") not in (None, 2, "2"):
        return None
    return Endpoint(
        host=str(kwargs.get("host") or "127.0.0.1"),
        port=int(kwargs.get("port") or 6379),
        path=kwargs.get("path") if name == "UnixDomainSocketConnection" else None,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        timeout=kwargs.get("socket_timeout"),
        connect_timeout=kwargs.get("socket_connect_timeout"),
    )


def pack(args: Sequence[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        kind = type(arg)
        data: bytes
        if kind is bytes:
            data = arg  # type: ignore[assignment]  # checked just above, exactly
        elif kind is str:
            data = arg.encode()  # type: ignore[union-attr]  # checked just above, exactly
        elif kind is int:
            data = b"%d" % arg  # type: ignore[str-format]  # checked just above, exactly
        else:
            data = _encode_other(arg)
        append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _encode_other(arg: object) -> bytes:
    """bytearray and subclasses of bytes, str and int (not bool: Redis would read
    ``True`` as text)."""
    if isinstance(arg, bytes | bytearray):
        return bytes(arg)
    if isinstance(arg, str):
        return str(arg).encode()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    raise TypeError(f"command argument must be bytes, str or int, not {type(arg).__name__}")


class _Need(Exception):
    """Internal: the buffer ends inside a reply."""


class Parser:
    """Incremental RESP2 reader: ``feed`` bytes as they arrive, ``gets`` whole
    replies (error replies come back as ``ReplyError`` values, not raised)."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def gets(self) -> Any:
        """The next whole reply, or ``INCOMPLETE``."""
        start = self._pos
        if start >= len(self._buf):
            return INCOMPLETE
        try:
            return self._read()
        except _Need:
            self._pos = start
            return INCOMPLETE

    def _read(self) -> Any:
        buf = self._buf
        pos = self._pos
        end = buf.find(b"\r\n", pos)
        if end < 0:
            raise _Need
        kind = buf[pos]
        line = bytes(buf[pos + 1 : end])
        self._pos = end + 2
        try:
            if kind == 58:  # ':'
                return int(line)
            if kind == 36:  # '$'
                size = int(line)
                if size < 0:
                    return None
                stop = self._pos + size
                if len(buf) < stop + 2:
                    raise _Need
                value = bytes(buf[self._pos : stop])
                self._pos = stop + 2
                return value
            if kind == 42:  # '*'
                count = int(line)
                return None if count < 0 else [self._read() for _ in range(count)]
        except ValueError:
            raise ProtocolError(f"malformed RESP length {line[:20]!r}") from None
        if kind == 43:  # '+'
            return line
        if kind == 45:  # '-'
            return ReplyError(line.decode("utf-8", "replace"))
        raise ProtocolError(f"unexpected RESP type byte {bytes([kind])!r}")


def _handshake(endpoint: Endpoint) -> list[bytes]:
    commands = []
    if endpoint.password is not None:
        auth: list[Arg] = ["AUTH", endpoint.password]
        if endpoint.username:
            auth.insert(1, endpoint.username)
        commands.append(pack(auth))
    if endpoint.db:
        commands.append(pack(["SELECT", endpoint.db]))
    return commands


_Waiter: TypeAlias = "tuple[asyncio.Future[Any], asyncio.TimerHandle | None]"


class _Protocol(asyncio.Protocol):
    """One connection: callers queue a future per request; replies resolve them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.parser = Parser()
        self.waiters: deque[_Waiter] = deque()
        self.closed = False
        self.drained: asyncio.Future[None] | None = None
        self.unsent: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, packed: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closed:
            # Lost while the caller waited for the write buffer to drain.
            future.set_exception(ConnectionError("redis connection lost"))
            return future
        timer = None
        if self.timeout is not None:
            timer = self.loop.call_later(self.timeout, self._expire, future)
        self.waiters.append((future, timer))
        if self.unsent:
            self.unsent.append(packed)  # a flush is already scheduled
        elif len(self.waiters) == 1:
            # Nothing else in flight (the sequential case): send now, one loop
            # iteration sooner than a scheduled flush.
            assert self.transport is not None
            self.transport.write(packed)
        else:
            # Others are waiting: coalesce every request made before the loop next
            # runs callbacks into one write, so N concurrent callers cost one send.
            self.unsent.append(packed)
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        data = b"".join(self.unsent)
        self.unsent.clear()
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _expire(self, future: asyncio.Future[Any]) -> None:
        # A reply that late means a stalled server or path: fail this caller with
        # a timeout and drop the connection so the next call starts afresh.
        if not future.done():
            future.set_exception(TimeoutError("redis reply timed out"))
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = parser.gets()
            except ProtocolError as exc:
                self._fail(exc)
                self.abort()
                return
            if reply is INCOMPLETE:
                return
            if not waiters:
                self._fail(ProtocolError("reply with no request waiting"))
                self.abort()
                return
            future, timer = waiters.popleft()
            if timer is not None:
                timer.cancel()
            if future.done():  # the caller was cancelled or timed out
                continue
            if type(reply) is ReplyError:
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.drained is not None:
            if not self.drained.done():
                self.drained.set_result(None)
            self.drained = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("redis connection lost"))
        self.resume_writing()

    def _fail(self, exc: Exception) -> None:
        while self.waiters:
            future, timer = self.waiters.popleft()
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(exc)


class PipelinedClient:
    """One lazily opened, pipelined connection per event loop; reconnects on
    the next call after the connection is lost or a reply times out."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._handshake = _handshake(endpoint)
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Task[_Protocol] | None = None

    def __repr__(self) -> str:
        return f"PipelinedClient({self.endpoint!r})"

    async def call(self, *args: Arg) -> Any:
        """Send one command and return its reply; an error reply raises ``ReplyError``,
        a lost or timed-out connection ``ConnectionError``/``TimeoutError``."""
        protocol = self._protocol
        if protocol is None or protocol.closed or protocol.loop is not asyncio.get_running_loop():
            protocol = await self._connect()
        if protocol.drained is not None:
            await asyncio.shield(protocol.drained)
        return await protocol.request(pack(args))

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        opening = self._opening
        if opening is None or opening.get_loop() is not loop:
            opening = self._opening = loop.create_task(self._open(loop))
            # Every waiter may have been cancelled: mark a failure as seen anyway.
            opening.add_done_callback(_consume_outcome)
        try:
            protocol = await asyncio.shield(opening)
        finally:
            if self._opening is opening and opening.done():
                self._opening = None
        return protocol

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        stale, self._protocol = self._protocol, None
        if stale is not None and stale.loop is loop:
            stale.abort()
        endpoint = self.endpoint

        def factory() -> _Protocol:
            return _Protocol(loop, endpoint.timeout)

        if endpoint.path is not None:
            connecting = loop.create_unix_connection(factory, endpoint.path)
        else:
            connecting = loop.create_connection(factory, endpoint.host, endpoint.port)
        _, protocol = await asyncio.wait_for(connecting, endpoint.connect_timeout)
        try:
            replies = [protocol.request(command) for command in self._handshake]
            for reply in replies:
                await reply
        except BaseException:
            protocol.abort()
            raise
        self._protocol = protocol
        return protocol

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                protocol.transport.close()


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _Socket:
    """One blocking connection with its own parser."""

    def __init__(self, endpoint: Endpoint, handshake: list[bytes]) -> None:
        if endpoint.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(endpoint.connect_timeout)
            try:
                sock.connect(endpoint.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (endpoint.host, endpoint.port), timeout=endpoint.connect_timeout
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(endpoint.timeout)
        self.sock = sock
        self.parser = Parser()
        try:
            for command in handshake:
                reply = self.request(command)
                if isinstance(reply, ReplyError):
                    raise reply
        except BaseException:
            sock.close()
            raise

    def request(self, packed: bytes) -> Any:
        self.sock.sendall(packed)
        parser = self.parser
        while (reply := parser.gets()) is INCOMPLETE:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis connection closed by the server")
            parser.feed(data)
        return reply


class BlockingClient:
    """Sync twin of ``PipelinedClient``: a pool of blocking sockets, one per
    concurrent caller, safe across threads and after ``fork``."""

    def __init__(self, endpoint: Endpoint, max_idle: int = 16) -> None:
        self.endpoint = endpoint
        self._handshake = _handshake(endpoint)
        self._idle: list[_Socket] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"BlockingClient({self.endpoint!r})"

    def call(self, *args: Arg) -> Any:
        """Send one command and return its reply (``ReplyError`` raised)."""
        conn = self._take()
        try:
            reply = conn.request(pack(args))
        except BaseException:
            # Interrupted mid-reply: the stream's position is unknown, never reuse it.
            conn.sock.close()
            raise
        self._give(conn)
        if type(reply) is ReplyError:
            raise reply
        return reply

    def _take(self) -> _Socket:
        with self._lock:
            if os.getpid() != self._pid:
                # Forked: the inherited sockets belong to the parent's conversation.
                self._idle.clear()
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return _Socket(self.endpoint, self._handshake)

    def _give(self, conn: _Socket) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle and os.getpid() == self._pid:
                self._idle.append(conn)
                return
        conn.sock.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()
