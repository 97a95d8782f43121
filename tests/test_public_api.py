"""The public face of ``import buttress``: contract names, lazy loading, no drivers."""

from __future__ import annotations

import subprocess
import sys

import pytest

import buttress

CONTRACT = (
    "Ok", "Err", "Result", "UnwrapError", "as_result", "ConfigStore", "ConfigEntry",
    "FeatureFlags", "Flag", "FlagContext", "FlagEvaluation", "DeploymentLog", "Deployment",
    "HealthRegistry", "HealthReport", "Status", "ComponentStatus", "StartupValidator",
    "GracefulShutdown", "connect", "SchemaValidator", "Schema", "Table", "Column", "Migrator",
    "CircuitBreaker", "BreakerState", "CircuitOpenError", "RateLimiter", "Rate", "Decision",
    "RateLimitExceeded", "BreakerStats", "Status", "ComponentStatus",
)  # fmt: skip


@pytest.mark.parametrize("name", CONTRACT)
def test_contract_name_is_importable_from_the_top_level(name: str) -> None:
    assert name in buttress.__all__
    assert getattr(buttress, name) is not None


def test_every_exported_name_resolves() -> None:
    for name in buttress.__all__:
        assert hasattr(buttress, name), name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = buttress.no_such_name


def test_import_buttress_loads_no_driver_framework_or_component() -> None:
    probe = (
        "import sys, buttress; "
        "heavy = ['asyncpg', 'redis', 'starlette', 'flask', 'openfeature', 'tenacity', "
        "'buttress.backends', 'buttress.flags', 'buttress.health']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_import_buttress_config_loads_twelve_buttress_modules_at_most() -> None:
    # Issue #13's aim: config is read at start-up by every application, so its
    # import stays small: the package, the base modules it stands on, its rooms.
    probe = (
        "import sys, buttress.config; "
        "print(*sorted(m for m in sys.modules if m == 'buttress' or m.startswith('buttress.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = done.stdout.split()
    assert len(loaded) <= 12, loaded
    for heavy in ("buttress.flags", "buttress.breaker", "buttress.policies", "buttress.backends"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), loaded


@pytest.mark.parametrize("package", ["buttress", "buttress.backends", "buttress.config"])
def test_dir_lists_every_public_name_before_any_is_loaded(package: str) -> None:
    # Completion in a REPL reads dir(): a name still waiting to be imported on
    # first use must be listed all the same, and loading nothing to say so.
    probe = (
        f"import sys, importlib; face = importlib.import_module({package!r}); "
        "before = set(sys.modules); listed = dir(face); "
        "print(sorted(listed) == sorted(face.__all__), sorted(set(sys.modules) - before))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "True []"
