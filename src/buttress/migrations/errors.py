"""Exceptions the migrator raises; all are ``MigrationError``s (``ButtressError``s)."""

from __future__ import annotations

from collections.abc import Sequence

from buttress._exceptions import ButtressError

__all__ = [
    "DestructiveMigrationError",
    "MigrationError",
    "MigrationFailedError",
    "MigrationValidationError",
]


class MigrationError(ButtressError):
    """Root of the migrator's exceptions."""


class MigrationValidationError(MigrationError):
    """``migrate()`` refused to start: ``validate()`` found ``errors`` (use ``force``)."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        listing = "\n  ".join(self.errors)
        super().__init__(f"migrations are not valid ({len(self.errors)} problem(s)):\n  {listing}")


class MigrationFailedError(MigrationError):
    """A statement of a migration failed. In a transaction, nothing of the file
    was kept and it is not recorded. ``statement`` is the failing statement."""

    def __init__(
        self, filename: str, index: int, line: int, statement: str, cause: BaseException
    ) -> None:
        self.filename = filename
        self.index = index
        self.line = line
        self.statement = statement
        shown = statement if len(statement) <= 300 else statement[:297] + "..."
        super().__init__(
            f"{filename}: statement {index + 1} (line {line}) failed: "
            f"{type(cause).__name__}: {cause}\n  {shown}"
        )


class DestructiveMigrationError(MigrationError):
    """Production refused a destructive statement in a file without
    ``-- buttress: allow-destructive``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "refusing destructive statements in production (add "
            "'-- buttress: allow-destructive' to a file that means it):\n  "
            + "\n  ".join(self.problems)
        )
