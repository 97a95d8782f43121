"""Running ``buttress`` as an operator does: the installed entry point, in a subprocess.

``buttress(*argv, cwd=...)`` runs the console script installed next to this
interpreter (``python -m buttress`` when there is none) and returns the
completed process. ``set_up(dsn)`` is what ``buttress migrate`` leaves behind,
for tests whose subject is another command; ``login_role(dsn)`` a PostgreSQL
role with no privilege of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["as_role", "aset_up", "buttress", "entry_point", "login_role", "set_up"]


def entry_point() -> list[str]:
    """The ``buttress`` console script of this interpreter's environment."""
    script = shutil.which("buttress", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "buttress"]


def buttress(
    *argv: str,
    cwd: Path | str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``buttress ARGV`` in ``cwd``; BUTTRESS_* variables come only from ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BUTTRESS_")}
    environment.update(env or {})
    return subprocess.run(
        [*entry_point(), *argv],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def aset_up(dsn: str) -> str:
    """Apply buttress's own migrations to ``dsn`` (creating a SQLite file); return ``dsn``."""
    import structlog

    from buttress import connect

    with structlog.testing.capture_logs():  # set-up noise, not the output under test
        async with connect(dsn):
            pass
    return dsn


def set_up(dsn: str) -> str:
    """``aset_up`` from sync code."""
    return asyncio.run(aset_up(dsn))


def as_role(dsn: str, name: str, password: str) -> str:
    """``dsn`` with its user and password replaced."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    netloc = f"{name}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def login_role(dsn: str) -> Iterator[str]:
    """A new PostgreSQL login role with no privilege of its own (cluster-wide, so uniquely
    named); yields ``dsn`` as that role, and drops the role afterwards."""
    from buttress.backends import SqlBackend, open_backend

    name, password = f"cli_{secrets.token_hex(4)}", secrets.token_hex(12)

    async def execute(*statements: str) -> None:
        async with open_backend(dsn) as backend:
            assert isinstance(backend, SqlBackend)
            for statement in statements:
                await backend.execute(statement)

    asyncio.run(execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
    try:
        yield as_role(dsn, name, password)
    finally:
        asyncio.run(execute(f"DROP OWNED BY {name}", f"DROP ROLE {name}"))
