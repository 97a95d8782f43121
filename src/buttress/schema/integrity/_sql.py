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

__all__ = [
    "C",
    "P",
    "T",
    "TableSql",
    "dump_row",
    "enforcing_keys",
    "firing_triggers",
    "load_row",
    "row_of",
]

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

    async def read_back(
        self, tx: SqlConnection, table: str, key: Mapping[str, object], wanted: Mapping[str, object]
    ) -> tuple[dict[str, object], dict[str, object]] | None:
        """The row with ``key`` as it is now, and ``wanted`` as the database would
        store it (on PostgreSQL both as JSON from this session, so time zones and
        number formats agree); None when the row is not there."""
        if self._pg:
            rows = await tx.fetch(
                f"SELECT to_jsonb({T}) AS now, to_jsonb(jsonb_populate_record("
                f"NULL::{self.table(table)}, $1::jsonb)) AS wanted "
                f"FROM {self.table(table)} AS {T} WHERE {self.match_key(table, list(key), 2)}",
                dump_row(wanted),
                *self.key_args(key),
            )
            if len(rows) != 1:
                return None
            return (
                load_row(rows[0]["now"], tagged=False),
                load_row(rows[0]["wanted"], tagged=False),
            )
        rows = await tx.fetch(
            f"SELECT * FROM {self.table(table)} WHERE {self.match_key(table, list(key), 0)}",
            *self.key_args(key),
        )
        return (dict(rows[0]), dict(wanted)) if len(rows) == 1 else None

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


# pg_trigger.tgtype bits (PostgreSQL's trigger.h).
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _INSTEAD = 1, 2, 4, 8, 16, 64
_EVENTS = {"insert": _INSERT, "delete": _DELETE, "update": _UPDATE}


def _trigger_kind(tgtype: int, events: Sequence[str]) -> str:
    timing = "INSTEAD OF" if tgtype & _INSTEAD else "BEFORE" if tgtype & _BEFORE else "AFTER"
    fired = " OR ".join(e.upper() for e in events if tgtype & _EVENTS[e])
    return f"{timing} {fired}{'' if tgtype & _ROW else ' (statement)'}"


async def firing_triggers(
    conn: SqlConnection | SqlBackend,
    dialect: Dialect,
    db_schema: str,
    events: Mapping[str, set[str]],
) -> list[str]:
    """User triggers that would fire on ``events`` (``{table: {"insert",
    "update", "delete"}}``), one description each. A trigger rewrites rows or
    writes elsewhere, so neither a cleanup nor its undo would be exact."""
    tables = sorted(t for t, wanted in events.items() if wanted)
    if not tables:
        return []
    if dialect == "postgresql":
        rows = await conn.fetch(
            "SELECT c.relname::text AS tbl, t.tgname::text AS name, t.tgtype::int AS type "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') "
            "AND n.nspname = $1 AND c.relname = ANY($2::text[]) ORDER BY 1, 2",
            db_schema,
            tables,
        )
        out = []
        for r in rows:
            table, tgtype = str(r["tbl"]), int(str(r["type"]))
            wanted = sorted(events[table])
            if any(tgtype & _EVENTS[e] for e in wanted):
                kind = _trigger_kind(tgtype, wanted)
                out.append(f"trigger {r['name']} ({kind}) on {table}")
        return out
    marks = ", ".join("?" for _ in tables)
    rows = await conn.fetch(
        "SELECT tbl_name AS tbl, name FROM sqlite_master WHERE type = 'trigger' "
        f"AND tbl_name IN ({marks}) ORDER BY tbl_name, name",
        *tables,
    )
    return [f"trigger {r['name']} on {r['tbl']}" for r in rows]


async def enforcing_keys(
    conn: SqlConnection | SqlBackend,
    dialect: Dialect,
    db_schema: str,
    relations: Sequence[ExpectRelation],
) -> dict[ExpectRelation, str]:
    """The live foreign key that enforces each of ``relations`` right now (its
    name), for those that have one: such a key refuses to put an orphan back."""
    if not relations:
        return {}
    found: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    children = sorted({r.table for r in relations})
    if dialect == "postgresql":
        rows = await conn.fetch(
            "SELECT k.conname::text AS name, ch.relname::text AS child, p.relname::text AS parent, "
            "ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) "
            "AS cols, ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY "
            "u(n, o) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n "
            "ORDER BY u.o) AS refs "
            "FROM pg_constraint k JOIN pg_class ch ON ch.oid = k.conrelid "
            "JOIN pg_namespace s ON s.oid = ch.relnamespace "
            "JOIN pg_class p ON p.oid = k.confrelid "
            "JOIN pg_namespace ps ON ps.oid = p.relnamespace "
            "WHERE k.contype = 'f' AND s.nspname = $1 AND ps.nspname = $1 "
            "AND ch.relname = ANY($2::text[]) "
            # Enforced: its check trigger on the child is enabled (a disabled
            # trigger, ALTER TABLE ... DISABLE TRIGGER ALL, enforces nothing).
            "AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgconstraint = k.oid "
            "AND t.tgrelid = k.conrelid AND t.tgenabled IN ('O', 'A'))",
            db_schema,
            children,
        )
        for r in rows:
            pairs = list(zip(r["cols"], r["refs"], strict=True))
            found.append((str(r["name"]), str(r["child"]), str(r["parent"]), pairs))
    else:
        enabled = await conn.fetch("SELECT foreign_keys AS fk FROM pragma_foreign_keys")
        if not enabled or not enabled[0]["fk"]:
            return {}
        marks = ", ".join("?" for _ in children)
        rows = await conn.fetch(
            'SELECT m.name AS child, f.id AS fk, f."table" AS parent, f."from" AS col, '
            'f."to" AS ref FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f '
            f"WHERE m.type = 'table' AND m.name IN ({marks}) ORDER BY m.name, f.id, f.seq",
            *children,
        )
        grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        for r in rows:
            ident = (str(r["child"]), str(r["fk"]), str(r["parent"]))
            grouped.setdefault(ident, []).append((str(r["col"]), str(r["ref"])))
        for (child, fk, parent), pairs in grouped.items():
            found.append((f"#{fk}", child, parent, pairs))
    out: dict[ExpectRelation, str] = {}
    for rel in relations:
        wanted = set(zip(rel.columns, rel.ref_columns, strict=True))
        for name, child, parent, pairs in found:
            if (child, parent) == (rel.table, rel.references) and set(pairs) == wanted:
                out[rel] = name
                break
    return out
