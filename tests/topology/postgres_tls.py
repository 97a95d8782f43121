"""A PostgreSQL that accepts only TLS connections with SCRAM passwords.

It is ``servers.PostgresServer`` with a certificate from its own throwaway CA,
``password_encryption = scram-sha-256`` and a pg_hba.conf where TCP means
``hostssl … scram-sha-256`` and a plain ``host`` line rejects everything else.
Tests connect as the login role ``app``, owner of their fresh database, with
``sslmode=verify-full`` (the certificate names IP 127.0.0.1 and localhost).
"""

from __future__ import annotations

import secrets
import shutil
import socket
from pathlib import Path
from urllib.parse import quote

from servers import PostgresServer, _is_root
from topology.pki import CertificateAuthority, KeyPair

__all__ = ["PostgresTLS"]

_HBA = """\
# Written by tests/topology/postgres_tls.py: TCP only over TLS, SCRAM only.
local     all  all                scram-sha-256
hostssl   all  all  127.0.0.1/32  scram-sha-256
host      all  all  127.0.0.1/32  reject
host      all  all  ::1/128       reject
"""


class PostgresTLS(PostgresServer):
    """``dsn()`` is the superuser's (over TLS too); tests use ``app_dsn()``."""

    app_user = "app"
    ca_cert: Path
    wrong_ca: Path
    server_cert: KeyPair

    def __init__(self) -> None:
        super().__init__()
        self.app_password = "app-" + secrets.token_urlsafe(18)
        self._refusing: socket.socket | None = None

    def dsn(self, database: str = "postgres") -> str:
        return self._dsn(self.user, self.password, database, "verify-full", self.ca_cert)

    def app_dsn(
        self, database: str, *, sslmode: str = "verify-full", ca: Path | None = None
    ) -> str:
        """``postgresql://app:PASSWORD@127.0.0.1:PORT/DB?sslmode=verify-full&sslrootcert=CA``;
        ``sslmode="disable"`` drops the CA, ``ca`` swaps it (e.g. ``wrong_ca``)."""
        return self._dsn(self.app_user, self.app_password, database, sslmode, ca or self.ca_cert)

    def multi_host_dsn(self, database: str) -> str:
        """``app_dsn`` with a first host that refuses connections (a port bound but
        never listened on), so clients must fall over to the real server."""
        if self._refusing is None:
            self._refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._refusing.bind(("127.0.0.1", 0))
        dead = self._refusing.getsockname()[1]
        return self.app_dsn(database).replace(
            f"@127.0.0.1:{self.port}/", f"@127.0.0.1:{dead},127.0.0.1:{self.port}/"
        )

    def _dsn(self, user: str, password: str, database: str, sslmode: str, ca: Path) -> str:
        query = f"sslmode={sslmode}"
        if sslmode != "disable":
            query += f"&sslrootcert={quote(str(ca))}"
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}?{query}"

    def _configure(self) -> None:
        tls = self._root / "tls"
        authority = CertificateAuthority(tls, "ca")
        self.ca_cert = authority.cert
        self.wrong_ca = CertificateAuthority(tls, "wrong-ca").cert
        self.server_cert = authority.issue_server("server")
        if _is_root():
            # The server reads its key as user postgres and refuses one others can read.
            shutil.chown(self.server_cert.key, "postgres", "postgres")
        settings = {
            "ssl": "on",
            "ssl_cert_file": f"'{self.server_cert.cert}'",
            "ssl_key_file": f"'{self.server_cert.key}'",
            "ssl_ca_file": f"'{self.ca_cert}'",
            "password_encryption": "'scram-sha-256'",
        }
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (self._data / "pg_hba.conf").write_text(_HBA)

    def start(self) -> None:
        super().start()
        self.execute(f"CREATE ROLE {self.app_user} LOGIN PASSWORD '{self.app_password}'")

    def create_database(self) -> str:
        """A fresh database owned by ``app`` (so it may create tables in it)."""
        name = super().create_database()
        self.execute(f"ALTER DATABASE {name} OWNER TO {self.app_user}")
        return name

    def stop(self) -> None:
        if self._refusing is not None:
            self._refusing.close()
            self._refusing = None
        super().stop()
