"""The doctor's sections: one function each, run on its own, reporting its own problem.

A ``Section`` wraps one check of the setup (environment, backend, buttress's own
and the application's migrations, schema drift, health checks, recorded health
history, captured errors, security). Calling it never raises: a failure is the
section's own finding, so one section that cannot finish (a missing grant, a
table not set up yet) never hides the next. Sections only look: the backend is
opened as it is (a missing SQLite file is an error, nothing is created) and
nothing is migrated.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from buttress._version import __version__
from buttress.doctor._explain import explain, failure_finding
from buttress.doctor._values import DoctorContext, Finding, Level
from buttress.lifecycle.env import check_env
from buttress.switches import SWITCHES

if TYPE_CHECKING:
    from buttress.backends import Backend
    from buttress.migrations import MigrationStatus

__all__ = [
    "SECTIONS",
    "Section",
    "check_backend",
    "check_environment",
    "check_errors",
    "check_health",
    "check_migrations",
    "check_monitoring",
    "check_schema",
    "check_security",
    "open_existing",
]

Check = Callable[[DoctorContext], Awaitable[list[Finding]]]


@attrs.frozen
class Section:
    """One named part of the report; ``await section(ctx)`` gives its findings, never raises."""

    name: str
    check: Check = attrs.field(repr=False)

    async def __call__(self, ctx: DoctorContext) -> list[Finding]:
        try:
            return list(await self.check(ctx))
        except Exception as exc:  # noqa: BLE001  # a section reports its failure, never raises it
            return [failure_finding(self.name, exc, dsn=ctx.dsn)]


async def open_existing(dsn: str) -> Backend:
    """Open ``dsn`` as it is: a SQLite file must exist (nothing is created), nothing migrates."""
    from buttress.backends import open_backend

    return await open_backend(dsn, create=False)


async def _environment(ctx: DoctorContext) -> list[Finding]:
    findings = [
        Finding(
            "environment",
            "python",
            Level.OK,
            f"{platform.python_implementation()} {platform.python_version()}",
        ),
        Finding("environment", "buttress", Level.OK, __version__),
    ]
    scheme = ctx.dsn.partition(":")[0].lower()
    for package, extra, schemes in (
        ("asyncpg", "postgres", ("postgresql", "postgres")),
        ("redis", "redis", ("redis", "rediss", "redis+cluster", "redis+sentinel")),
    ):
        installed = importlib.util.find_spec(package) is not None
        needed = scheme in schemes
        if installed:
            level, detail = Level.OK, "installed"
        elif needed:
            level, detail = Level.CRITICAL, f"needed by --dsn: pip install 'buttress[{extra}]'"
        else:
            level, detail = Level.OK, f"not installed (optional: buttress[{extra}])"
        findings.append(Finding("environment", package, level, detail))
    for switch in SWITCHES:
        state = switch.state()
        if not state.valid:
            level = Level.CRITICAL  # the operator meant something; the switch did not follow
        elif not state.enabled:
            level = Level.WARNING
        else:
            level = Level.OK
        findings.append(Finding("environment", switch.variable, level, state.describe()))
    for var in ctx.required_env:
        # A required variable that is missing or malformed is a half-configured
        # release: critical, so a deploy pipeline running the doctor stops.
        problem = check_env(var, os.environ)
        level, detail = (Level.OK, "set") if problem is None else (Level.CRITICAL, problem)
        findings.append(Finding("environment", var.name, level, detail))
    return findings


async def _backend(ctx: DoctorContext) -> list[Finding]:
    if ctx.backend is None:
        try:
            ctx.backend = await open_existing(ctx.dsn)
        except Exception as exc:  # noqa: BLE001  # why it cannot be reached is the finding
            return [Finding("backend", "connect", Level.CRITICAL, explain(exc, dsn=ctx.dsn))]
    backend = ctx.backend
    findings = [Finding("backend", "connect", Level.OK, f"{backend.kind} backend reachable")]
    try:
        latency = await backend.ping()
    except Exception as exc:  # noqa: BLE001  # reported as the ping's finding
        findings.append(Finding("backend", "ping", Level.CRITICAL, explain(exc, dsn=ctx.dsn)))
    else:
        findings.append(Finding("backend", "ping", Level.OK, f"{latency * 1000:.2f} ms"))
    if getattr(backend, "pooler", False) is True:
        # Said out loud: through a transaction pooler some things work differently.
        changes = (
            "pushed through listen_dsn"
            if getattr(backend, "pushes", False)
            else "polled (no LISTEN through a pooler; give listen_dsn= to push)"
        )
        findings.append(
            Finding(
                "backend",
                "pooler",
                Level.OK,
                "through a transaction pooler (pgbouncer=true): no prepared statements, "
                f"transaction-scoped locks; config and flag changes {changes}",
            )
        )
    return findings


def _status_findings(section: str, status: MigrationStatus, *, own: bool) -> list[Finding]:
    findings: list[Finding] = []
    if status.pending:
        detail = f"{len(status.pending)} pending: {', '.join(status.pending)}"
        if own:
            detail += "; run `buttress migrate`"
        findings.append(Finding(section, "pending", Level.WARNING, detail))
    findings += [Finding(section, "error", Level.CRITICAL, e) for e in status.report.errors]
    findings += [Finding(section, "warning", Level.WARNING, w) for w in status.report.warnings]
    if not findings:
        findings.append(
            Finding(section, "applied", Level.OK, f"{len(status.applied)} applied, none pending")
        )
    return findings


async def _migrations(ctx: DoctorContext) -> list[Finding]:
    from buttress.backends import SqlBackend
    from buttress.migrations import Migrator, builtin_migrator

    backend = ctx.backend
    if not isinstance(backend, SqlBackend):
        return []
    findings = _status_findings("migrations", await builtin_migrator(backend).status(), own=True)
    if ctx.migrations_dir is not None:
        app = Migrator(backend, ctx.migrations_dir)
        findings += _status_findings("app migrations", await app.status(), own=False)
    return findings


async def _schema(ctx: DoctorContext) -> list[Finding]:
    from buttress.schema import SchemaValidator, load_schema

    if ctx.schema_path is None or ctx.backend is None:
        return []
    report = await SchemaValidator(ctx.backend, load_schema(ctx.schema_path)).validate()
    levels = {"error": Level.CRITICAL, "warning": Level.WARNING}
    findings = [
        Finding(
            "schema",
            f.code.value,
            levels.get(f.severity, Level.WARNING),
            ".".join(part for part in (f.table, f.column or f.index) if part) + f": {f.message}",
        )
        for f in report.findings
    ]
    return findings or [Finding("schema", "drift", Level.OK, "database matches the declaration")]


async def _health(ctx: DoctorContext) -> list[Finding]:
    from buttress.health import HealthRegistry, Status, register_standard

    # The operator's own terminal: the checks' error text, redacted, is worth showing.
    registry = HealthRegistry(version=__version__, expose_details=True)
    register_standard(registry, ctx.backend, disk_path=".")
    report = await registry.run()
    levels = {Status.HEALTHY: Level.OK, Status.DEGRADED: Level.WARNING}
    return [
        Finding(
            "health",
            name,
            levels.get(component.status, Level.CRITICAL),
            f"{component.status.value}, {component.latency_ms:.1f} ms"
            + (f": {component.message}" if component.message else ""),
        )
        for name, component in report.components.items()
    ]


async def _monitoring(ctx: DoctorContext) -> list[Finding]:
    from buttress.backends import SqlBackend
    from buttress.monitoring import AlertLevel, HealthHistory, load_rules

    if not isinstance(ctx.backend, SqlBackend):
        return []
    rules = load_rules(ctx.rules_path) if ctx.rules_path is not None else None
    history = HealthHistory(ctx.backend)
    runs = await history.count()
    findings = [Finding("monitoring", "history", Level.OK, f"{runs} health run(s) recorded")]
    if rules is not None:
        levels = {AlertLevel.WARNING: Level.WARNING, AlertLevel.CRITICAL: Level.CRITICAL}
        anomalies = await history.check(rules)
        findings += [
            Finding("monitoring", a.rule, levels.get(a.level, Level.OK), a.message)
            for a in anomalies
        ]
        if not anomalies:
            findings.append(Finding("monitoring", "anomalies", Level.OK, "none found"))
    return findings


async def _errors(ctx: DoctorContext) -> list[Finding]:
    from buttress.backends import SqlBackend
    from buttress.monitoring import AlertLevel
    from buttress.monitoring.errors import ErrorRateRule, read_error_counts, summarize

    if not isinstance(ctx.backend, SqlBackend):
        return []
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    counts = await read_error_counts(ctx.backend, since, now)
    summary = summarize(counts, since, now)
    top = ", ".join(f"{name} {n}" for name, n in list(summary.by_category.items())[:3])
    findings = [
        Finding(
            "errors",
            "last hour",
            Level.OK,
            f"{summary.total} captured" + (f" ({top})" if top else ""),
        )
    ]
    anomaly = ErrorRateRule().check(counts, now)
    if anomaly is not None:
        level = Level.CRITICAL if anomaly.level is AlertLevel.CRITICAL else Level.WARNING
        findings.append(Finding("errors", "rate", level, anomaly.message))
    return findings


async def _security(ctx: DoctorContext) -> list[Finding]:
    """The security audit's findings on PostgreSQL, with the ``[audit]`` declarations
    of the ``--schema`` file when one is given."""
    from buttress.backends import SqlBackend
    from buttress.schema import SecurityAudit
    from buttress.schema.integrity import load_declarations

    if not isinstance(ctx.backend, SqlBackend):
        return []
    if ctx.backend.dialect != "postgresql":
        return [Finding("security", "audit", Level.OK, "not applicable on SQLite (no roles)")]
    declared = load_declarations(ctx.schema_path) if ctx.schema_path else None
    report = await SecurityAudit(
        ctx.backend,
        tables=declared.security if declared else (),
        allowed_roles=declared.allowed_roles if declared else None,
        allow_superuser=bool(declared and declared.allow_superuser),
    ).audit()
    levels = {"critical": Level.CRITICAL, "warning": Level.WARNING}
    findings = [
        Finding("security", f.code, levels.get(f.severity, Level.OK), f"{f.object}: {f.message}")
        for f in report.findings
    ]
    return findings or [Finding("security", "audit", Level.OK, "no findings")]


check_environment = Section("environment", _environment)
"""Python and buttress versions; the optional drivers (critical only when the DSN needs one)."""
check_backend = Section("backend", _backend)
"""Opens the DSN as it is (nothing created) unless the context has a backend; pings it."""
check_migrations = Section("migrations", _migrations)
"""buttress's own migrations (pending: a warning naming `buttress migrate`), then the app's."""
check_schema = Section("schema", _schema)
"""Drift against the ``schema_path`` declaration, when one is given."""
check_health = Section("health", _health)
"""The standard health checks: backend ping, pool saturation, free disk."""
check_monitoring = Section("monitoring", _monitoring)
"""Recorded health runs, and the anomalies of ``rules_path`` over them."""
check_errors = Section("errors", _errors)
"""Errors captured in the last hour; a high rate is a warning."""
check_security = Section("security", _security)
"""The PostgreSQL security audit (not applicable on SQLite)."""

SECTIONS: tuple[Section, ...] = (
    check_environment,
    check_backend,
    check_migrations,
    check_schema,
    check_health,
    check_monitoring,
    check_errors,
    check_security,
)
"""Every section, in report order."""
