"""A throwaway certificate authority made with the ``openssl`` command line.

``CertificateAuthority`` creates a self-signed CA (EC P-256, valid two days) in
a directory and signs server certificates (SAN ``IP:127.0.0.1`` and
``DNS:localhost``, so verify-full holds for either name) and client
certificates with it. Extensions follow what strict verifiers (Python 3.13's
``VERIFY_X509_STRICT``) require: key usage on the CA, key identifiers on leaves.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servers import ServerUnavailable

__all__ = ["CertificateAuthority", "KeyPair"]

OPENSSL_HINT = "install openssl (apt-get install openssl)"
_DAYS = "2"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its unencrypted private key."""

    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise ServerUnavailable(f"openssl not found: {OPENSSL_HINT}")
    proc = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise ServerUnavailable(f"openssl {args[0]} failed ({proc.returncode}): {detail}")


class CertificateAuthority:
    """A CA in ``directory`` (``<name>.crt``, ``<name>.key``) that signs leaf certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.cert = directory / f"{name}.crt"
        self.key = directory / f"{name}.key"
        directory.mkdir(parents=True, exist_ok=True)
        _openssl(
            "req", "-x509", "-new", "-nodes", *_CURVE,
            "-keyout", str(self.key), "-out", str(self.cert),
            "-days", _DAYS, "-subj", f"/CN=buttress test CA {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
            cwd=directory,
        )  # fmt: skip
        self.key.chmod(0o600)

    def issue_server(self, name: str) -> KeyPair:
        """A server certificate for 127.0.0.1 and localhost."""
        return self._issue(
            name,
            common_name="127.0.0.1",
            extensions=[
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        )

    def issue_client(self, name: str, common_name: str) -> KeyPair:
        """A client certificate whose CN is ``common_name`` (e.g. a user name)."""
        return self._issue(
            name, common_name=common_name, extensions=["extendedKeyUsage=clientAuth"]
        )

    def _issue(self, name: str, *, common_name: str, extensions: list[str]) -> KeyPair:
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        request = self.directory / f"{name}.csr"
        extfile = self.directory / f"{name}.ext"
        extfile.write_text(
            "\n".join(
                [
                    "basicConstraints=critical,CA:FALSE",
                    "keyUsage=critical,digitalSignature",
                    "subjectKeyIdentifier=hash",
                    "authorityKeyIdentifier=keyid",
                    *extensions,
                ]
            )
            + "\n"
        )
        _openssl(
            "req", "-new", "-nodes", *_CURVE,
            "-keyout", str(pair.key), "-out", str(request),
            "-subj", f"/CN={common_name}",
            cwd=self.directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(request),
            "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
            "-days", _DAYS, "-extfile", str(extfile), "-out", str(pair.cert),
            cwd=self.directory,
        )  # fmt: skip
        request.unlink()
        extfile.unlink()
        pair.key.chmod(0o600)
        return pair
