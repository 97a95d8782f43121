"""Declared database schemas, drift detection and safe fixes.

Declare what the application expects (``Schema``/``Table``/``Column``), compare
it with the live database (``SchemaValidator.validate()``), and apply only the
changes that cannot lose or rewrite data (``plan()``/``fix()``).
"""

from buttress.schema.audit import AuditReport, SecurityAudit
from buttress.schema.diff import diff
from buttress.schema.identifiers import check_identifier, quote_identifier
from buttress.schema.loading import load_schema, schema_from_dict
from buttress.schema.model import Column, ForeignKey, Index, Schema, Table
from buttress.schema.planner import plan_statements
from buttress.schema.report import Finding, FindingCode, SchemaReport
from buttress.schema.types import normalise_type
from buttress.schema.validator import SchemaFixError, SchemaValidator

__all__ = [
    "AuditReport",
    "Column",
    "Finding",
    "FindingCode",
    "ForeignKey",
    "Index",
    "Schema",
    "SchemaFixError",
    "SchemaReport",
    "SchemaValidator",
    "SecurityAudit",
    "Table",
    "check_identifier",
    "diff",
    "load_schema",
    "normalise_type",
    "plan_statements",
    "quote_identifier",
    "schema_from_dict",
]
