"""Every event topic buttress publishes, in one place for metrics adapters.

Each component owns its topic and event values (``buttress.breaker`` its
``BREAKER_CREATED``, ``buttress.ratelimit`` its ``RATELIMIT_DECIDED``, ...);
this module only gathers them, so importing it loads those components.
``Topic`` itself lives in ``buttress._topic``, below every component.
"""

from buttress._topic import Listener, Topic
from buttress.breaker import BREAKER_CREATED
from buttress.flags import FLAG_EVALUATED
from buttress.health import HEALTH_CHECKED, HealthChecked
from buttress.migrations import MIGRATION_RAN, MigrationOutcome, MigrationRan
from buttress.monitoring.errors import ERROR_COUNTED, ErrorCounted
from buttress.ratelimit import RATELIMIT_DECIDED, RateLimitDecided

__all__ = [
    "BREAKER_CREATED",
    "ERROR_COUNTED",
    "FLAG_EVALUATED",
    "HEALTH_CHECKED",
    "MIGRATION_RAN",
    "RATELIMIT_DECIDED",
    "ErrorCounted",
    "HealthChecked",
    "Listener",
    "MigrationOutcome",
    "MigrationRan",
    "RateLimitDecided",
    "Topic",
]
