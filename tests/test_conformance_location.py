"""A plain clone without ../shared says loudly that the Gherkin suites are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.skipif(
    not (TESTS / "adapter_openfeature" / "of_conformance").is_dir(), reason="no suite wiring"
)
def test_missing_suites_are_announced_at_the_start_and_in_the_summary(tmp_path: Path) -> None:
    pytest.importorskip("pytest_bdd")
    pytest.importorskip("openfeature")
    absent = tmp_path / "no-shared"
    environment = {**os.environ, "BUTTRESS_CONFORMANCE_DIR": str(absent)}
    environment.pop("CI", None)  # a developer's plain clone: skip, do not fail
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         str(TESTS / "adapter_openfeature" / "of_conformance")],
        capture_output=True, text=True, env=environment, cwd=TESTS.parent, timeout=300,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: every module skipped
    assert lines[0].startswith("WARNING: OpenFeature conformance suites NOT FOUND at ")
    assert str(absent) in lines[0]
    assert "SKIPPED" in lines[0]
    assert sum(str(absent) in line and "NOT FOUND" in line for line in lines) == 2  # + summary
    assert " skipped" in lines[-1]
    assert "passed" not in lines[-1]
