"""What every topology shares: free loopback ports, waiting for a condition, and
the record of started processes that lets a later session stop a killed one's.

Each topology keeps its files in one scratch directory named ``buttress-topo-*``
(see ``servers.orphaned_dirs``); every process it starts is appended to the
``processes`` file there, with a marker that must appear in the process's
command line before an orphan sweep signals it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from servers import ServerUnavailable, orphaned_dirs

__all__ = ["PREFIX", "free_ports", "record_process", "sweep_orphans", "wait_until"]

PREFIX = "buttress-topo-"
_PROCESSES = "processes"
# A cluster node's bus listens on its port + 10000, which must stay a valid port.
_MAX_CLUSTER_PORT = 65535 - 10000


def free_ports(count: int, *, cluster_bus: bool = False) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that were free a moment ago.

    With ``cluster_bus``, each port is at most 55535 and its port + 10000 was free
    too, as a Redis Cluster node needs both.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _attempt in range(200 * count):
            if len(ports) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if not cluster_bus:
                ports.append(port)
                continue
            if port > _MAX_CLUSTER_PORT:
                continue
            # Every chosen port stays bound until the end, so no two can collide.
            bus = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(bus)
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    if len(ports) < count:
        raise ServerUnavailable(f"could not find {count} free loopback ports")
    return ports


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    not_yet: tuple[type[BaseException], ...] = (OSError,),
) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` naming ``what`` (and the
    last error) after ``timeout`` s. An exception in ``not_yet`` counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            if condition():
                return
        except not_yet as exc:
            last_error = f" (last error: {type(exc).__name__}: {exc})"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{last_error}")
        time.sleep(0.05)


def record_process(root: Path, pid: int, program: str, marker: str) -> None:
    """Note a started process: a sweep signals ``pid`` only if its command line holds
    both ``program`` and ``marker`` (so a reused pid is left alone)."""
    if " " in program or "\n" in marker:
        raise ValueError("program must be one word and marker one line")
    with (root / _PROCESSES).open("a") as record:
        record.write(f"{pid} {program} {marker}\n")


def sweep_orphans() -> None:
    """Kill the processes of topologies whose pytest session died without tearing
    down, and delete their directories."""
    for root in orphaned_dirs(PREFIX):
        try:
            lines = (root / _PROCESSES).read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            with contextlib.suppress(ValueError, OSError):
                pid_text, program, marker = line.split(" ", 2)
                pid = int(pid_text)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if program.encode() in cmdline and marker.encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
