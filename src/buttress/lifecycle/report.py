"""Start-up validation results: values, the production-mode error, text rendering.

``StartupReport`` holds every check's ``StartupCheck``; ``StartupError`` carries
the report when production mode refuses to start; ``render_startup_text`` is the
terminal view ``buttress doctor`` prints.
"""

from __future__ import annotations

from typing import Literal

import attrs

from buttress._exceptions import ButtressError

__all__ = [
    "CheckStatus",
    "Mode",
    "StartupCheck",
    "StartupError",
    "StartupReport",
    "render_startup_text",
]

Mode = Literal["production", "development"]
CheckStatus = Literal["passed", "failed", "skipped"]


@attrs.frozen(slots=True)
class StartupCheck:
    """The outcome of one start-up check (``errors`` empty unless it failed)."""

    name: str
    status: CheckStatus
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    duration_ms: float = 0.0
    note: str | None = None


@attrs.frozen(slots=True)
class StartupReport:
    """Every start-up check and the error lines of those that failed."""

    success: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    checks: dict[str, StartupCheck]
    mode: Mode = "production"

    def to_dict(self) -> dict[str, object]:
        return {
            "success": self.success,
            "mode": self.mode,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "checks": {
                name: {
                    "status": c.status,
                    "note": c.note,
                    "errors": list(c.errors),
                    "warnings": list(c.warnings),
                    "durationMs": round(c.duration_ms, 3),
                }
                for name, c in self.checks.items()
            },
        }


class StartupError(ButtressError):
    """Start-up validation failed in production mode; ``report`` has every problem."""

    def __init__(self, report: StartupReport) -> None:
        self.report = report
        lines = "\n".join(f"  - {line}" for line in report.errors)
        super().__init__(f"start-up validation failed ({len(report.errors)} problems):\n{lines}")


_MARK = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}
_COLOUR = {"passed": "\x1b[32m", "failed": "\x1b[31m", "skipped": "\x1b[33m"}


def render_startup_text(report: StartupReport, color: bool = False) -> str:
    """A readable report of the start-up checks (ANSI colour when ``color``)."""

    def paint(status: str, text: str) -> str:
        return f"{_COLOUR[status]}{text}\x1b[0m" if color else text

    verdict = "passed" if report.success else "failed"
    lines = [f"start-up checks: {paint(verdict, verdict.upper())} ({report.mode})"]
    for name, check in report.checks.items():
        note = f"  ({check.note})" if check.note else ""
        lines.append(f"  [{paint(check.status, _MARK[check.status])}] {name}{note}")
        lines.extend(f"         {line}" for line in check.errors)
        lines.extend(f"         warning: {line}" for line in check.warnings)
    return "\n".join(lines) + "\n"
