"""``buttress doctor``: one readable answer to "is this service's setup sound?".

It collects findings section by section (backend, environment, and what later
modules add), never stopping at the first problem, and maps the worst finding
to the exit code: 0 ok, 1 warning, 2 critical.
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
from typing import TextIO

import attrs

from buttress._version import __version__

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


Section = Callable[[str], Awaitable[list[Finding]]]


async def _backend_section(dsn: str) -> list[Finding]:
    from buttress.backends import connect
    from buttress.errors import ButtressError

    try:
        backend = await connect(dsn)
    except ButtressError as exc:
        return [Finding("backend", "connect", Level.CRITICAL, str(exc))]
    try:
        latency = await backend.ping()
        return [
            Finding("backend", "connect", Level.OK, f"{backend.kind} backend reachable"),
            Finding("backend", "ping", Level.OK, f"{latency * 1000:.2f} ms"),
        ]
    except ButtressError as exc:
        return [Finding("backend", "ping", Level.CRITICAL, str(exc))]
    finally:
        await backend.close()


async def _environment_section(dsn: str) -> list[Finding]:
    findings = [
        Finding(
            "environment",
            "python",
            Level.OK,
            f"{platform.python_implementation()} {platform.python_version()}",
        ),
        Finding("environment", "buttress", Level.OK, __version__),
    ]
    scheme = dsn.partition(":")[0].lower()
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


SECTIONS: list[Section] = [_environment_section, _backend_section]


async def collect(dsn: str, sections: Sequence[Section] | None = None) -> DoctorReport:
    """Run every section and gather their findings (a section that crashes is one finding)."""
    from buttress.backends import redact_dsn

    findings: list[Finding] = []
    for section in SECTIONS if sections is None else sections:
        try:
            findings.extend(await section(dsn))
        except Exception as exc:  # noqa: BLE001  # the doctor reports, it never crashes
            name = getattr(section, "__name__", "section").strip("_")
            findings.append(
                Finding(name, "internal", Level.CRITICAL, f"{type(exc).__name__} while checking")
            )
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
    report = asyncio.run(collect(args.dsn))
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
    parser.set_defaults(handler=run)
