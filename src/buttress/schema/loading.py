"""Loading a declared ``Schema`` from TOML or JSON.

The document has one ``tables`` mapping; each table lists its columns either as
a list of ``{name, type, ...}`` or as a mapping ``name = "type"`` /
``name = {type = ..., nullable = false}``. Unknown keys are refused, naming
their path, so a typo never silently drops a constraint.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buttress._exceptions import ValidationError
from buttress.schema.model import Column, ForeignKey, Index, Schema, Table

__all__ = ["entries", "load_schema", "read_schema_file", "schema_from_dict"]

_TABLE_KEYS = {"columns", "required", "primary_key", "unique", "indexes", "foreign_keys"}
_COLUMN_KEYS = {"name", "type", "nullable", "has_default", "default"}
_INDEX_KEYS = {"name", "columns", "unique"}
_FK_KEYS = {"columns", "references", "ref_columns", "name", "on_delete"}


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(path, f"must be a table/object, not {type(value).__name__}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(path, f"must be a list, not {type(value).__name__}")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(path, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def entries(
    data: Mapping[str, Any], name: str, allowed: set[str], path: str
) -> list[Mapping[str, Any]]:
    """``data[name]`` (default empty): a list of tables/objects with ``allowed`` keys only.

    A mistake names its place, e.g. ``tables.users.indexes[2]``.
    """
    checked = []
    for i, item in enumerate(_list(data.get(name, []), f"{path}.{name}")):
        where = f"{path}.{name}[{i}]"
        entry = _mapping(item, where)
        _only(entry, allowed, where)
        checked.append(entry)
    return checked


def _column(name: str | None, spec: object, path: str) -> Column:
    if isinstance(spec, str) and name is not None:
        return Column(name, spec)
    data = _mapping(spec, path)
    _only(data, _COLUMN_KEYS, path)
    column_name = data.get("name", name)
    if not isinstance(column_name, str):
        raise ValidationError(f"{path}.name", "is required and must be a string")
    if "type" not in data:
        raise ValidationError(f"{path}.type", "is required")
    flags = {k: data[k] for k in ("nullable", "has_default") if k in data}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ValidationError(f"{path}.{key}", "must be true or false")
    return Column(column_name, data["type"], default=data.get("default"), **flags)


def _table(name: str, spec: object) -> Table:
    path = f"tables.{name}"
    data = _mapping(spec, path)
    _only(data, _TABLE_KEYS, path)
    raw_columns = data.get("columns", [])
    if isinstance(raw_columns, Mapping):
        columns = [_column(n, s, f"{path}.columns.{n}") for n, s in raw_columns.items()]
    else:
        columns = [
            _column(None, s, f"{path}.columns[{i}]")
            for i, s in enumerate(_list(raw_columns, f"{path}.columns"))
        ]
    indexes = [
        Index(
            index.get("name", ""),
            index.get("columns", []),
            unique=bool(index.get("unique", False)),
        )
        for index in entries(data, "indexes", _INDEX_KEYS, path)
    ]
    foreign_keys = [
        ForeignKey(
            fk.get("columns", []),
            fk.get("references", ""),
            fk.get("ref_columns", []),
            name=fk.get("name"),
            on_delete=fk.get("on_delete"),
        )
        for fk in entries(data, "foreign_keys", _FK_KEYS, path)
    ]
    required = data.get("required", True)
    if not isinstance(required, bool):
        raise ValidationError(f"{path}.required", "must be true or false")
    return Table(
        name,
        columns,
        required=required,
        primary_key=_list(data.get("primary_key", []), f"{path}.primary_key"),
        unique=_list(data.get("unique", []), f"{path}.unique"),
        indexes=indexes,
        foreign_keys=foreign_keys,
    )


def schema_from_dict(data: Mapping[str, Any]) -> Schema:
    """Build a ``Schema`` from parsed TOML/JSON (``{"tables": {name: {...}}}``)."""
    root = _mapping(data, "schema")
    # [integrity] and [audit] belong to buttress.schema.integrity / .audit.
    _only(root, {"tables", "integrity", "audit"}, "schema")
    tables = _mapping(root.get("tables", {}), "tables")
    return Schema([_table(name, spec) for name, spec in tables.items()])


def read_schema_file(path: str | Path) -> Any:
    """The parsed document of a ``.json`` (by its suffix) or ``.toml`` schema file."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ValidationError("schema", f"cannot read {file}: {exc.strerror}") from exc
    is_json = file.suffix.lower() == ".json"
    try:
        return json.loads(raw) if is_json else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if is_json else "TOML"
        raise ValidationError("schema", f"{file.name} is not valid {kind}: {exc}") from exc


def load_schema(path: str | Path) -> Schema:
    """Read a ``.toml`` or ``.json`` schema file."""
    return schema_from_dict(read_schema_file(path))
