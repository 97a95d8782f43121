"""Once a key is a secret it stays one until a write says ``sensitive=False``.

Library writes (``ConfigStore.set``) on every backend ConfigStore supports, the
``Setting(..., sensitive=True)`` declaration on read, and the installed
``buttress config list`` / ``--json`` after a library rotation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from buttress import connect
from buttress.backends import Backend
from buttress.config import ConfigStore, Setting
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.log import MASK, clear_secrets, redact_text
from cli_support import aset_up, buttress

ROTATED = "Zq9-rotated-secret-4711"
FIRST = "Zq9-first-secret-0815"


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


async def test_an_update_without_the_flag_keeps_a_secret_secret(backend: Backend) -> None:
    config = ConfigStore(backend)
    await config.set("db_password", FIRST, sensitive=True)
    clear_secrets()  # only what this write registers counts below
    entry = await config.set("db_password", ROTATED)  # the rotation forgets the flag
    assert entry.sensitive is True
    assert ROTATED not in repr(entry)
    assert redact_text(f"connecting with {ROTATED}") == f"connecting with {MASK}"
    fetched = await config.get_entry("db_password")
    assert fetched is not None
    assert (fetched.sensitive, fetched.value) == (True, ROTATED)
    assert [e.value for e in await config.list()] == [MASK]
    assert all(c.sensitive for c in await config.history("db_password"))
    # A fresh store (another process) reads the flag from the backend, not from memory.
    again = await ConfigStore(backend).get_entry("db_password")
    assert again is not None
    assert again.sensitive is True


async def test_an_override_of_an_all_secret_is_a_secret(backend: Backend) -> None:
    config = ConfigStore(backend, environment="production")
    await config.set("api_token", FIRST, sensitive=True)
    override = await config.set("api_token", ROTATED, environment="production")
    assert override.sensitive is True
    assert [(e.environment, e.value) for e in await config.list("production")] == [
        ("all", MASK),
        ("production", MASK),
    ]


async def test_only_an_explicit_false_clears_the_flag(backend: Backend) -> None:
    config = ConfigStore(backend)
    await config.set("token", FIRST, sensitive=True)
    plain = await config.set("token", "public", sensitive=False)
    assert plain.sensitive is False
    assert [e.value for e in await config.list()] == ["public"]
    # Cleared stays cleared: a later write without the flag keeps it plain.
    assert (await config.set("token", "still-public")).sensitive is False
    # A key that was never a secret does not become one.
    assert (await config.set("limit", 5)).sensitive is False


async def test_a_revert_never_makes_a_secret_plain(backend: Backend) -> None:
    config = ConfigStore(backend)
    await config.set("pw", "v1")  # version 1: plain
    await config.set("pw", FIRST, sensitive=True)  # version 2: a secret
    reverted = await config.revert("pw", 1)
    assert reverted is not None
    assert reverted.sensitive is True
    assert [e.value for e in await config.list()] == [MASK]


async def test_a_declared_sensitive_setting_protects_its_value_on_read(backend: Backend) -> None:
    api_key = Setting[str]("payments_api_key", sensitive=True)
    writer = ConfigStore(backend)
    await writer.set("payments_api_key", ROTATED)  # stored without the flag
    clear_secrets()
    config = ConfigStore(backend)
    assert await config.read(api_key) == ROTATED
    assert redact_text(f"key {ROTATED} refused") == f"key {MASK} refused"
    assert [e.value for e in await config.list()] == [MASK]
    entry = await config.get_entry("payments_api_key")
    assert entry is not None
    assert entry.sensitive is True
    assert ROTATED not in repr(entry)
    # Writes through a store that knows the declaration store the flag too.
    await config.set("payments_api_key", FIRST)
    stored = await ConfigStore(backend).get_entry("payments_api_key")
    assert stored is not None
    assert stored.sensitive is True


async def test_sensitive_must_be_a_bool_or_none() -> None:
    with pytest.raises(ValidationError, match="sensitive"):
        await ConfigStore().set("k", 1, sensitive="yes")  # type: ignore[arg-type]


@pytest.mark.redis
async def test_redis_is_refused_with_the_kinds_that_fit(redis_dsn: str) -> None:
    # ConfigStore keeps history and versions in SQL: on Redis it is refused up
    # front, with one line naming the backends it supports, never half-working.
    async with connect(redis_dsn) as redis:
        with pytest.raises(UnsupportedBackendError) as info:
            ConfigStore(redis)
    message = str(info.value)
    assert "\n" not in message
    assert "sqlite" in message
    assert "postgresql" in message


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_cli_list_never_shows_a_secret_rotated_by_library_code(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn = request.getfixturevalue("sqlite_dsn" if kind == "sqlite" else "postgres_dsn")

    async def rotate() -> None:
        await aset_up(dsn)
        async with connect(dsn) as backend:
            config = ConfigStore(backend)
            await config.set("db_password", FIRST, sensitive=True)
            await config.set("db_password", ROTATED)  # the flag forgotten

    asyncio.run(rotate())
    text = buttress("config", "list", "--dsn", dsn, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "db_password" in text.stdout
    assert MASK in text.stdout
    as_json = buttress("config", "list", "--json", "--dsn", dsn, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)
    assert [(e["key"], e["value"], e["sensitive"]) for e in listed] == [("db_password", MASK, True)]
    for done in (text, as_json):
        assert ROTATED not in done.stdout + done.stderr
        assert FIRST not in done.stdout + done.stderr
