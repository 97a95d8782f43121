"""Every ```python block in docs/ runs as written, unless an HTML comment says otherwise.

The convention (also described in docs/index.md): HTML comments on the lines
just above a block, optionally separated from it by blank lines, steer it.

- ``<!-- not-run -->``: a fragment (a signature, part of a larger program); it
  must still compile, top-level ``await`` allowed.
- ``<!-- needs: postgres -->`` / ``<!-- needs: redis -->``: runs against the test
  session's server; every ``postgresql://…`` / ``redis://…`` literal in the
  block (and its setup) is replaced by a fresh fixture DSN.
- ``<!-- setup:`` … ``-->``: Python run first in the same directory (create the
  files or tables the example expects), hidden from readers.

A runnable block runs alone in ``python -c`` in an empty temporary directory and
must exit 0 within the timeout.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TIMEOUT_S = 60.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^\n`]*)$")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_NEEDS = {"postgres": re.compile(r"postgres(?:ql)?://[^\s\"']+"),
          "redis": re.compile(r"rediss?://[^\s\"']+")}  # fmt: skip


class SnippetSyntaxError(ValueError):
    """A docs page steers a block with a comment this test does not understand."""


@attrs.frozen
class Snippet:
    page: str
    line: int
    code: str
    run: bool = True
    needs: str | None = None
    setup: str = ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _directives(comments: list[str], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for body in comments:
        text = body.strip()
        if text == "not-run":
            found["not-run"] = ""
        elif text.startswith("needs:"):
            need = text.removeprefix("needs:").strip()
            if need not in _NEEDS:
                raise SnippetSyntaxError(f"{where}: needs: {need!r} (known: {sorted(_NEEDS)})")
            found["needs"] = need
        elif text.startswith("setup:"):
            found["setup"] = text.removeprefix("setup:").strip("\n")
        else:
            raise SnippetSyntaxError(f"{where}: unknown snippet comment {text[:40]!r}")
    if "not-run" in found and ("needs" in found or "setup" in found):
        raise SnippetSyntaxError(f"{where}: not-run cannot be combined with needs/setup")
    return found


def _comments_above(text_before: str) -> list[str]:
    """The HTML comments that end the text before a fence (blank lines allowed)."""
    comments: list[str] = []
    rest = text_before.rstrip()
    while rest.endswith("-->"):
        start = rest.rfind("<!--")
        if start < 0:
            break
        line_start = rest.rfind("\n", 0, start) + 1
        if rest[line_start:start].strip():  # the comment shares its line with prose
            break
        comments.insert(0, rest[start + 4 : -3])
        rest = rest[:start].rstrip()
    return comments


def parse_snippets(text: str, page: str) -> list[Snippet]:
    """The ```python blocks of one Markdown page with their steering comments."""
    snippets: list[Snippet] = []
    lines = text.splitlines(keepends=True)
    offset = 0
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i].rstrip("\n"))
        if match is None:
            offset += len(lines[i])
            i += 1
            continue
        ticks, info = match["ticks"], match["info"].strip()
        start_line, start_offset = i + 1, offset
        body: list[str] = []
        offset += len(lines[i])
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i])
            offset += len(lines[i])
            i += 1
        if i < len(lines):
            offset += len(lines[i])
        i += 1
        if info.split(" ")[0] != "python":
            continue
        where = f"{page}:{start_line}"
        found = _directives(_comments_above(text[:start_offset]), where)
        indent = len(match["indent"])
        code = "".join(line[indent:] for line in body)
        snippets.append(
            Snippet(
                page,
                start_line,
                code,
                run="not-run" not in found,
                needs=found.get("needs"),
                setup=found.get("setup", ""),
            )
        )
    return snippets


def _all_snippets() -> list[Snippet]:
    found: list[Snippet] = []
    for path in sorted(DOCS.rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        found.extend(parse_snippets(path.read_text(encoding="utf-8"), page))
    return found


SNIPPETS = _all_snippets()
# A developer's BUTTRESS_DSN must not point the examples at a real database.
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("BUTTRESS_")} | {"NO_COLOR": "1"}


def _params(run: bool) -> list[object]:
    params: list[object] = []
    for snippet in SNIPPETS:
        if snippet.run != run:
            continue
        marks = [getattr(pytest.mark, snippet.needs)] if snippet.needs else []
        params.append(pytest.param(snippet, id=snippet.id, marks=marks))
    return params


@pytest.mark.parametrize("snippet", _params(run=True))
def test_docs_snippet_runs(
    snippet: Snippet, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    program = f"{snippet.setup}\n{snippet.code}" if snippet.setup else snippet.code
    if snippet.needs is not None:
        dsn: str = request.getfixturevalue(f"{snippet.needs}_dsn")
        program = _NEEDS[snippet.needs].sub(dsn, program)
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT_S, check=False,
        env=_ENV,
    )  # fmt: skip
    assert done.returncode == 0, f"{snippet.id} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("snippet", _params(run=False))
def test_docs_fragment_compiles(snippet: Snippet) -> None:
    compile(snippet.code, snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_page_with_python_has_a_runnable_block() -> None:
    pages = {s.page for s in SNIPPETS}
    without = sorted(p for p in pages if not any(s.run for s in SNIPPETS if s.page == p))
    assert without == []


def test_parser_reads_the_convention() -> None:
    page = (
        "Intro\n\n```python\nprint(1)\n```\n\n<!-- not-run -->\n```python\nawait x\n```\n"
        "<!-- needs: redis -->\n\n```python\nconnect('redis://h/0')\n```\n"
        "<!-- setup:\nimport os\n-->\n```python\nos.getcwd()\n```\n"
        "```sh\nls\n```\n  ```python\n  indented()\n  ```\n"
    )
    got = parse_snippets(page, "p.md")
    assert [(s.line, s.run, s.needs, s.setup) for s in got] == [
        (3, True, None, ""),
        (8, False, None, ""),
        (13, True, "redis", ""),
        (19, True, None, "import os"),
        (25, True, None, ""),
    ]
    assert got[-1].code == "indented()\n"


@pytest.mark.parametrize(
    "comment",
    ["<!-- not run -->", "<!-- needs: mysql -->", "<!-- not-run -->\n<!-- setup: x=1 -->"],
)
def test_parser_refuses_unknown_comments(comment: str) -> None:
    with pytest.raises(SnippetSyntaxError):
        parse_snippets(f"{comment}\n```python\npass\n```\n", "p.md")


def test_prose_comment_on_a_text_line_is_not_a_directive() -> None:
    [snippet] = parse_snippets("See below <!-- not-run -->\n```python\npass\n```\n", "p.md")
    assert snippet.run


def test_api_reference_fences_doctest_sessions() -> None:
    pytest.importorskip("griffe")  # dev extra; under CI=true a missing griffe fails (conftest)
    spec = importlib.util.spec_from_file_location(
        "doctest_fences", DOCS / "_hooks" / "doctest_fences.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Intro.\n\n>>> 1 + 1\n2\n\nMore.\n\n```python\n>>> kept\n```\n\n    >>> x\n    1"
    assert module.fence_doctests(text) == (
        "Intro.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore.\n\n```python\n>>> kept\n```\n\n"
        "    ```pycon\n    >>> x\n    1\n    ```"
    )
