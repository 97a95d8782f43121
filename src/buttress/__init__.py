"""buttress: typed reliability parts for Python services.

This module only re-exports the public names; optional drivers (asyncpg,
redis) and adapter frameworks are imported when first used, never here.
"""

from buttress._version import __version__
from buttress.clock import Clock, SystemClock
from buttress.errors import (
    BackendError,
    BackendUnavailableError,
    ButtressError,
    InvalidDSNError,
    MissingDependencyError,
    UnsupportedBackendError,
    ValidationError,
)
from buttress.result import Err, Ok, Result, UnwrapError, as_result

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ButtressError",
    "Clock",
    "Err",
    "InvalidDSNError",
    "MissingDependencyError",
    "Ok",
    "Result",
    "SystemClock",
    "UnsupportedBackendError",
    "UnwrapError",
    "ValidationError",
    "__version__",
    "as_result",
]
