"""Reading a live schema: SQLite PRAGMAs, or one pg_catalog query on PostgreSQL.

Round trips are constant in the number of tables: three PRAGMA table-valued
queries on SQLite, one catalog query on PostgreSQL (plus, only when the diff
needs it, one query asking which tables hold rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from buttress.schema.identifiers import quote_identifier
from buttress.schema.live import LiveColumn, LiveForeignKey, LiveIndex, LiveSchema, LiveTable

__all__ = ["Fetcher", "introspect", "tables_with_rows"]


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
       i.seqno, i.name AS col
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

# One round trip for everything about every table of the chosen schemas: flat
# typed rows (no JSON), one UNION ALL branch per kind. Keys and indexes carry
# attribute numbers, mapped to names from the column rows, so no per-row
# subquery runs (except for foreign keys into tables outside the schemas).
POSTGRES_CATALOG_QUERY = """
WITH rels AS (
    SELECT c.oid, c.relname::text AS tbl, array_position($1::text[], n.nspname::text) AS rank
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
)
SELECT r.rank, r.tbl, r.oid, 'c' AS kind, a.attnum::int AS pos, a.attname::text AS name,
       format_type(a.atttypid, a.atttypmod) AS detail,
       NOT a.attnotnull AS f1,
       (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS f2,
       false AS f3, false AS f4,
       NULL::int2[] AS nums, NULL::oid AS ref_oid, NULL::int2[] AS ref_nums,
       NULL::text[] AS ref_names
  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT r.rank, r.tbl, r.oid, 'k', 0, k.conname::text,
       k.contype::text || ' ' || coalesce(rc.relname::text, ''),
       false, false, false, false, k.conkey, k.confrelid, k.confkey,
       CASE WHEN k.contype = 'f' AND NOT EXISTS (SELECT 1 FROM rels x WHERE x.oid = k.confrelid)
            THEN ARRAY(SELECT att.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
                         JOIN pg_attribute att
                           ON att.attrelid = k.confrelid AND att.attnum = u.num
                        ORDER BY u.ord)
       END
  FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid
  LEFT JOIN pg_class rc ON rc.oid = k.confrelid
 WHERE k.contype IN ('p', 'u', 'f')
UNION ALL
SELECT r.rank, r.tbl, r.oid, 'i', i.indnkeyatts::int, ic.relname::text, NULL,
       i.indisunique, i.indisprimary, i.indisvalid AND i.indisready, i.indpred IS NOT NULL,
       i.indkey::int2[], NULL, NULL, NULL
  FROM rels r JOIN pg_index i ON i.indrelid = r.oid
  JOIN pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT r.rank, r.tbl, r.oid, 't', 0, '', NULL, false, false, false, false,
       NULL, NULL, NULL, NULL
  FROM rels r
"""


async def introspect(
    source: Fetcher, dialect: str, *, schemas: Sequence[str] = ("public",)
) -> LiveSchema:
    """The live schema of every table (SQLite: the main database; PostgreSQL:
    the named ``schemas``, the first one winning when a name repeats)."""
    if dialect == "sqlite":
        return await _introspect_sqlite(source)
    if dialect == "postgresql":
        # asyncpg's Records are Mappings already: skip the backend's dict copies.
        pool = getattr(source, "pool", None)
        fetch = pool.fetch if pool is not None else source.fetch
        rows = await fetch(POSTGRES_CATALOG_QUERY, list(schemas))
        return LiveSchema("postgresql", tuple(_postgres_tables(rows)))
    raise ValueError(f"introspection does not support dialect {dialect!r}")


def _postgres_tables(rows: Iterable[Any]) -> Iterable[LiveTable]:
    # (rank, name) -> kind -> rows; the catalog query does not sort (cheaper here).
    grouped: dict[tuple[int, str], dict[str, list[Any]]] = {}
    names_by_oid: dict[int, dict[int, str]] = {}
    for row in rows:
        kind = row["kind"]
        by_kind = grouped.get((row["rank"], row["tbl"]))
        if by_kind is None:
            by_kind = grouped[(row["rank"], row["tbl"])] = {"c": [], "k": [], "i": [], "t": []}
        by_kind[kind].append(row)
        if kind == "c":
            names_by_oid.setdefault(row["oid"], {})[row["pos"]] = row["name"]

    def names(oid: int, nums: Iterable[int] | None) -> tuple[str | None, ...]:
        known = names_by_oid.get(oid, {})
        return tuple(known.get(n) for n in nums or ())

    seen: set[str] = set()
    for (_, name), parts in sorted(grouped.items()):
        if name in seen:
            continue  # the first schema in the search list wins
        seen.add(name)
        oid = (parts["t"] or parts["c"])[0]["oid"]
        primary_key: tuple[str, ...] = ()
        unique: list[tuple[str, ...]] = []
        foreign_keys: list[LiveForeignKey] = []
        for p in sorted(parts["k"], key=lambda r: r["name"]):
            kind, _, ref = p["detail"].partition(" ")
            columns = _known(names(oid, p["nums"]))
            if kind == "p":
                primary_key = columns
            elif kind == "u":
                unique.append(columns)
            else:
                ref_columns = (
                    tuple(p["ref_names"])
                    if p["ref_names"] is not None
                    else _known(names(p["ref_oid"], p["ref_nums"]))
                )
                foreign_keys.append(LiveForeignKey(columns, ref, ref_columns, name=p["name"]))
        yield LiveTable(
            name=name,
            columns=tuple(
                LiveColumn(p["name"], p["detail"], p["f1"], p["f2"])
                for p in sorted(parts["c"], key=lambda r: r["pos"])
            ),
            primary_key=primary_key,
            unique=tuple(unique),
            foreign_keys=tuple(foreign_keys),
            indexes=tuple(
                LiveIndex(
                    p["name"],
                    names(oid, list(p["nums"])[: p["pos"]]),
                    unique=p["f1"],
                    primary=p["f2"],
                    valid=p["f3"],
                    partial=p["f4"],
                )
                for p in sorted(parts["i"], key=lambda r: r["name"])
            ),
        )


def _known(names: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if n is not None)


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
        index = entry(row["tbl"])["indexes"].setdefault(row["idx"], {"row": row, "cols": []})
        index["cols"].append(row["col"])
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
