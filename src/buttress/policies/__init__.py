"""Composable resilience policies: retry, timeout, bulkhead, adaptive limit, fallback.

Each policy decorates sync and async functions, has ``call``/``acall`` and
``execute``/``aexecute`` (returning ``Result``), and composes with ``>>``,
outermost first: ``fallback(...) >> retry(...) >> breaker >> timeout(2.0)``.
"""

from buttress.policies._adaptive import AdaptiveLimit, AimdLimit, adaptive_limit
from buttress.policies._base import Guard, Pipeline, Policy
from buttress.policies._budget import RetryBudget
from buttress.policies._bulkhead import Bulkhead, bulkhead
from buttress.policies._errors import (
    BulkheadFullError,
    PolicyTimeoutError,
    SyncCallNotSupportedError,
)
from buttress.policies._fallback import Fallback, fallback
from buttress.policies._retry import Retry, retry
from buttress.policies._timeout import Timeout, timeout

__all__ = [
    "AdaptiveLimit",
    "AimdLimit",
    "Bulkhead",
    "BulkheadFullError",
    "Fallback",
    "Guard",
    "Pipeline",
    "Policy",
    "PolicyTimeoutError",
    "Retry",
    "RetryBudget",
    "SyncCallNotSupportedError",
    "Timeout",
    "adaptive_limit",
    "bulkhead",
    "fallback",
    "retry",
    "timeout",
]
