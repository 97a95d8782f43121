"""PgBouncer in transaction pooling mode in front of a ``servers.PostgresServer``.

A wildcard ``[databases]`` entry routes every database name to the server, so
each test's fresh database is reachable through the pooler without a reload.
Clients authenticate with SCRAM against an auth_file holding the server's own
SCRAM secret (no plain password on disk), which PgBouncer reuses to log in to
the server. PgBouncer refuses to run as root: under root it runs as
``postgres``, and its files belong to that user.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from typing import IO, Any

from servers import PostgresServer, ServerUnavailable, _is_root, _scratch_dir
from topology._support import PREFIX, free_ports, record_process, sweep_orphans

__all__ = ["PGBOUNCER_HINT", "PgBouncer"]

PGBOUNCER_HINT = "install pgbouncer (apt-get install pgbouncer)"


def _pgbouncer_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH may lack.
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        raise ServerUnavailable(f"pgbouncer not found: {PGBOUNCER_HINT}")
    return binary


class PgBouncer:
    """``pool_mode = transaction``, ``default_pool_size`` server connections per
    database and user, up to ``max_client_conn`` clients, on 127.0.0.1."""

    def __init__(
        self, server: PostgresServer, *, pool_size: int = 10, max_client_conn: int = 500
    ) -> None:
        self.server = server
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = 0
        self.root = _scratch_dir(f"{PREFIX}pgbouncer-")
        self.config_file = self.root / "pgbouncer.ini"
        self.log_file = self.root / "pgbouncer.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def user(self) -> str:
        return self.server.user

    def dsn(self, database: str, *, pgbouncer_param: bool = True) -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/DB?pgbouncer=true``: the
        flag tells buttress a transaction pooler is in between (buttress consumes it;
        a raw driver would forward it as a startup parameter, which PgBouncer
        refuses), so ``pgbouncer_param=False`` leaves it out."""
        base = f"postgresql://{self.user}:{self.server.password}@127.0.0.1:{self.port}/{database}"
        return base + "?pgbouncer=true" if pgbouncer_param else base

    def _write_files(self) -> None:
        secret = self.server.fetchval(
            f"SELECT rolpassword FROM pg_authid WHERE rolname = '{self.user}'"
        )
        if not isinstance(secret, str) or not secret.startswith("SCRAM-SHA-256$"):
            raise ServerUnavailable("the PostgreSQL superuser has no SCRAM secret")
        auth_file = self.root / "userlist.txt"
        auth_file.write_text(f'"{self.user}" "{secret}"\n')
        auth_file.chmod(0o600)
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(auth_file),
            "pool_mode": "transaction",
            "max_client_conn": str(self.max_client_conn),
            "default_pool_size": str(self.pool_size),
            # Drivers send these at startup; PgBouncer cannot replay them per transaction.
            "ignore_startup_parameters": "extra_float_digits,options",
            "server_tls_sslmode": "disable",
            "log_connections": "0",
            "log_disconnections": "0",
            # The admin console (database "pgbouncer") for SHOW POOLS and friends.
            "admin_users": self.user,
            "stats_users": self.user,
            "pidfile": str(self.root / "pgbouncer.pid"),
        }
        lines = [
            "[databases]",
            f"* = host=127.0.0.1 port={self.server.port}",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        if _is_root():
            for path in (self.root, auth_file, self.config_file):
                shutil.chown(path, "postgres", "postgres")

    def start(self) -> None:
        sweep_orphans()
        binary = _pgbouncer_binary()
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            (self.port,) = free_ports(1)
            self._write_files()
            self._launch(binary)
            if self._wait_listening():
                return
            last_error = self._log_tail()
            self._halt()
        raise ServerUnavailable(f"pgbouncer did not start: {last_error}")

    def _launch(self, binary: str) -> None:
        self._log = self.log_file.open("ab")
        as_postgres: dict[str, Any] = {}
        if _is_root():
            as_postgres = {"user": "postgres", "group": "postgres", "extra_groups": []}
        # Started directly (not via runuser) so that the pid is PgBouncer's own.
        self._proc = subprocess.Popen(
            [binary, str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **as_postgres,
        )
        record_process(self.root, self._proc.pid, "pgbouncer", str(self.config_file))

    def _wait_listening(self, timeout: float = 10.0) -> bool:
        import socket

        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return True
            time.sleep(0.02)
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def _halt(self) -> None:
        if self._proc is not None:
            # SIGTERM: immediate shutdown (SIGINT would wait for open transactions).
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._halt()
        shutil.rmtree(self.root, ignore_errors=True)
