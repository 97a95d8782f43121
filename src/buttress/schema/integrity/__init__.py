"""Data-integrity expectations: duplicates and orphans a missing constraint let in.

Declare what should hold (``ExpectUnique``, ``ExpectRelation``) whether or not
the database enforces it; ``IntegrityChecker`` finds violations (one query per
expectation), plans a cleanup, applies it in one transaction after backing up
every affected row to ``buttress_integrity_backup``, and undoes a run from that
backup. It only ever reads or writes the declared tables and columns.
"""

from buttress.schema.integrity._checker import BACKUP_TABLE, IntegrityChecker
from buttress.schema.integrity._declare import (
    Expectation,
    ExpectRelation,
    ExpectUnique,
    IntegrityError,
    OrphanPolicy,
    expectations_from_schema,
)
from buttress.schema.integrity._loading import (
    Declarations,
    declarations_from_dict,
    load_declarations,
)
from buttress.schema.integrity._report import (
    CleanupResult,
    ExpectationResult,
    IntegrityReport,
    RowChange,
    UndoResult,
)

__all__ = [
    "BACKUP_TABLE",
    "CleanupResult",
    "Declarations",
    "ExpectRelation",
    "ExpectUnique",
    "Expectation",
    "ExpectationResult",
    "IntegrityChecker",
    "IntegrityError",
    "IntegrityReport",
    "OrphanPolicy",
    "RowChange",
    "UndoResult",
    "declarations_from_dict",
    "expectations_from_schema",
    "load_declarations",
]
