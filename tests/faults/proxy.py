"""``FaultProxy``: a loopback TCP proxy that breaks the link to a real server on command.

It sits between buttress and a test server (PostgreSQL, Redis) and can cut every
open connection, refuse new ones, delay bytes, stall a response part-way and
heal. Faults act on the byte stream only, so the drivers see what they would see
on a real network: resets, refusals, silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter

__all__ = ["FaultProxy"]

_CHUNK = 65536
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class _Link:
    """One client connection and its upstream twin, pumped in both directions."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_writer = client[1]
        self.upstream_writer = upstream[1]
        # Bytes of the server's reply still allowed through while a stall is pending.
        self.reply_budget: int | None = None
        self.tasks: list[asyncio.Task[None]] = [
            asyncio.ensure_future(self._pump(client[0], upstream[1], upstream=True)),
            asyncio.ensure_future(self._pump(upstream[0], client[1], upstream=False)),
        ]
        for task in self.tasks:
            proxy._tasks.add(task)
            task.add_done_callback(proxy._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        # Reading and writing are split by a queue so latency delays each chunk
        # without capping throughput (chunks overlap in flight, order is kept).
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                while data:
                    if upstream:
                        writer.write(data)
                        data = b""
                    else:
                        data = await self._pass_reply(data, writer)
                    await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                queue.put_nowait((loop.time() + self.proxy.latency, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
            self.close(abort=False)

    async def _pass_reply(self, data: bytes, writer: asyncio.StreamWriter) -> bytes:
        """Write what the stall budget allows of ``data``; return the held-back rest."""
        proxy = self.proxy
        if proxy._flowing.is_set():
            writer.write(data)
            return b""
        if self.reply_budget is None:
            self.reply_budget = proxy._stall_after
        if self.reply_budget > 0:
            head, data = data[: self.reply_budget], data[self.reply_budget :]
            self.reply_budget -= len(head)
            writer.write(head)
        if data:
            await proxy._flowing.wait()
            self.reply_budget = None
            writer.write(data)
        return b""

    def close(self, *, abort: bool) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            if abort:
                # An RST, like a dropped route or a killed peer, not a polite FIN.
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                writer.transport.abort()
            else:
                writer.close()
        self.proxy._links.discard(self)
        if abort:
            for task in self.tasks:
                task.cancel()


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port`` until told otherwise.

    Use inside one event loop: ``await start()``, then the fault methods (plain
    calls, effective at once), ``await close()`` at the end. ``faults`` counts
    every fault injected, by kind.
    """

    def __init__(self, upstream_port: int, *, name: str, upstream_host: str = "127.0.0.1") -> None:
        self.name = name
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.latency = 0.0
        self.faults: Counter[str] = Counter()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._stall_after = 0
        self._refusing = False

    def __repr__(self) -> str:
        return f"<FaultProxy {self.name} :{self.port} -> :{self.upstream_port}>"

    @property
    def connections(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._links.add(_Link(self, (reader, writer), upstream))

    def cut(self) -> int:
        """Reset every open connection (both sides); return how many were cut."""
        links = list(self._links)
        for link in links:
            link.close(abort=True)
        self.faults["cut"] += 1
        return len(links)

    def refuse(self) -> None:
        """Stop listening: new connections are refused until ``heal()``."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._refusing = True
        self.faults["refuse"] += 1

    def outage(self) -> int:
        """The dependency is gone: refuse new connections and cut the open ones."""
        self.refuse()
        return self.cut()

    def add_latency(self, seconds: float) -> None:
        """Delay every chunk, both ways, by ``seconds``."""
        self.latency = seconds
        self.faults["latency"] += 1

    def stall(self, *, after_bytes: int = 0) -> None:
        """Hold the server's replies: each connection passes ``after_bytes`` more
        reply bytes (a response cut off part-way), then silence until ``heal()``.
        Requests still reach the server."""
        self._stall_after = after_bytes
        self._flowing.clear()
        self.faults["stall"] += 1

    async def heal(self) -> None:
        """Undo every fault: listen again, no latency, replies flow."""
        self.latency = 0.0
        self._flowing.set()
        if self._refusing:
            self._refusing = False
            await self._listen()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._flowing.set()
        for link in list(self._links):
            link.close(abort=True)
        # Pumps must finish inside this loop, not be destroyed with it.
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
