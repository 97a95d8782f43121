"""Runs the example applications' own test suites, so CI keeps them working.

Each example is a package under ``examples/`` with its tests beside it (users
copy the folder whole). They run in one child pytest: they sit outside
``testpaths`` and configure logging globally, which must not leak into this run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("examples/fastapi_app", "examples/flask_app")


def test_example_apps_pass_their_own_tests() -> None:
    for framework in ("fastapi", "httpx", "flask"):
        pytest.importorskip(framework)  # the examples need it (dev extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rfEs", *EXAMPLES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"\d+ passed", output), output
    assert "SKIPPED" not in output, output  # an example test must never quietly skip
    for path in EXAMPLES:
        assert f"{path}/test_app.py::" in output, f"no tests ran from {path}\n{output}"
