"""The doctor's values: a finding's level, the finding, the report, what sections share.

Plain attrs values and no I/O: a ``Level`` is also the exit code it implies
(0 ok, 1 warning, 2 critical), and a report's level is its worst finding's.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from buttress._version import __version__

if TYPE_CHECKING:
    from buttress.backends import Backend

__all__ = ["DoctorContext", "DoctorReport", "Finding", "Level"]


class Level(enum.IntEnum):
    """Severity of a finding; its value is the exit code it implies."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@attrs.frozen
class Finding:
    """One line of the report: which section, what was looked at, how it stands, and why."""

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
    """Every section's findings, in order; ``dsn`` has its password masked."""

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
    """What the sections share: the DSN, the options, and the backend once open.

    The ``backend`` section opens ``dsn`` (never creating or migrating anything)
    unless ``backend`` is already set, as it is when an application serves the
    doctor over the backend it runs on.
    """

    dsn: str
    schema_path: str | None = None
    migrations_dir: str | None = None
    rules_path: str | None = None
    backend: Backend | None = None
