"""Under CI=true a skip fails the run unless tests/conftest.py allows it.

An inner pytest session loads the suite's conftest as a plugin and runs a file
of skipping tests, with and without CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING = textwrap.dedent(
    """
    import pytest

    def test_plain_skip():
        pytest.skip("not today")

    @pytest.mark.skipif(True, reason="a condition")
    def test_skipif_mark():
        pass

    def test_own_module_missing():
        pytest.importorskip("buttress_no_such_module")

    def test_griffe_missing():
        pytest.importorskip("griffe.no_such_module")

    def test_optional_package_missing():
        pytest.importorskip("django.no_such_module")

    def test_passes():
        pass
    """
)

MODULE_LEVEL = textwrap.dedent(
    """
    import pytest

    pytest.importorskip("buttress_no_such_module")

    def test_never_collected():
        pass
    """
)


def inner_session(tmp_path: Path, ci: bool) -> dict[str, str]:
    """Each test's (or module's) outcome: passed, skipped, failed or error."""
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_module_level.py").write_text(MODULE_LEVEL)
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci:
        env["CI"] = "true"
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
         "--continue-on-collection-errors", f"--junitxml={report}",
         "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert report.is_file(), done.stdout + done.stderr
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[case.get("name", "")] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.mark.parametrize("ci", [True, False])
def test_only_a_missing_optional_package_may_skip_under_ci(tmp_path: Path, ci: bool) -> None:
    refused = "failure" if ci else "skipped"
    assert inner_session(tmp_path, ci) == {
        "test_plain_skip": refused,
        "test_skipif_mark": "error" if ci else "skipped",  # refused in its setup phase
        "test_own_module_missing": refused,
        "test_griffe_missing": refused,
        "test_optional_package_missing": "skipped",
        "test_passes": "passed",
        "test_module_level": "error" if ci else "skipped",
    }
