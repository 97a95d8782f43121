"""``buttress doctor``: one readable answer to "is this service's setup sound?".

It collects findings section by section (environment, backend, buttress's own
and the application's migrations, schema drift, health checks, recorded health
history and its anomalies, captured error rates), never stopping
at the first problem, and maps the worst finding to the exit code: 0 ok,
1 warning, 2 critical.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import importlib.util
import json
import os
import platform
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TextIO

import attrs

from buttress._version import __version__
from buttress.errors import ButtressError

if TYPE_CHECKING:
    from buttress.backends import Backend
    from buttress.migrations.report import MigrationStatus

__all__ = ["DoctorReport", "Finding", "Level", "collect", "render_text"]


class Level(enum.IntEnum):
    """Severity of a finding; its value is the exit code it implies."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@attrs.frozen
class Finding:
    section: str
    name: str
    level: Level
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "name": self.name,
            "level": self.level.name.lower(),
            "detail": self.detail,
        }


@attrs.frozen
class DoctorReport:
    dsn: str
    findings: tuple[Finding, ...]

    @property
    def level(self) -> Level:
        return max((f.level for f in self.findings), default=Level.OK)

    @property
    def exit_code(self) -> int:
        return int(self.level)

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.level.name.lower(),
            "dsn": self.dsn,
            "version": __version__,
            "findings": [f.to_dict() for f in self.findings],
        }


@attrs.define
class DoctorContext:
    """What the sections share: the DSN, options, and the backend once connected."""

    dsn: str
    schema_path: str | None = None
    migrations_dir: str | None = None
    rules_path: str | None = None
    backend: Backend | None = None


Section = Callable[[DoctorContext], Awaitable[list[Finding]]]


async def _environment_section(ctx: DoctorContext) -> list[Finding]:
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
        ("redis", "redis", ("redis", "rediss")),
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
    return findings


async def _backend_section(ctx: DoctorContext) -> list[Finding]:
    from buttress._connect import connect

    try:
        # connect() applies buttress's own migrations, so a fresh SQLite file is
        # set up here; a failure to migrate is reported like a failure to connect.
        ctx.backend = await connect(ctx.dsn)
    except ButtressError as exc:
        return [Finding("backend", "connect", Level.CRITICAL, str(exc))]
    backend = ctx.backend
    findings = [Finding("backend", "connect", Level.OK, f"{backend.kind} backend reachable")]
    try:
        latency = await backend.ping()
    except ButtressError as exc:
        findings.append(Finding("backend", "ping", Level.CRITICAL, str(exc)))
    else:
        findings.append(Finding("backend", "ping", Level.OK, f"{latency * 1000:.2f} ms"))
    return findings


def _status_findings(section: str, status: MigrationStatus) -> list[Finding]:
    findings: list[Finding] = []
    if status.pending:
        detail = f"{len(status.pending)} pending: {', '.join(status.pending)}"
        findings.append(Finding(section, "pending", Level.WARNING, detail))
    findings += [Finding(section, "error", Level.CRITICAL, e) for e in status.report.errors]
    findings += [Finding(section, "warning", Level.WARNING, w) for w in status.report.warnings]
    if not findings:
        findings.append(
            Finding(section, "applied", Level.OK, f"{len(status.applied)} applied, none pending")
        )
    return findings


async def _migrations_section(ctx: DoctorContext) -> list[Finding]:
    from buttress.backends import SqlBackend
    from buttress.migrations import Migrator
    from buttress.migrations.builtin import builtin_migrator

    backend = ctx.backend
    if not isinstance(backend, SqlBackend):
        return []
    findings = _status_findings("migrations", await builtin_migrator(backend).status())
    if ctx.migrations_dir is not None:
        app = Migrator(backend, ctx.migrations_dir)
        findings += _status_findings("app migrations", await app.status())
    return findings


async def _schema_section(ctx: DoctorContext) -> list[Finding]:
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


async def _health_section(ctx: DoctorContext) -> list[Finding]:
    from buttress.health import HealthRegistry, Status
    from buttress.health.builtin import register_standard

    registry = HealthRegistry(version=__version__)
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


async def _monitoring_section(ctx: DoctorContext) -> list[Finding]:
    from buttress.backends import SqlBackend
    from buttress.monitoring import AlertLevel, HealthHistory
    from buttress.monitoring.cli import load_rules

    if not isinstance(ctx.backend, SqlBackend):
        return []
    history = HealthHistory(ctx.backend)
    runs = await history.count()
    findings = [Finding("monitoring", "history", Level.OK, f"{runs} health run(s) recorded")]
    if ctx.rules_path is not None:
        levels = {AlertLevel.WARNING: Level.WARNING, AlertLevel.CRITICAL: Level.CRITICAL}
        anomalies = await history.check(load_rules(ctx.rules_path))
        findings += [
            Finding("monitoring", a.rule, levels.get(a.level, Level.OK), a.message)
            for a in anomalies
        ]
        if not anomalies:
            findings.append(Finding("monitoring", "anomalies", Level.OK, "none found"))
    return findings


async def _errors_section(ctx: DoctorContext) -> list[Finding]:
    from datetime import UTC, datetime, timedelta

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


async def _security_section(ctx: DoctorContext) -> list[Finding]:
    from buttress.schema.integrity_cli import security_section

    return await security_section(ctx)


SECTIONS: list[Section] = [
    _environment_section,
    _backend_section,
    _migrations_section,
    _schema_section,
    _health_section,
    _monitoring_section,
    _errors_section,
    _security_section,
]


async def collect(
    dsn: str,
    *,
    schema_path: str | None = None,
    migrations_dir: str | None = None,
    rules_path: str | None = None,
    sections: Sequence[Section] | None = None,
) -> DoctorReport:
    """Run every section and gather their findings (a section that crashes is one finding).

    Sections that need the backend report nothing of their own when it could not
    be reached: the backend section already says why.
    """
    from buttress.backends import redact_dsn

    ctx = DoctorContext(
        dsn, schema_path=schema_path, migrations_dir=migrations_dir, rules_path=rules_path
    )
    findings: list[Finding] = []
    try:
        for section in SECTIONS if sections is None else sections:
            name = getattr(section, "__name__", "section").strip("_").removesuffix("_section")
            try:
                findings.extend(await section(ctx))
            except ButtressError as exc:
                findings.append(Finding(name, "error", Level.CRITICAL, str(exc)))
            except Exception as exc:  # noqa: BLE001  # the doctor reports, it never crashes
                detail = f"{type(exc).__name__} while checking"
                findings.append(Finding(name, "internal", Level.CRITICAL, detail))
    finally:
        if ctx.backend is not None:
            await ctx.backend.close()
    return DoctorReport(dsn=redact_dsn(dsn), findings=tuple(findings))


_MARKS = {Level.OK: "ok", Level.WARNING: "warn", Level.CRITICAL: "FAIL"}
_COLOURS = {Level.OK: "\x1b[32m", Level.WARNING: "\x1b[33m", Level.CRITICAL: "\x1b[31m"}


def render_text(report: DoctorReport, *, colour: bool = False) -> str:
    def paint(level: Level, text: str) -> str:
        return f"{_COLOURS[level]}{text}\x1b[0m" if colour else text

    lines = [f"buttress doctor — {report.dsn}", ""]
    section = None
    for finding in report.findings:
        if finding.section != section:
            section = finding.section
            lines.append(f"{section}:")
        mark = paint(finding.level, f"[{_MARKS[finding.level]:>4}]")
        lines.append(f"  {mark} {finding.name:<12} {finding.detail}")
    lines.append("")
    lines.append("status: " + paint(report.level, report.level.name.lower()))
    return "\n".join(lines)


def _wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(
        collect(
            args.dsn,
            schema_path=args.schema,
            migrations_dir=args.migrations_dir,
            rules_path=args.rules,
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render_text(report, colour=_wants_colour(sys.stdout)))
    return report.exit_code


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "doctor",
        parents=[common],
        help="check the backend, environment and setup; exit 0 ok, 1 warning, 2 critical",
    )
    parser.add_argument(
        "--schema", default=None, help="also check the database against this TOML/JSON schema"
    )
    parser.add_argument(
        "--migrations-dir",
        default=None,
        help="also check the application's migrations in this directory",
    )
    parser.add_argument(
        "--rules",
        default=None,
        help="also run these anomaly rules (TOML, as for `buttress monitor --rules`) "
        "over the recorded health history",
    )
    parser.set_defaults(handler=run)
