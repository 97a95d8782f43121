"""Sensitive config values never reach a log, a repr, a listing, history or an error."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from buttress.config import ConfigStore, ConfigTypeError, MemoryConfigStore
from buttress.log import MASK, clear_secrets, configure_logging, get_logger

SECRET = "hunter2-very-secret-value"


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()
    structlog.reset_defaults()


async def test_sensitive_value_is_masked_in_list_repr_and_history() -> None:
    config = ConfigStore()
    with capture_logs() as logs:
        entry = await config.set("db_pass", SECRET, sensitive=True, updated_by="ann")
        await config.set("db_pass", SECRET + "-2", sensitive=True)
        got = await config.get("db_pass")
        listed = await config.list()
        history = await config.history("db_pass")
        fetched = await config.get_entry("db_pass")
    assert got == SECRET + "-2"  # the caller asked for it, so the caller gets it
    assert fetched is not None
    assert fetched.value == SECRET + "-2"
    shown = repr([entry, fetched, listed, history, str(entry), logs])
    assert SECRET not in shown
    assert [e.value for e in listed] == [MASK]
    assert [(c.old_value, c.new_value) for c in history] == [(MASK, MASK), (None, MASK)]


async def test_secret_never_appears_in_rendered_logs() -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, level="DEBUG")
    config = ConfigStore()
    await config.set("api_token", {"token": SECRET, "n": 1234567}, sensitive=True)
    value = await config.get("api_token")
    # An application logging the value it read: buttress registered it, so it is masked.
    get_logger("app").info("using", credentials=value, raw=json.dumps(value))
    logging.getLogger("app.stdlib").warning("value is %s", value)
    await config.list()
    await config.history("api_token")
    output = stream.getvalue()
    assert "config.changed" in output
    assert SECRET not in output
    assert "1234567" not in output


async def test_secret_is_not_in_exception_messages() -> None:
    config = ConfigStore()
    await config.set("pw", SECRET, sensitive=True)
    with pytest.raises(ConfigTypeError) as info:
        await config.get("pw", 0, type=int)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


async def test_corrupt_sensitive_row_is_logged_without_value() -> None:
    store = MemoryConfigStore()
    config = ConfigStore(store)
    await config.set("pw", SECRET, sensitive=True)
    store.corrupt("pw", "all", f'"{SECRET}')
    with capture_logs() as logs:
        assert await config.get("pw", "fallback") == "fallback"
    assert SECRET not in repr(logs)
    assert SECRET not in repr(store)
