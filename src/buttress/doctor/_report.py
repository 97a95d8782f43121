"""``collect``: run the sections into one report; ``render_text``: the report for a human.

``collect`` runs every section in order whatever the others found, and closes
the backend only when it opened it (an application passing its own keeps it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from buttress.doctor._sections import SECTIONS, Section
from buttress.doctor._values import DoctorContext, DoctorReport, Finding, Level
from buttress.errors import ValidationError

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = ["collect", "render_text"]


async def collect(
    dsn: str | None = None,
    *,
    backend: Backend | None = None,
    schema_path: str | None = None,
    migrations_dir: str | None = None,
    rules_path: str | None = None,
    sections: Iterable[Section] = SECTIONS,
) -> DoctorReport:
    """Run ``sections`` (default: all) and gather their findings.

    Give ``dsn`` to have the doctor open it as it is (never creating a file or
    a table, never migrating), or ``backend`` to look at one already open.
    Sections that need the backend report nothing of their own when it could
    not be reached: the backend section says why.
    """
    from buttress.backends import redact_dsn

    if backend is None and dsn is None:
        raise ValidationError("dsn", "give a DSN or an open backend")
    target = dsn if dsn is not None else backend.dsn if backend is not None else ""
    ctx = DoctorContext(
        target,
        schema_path=schema_path,
        migrations_dir=migrations_dir,
        rules_path=rules_path,
        backend=backend,
    )
    findings: list[Finding] = []
    try:
        for section in sections:
            findings.extend(await section(ctx))
    finally:
        if backend is None and ctx.backend is not None:
            await ctx.backend.close()
    return DoctorReport(dsn=redact_dsn(target), findings=tuple(findings))


_MARKS = {Level.OK: "ok", Level.WARNING: "warn", Level.CRITICAL: "FAIL"}
_COLOURS = {Level.OK: "\x1b[32m", Level.WARNING: "\x1b[33m", Level.CRITICAL: "\x1b[31m"}


def render_text(report: DoctorReport, *, colour: bool = False) -> str:
    """One line per finding under its section's heading, then the status."""

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
