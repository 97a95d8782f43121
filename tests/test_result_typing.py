"""mypy --strict narrows Ok/Err in match and isinstance, and rejects unnarrowed use.

Runs mypy once per sample under ``tests/typing_samples/`` with the project's
configuration; expected errors are marked in the wrong-use sample with
``# E: code [code ...]`` on the offending line. That sample is named
``.py.sample`` so that ``mypy src tests`` does not pick it up (mypy checks a
file given explicitly whatever its suffix).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "typing_samples"
_ERROR_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
_MARK = re.compile(r"#\s*E:\s*(?P<codes>[a-z\- ]+)$")


def _run_mypy(sample: Path, cache_dir: Path) -> tuple[str, int]:
    stdout, stderr, status = mypy_api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--cache-dir",
            str(cache_dir),
            "--no-error-summary",
            "--show-error-codes",
            "--no-pretty",
            str(sample),
        ]
    )
    return stdout + stderr, status


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _expected(sample: Path) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for number, line in enumerate(sample.read_text().splitlines(), start=1):
        mark = _MARK.search(line)
        if mark:
            found.update((number, code) for code in mark["codes"].split())
    return found


def test_correct_use_type_checks(cache_dir: Path) -> None:
    output, status = _run_mypy(SAMPLES / "result_ok.py", cache_dir)
    assert status == 0, output


def test_wrong_use_is_rejected_with_expected_codes(cache_dir: Path) -> None:
    sample = SAMPLES / "result_wrong.py.sample"
    output, status = _run_mypy(sample, cache_dir)
    assert status == 1, output
    reported = {
        (int(m["line"]), m["code"])
        for m in map(_ERROR_LINE.match, output.splitlines())
        if m is not None
    }
    expected = _expected(sample)
    assert expected, "the sample marks no expected errors"
    assert reported == expected, output
