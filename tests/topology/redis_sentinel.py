"""A Sentinel-managed Redis: one master, one replica and three sentinels, all with
one password, and the failover a test can cause.

Sentinels start already knowing each other and the replica (``known-sentinel``
and ``known-replica`` lines, as a sentinel writes them itself), so the topology
is ready as soon as every link is up instead of after rounds of discovery.
``kill_master()`` SIGKILLs whichever node is master now; ``wait_for_failover()``
waits until every sentinel names the promoted replica;
``restart_old_master_as_replica()`` brings the dead node back under it.
"""

from __future__ import annotations

import secrets
from typing import Any

from topology._base import RedisTopology
from topology._support import free_ports, wait_until
from topology.redis_process import RedisProcess

__all__ = ["RedisSentinel"]

Address = tuple[str, int]


class RedisSentinel(RedisTopology):
    """Service ``mymaster`` on 127.0.0.1; sentinels require the same password as the
    data nodes (as ``redis+sentinel://:PASSWORD@…`` gives one password for both)."""

    kind = "sentinel"
    service = "mymaster"

    def __init__(
        self,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        super().__init__()
        if not 1 <= quorum <= sentinels:
            raise ValueError("quorum must be between 1 and the number of sentinels")
        self.sentinel_count = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data_nodes: list[RedisProcess] = []
        self.sentinels: list[RedisProcess] = []
        self._killed: RedisProcess | None = None
        self._killed_address: Address | None = None

    def dsn(self, db: int = 0, *, sentinels: int | None = None) -> str:
        """``redis+sentinel://:PASSWORD@127.0.0.1:S1,127.0.0.1:S2,…/mymaster/DB``, with
        the first ``sentinels`` sentinels (all by default)."""
        chosen = self.sentinel_addresses[:sentinels]
        hosts = ",".join(f"{host}:{port}" for host, port in chosen)
        return f"redis+sentinel://:{self.password}@{hosts}/{self.service}/{db}"

    @property
    def sentinel_addresses(self) -> list[Address]:
        return [("127.0.0.1", sentinel.port) for sentinel in self.sentinels]

    def _data_config(self, port: int, replica_of: int | None) -> list[str]:
        config = [
            f"port {port}",
            f"requirepass {self.password}",
            f"masterauth {self.password}",
            'save ""',
            "appendonly no",
            # A full sync would otherwise wait 5 s for more replicas to share it.
            "repl-diskless-sync-delay 0",
        ]
        if replica_of is not None:
            config.append(f"replicaof 127.0.0.1 {replica_of}")
        return config

    def _sentinel_config(
        self, port: int, my_id: str, master: int, replica: int, peers: list[tuple[int, str]]
    ) -> list[str]:
        name = self.service
        return [
            f"port {port}",
            f"requirepass {self.password}",
            f"sentinel sentinel-pass {self.password}",
            f"sentinel myid {my_id}",
            f"sentinel monitor {name} 127.0.0.1 {master} {self.quorum}",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel known-replica {name} 127.0.0.1 {replica}",
            *(f"sentinel known-sentinel {name} 127.0.0.1 {p} {i}" for p, i in peers),
        ]

    def _start_once(self) -> None:
        options = {"password": self.password}
        master_port, replica_port, *sentinel_ports = free_ports(2 + self.sentinel_count)
        self.data_nodes = [
            RedisProcess(self.root, f"data-{master_port}", client_options=options),
            RedisProcess(self.root, f"data-{replica_port}", client_options=options),
        ]
        self.processes.extend(self.data_nodes)
        master, replica = self.data_nodes
        master.launch(master_port, self._data_config(master_port, None))
        replica.launch(replica_port, self._data_config(replica_port, master_port))
        ids = [secrets.token_hex(20) for _ in sentinel_ports]
        self.sentinels = []
        for port, my_id in zip(sentinel_ports, ids, strict=True):
            sentinel = RedisProcess(
                self.root, f"sentinel-{port}", sentinel=True, client_options=options
            )
            self.sentinels.append(sentinel)
            self.processes.append(sentinel)
            peers = [(p, i) for p, i in zip(sentinel_ports, ids, strict=True) if p != port]
            sentinel.launch(
                port, self._sentinel_config(port, my_id, master_port, replica_port, peers)
            )
        for process in self.processes:
            process.wait_ready()
        self.wait_healthy()

    def _redis_errors(self) -> tuple[type[BaseException], ...]:
        import redis

        return (redis.RedisError, OSError)

    def _node_at(self, port: int) -> RedisProcess:
        for node in self.data_nodes:
            if node.port == port:
                return node
        raise LookupError(f"no data node on port {port}")

    def master_address(self) -> Address:
        """The master as the first sentinel that answers names it."""
        last: BaseException | None = None
        for sentinel in self.sentinels:
            try:
                host, port = sentinel.client().sentinel_get_master_addr_by_name(self.service)
            except self._redis_errors() as exc:
                last = exc
                continue
            return str(host), int(port)
        raise ConnectionError(f"no sentinel answered: {last}")

    def _replication(self, node: RedisProcess) -> dict[str, Any]:
        info: dict[str, Any] = node.client().info("replication")
        return info

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until the master has every live data node as an online replica and every
        sentinel agrees on the master and sees those replicas and the other sentinels."""

        def healthy() -> bool:
            host, port = self.master_address()
            master = self._node_at(port)
            if self._replication(master).get("role") != "master":
                return False
            replicas = [n for n in self.data_nodes if n is not master and n.running]
            for replica in replicas:
                info = self._replication(replica)
                if info.get("master_port") != port or info.get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                client = sentinel.client()
                state = client.sentinel_master(self.service)
                if (state["ip"], int(state["port"])) != (host, port):
                    return False
                if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
                    return False
                if state["num-other-sentinels"] != self.sentinel_count - 1:
                    return False
                # Sentinels refresh a replica's INFO every 10 s only (every second once
                # the master is down), so its link status there can lag: the replica's
                # own INFO above is the proof of sync; here it need only be reachable.
                seen = {
                    int(r["port"])
                    for r in client.sentinel_slaves(self.service)
                    if not (r["is_sdown"] or r["is_disconnected"])
                }
                if not {r.port for r in replicas} <= seen:
                    return False
            return True

        wait_until(healthy, timeout, "a healthy sentinel topology", not_yet=self._redis_errors())

    def kill_master(self) -> Address:
        """SIGKILL the current master (no shutdown, no goodbye); returns its address."""
        address = self.master_address()
        node = self._node_at(address[1])
        node.kill()
        self._killed, self._killed_address = node, address
        return address

    def wait_for_failover(self, timeout: float = 30.0) -> Address:
        """Until every sentinel names a master other than the one ``kill_master()``
        killed, and that node says it is master; returns the new master's address."""
        old = self._killed_address
        if old is None:
            raise RuntimeError("wait_for_failover() needs kill_master() first")
        new: list[Address] = []

        def promoted() -> bool:
            named = {
                tuple(s.client().sentinel_get_master_addr_by_name(self.service))
                for s in self.sentinels
            }
            if len(named) != 1:
                return False
            host, port = next(iter(named))
            address = (str(host), int(port))
            if address == old or self._replication(self._node_at(address[1]))["role"] != "master":
                return False
            new[:] = [address]
            return True

        wait_until(
            promoted, timeout, "sentinels to name a new master", not_yet=self._redis_errors()
        )
        return new[0]

    def restart_old_master_as_replica(self, timeout: float = 30.0) -> Address:
        """Start the node ``kill_master()`` killed again, on its port, as a replica of
        the current master; waits until it is in sync and every sentinel sees it.
        Returns its address."""
        node = self._killed
        if node is None:
            raise RuntimeError("no killed master to restart")
        _host, master_port = self.master_address()
        node.start(node.port, self._data_config(node.port, master_port))
        self._killed = self._killed_address = None
        self.wait_healthy(timeout)
        return ("127.0.0.1", node.port)

    def heal(self, timeout: float = 30.0) -> None:
        """Undo what a test did: finish a pending failover and restart a killed master
        as a replica, so the next test starts from a master and an online replica."""
        if self._killed is not None:
            if self.master_address() == self._killed_address:
                self.wait_for_failover(timeout)
            self.restart_old_master_as_replica(timeout)
        else:
            self.wait_healthy(timeout)

    def flushall(self) -> None:
        """Empty the master, and wait until the replica has applied it too."""
        master = self._node_at(self.master_address()[1])
        master.command("FLUSHALL")
        master.command("WAIT", len(self.data_nodes) - 1, 2000)
