"""Reading a live schema: SQLite PRAGMAs, or one pg_catalog query on PostgreSQL.

Round trips are constant in the number of tables: three PRAGMA table-valued
queries on SQLite, one catalog query on PostgreSQL (plus, only when the diff
needs it, one query asking which tables hold rows).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from buttress.schema.identifiers import quote_identifier
from buttress.schema.live import LiveColumn, LiveForeignKey, LiveIndex, LiveSchema, LiveTable

__all__ = ["Fetcher", "introspect", "postgres_catalog_query", "tables_with_rows"]


class Fetcher(Protocol):
    """The one method introspection needs (a backend, or a connection in a transaction)."""

    async def fetch(self, sql: str, *args: object) -> list[Any]: ...


_SQLITE_TABLES = (
    "SELECT m.name AS tbl FROM sqlite_master m WHERE m.type = 'table' "
    "AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
)
_SQLITE_COLUMNS = f"""
SELECT t.tbl, p.cid, p.name, p.type, p."notnull" AS not_null, p.dflt_value, p.pk
FROM ({_SQLITE_TABLES}) t JOIN pragma_table_info(t.tbl) p
ORDER BY t.tbl, p.cid
"""
_SQLITE_INDEXES = f"""
SELECT t.tbl, l.name AS idx, l."unique" AS is_unique, l.origin, l.partial,
       i.seqno, i.name AS col, i.cid, i."desc" AS descending, i.coll,
       (SELECT m.sql FROM sqlite_master m WHERE m.type = 'index' AND m.name = l.name) AS sql
FROM ({_SQLITE_TABLES}) t JOIN pragma_index_list(t.tbl) l
JOIN pragma_index_xinfo(l.name) i
WHERE i.key = 1
ORDER BY t.tbl, l.name, i.seqno
"""
_SQLITE_FOREIGN_KEYS = f"""
SELECT t.tbl, f.id, f.seq, f."table" AS ref_table, f."from" AS col, f."to" AS ref_col
FROM ({_SQLITE_TABLES}) t JOIN pragma_foreign_key_list(t.tbl) f
ORDER BY t.tbl, f.id, f.seq
"""

# One round trip for everything about every table of the chosen schemas, in
# typed rows (no JSON), one UNION ALL branch per kind. The server's output and
# the client's decoding cost per row far more than the catalog scans do, so a
# table's columns come as parallel arrays on the table's own row, read through
# pg_attribute's index in attnum order (OFFSET 0 keeps the planner from turning
# that into a hash join over every column of the database). Keys and indexes
# come one row each and carry attribute numbers, mapped to names from the
# column arrays, so no per-row subquery runs (except for foreign keys into
# tables outside the schemas, whose names come along). Indexes always live in
# their table's schema, so one pg_class scan finds tables and indexes.
# The schema list is written into the text as a literal rather than passed as
# a parameter: PostgreSQL then plans the statement once per connection and
# reuses the plan, where with a parameter it re-plans every call (its generic
# plan never looks cheaper than the custom ones here).
_POSTGRES_CATALOG_QUERY = """
WITH rels AS (
    SELECT c.oid, c.relname::text AS name, c.relkind IN ('r', 'p') AS is_table, c.relam,
           array_position({schemas}, n.nspname::text) AS rank
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY({schemas}) AND c.relkind IN ('r', 'p', 'i', 'I')
), tabs AS (
    SELECT oid, name, rank FROM rels WHERE is_table
)
SELECT 't' AS kind, t.oid, t.rank AS pos, t.name, NULL::text AS detail,
       NULL::bool AS f1, NULL::bool AS f2, NULL::bool AS f3, NULL::bool AS f4,
       c.nums, NULL::oid AS ref_oid, NULL::int2[] AS ref_nums,
       c.names, c.types, c.nulls, c.defaults
  FROM tabs t CROSS JOIN LATERAL (
    SELECT array_agg(a.attnum) AS nums, array_agg(a.attname::text) AS names,
           array_agg(format_type(a.atttypid, a.atttypmod)) AS types,
           array_agg(NOT a.attnotnull) AS nulls,
           array_agg(a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS defaults
      FROM (SELECT * FROM pg_attribute a
             WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum OFFSET 0) a
  ) c
UNION ALL
SELECT 'k', k.conrelid, NULL, k.conname::text, k.contype::text, NULL, NULL, NULL, NULL,
       k.conkey, k.confrelid, k.confkey,
       CASE WHEN k.contype = 'f' AND NOT EXISTS (SELECT 1 FROM tabs x WHERE x.oid = k.confrelid)
            THEN ARRAY[(SELECT rc.relname::text FROM pg_class rc WHERE rc.oid = k.confrelid)]
                 || ARRAY(SELECT att.attname::text
                            FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
                            JOIN pg_attribute att
                              ON att.attrelid = k.confrelid AND att.attnum = u.num
                           ORDER BY u.ord)
       END, NULL, NULL, NULL
  FROM tabs t JOIN pg_constraint k ON k.conrelid = t.oid
 WHERE k.contype IN ('p', 'u', 'f') AND (k.contype <> 'f' OR k.conparentid = 0)
UNION ALL
SELECT 'i', i.indrelid, i.indnkeyatts, r.name,
       format('%s/%s/%s/%s/%s/%s/%s/%s/%s/%L/%L', r.relam, i.indnatts, i.indnkeyatts,
              i.indisunique OR i.indisprimary,
              CASE WHEN i.indisunique THEN to_jsonb(i) ->> 'indnullsnotdistinct' END,
              i.indkey, i.indclass, i.indcollation, i.indoption,
              pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid)),
       i.indisunique, i.indisprimary, i.indisvalid AND i.indisready, i.indpred IS NOT NULL,
       i.indkey::int2[], NULL, NULL, NULL, NULL, NULL, NULL
  FROM rels r JOIN pg_index i ON i.indexrelid = r.oid
 WHERE NOT r.is_table
"""

# An index's detail is its whole definition without its name, for telling
# duplicates apart: access method, column and key column counts, uniqueness and
# NULLS NOT DISTINCT (read through to_jsonb, so a server before 15 that lacks
# the column gives NULL rather than an error), attribute numbers, operator
# classes, collations, per-column options (DESC, NULLS FIRST), expressions and
# predicate (quoted, so the parts cannot run into each other).

# Row positions: asyncpg Records are read by index, cheaper than by name.
(_KIND, _OID, _POS, _NAME, _DETAIL, _F1, _F2, _F3, _F4, _NUMS, _REF_OID, _REF_NUMS,
 _NAMES, _TYPES, _NULLS, _DEFAULTS) = range(16)  # fmt: skip
_by_name = operator.itemgetter(_NAME)
_by_rank_then_name = operator.itemgetter(_POS, _NAME)
_by_attnum = operator.itemgetter(0)


@functools.lru_cache(maxsize=64)
def postgres_catalog_query(schemas: tuple[str, ...]) -> str:
    """The catalog query for ``schemas`` (in search order), names inlined safely."""
    literals = ", ".join(_text_literal(name) for name in schemas)
    return _POSTGRES_CATALOG_QUERY.replace("{schemas}", f"ARRAY[{literals}]::text[]")


def _text_literal(value: str) -> str:
    # The E'' form means the same whatever standard_conforming_strings says;
    # asyncpg always talks UTF-8, where no multi-byte character hides a quote.
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("a schema name must be a string without NUL characters")
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def introspect(
    source: Fetcher, dialect: str, *, schemas: Sequence[str] = ("public",)
) -> LiveSchema:
    """The live schema of every table (SQLite: the main database; PostgreSQL:
    the named ``schemas``, the first one winning when a name repeats)."""
    if dialect == "sqlite":
        return await _introspect_sqlite(source)
    if dialect == "postgresql":
        # asyncpg's Records are sequences already: skip the backend's dict copies.
        pool = getattr(source, "pool", None)
        fetch = pool.fetch if pool is not None else source.fetch
        rows = await fetch(postgres_catalog_query(tuple(schemas)))
        if rows and isinstance(rows[0], Mapping):
            rows = [tuple(row.values()) for row in rows]
        return LiveSchema("postgresql", _postgres_tables(rows))
    raise ValueError(f"introspection does not support dialect {dialect!r}")


def _postgres_tables(rows: Iterable[Sequence[Any]]) -> tuple[LiveTable, ...]:
    """Rows of the catalog query, by kind: ``t`` a table (pos: its schema's rank
    in the search list; nums, names, types, nulls, defaults: its columns), ``k``
    a key (detail: p/u/f, nums: its columns, ref_*: the referenced table and
    columns; names: for a table outside the schemas, its name then its column
    names), ``i`` an index (pos: number of key columns, f1-f4: unique, primary,
    valid, partial, nums: attnums, 0 for an expression, detail: the definition
    without the name)."""
    tables: list[Sequence[Any]] = []
    keys_of: dict[int, list[Sequence[Any]]] = {}
    indexes_of: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        kind = row[_KIND]
        if kind == "t":
            tables.append(row)
            continue
        by_table = indexes_of if kind == "i" else keys_of
        group = by_table.get(row[_OID])
        if group is None:
            by_table[row[_OID]] = [row]
        else:
            group.append(row)
    tables.sort(key=_by_rank_then_name)
    table_names = {table[_OID]: table[_NAME] for table in tables}
    attnames = {
        table[_OID]: dict(zip(table[_NUMS], table[_NAMES], strict=True)) if table[_NUMS] else {}
        for table in tables
    }
    out: list[LiveTable] = []
    seen: set[str] = set()
    for table in tables:
        name = table[_NAME]
        if name in seen:
            continue  # the first schema in the search list wins
        seen.add(name)
        oid = table[_OID]
        name_of = attnames[oid].get
        primary_key: tuple[str, ...] = ()
        unique: list[tuple[str, ...]] = []
        foreign_keys: list[LiveForeignKey] = []
        keys = keys_of.get(oid, [])
        keys.sort(key=_by_name)
        for key in keys:
            key_columns = _plain(tuple(map(name_of, key[_NUMS])))
            kind = key[_DETAIL]
            if kind == "p":
                primary_key = key_columns
            elif kind == "u":
                unique.append(key_columns)
            else:
                foreign_keys.append(_foreign_key(key, key_columns, table_names, attnames))
        indexes = indexes_of.get(oid, [])
        indexes.sort(key=_by_name)
        live_indexes = tuple(
            [
                LiveIndex(
                    index[_NAME],
                    tuple(map(name_of, index[_NUMS][: index[_POS]])),
                    index[_F1],  # unique
                    index[_F2],  # primary
                    index[_F4],  # partial
                    index[_F3],  # valid
                    definition=index[_DETAIL],
                )
                for index in indexes
            ]
        )
        out.append(
            LiveTable(
                name,
                _columns(table),
                primary_key,
                tuple(unique),
                live_indexes,
                tuple(foreign_keys),
            )
        )
    return tuple(out)


def _columns(table: Sequence[Any]) -> tuple[LiveColumn, ...]:
    nums = table[_NUMS]
    if not nums:
        return ()  # a table without columns: array_agg gave NULLs
    names, types, nulls, defaults = table[_NAMES], table[_TYPES], table[_NULLS], table[_DEFAULTS]
    if nums != sorted(nums):  # array_agg keeps the subquery's order in practice; make sure
        ordered = sorted(zip(nums, names, types, nulls, defaults, strict=True), key=_by_attnum)
        _, names, types, nulls, defaults = zip(*ordered, strict=True)
    return tuple(map(LiveColumn, names, types, nulls, defaults))


def _plain(columns: tuple[Any, ...]) -> tuple[str, ...]:
    """``columns`` without the None of expressions or attnums no longer known."""
    return columns if None not in columns else tuple(c for c in columns if c is not None)


def _foreign_key(
    key: Sequence[Any],
    columns: tuple[str, ...],
    table_names: dict[int, str],
    attnames: dict[int, dict[int, str]],
) -> LiveForeignKey:
    outside = key[_NAMES]
    if outside is not None:  # a table outside the chosen schemas: names came along
        return LiveForeignKey(columns, outside[0] or "", tuple(outside[1:]), key[_NAME])
    ref_oid = key[_REF_OID]
    ref_columns = _plain(tuple(map(attnames[ref_oid].get, key[_REF_NUMS])))
    return LiveForeignKey(columns, table_names[ref_oid], ref_columns, key[_NAME])


async def _introspect_sqlite(source: Fetcher) -> LiveSchema:
    columns = await source.fetch(_SQLITE_COLUMNS)
    indexes = await source.fetch(_SQLITE_INDEXES)
    foreign_keys = await source.fetch(_SQLITE_FOREIGN_KEYS)
    tables: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return tables.setdefault(name, {"columns": [], "pk": [], "indexes": {}, "fks": {}})

    for row in columns:
        entry(row["tbl"])["columns"].append(row)
    for row in indexes:
        index = entry(row["tbl"])["indexes"].setdefault(
            row["idx"], {"row": row, "cols": [], "keys": []}
        )
        index["cols"].append(row["col"])
        index["keys"].append(f"{row['cid']}:{row['descending']}:{row['coll']}")
    for row in foreign_keys:
        fk = entry(row["tbl"])["fks"].setdefault(row["id"], {"row": row, "cols": [], "refs": []})
        fk["cols"].append(row["col"])
        fk["refs"].append(row["ref_col"])
    return LiveSchema("sqlite", tuple(_sqlite_table(n, t) for n, t in sorted(tables.items())))


def _sqlite_table(name: str, data: dict[str, Any]) -> LiveTable:
    cols = data["columns"]
    key = [c for c in sorted(cols, key=lambda c: c["pk"]) if c["pk"]]
    # A lone INTEGER PRIMARY KEY is the rowid: it is assigned when omitted.
    rowid = key[0]["name"] if len(key) == 1 and key[0]["type"].upper() == "INTEGER" else None
    indexes = tuple(
        LiveIndex(
            idx,
            tuple(info["cols"]),
            unique=bool(info["row"]["is_unique"]),
            primary=info["row"]["origin"] == "pk",
            partial=bool(info["row"]["partial"]),
            definition=_sqlite_index_definition(info),
        )
        for idx, info in sorted(data["indexes"].items())
    )
    return LiveTable(
        name=name,
        columns=tuple(
            LiveColumn(
                c["name"],
                c["type"] or "",
                nullable=not c["not_null"],
                has_default=c["dflt_value"] is not None or c["name"] == rowid,
            )
            for c in cols
        ),
        primary_key=tuple(c["name"] for c in key),
        unique=tuple(
            tuple(c for c in i.columns if c is not None)
            for i in indexes
            if i.unique and not i.primary and not i.partial and None not in i.columns
        ),
        indexes=indexes,
        foreign_keys=tuple(
            LiveForeignKey(
                tuple(fk["cols"]),
                fk["row"]["ref_table"],
                tuple(ref if ref is not None else "" for ref in fk["refs"]),
            )
            for _, fk in sorted(data["fks"].items())
        ),
    )


# The written head of a CREATE INDEX statement, up to the table name; the rest
# (table, key expressions, WHERE) is what SQLite keeps of an index's expressions
# and predicate, as the statement spelled it.
_SQLITE_IDENTIFIER = r'(?:"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`|[^\s.("\[`]+)'
_SQLITE_INDEX_HEAD = re.compile(
    rf"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"{_SQLITE_IDENTIFIER}(?:\s*\.\s*{_SQLITE_IDENTIFIER})?\s*ON\b",
    re.IGNORECASE,
)


def _sqlite_index_definition(info: dict[str, Any]) -> str | None:
    """An index's definition without its name: uniqueness and each key's
    column, order and collation; for an expression or partial index also the
    statement's text after the name (None when that cannot be read)."""
    row = info["row"]
    shape = f"{bool(row['is_unique'])}/{','.join(info['keys'])}"
    if not row["partial"] and None not in info["cols"]:
        return shape
    head = _SQLITE_INDEX_HEAD.match(row["sql"] or "")
    if head is None:
        return None
    return f"{shape}/{row['sql'][head.end() :].strip()}"


async def tables_with_rows(
    source: Fetcher, names: Sequence[str], *, schema: str | None = None
) -> dict[str, bool]:
    """Which of ``names`` hold at least one row, in one round trip."""
    if not names:
        return {}
    prefix = f"{quote_identifier(schema)}." if schema else ""
    parts = [
        f"EXISTS (SELECT 1 FROM {prefix}{quote_identifier(n)}) AS {quote_identifier(f'c{i}')}"
        for i, n in enumerate(names)
    ]
    rows = await source.fetch("SELECT " + ", ".join(parts))
    row = rows[0]
    return {n: bool(row[f"c{i}"]) for i, n in enumerate(names)}
