"""One ``redis-server`` process of a topology: a data node or a sentinel.

It owns the node's directory (config file, log), starting on a given port,
waiting until the node answers PING, an admin client, and stopping or killing
it. What the config says is the topology's business.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from servers import ServerUnavailable
from topology._support import record_process

__all__ = ["REDIS_HINT", "RedisProcess", "import_redis", "redis_binary"]

REDIS_HINT = "install redis-server (apt-get install redis-server)"


def redis_binary() -> str:
    """The ``redis-server`` executable (which also runs sentinels)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(f"redis-server not found: {REDIS_HINT}")
    return binary


def import_redis() -> Any:
    """The redis-py module, or ``ServerUnavailable`` saying how to install it."""
    try:
        import redis
    except ImportError as exc:
        raise ServerUnavailable("redis-py is not installed: pip install -e '.[dev]'") from exc
    return redis


class RedisProcess:
    """A redis-server (``sentinel=True``: a sentinel) living in ``root/name``."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        sentinel: bool = False,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.port = 0
        self.sentinel = sentinel
        self.directory = root / name
        self.directory.mkdir(exist_ok=True)
        self.config_file = self.directory / "redis.conf"
        self.log_file = self.directory / "redis.log"
        self._root = root
        self._client_options = dict(client_options or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._clients: dict[bool, Any] = {}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, port: int, config: Sequence[str], timeout: float = 10.0) -> None:
        """``launch()`` then ``wait_ready()``."""
        self.launch(port, config)
        self.wait_ready(timeout)

    def launch(self, port: int, config: Sequence[str]) -> None:
        """Write ``config`` (plus bind, dir and log lines) and start the process;
        ``port`` is the one clients use (``port`` or ``tls-port`` in ``config``)."""
        binary = redis_binary()
        self.port = port
        common = ["bind 127.0.0.1", f'dir "{self.directory}"', 'logfile ""', "daemonize no"]
        self.config_file.write_text("\n".join([*common, *config]) + "\n")
        self._log = self.log_file.open("ab")
        command = [binary, str(self.config_file), *(["--sentinel"] if self.sentinel else [])]
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        # redis-server retitles itself "redis-server 127.0.0.1:PORT ...".
        record_process(self._root, self._proc.pid, "redis-server", f"127.0.0.1:{port}")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the node answers PING; ``ServerUnavailable`` (and the node stopped)
        if it exits or stays silent for ``timeout`` s."""
        redis = import_redis()
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if self.client().ping():
                    return
            except redis.AuthenticationError as exc:
                self.stop()
                raise ServerUnavailable(f"redis-server {self.name} refused the password") from exc
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.02)
        alive = self.running
        self.stop()
        state = "did not answer PING" if alive else "exited"
        raise ServerUnavailable(f"redis-server {self.name} {state}: {self.log_tail()}")

    def client(self, *, decode: bool = True) -> Any:
        """A sync redis-py client to this node, without retries; ``decode=False``
        returns bytes (for keys that may not be UTF-8)."""
        if decode not in self._clients:
            redis = import_redis()
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._clients[decode] = redis.Redis(
                host="127.0.0.1",
                port=self.port,
                decode_responses=decode,
                socket_timeout=10,
                socket_connect_timeout=2,
                retry=Retry(NoBackoff(), 0),
                **self._client_options,
            )
        return self._clients[decode]

    def command(self, *args: Any) -> Any:
        """One command on the (decoding) admin client."""
        return self.client().execute_command(*args)

    def log_tail(self, size: int = 1500) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the node dies as in a crash, without a goodbye to its peers."""
        self._halt(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 5 s."""
        self._halt(signal.SIGTERM)

    def _halt(self, signum: signal.Signals) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
