"""Which conformance scenarios buttress's provider cannot pass, and why.

Two sources, both explicit: scenarios about SDK behaviour that is not the
provider's to give (``SCENARIO_REASONS``), and scenarios whose flags the seed
translation refused (derived from the flag set). Everything else must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .seed import Translation

MUTABLE_DETAILS = (
    "not a provider property: the step assigns details.value and expects AttributeError, "
    "but openfeature-sdk 0.10's FlagEvaluationDetails is a mutable dataclass the client "
    "builds (and itself assigns), so no provider can make it hold in Python; what the "
    "provider controls is tested in tests/adapter_openfeature/test_openfeature_provider.py: "
    "the context stays unmodified and the flag_metadata handed out is read-only "
    "(test_flag_metadata_is_read_only)"
)

SCENARIO_REASONS: Mapping[tuple[str, str | None], str] = {
    # (scenario name, a step text the example must contain, or None for every example)
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
