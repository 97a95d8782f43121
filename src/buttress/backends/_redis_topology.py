"""Redis Cluster and Redis Sentinel for buttress's own RESP clients.

``ClusterClient`` (async) and ``BlockingCluster`` (sync) send each command to
the master that owns its keys' hash slot, learnt from ``CLUSTER SLOTS`` and
corrected by the redirections a reshard causes: ``MOVED`` (the slot has a new
owner: remember it), ``ASK`` (this key is already on the importing node: send
``ASKING`` and the command there, once) and ``TRYAGAIN`` (keys of one command
are split by a migration in progress: wait and resend). Each of those means
the command did not run, so following it can neither lose nor repeat a
decision. A command whose keys span several slots is refused before it is sent.

``SentinelClient`` and ``BlockingSentinel`` ask the sentinels which node is
master and talk to it; a lost connection (or a ``READONLY`` reply from a
demoted master) makes the next call ask again, so a failover is followed as
soon as the sentinels have promoted a replica.
"""

from __future__ import annotations

import asyncio
import threading
import time
from binascii import crc_hqx
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from buttress._exceptions import BackendUnavailableError, UnsupportedBackendError
from buttress._keys import hash_tag
from buttress.backends._resp import (
    Arg,
    BlockingClient,
    Endpoint,
    PipelinedClient,
    ProtocolError,
    ReplyError,
)

__all__ = [
    "SLOTS",
    "BlockingCluster",
    "BlockingSentinel",
    "ClusterClient",
    "CrossSlotError",
    "SentinelClient",
    "command_slot",
    "key_slot",
]

SLOTS: Final = 16384
MAX_REDIRECTS: Final = 16
"""Redirections one command may follow (a slot moving twice while in flight needs two)."""
TRYAGAIN_DELAY: Final = 0.02
"""Seconds before resending a command refused with TRYAGAIN (grows with each try)."""

Address = tuple[str, int]
Decode = Callable[[Any], Any] | None
_KEY_RANGES: Final = {b"DEL", b"UNLINK", b"EXISTS", b"TOUCH", b"MGET"}
_SCRIPTS: Final = {b"EVAL", b"EVALSHA", b"FCALL", b"FCALL_RO"}
# What a node says when its connection failed or its reply cannot be trusted.
_LOST: Final = (OSError, TimeoutError, ProtocolError)


class CrossSlotError(UnsupportedBackendError):
    """The keys of one command hash to different slots of a Redis Cluster, so no
    single node can run it atomically; refused before anything was sent."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        super().__init__(
            f"the keys of one Redis Cluster command fall in {slots} different hash slots; "
            "an atomic step must stay in one slot: give its keys a common hash tag "
            "(the same '{...}' part, e.g. '{user:42}')"
        )


def _as_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    return b"%d" % arg


def key_slot(key: bytes) -> int:
    """Redis Cluster's slot of ``key``: CRC16 (XMODEM) of its hash tag (the text
    inside the first ``{...}``, when not empty) or else of the whole key."""
    tag = hash_tag(key)
    return crc_hqx(key if tag is None else tag, 0) % SLOTS


def command_keys(args: Sequence[Arg]) -> Sequence[Arg]:
    """The key arguments of the commands buttress sends."""
    name = _as_bytes(args[0]).upper()
    if name in _SCRIPTS:
        return args[3 : 3 + int(args[2])]
    if name in _KEY_RANGES:
        return args[1:]
    return args[1:2]


def command_slot(args: Sequence[Arg]) -> int | None:
    """The one slot every key of the command hashes to (None: it has no keys), or
    ``CrossSlotError``."""
    keys = command_keys(args)
    if not keys:
        return None
    slot = key_slot(_as_bytes(keys[0]))
    if len(keys) > 1:
        slots = {key_slot(_as_bytes(key)) for key in keys}
        if len(slots) > 1:
            raise CrossSlotError(len(slots))
    return slot


def _redirection(exc: ReplyError) -> tuple[int, Address]:
    """``(slot, address)`` of ``MOVED 3999 127.0.0.1:6381`` / ``ASK 3999 …``."""
    try:
        _, slot, where = str(exc).split()
        host, _, port = where.rpartition(":")
        return int(slot), (host, int(port))
    except ValueError:
        raise ProtocolError("malformed Redis Cluster redirection") from None


class _Slots:
    """Which master owns each slot, as last learnt."""

    def __init__(self, seeds: Sequence[Address]) -> None:
        self.seeds = list(seeds)
        self.owner: list[Address | None] = [None] * SLOTS
        self.known = False

    def load(self, reply: Any, asked: Address) -> None:
        if type(reply) is not list:
            raise ProtocolError("CLUSTER SLOTS: reply of the wrong shape")
        owner: list[Address | None] = [None] * SLOTS
        try:
            for entry in reply:
                start, end, master = entry[0], entry[1], entry[2]
                host = master[0].decode() or asked[0]  # an empty host means "the one asked"
                address = (host, int(master[1]))
                owner[start : end + 1] = [address] * (end + 1 - start)
        except (TypeError, IndexError, ValueError, AttributeError, UnicodeDecodeError):
            raise ProtocolError("CLUSTER SLOTS: reply of the wrong shape") from None
        self.owner = owner
        self.known = True

    def address(self, slot: int | None) -> Address:
        found = self.owner[slot] if slot is not None else None
        return found or self.seeds[0]

    def candidates(self) -> list[Address]:
        """Nodes to ask for the slot table: every master known, then the seeds."""
        known = list(dict.fromkeys(a for a in self.owner if a is not None))
        return known + [a for a in self.seeds if a not in known]


class _Route:
    """Where one command goes next, corrected by each redirection it meets."""

    __slots__ = ("address", "asking", "slot", "slots")

    def __init__(self, slots: _Slots, slot: int | None) -> None:
        self.slots = slots
        self.slot = slot
        self.address: Address | None = slots.address(slot)
        self.asking = False

    def target(self) -> Address:
        """The node to send to: the one named last, else the slot's owner as known now."""
        return self.address or self.slots.address(self.slot)

    def follow(self, exc: ReplyError, attempt: int) -> float:
        """Take in a ``MOVED``, ``ASK`` or ``TRYAGAIN``; the seconds to wait before resending.

        Any other error reply is raised again: the command ran, or was refused for good.
        """
        code = exc.code
        if code == "MOVED":
            moved, self.address = _redirection(exc)
            self.slots.owner[moved] = self.address
            self.asking = False
            return 0.0
        if code == "ASK":
            _, self.address = _redirection(exc)
            self.asking = True
            return 0.0
        if code == "TRYAGAIN":
            # Resent to the slot's owner as known after the wait.
            self.address, self.asking = None, False
            return TRYAGAIN_DELAY * (attempt + 1)
        raise exc


def _too_many_redirections() -> BackendUnavailableError:
    return BackendUnavailableError(f"Redis Cluster: still redirected after {MAX_REDIRECTS} tries")


def _unreachable(what: str, last: BaseException | None) -> BackendUnavailableError:
    cause = f" ({type(last).__name__})" if last is not None else ""
    return BackendUnavailableError(f"{what}{cause}")


class ClusterClient:
    """Async: one ``PipelinedClient`` per master, each command sent to its slot's owner."""

    def __init__(self, template: Endpoint, seeds: Sequence[Address]) -> None:
        self._template = template
        self._slots = _Slots(seeds)
        self._nodes: dict[Address, PipelinedClient] = {}
        self._refreshing: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"ClusterClient(seeds={self._slots.seeds!r})"

    def _node(self, address: Address) -> PipelinedClient:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = PipelinedClient(self._template.at(*address))
        return node

    async def refresh(self) -> None:
        """Load the slot table from the first node that answers."""
        last: BaseException | None = None
        for address in self._slots.candidates():
            try:
                reply = await self._node(address).call(b"CLUSTER", b"SLOTS")
                self._slots.load(reply, address)
                return
            except (*_LOST, ReplyError) as exc:
                last = exc
        raise _unreachable("no Redis Cluster node answered CLUSTER SLOTS", last)

    async def call(self, *args: Arg, decode: Decode = None) -> Any:
        """Send one command to the master owning its keys' slot, following
        ``MOVED``, ``ASK`` and ``TRYAGAIN``; errors as ``PipelinedClient.call``."""
        slot = command_slot(args)
        if not self._slots.known:
            await self.refresh()
        route = _Route(self._slots, slot)
        for attempt in range(MAX_REDIRECTS):
            node = self._node(route.target())
            try:
                return await node.call(*args, decode=decode, asking=route.asking)
            except ReplyError as exc:
                delay = route.follow(exc, attempt)
                if delay:
                    await asyncio.sleep(delay)
            except _LOST:
                # The node may be gone or demoted: learn the layout again next time.
                self._slots.known = False
                raise
        raise _too_many_redirections()

    async def aclose(self) -> None:
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.aclose()


class BlockingCluster:
    """Sync twin of ``ClusterClient``: one ``BlockingClient`` pool per master."""

    def __init__(self, template: Endpoint, seeds: Sequence[Address]) -> None:
        self._template = template
        self._slots = _Slots(seeds)
        self._nodes: dict[Address, BlockingClient] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlockingCluster(seeds={self._slots.seeds!r})"

    def _node(self, address: Address) -> BlockingClient:
        with self._lock:
            node = self._nodes.get(address)
            if node is None:
                node = self._nodes[address] = BlockingClient(self._template.at(*address))
            return node

    def refresh(self) -> None:
        last: BaseException | None = None
        for address in self._slots.candidates():
            try:
                reply = self._node(address).call(b"CLUSTER", b"SLOTS")
                self._slots.load(reply, address)
                return
            except (*_LOST, ReplyError) as exc:
                last = exc
        raise _unreachable("no Redis Cluster node answered CLUSTER SLOTS", last)

    def call(self, *args: Arg, decode: Decode = None) -> Any:
        """Sync twin of ``ClusterClient.call``."""
        slot = command_slot(args)
        if not self._slots.known:
            self.refresh()
        route = _Route(self._slots, slot)
        for attempt in range(MAX_REDIRECTS):
            node = self._node(route.target())
            try:
                return node.call(*args, decode=decode, asking=route.asking)
            except ReplyError as exc:
                delay = route.follow(exc, attempt)
                if delay:
                    time.sleep(delay)
            except _LOST:
                self._slots.known = False
                raise
        raise _too_many_redirections()

    def close(self) -> None:
        with self._lock:
            nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            node.close()


def _sentinel_endpoint(template: Endpoint, address: Address) -> Endpoint:
    # Sentinels have no databases: ask them without SELECT.
    return attrs.evolve(template, db=0).at(*address)


def _master_address(reply: Any) -> Address | None:
    if type(reply) is list and len(reply) == 2 and all(type(x) is bytes for x in reply):
        try:
            return reply[0].decode(), int(reply[1])
        except (UnicodeDecodeError, ValueError):
            return None
    return None


class SentinelClient:
    """Async: the master that the sentinels name for ``service``, asked again
    after a lost connection or a ``READONLY`` reply."""

    def __init__(self, template: Endpoint, sentinels: Sequence[Address], service: str) -> None:
        self._template = template
        self._service = service
        self._sentinels = [PipelinedClient(_sentinel_endpoint(template, a)) for a in sentinels]
        self._master: PipelinedClient | None = None

    def __repr__(self) -> str:
        return f"SentinelClient(service={self._service!r})"

    async def _discover(self) -> PipelinedClient:
        last: BaseException | None = None
        for sentinel in self._sentinels:
            try:
                reply = await sentinel.call(b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service)
            except (*_LOST, ReplyError) as exc:
                last = exc
                continue
            address = _master_address(reply)
            if address is not None:
                master = self._master = PipelinedClient(self._template.at(*address))
                return master
        raise _unreachable(f"no sentinel named a master for service {self._service!r}", last)

    async def _forget(self, master: PipelinedClient) -> None:
        if self._master is master:
            self._master = None
            await master.aclose()

    async def call(self, *args: Arg, decode: Decode = None) -> Any:
        """Send one command to the current master; errors as ``PipelinedClient.call``."""
        for attempt in range(2):
            master = self._master or await self._discover()
            try:
                return await master.call(*args, decode=decode)
            except ReplyError as exc:
                # A demoted master refuses writes before running anything: safe to resend.
                if exc.code != "READONLY":
                    raise
                await self._forget(master)
                if attempt:
                    raise
            except _LOST:
                await self._forget(master)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._master is not None:
            await self._forget(self._master)
        for sentinel in self._sentinels:
            await sentinel.aclose()


class BlockingSentinel:
    """Sync twin of ``SentinelClient``."""

    def __init__(self, template: Endpoint, sentinels: Sequence[Address], service: str) -> None:
        self._template = template
        self._service = service
        self._sentinels = [BlockingClient(_sentinel_endpoint(template, a)) for a in sentinels]
        self._master: BlockingClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlockingSentinel(service={self._service!r})"

    def _current(self) -> BlockingClient:
        with self._lock:
            if self._master is not None:
                return self._master
        last: BaseException | None = None
        for sentinel in self._sentinels:
            try:
                reply = sentinel.call(b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._service)
            except (*_LOST, ReplyError) as exc:
                last = exc
                continue
            address = _master_address(reply)
            if address is not None:
                master = BlockingClient(self._template.at(*address))
                with self._lock:
                    if self._master is None:
                        self._master = master
                    return self._master
        raise _unreachable(f"no sentinel named a master for service {self._service!r}", last)

    def _forget(self, master: BlockingClient) -> None:
        with self._lock:
            if self._master is not master:
                return
            self._master = None
        master.close()

    def call(self, *args: Arg, decode: Decode = None) -> Any:
        """Sync twin of ``SentinelClient.call``."""
        for attempt in range(2):
            master = self._current()
            try:
                return master.call(*args, decode=decode)
            except ReplyError as exc:
                if exc.code != "READONLY":
                    raise
                self._forget(master)
                if attempt:
                    raise
            except _LOST:
                self._forget(master)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            master, self._master = self._master, None
        if master is not None:
            master.close()
        for sentinel in self._sentinels:
            sentinel.close()
