"""Runtime configuration: JSON values per environment, secrets kept out of logs, history.

``ConfigStore`` validates and audits; stores (memory first) only load and save.
``Setting[T]`` declares a typed key once for mypy-checked reads.
"""

from buttress.config._errors import ConfigConflictError, ConfigMissingError, ConfigTypeError
from buttress.config._json import JSONValue, check_json, dumps, loads
from buttress.config._model import KNOWN_ENVIRONMENTS, ConfigChange, ConfigEntry
from buttress.config._service import MAINTENANCE_KEY, ConfigStore
from buttress.config._store import ConfigBackendStore, MemoryConfigStore
from buttress.config._typed import MISSING, Setting

__all__ = [
    "KNOWN_ENVIRONMENTS",
    "MAINTENANCE_KEY",
    "MISSING",
    "ConfigBackendStore",
    "ConfigChange",
    "ConfigConflictError",
    "ConfigEntry",
    "ConfigMissingError",
    "ConfigStore",
    "ConfigTypeError",
    "JSONValue",
    "MemoryConfigStore",
    "Setting",
    "check_json",
    "dumps",
    "loads",
]
