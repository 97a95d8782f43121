"""The exception hierarchy rooted in ``ButtressError``: one place, no logic.

It sits at the bottom of the package so that every module, ``log`` and
``result`` included, can raise these without importing ``buttress.errors``
(which re-exports them under its own name).
"""

from __future__ import annotations


class ButtressError(Exception):
    """Root of every exception buttress raises on purpose."""


class ValidationError(ButtressError, ValueError):
    """Bad input, refused before anything was written.

    ``field`` names the offending argument or key and ``rule`` the constraint.
    """

    def __init__(self, field: str, rule: str, *, message: str | None = None) -> None:
        self.field = field
        self.rule = rule
        super().__init__(message or f"{field}: {rule}")


class InvalidDSNError(ValidationError):
    """A DSN that cannot be used (unknown scheme, malformed)."""

    def __init__(self, rule: str) -> None:
        super().__init__("dsn", rule)


class MissingDependencyError(ButtressError, ImportError):
    """An optional driver is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is not installed; install it with: pip install 'buttress[{extra}]'"
        )


class BackendError(ButtressError):
    """A storage backend failed to do what was asked."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend cannot be reached (connection refused, timed out, closed)."""


class SchemaMissingError(BackendError):
    """A table or function buttress needs does not exist: its migrations have not run.

    Raised instead of a driver error when a backend was opened with
    ``migrate=False``; never treated as an outage by fallback policies.
    """


class UnsupportedBackendError(BackendError):
    """A component was given a backend kind it cannot work with."""
