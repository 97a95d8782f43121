"""The buttress exception hierarchy, the error taxonomy and error capture.

Owns ``ButtressError`` and its subclasses (defined in ``buttress._exceptions``), what an error is
(``_taxonomy``), ``classify`` (``_classify``: drivers recognised by name, never
imported) and ``capture``/``with_error_handling`` (``_capture``). Messages never
carry a secret, a DSN or SQL text.
"""

from buttress._exceptions import (
    BackendError,
    BackendUnavailableError,
    ButtressError,
    InvalidDSNError,
    MissingDependencyError,
    SchemaMissingError,
    UnsupportedBackendError,
    ValidationError,
)
from buttress.errors._capture import (
    CaptureListener,
    ErrorHandler,
    add_capture_listener,
    capture,
    remove_capture_listener,
    with_error_handling,
)
from buttress.errors._classify import UNKNOWN, classify, register_classification
from buttress.errors._taxonomy import (
    Classification,
    ContextualError,
    ErrorCategory,
    ErrorContext,
    Severity,
    user_message_for,
)

__all__ = [
    "UNKNOWN",
    "BackendError",
    "BackendUnavailableError",
    "ButtressError",
    "CaptureListener",
    "Classification",
    "ContextualError",
    "ErrorCategory",
    "ErrorContext",
    "ErrorHandler",
    "InvalidDSNError",
    "MissingDependencyError",
    "SchemaMissingError",
    "Severity",
    "UnsupportedBackendError",
    "ValidationError",
    "add_capture_listener",
    "capture",
    "classify",
    "register_classification",
    "remove_capture_listener",
    "user_message_for",
    "with_error_handling",
]

# Public classes report the public module, so tracebacks, pickles and
# classify's name-keyed rules ("buttress.errors.ValidationError") see one path.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
