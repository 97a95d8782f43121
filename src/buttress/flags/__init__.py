"""Feature flags: the pure evaluation core, the flag values, stores and ``FeatureFlags``.

``evaluate(flag, context, now)`` is the whole decision; ``FeatureFlags`` keeps
an in-memory snapshot of a store so ``is_enabled`` never does I/O.
"""

from buttress.flags._core import bucket, evaluate, matches, rollout_warning
from buttress.flags._service import FeatureFlags
from buttress.flags._store import FlagStore, MemoryFlagStore
from buttress.flags._targeting import Condition, Operator, Rule
from buttress.flags._values import (
    FLAG_EVALUATED,
    Flag,
    FlagChange,
    FlagContext,
    FlagEvaluation,
    FlagNotFoundError,
    JSONObject,
    Reason,
    Resolution,
)

__all__ = [
    "FLAG_EVALUATED",
    "Condition",
    "FeatureFlags",
    "Flag",
    "FlagChange",
    "FlagContext",
    "FlagEvaluation",
    "FlagNotFoundError",
    "FlagStore",
    "JSONObject",
    "MemoryFlagStore",
    "Operator",
    "Reason",
    "Resolution",
    "Rule",
    "bucket",
    "evaluate",
    "matches",
    "rollout_warning",
]
