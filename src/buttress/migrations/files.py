"""Migration files: naming, directives, the down section and checksums.

A migration is ``NNNN_name.sql``. Comment directives anywhere in the up part:
``-- depends: 0003_orders`` (several, or comma-separated), ``-- buttress:
no-transaction``, ``-- buttress: allow-destructive`` and one ``-- category:
security`` tag (core, security, performance, fixes, ...). A line ``-- down``
starts the optional down section. Directive and ``-- down`` lines count only
at top level: inside a string, a quoted identifier, a dollar-quoted body or a
block comment they are text like any other. Parsing collects every problem it
finds.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

import attrs

from buttress.migrations.sqltext import located_statements, tokenize

__all__ = [
    "CHECKSUM_ALGORITHM",
    "Migration",
    "ParseOutcome",
    "checksum",
    "load_directory",
    "normalise_text",
    "parse_migration",
]

CHECKSUM_ALGORITHM = "sha256-normalised-v1"
"""Stored next to each checksum; a later algorithm gets a new name, never a new meaning."""

FILENAME_RE = re.compile(r"^(?P<version>\d{4,})_(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*)\.sql$")
_DEPENDS_RE = re.compile(r"^--\s*depends\s*:(?P<refs>.*)$", re.IGNORECASE)
_DIRECTIVE_RE = re.compile(r"^--\s*buttress\s*:(?P<flags>.*)$", re.IGNORECASE)
_CATEGORY_RE = re.compile(r"^--\s*category\s*:(?P<value>.*)$", re.IGNORECASE)
_CATEGORY_VALUE_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
_DOWN_RE = re.compile(r"^--\s*down\s*$", re.IGNORECASE)
_REFERENCE_RE = re.compile(r"^\d{4,}(?:_[A-Za-z0-9][A-Za-z0-9_\-]*)?$")
_FLAGS = frozenset({"no-transaction", "allow-destructive"})


def normalise_text(text: str) -> str:
    """The text a checksum covers: no BOM, LF line ends, no trailing whitespace
    on any line, no trailing blank lines. Re-saving on another OS or an editor
    trimming whitespace therefore never reads as drift."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"


def checksum(text: str, algorithm: str = CHECKSUM_ALGORITHM) -> str:
    """Hex digest of ``text`` under ``algorithm`` (``ValueError`` if unknown)."""
    if algorithm != CHECKSUM_ALGORITHM:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


@attrs.frozen
class Migration:
    """One parsed migration file."""

    version: int
    name: str
    up: str
    down: str | None = None
    depends: tuple[str, ...] = ()
    no_transaction: bool = False
    allow_destructive: bool = False
    checksum: str = ""
    path: Path | None = None
    category: str | None = None
    """The ``-- category:`` tag, lower-cased (None when the file has none)."""

    @property
    def id(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def filename(self) -> str:
        return self.path.name if self.path is not None else f"{self.id}.sql"


@attrs.frozen
class ParseOutcome:
    migration: Migration | None
    errors: tuple[str, ...]


def parse_migration(filename: str, text: str, *, path: Path | None = None) -> ParseOutcome:
    """Parse one file's text; problems are returned, not raised."""
    errors: list[str] = []
    match = FILENAME_RE.match(filename)
    if match is None:
        return ParseOutcome(None, (f"{filename}: name must look like NNNN_name.sql",))
    up_lines: list[str] = []
    down_lines: list[str] | None = None
    depends: list[str] = []
    flags: set[str] = set()
    category: str | None = None
    normalised = normalise_text(text)
    lines = normalised.split("\n")
    top_level = _top_level_comment_lines(normalised, _directive_like(lines))
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if number in top_level and _DOWN_RE.match(line):
            if down_lines is not None:
                errors.append(f"{filename}:{number}: a second '-- down' line")
            down_lines = []
            continue
        if down_lines is not None:
            down_lines.append(raw)
            continue
        up_lines.append(raw)
        if number not in top_level:
            continue
        if dep := _DEPENDS_RE.match(line):
            for ref in (r.strip() for r in dep["refs"].replace(",", " ").split()):
                if _REFERENCE_RE.match(ref):
                    depends.append(ref)
                else:
                    errors.append(
                        f"{filename}:{number}: bad dependency {ref!r} (expected NNNN or NNNN_name)"
                    )
        elif tag := _CATEGORY_RE.match(line):
            value = tag["value"].strip().lower()
            if not _CATEGORY_VALUE_RE.match(value):
                errors.append(
                    f"{filename}:{number}: bad category {value!r} (one word: letters, "
                    "digits, '_' or '-', e.g. core, security, performance, fixes)"
                )
            elif category is not None and category != value:
                errors.append(f"{filename}:{number}: a second category {value!r}")
            else:
                category = value
        elif directive := _DIRECTIVE_RE.match(line):
            for flag in directive["flags"].replace(",", " ").split():
                if flag.lower() in _FLAGS:
                    flags.add(flag.lower())
                else:
                    errors.append(
                        f"{filename}:{number}: unknown directive {flag!r} "
                        f"(known: {', '.join(sorted(_FLAGS))})"
                    )
    joined = "\n".join(up_lines)
    up = joined.strip()
    # Line n of ``up`` is line n + skipped of the file.
    skipped = joined[: len(joined) - len(joined.lstrip())].count("\n")
    located = [(line + skipped, statement) for line, statement in located_statements(up)]
    statements = [statement for _, statement in located]
    if not statements:
        errors.append(f"{filename}: has no statements before '-- down'")
    errors.extend(_copy_from_stdin(filename, located))
    if "no-transaction" not in flags and any(_controls_transaction(s) for s in statements):
        errors.append(
            f"{filename}: controls transactions itself (BEGIN/COMMIT/ROLLBACK); "
            "each file already runs in one: remove them, or add "
            "'-- buttress: no-transaction'"
        )
    down = "\n".join(down_lines).strip() if down_lines is not None else None
    migration = Migration(
        version=int(match["version"]),
        name=match["name"],
        up=up,
        down=down or None,
        depends=tuple(depends),
        no_transaction="no-transaction" in flags,
        allow_destructive="allow-destructive" in flags,
        checksum=checksum(text),
        path=path,
        category=category,
    )
    return ParseOutcome(migration, tuple(errors))


_LINE_RES = (_DOWN_RE, _DEPENDS_RE, _DIRECTIVE_RE, _CATEGORY_RE)


def _directive_like(lines: list[str]) -> frozenset[int]:
    """Numbers (1-based) of the lines that read as a directive or ``-- down``."""
    return frozenset(
        number
        for number, raw in enumerate(lines, start=1)
        if "--" in raw and any(pattern.match(raw.strip()) for pattern in _LINE_RES)
    )


def _top_level_comment_lines(text: str, candidates: frozenset[int]) -> frozenset[int]:
    """Those of the ``candidates`` (line numbers, 1-based) whose line begins
    with a ``--`` comment outside every string, quoted identifier,
    dollar-quoted body and block comment: only such a line holds a directive
    or ``-- down``. The text is lexed only as far as the last candidate."""
    found: set[int] = set()
    offset, number, line_start = 0, 1, 0
    last = max(candidates, default=0)
    for token in tokenize(text):
        if number > last:
            break
        if (
            number in candidates
            and token.kind == "comment"
            and token.text.startswith("--")
            and not text[line_start:offset].strip()
        ):
            found.add(number)
        if newlines := token.text.count("\n"):
            number += newlines
            line_start = offset + token.text.rindex("\n") + 1
        offset += len(token.text)
    return frozenset(found)


def _copy_from_stdin(filename: str, statements: list[tuple[int, str]]) -> list[str]:
    """``COPY ... FROM stdin`` (every pg_dump data file has it) needs psql's copy
    protocol: sent as a statement, the server would wait for data for ever.
    ``statements`` are (line in the file, statement) pairs."""
    problems = []
    for number, statement in statements:
        if "copy" not in statement.lower():  # the cheap test first: most files have none
            continue
        words = [t.text.upper() for t in tokenize(statement) if t.kind == "word"]
        if words[:1] != ["COPY"] or ("FROM", "STDIN") not in itertools.pairwise(words):
            continue
        problems.append(
            f"{filename}:{number}: COPY ... FROM stdin needs psql's copy protocol, which a "
            "migration cannot use; load the data with `psql -1 -f FILE`, or rewrite it as "
            "INSERT statements (pg_dump --inserts)"
        )
    return problems


_TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "ABORT"})


def _controls_transaction(statement: str) -> bool:
    first = next((t.text.upper() for t in tokenize(statement) if t.kind == "word"), "")
    return first in _TRANSACTION_WORDS


def load_directory(directory: str | Path) -> tuple[list[Migration], list[str]]:
    """Every ``*.sql`` migration in ``directory`` (not recursive), sorted by
    version, and every problem found (bad names, bad directives, unreadable files)."""
    root = Path(directory)
    if not root.is_dir():
        return [], [f"{root}: migrations directory does not exist"]
    files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".sql" and p.is_file())
    # Silently skipping 0002_x.SQL would leave a migration unapplied without a word.
    misnamed = [
        f"{p.name}: name must end in '.sql' (lower case)" for p in files if p.suffix != ".sql"
    ]
    migrations, errors = _load(p for p in files if p.suffix == ".sql")
    return migrations, misnamed + errors


def _load(paths: Iterable[Path]) -> tuple[list[Migration], list[str]]:
    migrations: list[Migration] = []
    errors: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{path.name}: cannot read: {exc}")
            continue
        outcome = parse_migration(path.name, text, path=path)
        errors.extend(outcome.errors)
        if outcome.migration is not None:
            migrations.append(outcome.migration)
    migrations.sort(key=lambda m: (m.version, m.name))
    return migrations, errors
