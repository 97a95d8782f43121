"""The doctor: "is this service's setup sound?", as library functions and one report.

Each section (``check_environment``, ``check_backend``, ``check_migrations``,
``check_schema``, ``check_health``, ``check_monitoring``, ``check_errors``,
``check_security``) runs on its own and reports its own problem; ``collect``
runs them into a ``DoctorReport`` whose level is the exit code ``buttress
doctor`` uses (0 ok, 1 warning, 2 critical). The doctor only looks: it never
creates a file, a table or a lock, and never migrates. An application can
serve the same report over its own backend (``collect(backend=...)``).
"""

from buttress.doctor._explain import explain, failure_finding
from buttress.doctor._report import collect, render_text
from buttress.doctor._sections import (
    SECTIONS,
    Section,
    check_backend,
    check_environment,
    check_errors,
    check_health,
    check_migrations,
    check_monitoring,
    check_schema,
    check_security,
    open_existing,
)
from buttress.doctor._values import DoctorContext, DoctorReport, Finding, Level

__all__ = [
    "SECTIONS",
    "DoctorContext",
    "DoctorReport",
    "Finding",
    "Level",
    "Section",
    "check_backend",
    "check_environment",
    "check_errors",
    "check_health",
    "check_migrations",
    "check_monitoring",
    "check_schema",
    "check_security",
    "collect",
    "explain",
    "failure_finding",
    "open_existing",
    "render_text",
]
