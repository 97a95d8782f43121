"""One line naming the problem behind an exception: what the doctor and the command line print.

Driver errors are recognised without importing the driver (PostgreSQL's by
their SQLSTATE, SQLite's by ``sqlite3.Error``). A missing privilege names the
GRANT that would give it. The text is redacted and kept to one line: never a
traceback, never a password.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from typing import Final

from buttress.backends import MissingTableError
from buttress.doctor._values import Finding, Level
from buttress.errors import ButtressError
from buttress.log import redact_text

__all__ = ["explain", "failure_finding"]

INSUFFICIENT_PRIVILEGE: Final = "42501"
_DENIED = re.compile(
    r"permission denied for (?P<kind>table|view|materialized view|sequence|schema|function|"
    r"procedure|database) (?P<name>\S+)"
)
_MAX_LENGTH: Final = 500


def _grants(kind: str, *, writes: bool) -> str:
    if kind in ("table", "view", "materialized view"):
        return "SELECT, INSERT, UPDATE, DELETE" if writes else "SELECT"
    if kind == "sequence":
        return "USAGE, SELECT"
    if kind == "schema":
        return "USAGE, CREATE" if writes else "USAGE"
    if kind in ("function", "procedure"):
        return "EXECUTE"
    return "CONNECT"


def _role(dsn: str | None) -> str:
    if dsn:
        try:
            user = urllib.parse.urlsplit(dsn).username
        except ValueError:
            user = None
        if user:
            return urllib.parse.unquote(user)
    return "<role>"


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state.upper() if isinstance(state, str) and len(state) == 5 else None


def _privilege(message: str, *, writes: bool, dsn: str | None) -> str:
    match = _DENIED.search(message)
    if match is None:
        return f"{message} (insufficient privilege: the role needs a grant or ownership)"
    kind = match["kind"]
    name = match["name"].strip("\"'")
    on = "FUNCTION" if kind == "procedure" else kind.upper()
    if kind == "materialized view":
        on = "TABLE"
    grant = f"GRANT {_grants(kind, writes=writes)} ON {on} {name} TO {_role(dsn)}"
    return f"{message}: missing grant, run {grant}"


def _privilege_cause(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _sqlstate(current) == INSUFFICIENT_PRIVILEGE:
            return current
        current = current.__cause__ or current.__context__
    return None


def _one_line(text: str) -> str:
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= _MAX_LENGTH else line[: _MAX_LENGTH - 3] + "..."


def explain(exc: BaseException, *, writes: bool = False, dsn: str | None = None) -> str:
    """What went wrong, in one redacted line.

    ``writes`` says whether the failed work meant to write (it picks the
    privileges a GRANT should give); ``dsn`` names the role in that GRANT.
    """
    denied = _privilege_cause(exc)
    if denied is not None:
        text = _privilege(str(denied) or type(denied).__name__, writes=writes, dsn=dsn)
    elif isinstance(exc, ButtressError):
        text = str(exc) or type(exc).__name__
    elif (state := _sqlstate(exc)) is not None:
        text = f"PostgreSQL error {state}: {exc}"
    elif isinstance(exc, sqlite3.Error):
        text = f"SQLite error: {exc}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        detail = str(exc)
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return _one_line(redact_text(text))


def failure_finding(section: str, exc: BaseException, *, dsn: str | None = None) -> Finding:
    """The finding a section reports when it could not finish.

    Tables buttress has not created yet are a warning that names ``buttress
    migrate``; anything else is critical, explained in one line.
    """
    if isinstance(exc, MissingTableError):
        what = ", ".join(exc.tables)
        detail = f"{what} missing (not set up yet): run `buttress migrate`"
        return Finding(section, "not set up", Level.WARNING, detail)
    return Finding(section, "error", Level.CRITICAL, explain(exc, dsn=dsn))
