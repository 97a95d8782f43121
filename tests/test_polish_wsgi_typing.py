"""``HealthWSGIApp`` accepts any standard WSGI app under mypy --strict (Flask's ``wsgi_app``).

The samples are written to a temporary directory and checked with the project's
mypy configuration, as ``tests/test_result_typing.py`` does for ``Result``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
pytest.importorskip("flask")  # the sample wraps a Flask app

ROOT = Path(__file__).resolve().parents[1]
_ERROR_LINE = re.compile(r"^[^:]+:(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")

FLASK_SAMPLE = """\
from wsgiref.types import WSGIApplication

from flask import Flask

from buttress.adapters.health_wsgi import HealthWSGIApp
from buttress.adapters.wsgi_ratelimit import WSGIRateLimitMiddleware
from buttress.health import HealthRegistry
from buttress.ratelimit import Rate, RateLimiter

flask_app = Flask(__name__)
registry = HealthRegistry()

wrapped = HealthWSGIApp(registry, app=flask_app.wsgi_app)
as_wsgi: WSGIApplication = wrapped  # the wrapper is itself a standard WSGI app
around_middleware = HealthWSGIApp(
    registry, app=WSGIRateLimitMiddleware(flask_app.wsgi_app, RateLimiter(Rate(10, 1.0)))
)
"""

WRONG_SAMPLE = """\
from buttress.adapters.health_wsgi import HealthWSGIApp
from buttress.health import HealthRegistry


def not_wsgi(environ: dict[str, object]) -> list[bytes]:
    return []


HealthWSGIApp(HealthRegistry(), app=not_wsgi)
"""


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
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wsgi-typing")


def test_wrapping_a_flask_wsgi_app_type_checks(samples: Path) -> None:
    sample = samples / "flask_sample.py"
    sample.write_text(FLASK_SAMPLE)
    output, status = _run_mypy(sample, samples / "cache")
    assert status == 0, output


def test_a_non_wsgi_callable_is_still_rejected(samples: Path) -> None:
    sample = samples / "wrong_sample.py"
    sample.write_text(WRONG_SAMPLE)
    output, status = _run_mypy(sample, samples / "cache")
    assert status == 1, output
    reported = {
        (int(m["line"]), m["code"])
        for m in map(_ERROR_LINE.match, output.splitlines())
        if m is not None
    }
    assert reported == {(9, "arg-type")}, output
