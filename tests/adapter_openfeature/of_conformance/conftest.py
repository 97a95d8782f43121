"""Wiring for the conformance suites: tag markers, the per-scenario world, the skip decisions.

Feature files carry tags (``@booleans``, ``@spec-1.4.7``...) that pytest-bdd turns
into markers; they are registered here so ``--strict-markers`` accepts them.
A scenario that buttress cannot express is skipped with its reason before any
step runs (see ``applicability``); every other scenario must pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance_location import FEATURES

from .seed import FLAG_SET_FOR_FEATURE, load

CACHED_TAG = "reason-codes-cached"

RUN_ALL = "BUTTRESS_OPENFEATURE_RUN_ALL"
"""Set to 1 to run the scenarios that would be skipped (they fail: that is why they are)."""

try:
    import openfeature  # noqa: F401 - only probing that the extra is installed
    import pytest_bdd
except ImportError:  # pragma: no cover - the optional extra is absent
    collect_ignore_glob = ["test_*.py"]
else:
    from pytest_bdd.parser import Feature, Scenario

    from . import steps
    from .applicability import reason_to_skip
    from .world import World

    # Step definitions are fixtures named pytestbdd_*; expose them to the test modules.
    globals().update({k: v for k, v in vars(steps).items() if k.startswith("pytestbdd_")})

    @pytest.fixture
    def world() -> Iterator[World]:
        state = World()
        yield state
        state.close()

    def pytest_bdd_before_scenario(
        request: pytest.FixtureRequest, feature: Feature, scenario: Scenario
    ) -> None:
        relative = Path(feature.filename).resolve().relative_to(FEATURES).as_posix()
        flag_set = load(FLAG_SET_FOR_FEATURE[relative])
        reason = reason_to_skip(scenario.name, (step.name for step in scenario.steps), flag_set)
        if reason is not None and not os.environ.get(RUN_ALL):
            pytest.skip(reason)
        state: World = request.getfixturevalue("world")
        state.flag_set = flag_set
        # CACHED is what a provider built with cache=True reports for a repeated static
        # lookup; those scenarios run that provider, every other one the default.
        state.cache = CACHED_TAG in scenario.tags

    assert pytest_bdd  # referenced so the probe import is not "unused"


_TAG = re.compile(r"@([^\s@]+)")


def pytest_configure(config: pytest.Config) -> None:
    tags: set[str] = set()
    for path in FEATURES.rglob("*.feature"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("@"):
                tags.update(_TAG.findall(line))
    for tag in sorted(tags):
        config.addinivalue_line("markers", f"{tag}: OpenFeature Gherkin tag")
