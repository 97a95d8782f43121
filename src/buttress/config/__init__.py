"""Runtime configuration: JSON values per environment, secrets kept out of logs, history.

``ConfigStore`` validates and audits; stores (memory first) only load and save.
``Setting[T]`` declares a typed key once for mypy-checked reads; ``EnvSetting[T]``
does the same for an environment variable.
"""

from typing import TYPE_CHECKING

from buttress._seam import lazy_attributes, public_dir
from buttress.config._core import MISSING, Setting, check_json, dumps, loads
from buttress.config._service import MAINTENANCE_KEY, ConfigStore
from buttress.config._store import ConfigBackendStore, MemoryConfigStore
from buttress.config._values import (
    ALL,
    KNOWN_ENVIRONMENTS,
    ConfigChange,
    ConfigConflictError,
    ConfigEntry,
    ConfigMissingError,
    ConfigTypeError,
    JSONValue,
    validate_environment,
)

if TYPE_CHECKING:
    from buttress.config._env import EnvSetting, EnvSettingError, parse_env_text


# Environment settings are read at start-up, not on every import of config
# (``buttress._seam`` is loaded by config itself).
__getattr__ = lazy_attributes(
    __name__,
    dict.fromkeys(("EnvSetting", "EnvSettingError", "parse_env_text"), "buttress.config._env"),
    globals(),
)
__dir__ = public_dir(globals())

__all__ = [
    "ALL",
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
    "EnvSetting",
    "EnvSettingError",
    "JSONValue",
    "MemoryConfigStore",
    "Setting",
    "check_json",
    "dumps",
    "loads",
    "parse_env_text",
    "validate_environment",
]
