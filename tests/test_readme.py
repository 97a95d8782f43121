"""The README's example runs as written, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_example_runs(tmp_path: Path) -> None:
    [code] = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "bad port:" in done.stdout
    assert "charged A-17" in done.stdout


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert len(commands) >= 2
    first, second = commands[0], commands[1]
    assert "buttress migrate && .venv/bin/buttress doctor" in first
    assert "pytest" in second
    assert second in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_set_up_command_migrates_then_looks(tmp_path: Path) -> None:
    """The first command's buttress steps, run as written in an empty directory."""
    first = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)[0]
    steps = [step.strip() for step in first.split("&&")]
    buttress = [step.removeprefix(".venv/bin/").split() for step in steps if "buttress " in step]
    assert buttress == [["buttress", "migrate"], ["buttress", "doctor"]]
    script = Path(sys.executable).parent / "buttress"
    for _name, *argv in buttress:
        done = subprocess.run(
            [str(script), *argv], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "status: ok" in done.stdout
    left = {p.name for p in tmp_path.iterdir()}
    assert left <= {"buttress.db", "buttress.db-wal", "buttress.db-shm"}
