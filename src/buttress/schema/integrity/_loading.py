"""Integrity and audit declarations from a schema file's ``[integrity]`` and ``[audit]``.

The ``tables`` part is ``load_schema``'s format; unknown keys are refused,
naming their path, so a typo never silently drops an expectation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from buttress._exceptions import ValidationError
from buttress.schema.audit import TableSecurity
from buttress.schema.integrity._declare import (
    POLICIES,
    POLICY_NAMES,
    Expectation,
    ExpectRelation,
    ExpectUnique,
    expectations_from_schema,
)
from buttress.schema.loading import entries, read_schema_file, schema_from_dict
from buttress.schema.model import Schema

__all__ = ["Declarations", "declarations_from_dict", "load_declarations"]


@attrs.frozen
class Declarations:
    """What a schema file declares for integrity and audit (see ``load_declarations``)."""

    schema: Schema
    expectations: tuple[Expectation, ...]
    security: tuple[TableSecurity, ...] = ()
    allowed_roles: tuple[str, ...] | None = None
    allow_superuser: bool = False


_INTEGRITY_KEYS = {"from_schema", "unique", "relations"}
_UNIQUE_KEYS = {"table", "columns", "key"}
_RELATION_KEYS = {"table", "columns", "references", "ref_columns", "on_orphan", "key"}
_AUDIT_KEYS = {"allowed_roles", "allow_superuser", "row_level_security", "force_row_level_security"}


def _section(data: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ValidationError(name, "must be a table/object")
    return value


def _str_list(value: object, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(field, "must be a list of names")
    return list(value)


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


def declarations_from_dict(data: Mapping[str, object]) -> Declarations:
    """Parse a schema document with optional ``[integrity]`` and ``[audit]`` sections.

    ``integrity.from_schema`` (default true) adds what the ``tables`` declare
    (``expectations_from_schema``); ``integrity.unique`` and
    ``integrity.relations`` list further expectations; ``audit`` gives
    ``allowed_roles``, ``allow_superuser`` and the tables that need
    ``row_level_security`` / ``force_row_level_security``.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("schema", "must be a table/object")
    unknown = sorted(set(data) - {"tables", "integrity", "audit"})
    if unknown:
        raise ValidationError("schema", f"unknown key(s) {unknown}")
    schema = schema_from_dict({"tables": data["tables"]} if "tables" in data else {})
    integrity = _section(data, "integrity")
    extra = sorted(set(integrity) - _INTEGRITY_KEYS)
    if extra:
        raise ValidationError("integrity", f"unknown key(s) {extra}")
    expectations: list[Expectation] = []
    if _flag(integrity.get("from_schema", True), "integrity.from_schema"):
        expectations += expectations_from_schema(schema)
    for item in entries(integrity, "unique", _UNIQUE_KEYS, "integrity"):
        expectations.append(
            ExpectUnique(
                str(item.get("table", "")),
                _str_list(item.get("columns", []), "integrity.unique.columns"),
                key=_str_list(item.get("key", []), "integrity.unique.key"),
            )
        )
    for item in entries(integrity, "relations", _RELATION_KEYS, "integrity"):
        policy = POLICY_NAMES.get(item.get("on_orphan", "delete"))
        if policy is None:
            raise ValidationError("integrity.relations.on_orphan", f"must be one of {POLICIES}")
        expectations.append(
            ExpectRelation(
                str(item.get("table", "")),
                _str_list(item.get("columns", []), "integrity.relations.columns"),
                str(item.get("references", "")),
                _str_list(item.get("ref_columns", []), "integrity.relations.ref_columns"),
                on_orphan=policy,
                key=_str_list(item.get("key", []), "integrity.relations.key"),
            )
        )
    audit = _section(data, "audit")
    extra = sorted(set(audit) - _AUDIT_KEYS)
    if extra:
        raise ValidationError("audit", f"unknown key(s) {extra}")
    rls = _str_list(audit.get("row_level_security", []), "audit.row_level_security")
    forced = _str_list(audit.get("force_row_level_security", []), "audit.force_row_level_security")
    security = tuple(
        TableSecurity(name, row_level_security=name in rls, force_row_level_security=name in forced)
        for name in dict.fromkeys([*rls, *forced])
    )
    roles = audit.get("allowed_roles")
    return Declarations(
        schema,
        tuple(expectations),
        security,
        None if roles is None else tuple(_str_list(roles, "audit.allowed_roles")),
        _flag(audit.get("allow_superuser", False), "audit.allow_superuser"),
    )


def load_declarations(path: str | Path) -> Declarations:
    """Read a ``.toml`` or ``.json`` schema file with its integrity and audit sections."""
    return declarations_from_dict(read_schema_file(path))
