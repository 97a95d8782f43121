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
    Classification,
    ContextualError,
    ErrorCategory,
    ErrorContext,
    ErrorHandler,
    InvalidDSNError,
    MissingDependencyError,
    Severity,
    UnsupportedBackendError,
    ValidationError,
    capture,
    classify,
    register_classification,
    with_error_handling,
)
from buttress.log import configure_logging, get_logger, redact, register_secret
from buttress.result import Err, Ok, Result, UnwrapError, as_result

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ButtressError",
    "Classification",
    "Clock",
    "ContextualError",
    "Err",
    "ErrorCategory",
    "ErrorContext",
    "ErrorHandler",
    "InvalidDSNError",
    "MissingDependencyError",
    "Ok",
    "Result",
    "Severity",
    "SystemClock",
    "UnsupportedBackendError",
    "UnwrapError",
    "ValidationError",
    "__version__",
    "as_result",
    "capture",
    "classify",
    "configure_logging",
    "get_logger",
    "redact",
    "register_classification",
    "register_secret",
    "with_error_handling",
]
