"""The SQL of integrity checks, per dialect: statements, row identity, row JSON.

Every name is validated and quoted here. Rows travel as JSON: on PostgreSQL as
``to_jsonb(row)``, restored through ``jsonb_populate_record`` so the server does
each type's conversion; on SQLite as plain values, bytes and non-finite floats
tagged. Keys match one row each; callers check the counts.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence

from buttress.backends import Dialect, SqlBackend, SqlConnection
from buttress.schema.identifiers import quote_identifier
from buttress.schema.integrity._declare import AUX, ExpectRelation, ExpectUnique, IntegrityError

__all__ = ["C", "P", "T", "TableSql", "dump_row", "load_row", "row_of"]

# Table aliases no column name will shadow (a bare alias in to_jsonb(t) would).
T, C, P = f"{AUX}t", f"{AUX}c", f"{AUX}p"


def _encode(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(str(value["$bytes"]))
        if "$float" in value:
            return float(str(value["$float"]))
    return value


def dump_row(row: Mapping[str, object]) -> str:
    return json.dumps({k: _encode(v) for k, v in row.items()}, allow_nan=False)


def load_row(text: object, *, tagged: bool) -> dict[str, object]:
    """A row from its JSON; ``tagged`` (SQLite) decodes the tags ``dump_row`` added.
    PostgreSQL rows are never tagged: a jsonb value may look like a tag."""
    data = json.loads(text) if isinstance(text, str | bytes) else text
    if not isinstance(data, dict):
        raise IntegrityError("a backup row is not a JSON object")
    return {str(k): _decode(v) if tagged else v for k, v in data.items()}


def row_of(raw: Mapping[str, object], pg: bool) -> dict[str, object]:
    if pg:
        return load_row(raw["row"], tagged=False)
    return {k: v for k, v in raw.items() if not k.startswith(AUX)}


class TableSql:
    """Statement builders and catalog reads for one dialect and PostgreSQL schema."""

    def __init__(self, dialect: Dialect, db_schema: str) -> None:
        self.dialect = dialect
        self.db_schema = db_schema
        self._pg = dialect == "postgresql"

    def table(self, name: str) -> str:
        quoted = quote_identifier(name, field="table")
        return f"{quote_identifier(self.db_schema)}.{quoted}" if self._pg else quoted

    def sql(self, sql: str) -> str:
        return self.dialect.placeholders(sql)

    @staticmethod
    def cols(alias: str, names: Sequence[str]) -> list[str]:
        return [f"{alias}.{quote_identifier(n, field='column')}" for n in names]

    def not_null(self, alias: str, names: Sequence[str]) -> str:
        return " AND ".join(f"{c} IS NOT NULL" for c in self.cols(alias, names))

    def orphan_where(self, rel: ExpectRelation) -> str:
        match = " AND ".join(
            f"{p} = {c}"
            for p, c in zip(self.cols(P, rel.ref_columns), self.cols(C, rel.columns), strict=True)
        )
        return (
            f"{self.not_null(C, rel.columns)} AND NOT EXISTS "
            f"(SELECT 1 FROM {self.table(rel.references)} AS {P} WHERE {match})"
        )

    def ranked(self, exp: ExpectUnique, key: Sequence[str]) -> str:
        """Every row of a duplicate group but its oldest, with the survivor's key."""
        window = (
            f"PARTITION BY {', '.join(self.cols(T, exp.columns))} "
            f"ORDER BY {', '.join(self.cols(T, key))}"
        )
        wrap = "to_jsonb({})" if self._pg else "{}"
        keep = ", ".join(
            f"first_value({wrap.format(c)}) OVER w AS {AUX}keep_{i}"
            for i, c in enumerate(self.cols(T, key))
        )
        own = ", ".join(f"{c} AS {AUX}k_{i}" for i, c in enumerate(self.cols(T, key)))
        body = f"to_jsonb({T}) AS row" if self._pg else f"{T}.*"
        return (
            f"SELECT {body}, {own}, {keep}, row_number() OVER w AS {AUX}rn "
            f"FROM {self.table(exp.table)} AS {T} WHERE {self.not_null(T, exp.columns)} "
            f"WINDOW w AS ({window})"
        )

    def keep_value(self, value: object) -> object:
        # On PostgreSQL the survivor's key arrives as jsonb text (see _ranked).
        if not self._pg:
            return value
        return load_row(f'{{"v": {value}}}', tagged=False)["v"]

    def match_key(self, table: str, key: Sequence[str], first_arg: int) -> str:
        if self._pg:
            cols = ", ".join(quote_identifier(k) for k in key)
            return (
                f"({cols}) = (SELECT {cols} FROM jsonb_populate_record(NULL::{self.table(table)}, "
                f"${first_arg}::jsonb))"
            )
        return " AND ".join(f"{quote_identifier(k)} = ?" for k in key)

    def key_args(self, key: Mapping[str, object]) -> list[object]:
        return [dump_row(key)] if self._pg else list(key.values())

    async def set_columns(
        self,
        tx: SqlConnection,
        table: str,
        key: Mapping[str, object],
        values: Mapping[str, object],
    ) -> int:
        cols = [quote_identifier(c, field="column") for c in values]
        if self._pg:
            listed = ", ".join(cols)
            sql = (
                f"UPDATE {self.table(table)} SET ({listed}) = (SELECT {listed} FROM "
                f"jsonb_populate_record(NULL::{self.table(table)}, $1::jsonb)) "
                f"WHERE {self.match_key(table, list(key), 2)}"
            )
            return await tx.execute(sql, dump_row(values), *self.key_args(key))
        sets = ", ".join(f"{c} = ?" for c in cols)
        sql = f"UPDATE {self.table(table)} SET {sets} WHERE {self.match_key(table, list(key), 0)}"
        return await tx.execute(sql, *values.values(), *self.key_args(key))

    async def insert_row(
        self, tx: SqlConnection, table: str, row: Mapping[str, object], skip: set[str]
    ) -> None:
        columns = [c for c in row if c not in skip]
        listed = ", ".join(quote_identifier(c, field="column") for c in columns)
        if self._pg:
            await tx.execute(
                f"INSERT INTO {self.table(table)} ({listed}) OVERRIDING SYSTEM VALUE "
                f"SELECT {listed} FROM "
                f"jsonb_populate_record(NULL::{self.table(table)}, $1::jsonb)",
                dump_row(row),
            )
        else:
            marks = ", ".join("?" for _ in columns)
            await tx.execute(
                f"INSERT INTO {self.table(table)} ({listed}) VALUES ({marks})",
                *(row[c] for c in columns),
            )

    async def generated(self, tx: SqlConnection, table: str) -> set[str]:
        """Computed columns: the database fills them, an INSERT may not."""
        if self._pg:
            rows = await tx.fetch(
                "SELECT attname AS name FROM pg_attribute WHERE attgenerated <> '' "
                "AND attrelid = to_regclass(format('%I.%I', $1::text, $2::text))",
                self.db_schema,
                table,
            )
        else:
            rows = await tx.fetch(
                "SELECT name FROM pragma_table_xinfo(?) WHERE hidden IN (2, 3)", table
            )
        return {str(r["name"]) for r in rows}

    async def missing_tables(
        self, conn: SqlConnection | SqlBackend, wanted: Sequence[str]
    ) -> list[str]:
        """Which of ``wanted`` do not exist (one catalog query)."""
        if not wanted:
            return []
        if self._pg:
            rows = await conn.fetch(
                "SELECT name FROM unnest($1::text[]) AS name "
                "WHERE to_regclass(format('%I.%I', $2::text, name)) IS NULL",
                list(wanted),
                self.db_schema,
            )
            return sorted(str(r["name"]) for r in rows)
        marks = ", ".join("?" for _ in wanted)
        rows = await conn.fetch(
            f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
            *wanted,
        )
        return sorted(set(wanted) - {str(r["name"]) for r in rows})

    async def delete_row(self, tx: SqlConnection, table: str, key: Mapping[str, object]) -> int:
        sql = f"DELETE FROM {self.table(table)} WHERE {self.match_key(table, list(key), 1)}"
        return await tx.execute(sql, *self.key_args(key))

    async def live_key(self, conn: SqlConnection | SqlBackend, table: str) -> tuple[str, ...]:
        if self._pg:
            rows = await conn.fetch(
                "SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indisprimary AND i.indrelid = to_regclass(format('%I.%I', $1::text, "
                "$2::text)) ORDER BY array_position(i.indkey::int2[], a.attnum)",
                self.db_schema,
                table,
            )
        else:
            rows = await conn.fetch(
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", table
            )
        return tuple(str(r["name"]) for r in rows)

    async def live_references(
        self, conn: SqlConnection, parents: Sequence[str]
    ) -> list[tuple[str, tuple[str, ...], str, str]]:
        if not parents:
            return []
        if self._pg:
            rows = await conn.fetch(
                "SELECT ch.relname AS child, p.relname AS parent, "
                "c.confdeltype::text AS action, ARRAY(SELECT a.attname::text FROM unnest(c.conkey) "
                "WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid "
                "AND a.attnum = k.n ORDER BY k.o) AS columns "
                "FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid "
                "JOIN pg_class ch ON ch.oid = c.conrelid "
                "JOIN pg_namespace s ON s.oid = p.relnamespace "
                "WHERE c.contype = 'f' AND s.nspname = $1 AND p.relname = ANY($2::text[])",
                self.db_schema,
                list(parents),
            )
            actions = {"a": "no action", "r": "restrict", "c": "cascade", "n": "set null"}
            return [
                (
                    str(r["child"]),
                    tuple(r["columns"]),
                    str(r["parent"]),
                    actions.get(str(r["action"]), "set default"),
                )
                for r in rows
            ]
        marks = ", ".join("?" for _ in parents)
        rows = await conn.fetch(
            'SELECT m.name AS child, f.id AS fk, f.seq AS seq, f."table" AS parent, '
            f'f."from" AS col, lower(f.on_delete) AS action FROM sqlite_master m '
            f"JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table' "
            f'AND f."table" IN ({marks}) ORDER BY m.name, f.id, f.seq',
            *parents,
        )
        grouped: dict[tuple[str, int], list[Mapping[str, object]]] = {}
        for r in rows:
            grouped.setdefault((str(r["child"]), int(str(r["fk"]))), []).append(r)
        return [
            (
                child,
                tuple(str(p["col"]) for p in part),
                str(part[0]["parent"]),
                str(part[0]["action"]),
            )
            for (child, _), part in grouped.items()
        ]
