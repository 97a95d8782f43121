"""A TLS-only Redis whose one usable account is an ACL user.

The node listens on a ``tls-port`` only (``port 0``) with a certificate from
its own throwaway CA; the ``default`` user is switched off, so every
connection must log in as ``app``. Client certificates are optional until a
test calls ``require_client_certs()``. A second, unrelated CA (``wrong_ca``)
is there for tests that must fail verification.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

from topology._base import RedisTopology
from topology._support import free_ports
from topology.pki import CertificateAuthority, KeyPair
from topology.redis_process import RedisProcess

__all__ = ["RedisTLS"]

_TLS_HINT = "a redis-server built with TLS (Debian's redis-server is)"


class RedisTLS(RedisTopology):
    """``rediss://`` on 127.0.0.1 for ACL user ``app`` (all keys, channels, commands)."""

    kind = "tls"
    username = "app"
    # Made by start(), before the server: the CA clients trust, an unrelated CA for
    # negative tests, the server's certificate and one for user app as a client.
    ca_cert: Path
    wrong_ca: Path
    server_cert: KeyPair
    client_cert: KeyPair

    def __init__(self) -> None:
        super().__init__()
        self.password = "app-" + secrets.token_urlsafe(18)
        self.node: RedisProcess | None = None

    def _prepare(self) -> None:
        tls = self.root / "tls"
        authority = CertificateAuthority(tls, "ca")
        self.ca_cert = authority.cert
        self.wrong_ca = CertificateAuthority(tls, "wrong-ca").cert
        self.server_cert = authority.issue_server("server")
        self.client_cert = authority.issue_client("client", self.username)

    @property
    def port(self) -> int:
        assert self.node is not None
        return self.node.port

    def dsn(self, db: int = 0, *, client_cert: bool = False, ca: Path | None = None) -> str:
        """``rediss://app:PASSWORD@127.0.0.1:PORT/DB?ssl_ca_certs=CA`` (redis-py's query
        names), plus ``ssl_certfile``/``ssl_keyfile`` with ``client_cert``; ``ca`` swaps
        the CA file (e.g. ``wrong_ca``)."""
        query = {"ssl_ca_certs": ca or self.ca_cert}
        if client_cert:
            query |= {"ssl_certfile": self.client_cert.cert, "ssl_keyfile": self.client_cert.key}
        params = "&".join(f"{name}={quote(str(path))}" for name, path in query.items())
        return f"rediss://{self.username}:{self.password}@127.0.0.1:{self.port}/{db}?{params}"

    def _start_once(self) -> None:
        (port,) = free_ports(1)
        self.node = RedisProcess(
            self.root,
            f"redis-{port}",
            client_options={
                "username": self.username,
                "password": self.password,
                "ssl": True,
                "ssl_ca_certs": str(self.ca_cert),
                "ssl_certfile": str(self.client_cert.cert),
                "ssl_keyfile": str(self.client_cert.key),
            },
        )
        self.processes.append(self.node)
        self.node.launch(
            port,
            [
                "port 0",
                f"tls-port {port}",
                f'tls-cert-file "{self.server_cert.cert}"',
                f'tls-key-file "{self.server_cert.key}"',
                f'tls-ca-cert-file "{self.ca_cert}"',
                "tls-auth-clients optional",
                "user default off resetpass -@all",
                f"user {self.username} on >{self.password} ~* &* +@all",
                'save ""',
                "appendonly no",
            ],
        )
        try:
            self.node.wait_ready()
        except Exception as exc:
            if "tls" in str(exc).lower() and "directive" in str(exc).lower():
                raise type(exc)(f"{exc}\nneeds {_TLS_HINT}") from exc
            raise

    def require_client_certs(self, required: bool = True) -> None:
        """``tls-auth-clients yes`` (new connections must show a certificate from the
        CA) or back to ``optional``."""
        assert self.node is not None
        self.node.command("CONFIG", "SET", "tls-auth-clients", "yes" if required else "optional")

    def flushall(self) -> None:
        assert self.node is not None
        self.node.command("FLUSHALL")
