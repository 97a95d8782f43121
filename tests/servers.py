"""Throwaway PostgreSQL and Redis servers for the test session.

Each server lives in its own temporary directory, listens on 127.0.0.1 on a free
port, needs a generated password, keeps nothing durable, and is stopped and
deleted by ``stop()``. ``ServerUnavailable`` says why a server could not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "PRELOAD_PG_STAT_STATEMENTS",
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
]

T = TypeVar("T")

_PG_HINT = (
    "install PostgreSQL 15 server binaries (apt-get install postgresql-15) "
    "so that `pg_config --bindir` or /usr/lib/postgresql/*/bin has initdb and pg_ctl"
)
_REDIS_HINT = "install redis-server (apt-get install redis-server)"

# Durability is worthless for a server that is deleted after the run; these
# settings trade it for speed.
_PG_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "'1h'",
    "max_connections": "300",
    "shared_buffers": "'64MB'",
    "jit": "off",
    "autovacuum": "off",
    "log_min_messages": "warning",
    "logging_collector": "off",
}
# The test session's server loads pg_stat_statements (a test database that needs
# it runs CREATE EXTENSION), so the monitoring tests read the real extension;
# Debian's postgresql-15 package ships it. The benchmarks' servers leave it out.
PRELOAD_PG_STAT_STATEMENTS = {"shared_preload_libraries": "'pg_stat_statements'"}


class ServerUnavailable(RuntimeError):
    """A test server could not be started; the message says why and how to fix it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_OWNER_FILE = "owner.pid"


def _scratch_parent() -> Path:
    # tmpfs makes CREATE DATABASE (a file copy plus checkpoint) several times faster.
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def _scratch_dir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_parent()))
    (root / _OWNER_FILE).write_text(str(os.getpid()))
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned_dirs(prefix: str) -> list[Path]:
    """Scratch dirs of earlier sessions whose pytest process is gone (killed, not torn down)."""
    found = []
    for root in _scratch_parent().glob(f"{prefix}*"):
        try:
            owner = int((root / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not _alive(owner):
            found.append(root)
    return found


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _pg_bindir() -> Path:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    # Newest version first; Debian keeps server binaries out of PATH.
    candidates.extend(Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise ServerUnavailable(f"PostgreSQL server binaries not found: {_PG_HINT}")


class _LoopThread:
    """An event loop in a daemon thread, so sync fixtures can drive asyncpg."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-pg-admin", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


class PostgresServer:
    """A PostgreSQL cluster in a temp dir; ``create_database()`` for each test."""

    user = "postgres"
    template = "buttress_template"

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        """``settings`` override or add ``postgresql.conf`` lines (values quoted as there)."""
        self.password = "pw-" + secrets.token_urlsafe(18)
        self.port = 0
        self._settings = dict(_PG_SETTINGS, **(settings or {}))
        self._root = _scratch_dir("buttress-pg-")
        self._data = self._root / "data"
        self._sockets = self._root / "sock"
        self._log = self._root / "server.log"
        self._bindir: Path | None = None
        self._started = False
        self._admin: Any = None  # asyncpg.Connection, typed loosely: asyncpg is optional
        self._loop: _LoopThread | None = None
        self._counter = 0

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: Sequence[str], timeout: float = 120.0) -> None:
        cmd = list(args)
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise ServerUnavailable(f"{Path(args[0]).name} failed ({proc.returncode}): {detail}")

    @classmethod
    def sweep_orphans(cls) -> None:
        """Stop and delete servers left by sessions that were killed before teardown."""
        try:
            bindir = _pg_bindir()
        except ServerUnavailable:
            return
        for root in orphaned_dirs("buttress-pg-"):
            orphan = cls.__new__(cls)
            orphan._root, orphan._data, orphan._bindir = root, root / "data", bindir
            orphan._loop, orphan._admin, orphan._started = None, None, True
            orphan.stop()

    def start(self) -> None:
        self.sweep_orphans()
        try:
            import asyncpg
        except ImportError as exc:
            raise ServerUnavailable("asyncpg is not installed: pip install -e '.[dev]'") from exc
        self._bindir = _pg_bindir()
        self._sockets.mkdir()
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if _is_root():
            if shutil.which("runuser") is None:
                raise ServerUnavailable("running as root but `runuser` is missing (util-linux)")
            shutil.chown(self._root, "postgres", "postgres")
            for path in (self._sockets, pwfile):
                shutil.chown(path, "postgres", "postgres")
        self._run(
            [
                str(self._bindir / "initdb"),
                "-D", str(self._data),
                "-U", self.user,
                "--pwfile", str(pwfile),
                "--auth", "scram-sha-256",
                "--encoding", "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ]
        )  # fmt: skip
        pwfile.unlink()
        settings = dict(self._settings, unix_socket_directories=f"'{self._sockets}'")
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._configure()
        if _is_root():
            # The log file must be writable by the server user.
            self._log.touch()
            shutil.chown(self._log, "postgres", "postgres")

        last_error: ServerUnavailable | None = None
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            try:
                self._pg_ctl_start()
            except ServerUnavailable as exc:
                log_tail = (
                    self._log.read_text(errors="replace")[-1500:] if self._log.exists() else ""
                )
                last_error = ServerUnavailable(f"{exc}\n{log_tail}")
                continue
            self._started = True
            break
        if not self._started:
            assert last_error is not None
            raise last_error

        self._loop = _LoopThread()
        self._admin = self._loop.run(asyncpg.connect(self.dsn()))
        self._loop.run(self._admin.execute(f"CREATE DATABASE {self.template}"))

    def _configure(self) -> None:
        """Called after initdb, before the first start: subclasses add settings or pg_hba rules."""

    def _pg_ctl_start(self) -> None:
        assert self._bindir is not None
        self._run(
            [
                str(self._bindir / "pg_ctl"),
                "-D", str(self._data),
                "-l", str(self._log),
                "-o", f"-p {self.port}",
                "-w", "-t", "60",
                "start",
            ]
        )  # fmt: skip

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The server is down (fast shutdown: every session is cut) inside the block,
        and up again on the same port after it, for reconnect tests."""
        import asyncpg

        assert self._loop is not None
        assert self._bindir is not None
        if self._admin is not None:
            self._admin.terminate()
            self._admin = None
        self._run([str(self._bindir / "pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop"])
        try:
            yield
        finally:
            self._pg_ctl_start()
            self._admin = self._loop.run(asyncpg.connect(self.dsn()))

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server and start it again on the same port, ``downtime`` seconds later."""
        with self.outage():
            time.sleep(downtime)

    def execute(self, query: str) -> str:
        """Run one statement as the superuser on the admin connection; returns its status."""
        assert self._loop is not None
        status: str = self._loop.run(self._admin.execute(query))
        return status

    def fetchval(self, query: str) -> Any:
        """The first column of the first row of ``query``, run as the superuser."""
        assert self._loop is not None
        return self._loop.run(self._admin.fetchval(query))

    def create_database(self) -> str:
        """A fresh, empty database copied from the template; returns its name."""
        assert self._loop is not None
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        # FILE_COPY skips WAL-logging every block of a tiny template: faster here.
        self._loop.run(
            self._admin.execute(
                f"CREATE DATABASE {name} TEMPLATE {self.template} STRATEGY FILE_COPY"
            )
        )
        return name

    def drop_database(self, name: str) -> None:
        assert self._loop is not None
        self._loop.run(self._admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def stop(self) -> None:
        if self._loop is not None:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._loop.run(self._admin.close(timeout=2), timeout=5)
            self._loop.stop()
            self._loop = None
        if self._started and self._bindir is not None:
            with contextlib.suppress(ServerUnavailable, subprocess.SubprocessError):
                self._run(
                    [
                        str(self._bindir / "pg_ctl"),
                        "-D",
                        str(self._data),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                    timeout=30,
                )
            self._started = False
        shutil.rmtree(self._root, ignore_errors=True)


class RedisServer:
    """A ``redis-server`` on loopback with a password and no persistence."""

    def __init__(self) -> None:
        self.password = "rpw-" + secrets.token_urlsafe(18)
        self.port = 0
        self._root = _scratch_dir("buttress-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def dsn(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    @staticmethod
    def sweep_orphans() -> None:
        """Stop and delete servers left by sessions that were killed before teardown."""
        for root in orphaned_dirs("buttress-redis-"):
            try:
                pid_text, port_text = (root / "redis.pid").read_text().split()
                pid, port = int(pid_text), int(port_text)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                pid, port, cmdline = 0, 0, b""
            # redis-server retitles itself "redis-server 127.0.0.1:PORT": match on
            # that, so only the server this directory belonged to is stopped.
            listening = f"127.0.0.1:{port}".encode()
            if pid and b"redis-server" in cmdline and listening in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            shutil.rmtree(root, ignore_errors=True)

    def start(self) -> None:
        self.sweep_orphans()
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable(f"redis-server not found: {_REDIS_HINT}")
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            self._proc = subprocess.Popen(
                [
                    binary,
                    "--bind", "127.0.0.1",
                    "--port", str(self.port),
                    "--requirepass", self.password,
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self._root),
                    "--daemonize", "no",
                    "--loglevel", "warning",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            (self._root / "redis.pid").write_text(f"{self._proc.pid} {self.port}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                try:
                    self.command("PING")
                except OSError:
                    time.sleep(0.02)
                    continue
                return
            out = b""
            if self._proc.poll() is None:
                self._proc.kill()
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                out, _ = self._proc.communicate(timeout=5)
            last_error = out.decode(errors="replace")[-1500:]
            self._proc = None
        raise ServerUnavailable(f"redis-server did not start: {last_error}")

    def command(self, *args: str) -> bytes:
        """Send one command (after AUTH) over a raw socket and return the reply line."""
        parts = ["AUTH", self.password], list(args)
        payload = b"".join(_resp(part) for part in parts)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload)
            replies = b""
            while replies.count(b"\r\n") < 2:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                replies += chunk
        first, second = replies.split(b"\r\n")[:2]
        if first.startswith(b"-") or second.startswith(b"-"):
            raise ConnectionError(f"redis error: {(first + b' ' + second).decode()}")
        return second

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        shutil.rmtree(self._root, ignore_errors=True)


def _resp(words: Sequence[str]) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
