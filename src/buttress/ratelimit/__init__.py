"""Rate limiting: at most N units per period per key, in one process or a fleet.

Pure algorithms (GCRA, exact sliding window, fixed window) decide; in-process
tables or one round trip to SQLite, Redis or PostgreSQL store. See docs/ratelimit.md.
"""

from buttress.ratelimit._core import ALGORITHMS, fixed_window, gcra, sliding_window
from buttress.ratelimit._service import (
    OUTAGE_RETRY_AFTER,
    OnBackendError,
    RateLimiter,
    ahit_all,
    hit_all,
)
from buttress.ratelimit._store import Store as RateLimitStore
from buttress.ratelimit._values import (
    RATELIMIT_DECIDED,
    Decision,
    Lease,
    Rate,
    RateLimitDecided,
    RateLimitExceeded,
)

__all__ = [
    "ALGORITHMS",
    "OUTAGE_RETRY_AFTER",
    "RATELIMIT_DECIDED",
    "Decision",
    "Lease",
    "OnBackendError",
    "Rate",
    "RateLimitDecided",
    "RateLimitExceeded",
    "RateLimitStore",
    "RateLimiter",
    "ahit_all",
    "fixed_window",
    "gcra",
    "hit_all",
    "sliding_window",
]
