"""A small RESP2 client for buttress's per-request hot paths on Redis.

``PipelinedClient`` shares one connection among every caller on an event loop:
requests are written as they come and replies matched to callers in order, so
32 concurrent decisions cost a handful of socket wake-ups instead of 32 pool
checkouts. ``BlockingClient`` is its sync twin (a pool of plain sockets) for
WSGI apps and threads. redis-py stays the general-purpose client; these run
only the few commands buttress sends per decision, without its per-call cost.

Neither trusts the server. A reply must arrive whole within the endpoint's
``timeout`` of its request, however slowly the bytes come; ``Parser`` reads in
time linear in the bytes, to at most ``MAX_DEPTH`` nested arrays of at most
``MAX_ITEMS`` elements and ``MAX_REPLY`` bytes a reply. Anything else (not
RESP2, past a limit, a bulk string without its CRLF, bytes no request asked
for, a reply its caller's ``decode`` rejects) raises ``ProtocolError`` and
drops the connection; the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any, Final, TypeAlias, TypeVar, cast, overload

import attrs

from buttress._exceptions import BackendUnavailableError

__all__ = [
    "INCOMPLETE",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_REPLY",
    "BlockingClient",
    "Endpoint",
    "Parser",
    "PipelinedClient",
    "ProtocolError",
    "ReplyError",
    "endpoint_from_pool",
    "pack",
]

Arg: TypeAlias = bytes | str | int
T = TypeVar("T")
INCOMPLETE: Final = object()
"""What ``Parser.gets`` returns while the buffer holds no whole reply yet."""

# What a reply may hold; past these it is a ProtocolError. Generous for the
# replies buttress reads (a few integers), small enough that a hostile server
# cannot make a caller buffer without bound or recurse.
MAX_DEPTH: Final = 32
"""Arrays nested in arrays a reply may have (buttress's replies are one level deep)."""
MAX_ITEMS: Final = 1 << 20
"""Elements one array may declare."""
MAX_REPLY: Final = 64 << 20
"""Bytes one reply may span, bulk strings and nested arrays included (64 MiB;
Redis's own proto-max-bulk-len is 512 MiB)."""


class ReplyError(Exception):
    """An error reply from the server, e.g. ``NOSCRIPT No matching script``."""

    @property
    def code(self) -> str:
        """The reply's first word (``ERR``, ``NOSCRIPT``, ``WRONGPASS`` …)."""
        return str(self).split(" ", 1)[0]


class ProtocolError(BackendUnavailableError):
    """The server's reply is not RESP2, breaks a limit, or has the wrong shape for
    its command: the connection cannot be trusted any more and is dropped (the
    next call reconnects).

    A ``BackendUnavailableError`` (so a ``BackendError`` and a ``ConnectionError``):
    callers' outage policies apply to it as to a lost connection. The message
    never quotes the server's bytes.
    """


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
    tls: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    """TLS for every connection (``rediss://``), built by redis-py's own rules
    from the DSN's ``ssl_*`` parameters so both clients check the same things."""

    def at(self, host: str, port: int) -> Endpoint:
        """The same credentials, timeouts and TLS at another address (a cluster node,
        the master Sentinel names)."""
        return attrs.evolve(self, host=host, port=port, path=None)


_TLS_OPTIONS: Final = (
    "keyfile",
    "certfile",
    "cert_reqs",
    "ca_certs",
    "ca_data",
    "ca_path",
    "check_hostname",
    "min_version",
    "ciphers",
)


def _tls_context(kwargs: dict[str, Any]) -> ssl.SSLContext | None:
    """The ``ssl.SSLContext`` redis-py would use for these ``ssl_*`` settings, or
    None when one is set that this client does not follow (a key password, OCSP)."""
    from redis.asyncio.connection import RedisSSLContext

    unsupported = ("ssl_password", "ssl_include_verify_flags", "ssl_exclude_verify_flags")
    if any(kwargs.get(name) for name in unsupported):
        return None
    # redis-py's SSLConnection defaults, which RedisSSLContext alone does not apply.
    given: dict[str, Any] = {"cert_reqs": "required", "check_hostname": True}
    given |= {name: kwargs[f"ssl_{name}"] for name in _TLS_OPTIONS if f"ssl_{name}" in kwargs}
    context: ssl.SSLContext = RedisSSLContext(**given).get()
    return context


def endpoint_from_pool(pool: Any) -> Endpoint | None:
    """The ``Endpoint`` of a redis-py connection pool, or None when its
    connections need something this client does not do (RESP3, a credential
    provider, custom connection classes, unusual TLS options)."""
    kwargs = pool.connection_kwargs
    kind = getattr(pool, "connection_class", None)
    name = getattr(kind, "__name__", "")
    if name not in ("Connection", "UnixDomainSocketConnection", "SSLConnection"):
        return None
    tls = None
    if name == "SSLConnection":
        tls = _tls_context(kwargs)
        if tls is None:
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
        tls=tls,
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


class Parser:
    """Incremental RESP2 reader: ``feed`` bytes as they arrive, ``gets`` whole
    replies (error replies come back as ``ReplyError`` values, not raised).

    Linear in the bytes fed however they are chunked: an array's finished
    elements and a bulk string's header are kept between calls instead of being
    parsed again, and a line still waiting for its CRLF is searched from where
    the last search stopped. Nesting is followed with an explicit stack, not
    recursion. Anything that is not RESP2, or goes past ``max_depth``,
    ``max_items`` or ``max_reply``, raises ``ProtocolError``; the parser (and
    its connection) must then be dropped.
    """

    __slots__ = (
        "_buf",
        "_bulk",
        "_max_depth",
        "_max_items",
        "_max_reply",
        "_pos",
        "_reply_at",
        "_scan",
        "_stack",
    )

    def __init__(
        self,
        *,
        max_depth: int = MAX_DEPTH,
        max_items: int = MAX_ITEMS,
        max_reply: int = MAX_REPLY,
    ) -> None:
        self._buf = bytearray()
        """The unread bytes: one buffer for the parser's life, trimmed at the front."""
        self._pos = 0
        """Where the next unread element starts in ``_buf``."""
        self._scan = 0
        """Where to resume looking for the CRLF of the line starting at ``_pos``."""
        self._bulk = -1
        """Length of the bulk string whose header was read and body not yet, else -1."""
        self._stack: list[tuple[list[Any], int]] = []
        """Arrays being filled, outermost first, each with its declared length."""
        self._reply_at = 0
        """Where the reply in progress started (negative once its start was dropped)."""
        self._max_depth = max_depth
        self._max_items = max_items
        self._max_reply = max_reply

    def feed(self, data: bytes) -> None:
        buf = self._buf
        pos = self._pos
        if pos:
            # Drop what was read (cheap at the front of a bytearray) so the
            # buffer holds only the unread tail, however long the connection lives.
            del buf[:pos]
            self._pos = 0
            self._scan -= pos
            self._reply_at -= pos
        buf += data

    def buffered(self) -> int:
        """Bytes fed and not yet returned as (part of) a reply."""
        return len(self._buf) - self._pos

    def gets(self) -> Any:
        """The next whole reply, or ``INCOMPLETE``."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        stack = self._stack
        bulk = self._bulk
        if stack or bulk >= 0:
            reply_at = self._reply_at
        elif pos >= size:
            return INCOMPLETE
        else:
            reply_at = pos
        value: Any
        try:
            while True:
                if bulk >= 0:
                    # A bulk string whose header came in an earlier chunk.
                    stop = pos + bulk
                    if size < stop + 2:
                        return self._wait(pos, bulk, reply_at)
                    if buf[stop] != 13 or buf[stop + 1] != 10:
                        raise ProtocolError("RESP bulk string not followed by CRLF")
                    value = bytes(buf[pos:stop])
                    pos = stop + 2
                    bulk = self._bulk = -1
                else:
                    scan = self._scan
                    end = buf.find(b"\r\n", scan if scan > pos else pos)
                    if end < 0:
                        # The last byte may be the CR of the CRLF still to come.
                        self._scan = size - 1 if size > pos else pos
                        return self._wait(pos, bulk, reply_at)
                    kind = buf[pos]
                    line = pos + 1
                    pos = end + 2
                    if kind == 58:  # ':'
                        value = int(buf[line:end])
                    elif kind == 36:  # '$'
                        length = int(buf[line:end])
                        if length < 0:
                            _check_null(length)
                            value = None
                        else:
                            if length > self._max_reply - (pos - reply_at):
                                raise ProtocolError(
                                    f"RESP bulk string of {length} bytes: a reply is at "
                                    f"most {self._max_reply} bytes"
                                )
                            stop = pos + length
                            if size < stop + 2:
                                bulk = length
                                continue
                            if buf[stop] != 13 or buf[stop + 1] != 10:
                                raise ProtocolError("RESP bulk string not followed by CRLF")
                            value = bytes(buf[pos:stop])
                            pos = stop + 2
                    elif kind == 42:  # '*'
                        length = int(buf[line:end])
                        if length <= 0:
                            _check_null(length)
                            value = [] if length == 0 else None
                        else:
                            if length > self._max_items:
                                raise ProtocolError(
                                    f"RESP array of {length} elements: at most {self._max_items}"
                                )
                            if len(stack) >= self._max_depth:
                                raise ProtocolError(
                                    f"RESP arrays nested more than {self._max_depth} deep"
                                )
                            stack.append(([], length))
                            continue
                    elif kind == 43:  # '+'
                        value = bytes(buf[line:end])
                    elif kind == 45:  # '-'
                        value = ReplyError(buf[line:end].decode("utf-8", "replace"))
                    else:
                        raise ProtocolError(f"unexpected RESP type byte {kind:#04x}")
                # Put the value in its array; a filled array is in turn a value.
                while stack:
                    items, length = stack[-1]
                    items.append(value)
                    if len(items) < length:
                        break
                    stack.pop()
                    value = items
                else:
                    if pos - reply_at > self._max_reply:
                        raise ProtocolError(f"RESP reply longer than {self._max_reply} bytes")
                    self._pos = pos
                    return value
        except ValueError:
            # int() of a line that is not a decimal integer (the only ValueError here).
            raise ProtocolError("malformed RESP integer or length") from None

    def _wait(self, pos: int, bulk: int, reply_at: int) -> object:
        """Keep the place and return ``INCOMPLETE`` (unless the reply is already too long)."""
        if len(self._buf) - reply_at > self._max_reply:
            raise ProtocolError(f"RESP reply longer than {self._max_reply} bytes")
        self._pos = pos
        self._bulk = bulk
        self._reply_at = reply_at
        return INCOMPLETE


def _check_null(length: int) -> None:
    """RESP2's null bulk string or array has length -1; any other negative is garbage."""
    if length < -1:
        raise ProtocolError(f"negative RESP length {length}")


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


_ASKING: Final = b"*1\r\n$6\r\nASKING\r\n"

_Waiter: TypeAlias = "tuple[asyncio.Future[Any], float]"
"""A caller's future and the loop time by which its reply is due (0.0: no timeout)."""

_EARLY: Final = 0.001
"""A timer may fire this much before its time (the loop's clock resolution)."""


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
        # One timer for the connection rather than one per request: replies come
        # in order, so the oldest waiter is always the first due.
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass
        # (uvloop's are not): checking the class would refuse a working one.
        self.transport = cast(asyncio.Transport, transport)

    def request(self, packed: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closed:
            # Lost while the caller waited for the write buffer to drain.
            future.set_exception(ConnectionError("redis connection lost"))
            return future
        due = 0.0
        if self.timeout is not None:
            # A deadline for the whole reply: bytes trickling in do not extend it.
            due = self.loop.time() + self.timeout
            if self.watchdog is None:
                self.watchdog = self.loop.call_at(due, self._watch)
        self.waiters.append((future, due))
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

    def _watch(self) -> None:
        """The oldest waiter's deadline has come: expire it, or wait for the next
        oldest's (it was answered meanwhile)."""
        self.watchdog = None
        if not self.waiters or self.closed:
            return
        future, due = self.waiters[0]
        if due - self.loop.time() > _EARLY:
            self.watchdog = self.loop.call_at(due, self._watch)
            return
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
            future, _ = waiters.popleft()
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
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None:
            watchdog.cancel()
        while self.waiters:
            future, _ = self.waiters.popleft()
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

    @overload
    async def call(self, *args: Arg, decode: None = None, asking: bool = False) -> Any: ...
    @overload
    async def call(self, *args: Arg, decode: Callable[[Any], T], asking: bool = False) -> T: ...
    async def call(
        self, *args: Arg, decode: Callable[[Any], Any] | None = None, asking: bool = False
    ) -> Any:
        """Send one command and return its reply, passed through ``decode`` if given.

        An error reply raises ``ReplyError``; a lost or timed-out connection
        ``ConnectionError``/``TimeoutError``; a reply that is not RESP2, or that
        ``decode`` finds of the wrong shape, ``ProtocolError``, and the connection
        is dropped (a reply out of place may mean the stream is out of step).
        With ``asking``, ``ASKING`` goes first on the same connection with nothing
        in between (Redis Cluster's answer to an ``ASK`` redirection)."""
        protocol = self._protocol
        if protocol is None or protocol.closed or protocol.loop is not asyncio.get_running_loop():
            protocol = await self._connect()
        if protocol.drained is not None:
            await asyncio.shield(protocol.drained)
        if asking:
            # Both requests are queued before the loop runs again: adjacent on the wire.
            protocol.request(_ASKING).add_done_callback(_consume_outcome)
        reply = await protocol.request(pack(args))
        if decode is None:
            return reply
        try:
            return decode(reply)
        except BaseException:
            protocol.abort()
            raise

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
        elif endpoint.tls is not None:
            connecting = loop.create_connection(
                factory,
                endpoint.host,
                endpoint.port,
                ssl=endpoint.tls,
                server_hostname=endpoint.host,
                ssl_handshake_timeout=endpoint.connect_timeout,
            )
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


def _consume_outcome(task: asyncio.Future[Any]) -> None:
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
            if endpoint.tls is not None:
                try:
                    sock = endpoint.tls.wrap_socket(sock, server_hostname=endpoint.host)
                except BaseException:
                    sock.close()
                    raise
        sock.settimeout(endpoint.timeout)
        self.sock = sock
        self.timeout = endpoint.timeout
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
        """Send one command and read its whole reply within ``timeout`` of sending it."""
        sock = self.sock
        started = monotonic()
        sock.sendall(packed)
        # The socket's timeout (the whole budget) bounds this first read; a reply
        # that needs more reads gets only what is left of it (``_rest``).
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("redis connection closed by the server")
        parser = self.parser
        parser.feed(data)
        reply = parser.gets()
        if reply is INCOMPLETE:
            reply = self._rest(started)
        if parser.buffered():
            # One request, one reply: more bytes would be taken for the next reply.
            raise ProtocolError("redis sent more than the reply to the command")
        return reply

    def _rest(self, started: float) -> Any:
        """The rest of a reply, read by ``started + timeout`` however the server
        paces it (a timeout per read would let a server dripping bytes hold the
        caller for ever)."""
        sock = self.sock
        parser = self.parser
        timeout = self.timeout
        try:
            while True:
                if timeout is not None:
                    left = started + timeout - monotonic()
                    if left <= 0:
                        raise TimeoutError("redis reply timed out")
                    sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("redis connection closed by the server")
                parser.feed(data)
                reply = parser.gets()
                if reply is not INCOMPLETE:
                    return reply
        finally:
            sock.settimeout(timeout)


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

    @overload
    def call(self, *args: Arg, decode: None = None, asking: bool = False) -> Any: ...
    @overload
    def call(self, *args: Arg, decode: Callable[[Any], T], asking: bool = False) -> T: ...
    def call(
        self, *args: Arg, decode: Callable[[Any], Any] | None = None, asking: bool = False
    ) -> Any:
        """Send one command and return its reply (``ReplyError`` raised), passed
        through ``decode`` if given (which raises ``ProtocolError`` for a reply
        of the wrong shape; the connection is then dropped). With ``asking``,
        ``ASKING`` goes first on the same connection (Redis Cluster's answer to
        an ``ASK`` redirection)."""
        conn = self._take()
        try:
            if asking:
                conn.request(_ASKING)
            reply = conn.request(pack(args))
            if decode is not None and type(reply) is not ReplyError:
                reply = decode(reply)
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
