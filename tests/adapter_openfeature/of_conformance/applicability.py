"""Which conformance scenarios buttress's provider cannot express, and why.

Two sources, both explicit: scenarios about SDK behaviour that is not the
provider's to give (``SCENARIO_REASONS``), and scenarios whose flags the seed
translation refused (derived from the flag set). Everything else must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .seed import Translation

NOT_READY = (
    "NOT_READY is the SDK's status until a provider's initialize() returns; "
    "ButtressProvider.initialize() does no I/O (FeatureFlags.start() loads the snapshot "
    "before the provider is registered), so a buttress provider has no not-ready window "
    "to observe without a test double"
)
FATAL = (
    "buttress never declares itself FATAL: an unreachable store keeps the last snapshot "
    "serving (STALE), and a start without any snapshot is an ERROR the provider recovers "
    "from with a READY event"
)
CACHED = (
    "ButtressProvider evaluates every call against FeatureFlags' in-memory snapshot, which "
    "is the source of truth rather than a cache of a remote answer, so it never reports "
    "CACHED (STALE says when the snapshot may be out of date)"
)
MUTABLE_DETAILS = (
    "not a provider property: openfeature-sdk 0.10's FlagEvaluationDetails is a mutable "
    "dataclass (the client itself assigns details.value), so 'the evaluation details should "
    "be immutable' cannot hold in Python; that ButtressProvider leaves the context unmodified "
    "is tested in tests/adapter_openfeature/test_openfeature_provider.py"
)

SCENARIO_REASONS: Mapping[tuple[str, str | None], str] = {
    # (scenario name, a step text the example must contain, or None for every example)
    ("Provider status accessibility", "a not ready provider"): NOT_READY,
    ("Provider status accessibility", "a fatal provider"): FATAL,
    ("Provider not ready error", None): NOT_READY,
    ("Provider in fatal state error", None): FATAL,
    ("CACHED reason", None): CACHED,
    ("Evaluation context immutability", None): MUTABLE_DETAILS,
}

_KEY = re.compile(r'key "([^"]+)"')


def reason_to_skip(
    scenario_name: str, step_texts: Iterable[str], flag_set: Translation | None
) -> str | None:
    """Why this rendered scenario does not apply to buttress, or None if it must pass."""
    steps = list(step_texts)
    for (name, needle), reason in SCENARIO_REASONS.items():
        if name == scenario_name and (needle is None or any(needle in s for s in steps)):
            return reason
    if flag_set is None:
        return None
    for step in steps:
        for key in _KEY.findall(step):
            if key in flag_set.refused:
                return flag_set.refused[key]
    return None
