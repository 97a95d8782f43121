"""Which conformance scenarios a boolean provider over buttress's store cannot express, and why.

Two sources, both explicit: scenarios about provider states or SDK behaviour
buttress does not have (``SCENARIO_REASONS``), and scenarios whose flags the
seed translation refused or holds only in part (derived from the flag set).
Everything else must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .seed import LOST_METADATA, LOST_VARIANT, Translation

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
NO_VARIANT = (
    "{key!r} is a typed value held in ConfigStore, whose entries have a value but no variant "
    "names, so the provider reports no variant (buttress names only boolean variants, "
    "'on' and 'off')"
)
NO_METADATA = (
    "{key!r} carries flagMetadata; buttress flags have no free-form metadata, so the "
    "provider returns empty flag_metadata"
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
_ASKS_VARIANT = re.compile(r'the variant should be "[^"]')
_ASKS_METADATA = "the resolved metadata should contain"


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
            lost = flag_set.lost.get(key, frozenset())
            if LOST_VARIANT in lost and any(_ASKS_VARIANT.search(s) for s in steps):
                return NO_VARIANT.format(key=key)
            if LOST_METADATA in lost and any(_ASKS_METADATA in s for s in steps):
                return NO_METADATA.format(key=key)
    return None
