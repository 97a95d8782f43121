"""A password-protected Redis Cluster of masters only, and live slot migration.

The cluster is built by hand as ``redis-cli --cluster create`` would build it
(slots split evenly, one config epoch per node, CLUSTER MEET), then waited on
until every node says ``cluster_state:ok`` and agrees on the slot map. Slots
move between masters with the real protocol (SETSLOT IMPORTING/MIGRATING,
MIGRATE, SETSLOT NODE), one step at a time if a test wants to catch clients
between MOVED and ASK.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from topology._base import RedisTopology
from topology._support import free_ports, wait_until
from topology.redis_process import RedisProcess

__all__ = ["ClusterNode", "RedisCluster"]

SLOTS = 16384
_MIGRATE_BATCH = 100


@dataclass(frozen=True)
class ClusterNode:
    """A master of the cluster, as clients and CLUSTER commands name it."""

    host: str
    port: int
    node_id: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class RedisCluster(RedisTopology):
    """``masters`` cluster-enabled redis-servers on 127.0.0.1, no replicas, one password
    (``requirepass`` and ``masterauth``); node ports are at most 55535, so each
    node's bus port (port + 10000) is valid."""

    kind = "cluster"

    def __init__(self, masters: int = 3, node_timeout_ms: int = 5000) -> None:
        super().__init__()
        if masters < 1:
            raise ValueError("a cluster needs at least one master")
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []
        # The ranges a fresh cluster gives each node's port, so reset() can put slots back.
        self._home: list[tuple[range, int]] = []

    def dsn(self, seeds: int | None = None) -> str:
        """``redis+cluster://:PASSWORD@127.0.0.1:P1[,127.0.0.1:P2...]``, with the first
        ``seeds`` nodes (all by default)."""
        chosen = self.nodes if seeds is None else self.nodes[:seeds]
        return f"redis+cluster://:{self.password}@" + ",".join(n.address for n in chosen)

    @property
    def seeds(self) -> list[tuple[str, int]]:
        """Every node's (host, port): any one is enough for a client to find the rest."""
        return [(node.host, node.port) for node in self.nodes]

    def process(self, node: ClusterNode) -> RedisProcess:
        """The process of ``node``: ``.client()`` talks to that node alone (no redirects)."""
        for process in self.processes:
            if process.port == node.port:
                return process
        raise LookupError(f"no cluster node on port {node.port}")

    def _config(self, name: str, port: int) -> list[str]:
        return [
            f"port {port}",
            f"requirepass {self.password}",
            f"masterauth {self.password}",
            "cluster-enabled yes",
            f"cluster-config-file nodes-{name}.conf",
            f"cluster-node-timeout {self.node_timeout_ms}",
            'save ""',
            "appendonly no",
        ]

    def _start_once(self) -> None:
        ports = free_ports(self.masters, cluster_bus=True)
        for index, port in enumerate(ports):
            name = f"node{index}"
            process = RedisProcess(self.root, name, client_options={"password": self.password})
            self.processes.append(process)
            process.launch(port, self._config(name, port))
        for process in self.processes:
            process.wait_ready()
        self.nodes = [
            ClusterNode("127.0.0.1", p.port, p.command("CLUSTER", "MYID")) for p in self.processes
        ]
        bounds = [SLOTS * i // self.masters for i in range(self.masters + 1)]
        self._home = [
            (range(bounds[i], bounds[i + 1]), node.port) for i, node in enumerate(self.nodes)
        ]
        for index, (process, (slots, _port)) in enumerate(
            zip(self.processes, self._home, strict=True)
        ):
            # Distinct epochs up front spare the cluster resolving a collision.
            process.command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            process.command("CLUSTER", "ADDSLOTS", *slots)
        first = self.processes[0]
        for process in self.processes[1:]:
            first.command("CLUSTER", "MEET", "127.0.0.1", process.port, process.port + 10000)
        self.wait_converged()

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok, knows every master and agrees on the slot map."""
        import redis

        def converged() -> bool:
            maps = []
            for process in self.processes:
                info = process.command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    return False
                if f"cluster_known_nodes:{self.masters}\r" not in info:
                    return False
                maps.append(self._ranges(process))
            return all(m == maps[0] for m in maps)

        wait_until(
            converged, timeout, "cluster_state:ok on every node", not_yet=(redis.RedisError,)
        )

    def _ranges(self, process: RedisProcess | None = None) -> list[tuple[range, int]]:
        """Each served slot range and its owner's port, in slot order, as ``process``
        (by default the first node) sees them."""
        entries = (process or self.processes[0]).command("CLUSTER", "SLOTS")
        return sorted(
            ((range(e[0], e[1] + 1), int(e[2][1])) for e in entries), key=lambda r: r[0].start
        )

    def _node(self, port: int) -> ClusterNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no cluster node on port {port}")

    def key_slot(self, key: str | bytes) -> int:
        """The hash slot of ``key`` (CLUSTER KEYSLOT)."""
        slot: int = self.processes[0].command("CLUSTER", "KEYSLOT", key)
        return slot

    def slot_owner(self, slot: int) -> ClusterNode:
        """The master serving ``slot`` (during a migration: still the source)."""
        for slots, port in self._ranges():
            if slot in slots:
                return self._node(port)
        raise LookupError(f"slot {slot} is not served")

    def slots_of(self, node: ClusterNode) -> list[range]:
        """The slot ranges ``node`` serves now."""
        return [slots for slots, port in self._ranges() if port == node.port]

    def key_on(self, node: ClusterNode, prefix: str = "key") -> str:
        """A key named ``{prefix}-N`` whose slot ``node`` serves now."""
        owned = self.slots_of(node)
        for n in range(10_000):
            key = f"{prefix}-{n}"
            slot = self.key_slot(key)
            if any(slot in r for r in owned):
                return key
        raise LookupError(f"no key with prefix {prefix!r} lands on {node.address}")

    def begin_migration(self, slot: int, target: ClusterNode) -> ClusterNode:
        """Mark ``slot`` IMPORTING on ``target`` and MIGRATING on its owner, which is
        returned. From now on the owner answers ASK for keys it no longer holds."""
        source = self.slot_owner(slot)
        if source == target:
            raise ValueError(f"slot {slot} is already served by {target.address}")
        self.process(target).command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        self.process(source).command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        return source

    def migrate_keys(
        self,
        slot: int,
        source: ClusterNode,
        target: ClusterNode,
        keys: Iterable[str | bytes] | None = None,
    ) -> int:
        """MIGRATE ``keys`` (by default every key of ``slot``) from ``source`` to
        ``target``; returns how many keys were asked to move."""
        raw = self.process(source).client(decode=False)
        moved = 0
        batches: Iterable[list[str | bytes]]
        if keys is not None:
            batches = [list(keys)]
        else:
            batches = iter(
                lambda: list(raw.execute_command("CLUSTER", "GETKEYSINSLOT", slot, _MIGRATE_BATCH)),
                [],
            )
        for batch in batches:
            if not batch:
                continue
            raw.execute_command(
                "MIGRATE", target.host, target.port, "", 0, 5000,
                "AUTH", self.password, "KEYS", *batch,
            )  # fmt: skip
            moved += len(batch)
        return moved

    def finish_migration(self, slot: int, target: ClusterNode) -> None:
        """SETSLOT NODE: ``target`` serves ``slot``, told to the target first (which
        bumps its epoch), then the source, then every other master."""
        source = self.slot_owner(slot)
        ordered = [target, source, *(n for n in self.nodes if n not in (target, source))]
        for node in dict.fromkeys(ordered):
            self.process(node).command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)

    def reshard(self, slots: Iterable[int], source: ClusterNode, target: ClusterNode) -> int:
        """Move every slot of ``slots`` (all served by ``source``) with its keys to
        ``target``, live; returns the number of keys moved."""
        slots = list(slots)
        for slot in slots:
            owner = self.slot_owner(slot)
            if owner != source:
                raise ValueError(f"slot {slot} is served by {owner.address}, not {source.address}")
        moved = 0
        for slot in slots:
            self.begin_migration(slot, target)
            moved += self.migrate_keys(slot, source, target)
            self.finish_migration(slot, target)
        return moved

    def flushall(self) -> None:
        """Delete every key on every master."""
        for process in self.processes:
            process.command("FLUSHALL")

    def reset(self) -> None:
        """Empty every node, abandon unfinished migrations and give every slot back
        to the node that served it when the cluster was created."""
        self.flushall()
        for process in self.processes:
            myself = next(
                line
                for line in process.command("CLUSTER", "NODES").splitlines()
                if "myself" in line
            )
            # Open migrations show as [slot->-id] (migrating) or [slot-<-id] (importing).
            for field in myself.split()[8:]:
                if field.startswith("["):
                    process.command("CLUSTER", "SETSLOT", int(field[1:].split("-")[0]), "STABLE")
        home = {slot: port for slots, port in self._home for slot in slots}
        for slots, port in self._ranges():
            for slot in slots:
                if home[slot] != port:
                    self.begin_migration(slot, self._node(home[slot]))
                    self.finish_migration(slot, self._node(home[slot]))
        self.wait_converged()
