"""Security audit of a PostgreSQL schema against what the application declares.

Findings, each with a severity: the application connecting as a superuser,
declared tables without the row-level security they should have (``TableSecurity``),
partitions without row-level security under a partitioned table that has it
(a direct query on the partition is not filtered by the parent's policies),
and objects owned by or writable to roles outside ``allowed_roles``. Six
catalog queries, read only. SQLite has no roles: its audit finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypeAlias, TypedDict, Unpack

import attrs

from buttress._exceptions import ValidationError
from buttress.backends import Backend, SqlBackend, require_sql
from buttress.schema.identifiers import check_identifier

__all__ = [
    "AuditFinding",
    "AuditReport",
    "AuditSeverity",
    "SecurityAudit",
    "TableSecurity",
    "audit",
]

AuditSeverity: TypeAlias = Literal["critical", "warning", "info"]
_RANK = {"info": 0, "warning": 1, "critical": 2}
_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
          "S": "sequence", "f": "foreign table"}  # fmt: skip


@attrs.frozen
class TableSecurity:
    """What a declared table's security should be. ``row_level_security``:
    RLS must be enabled (and have at least one policy); ``force_row_level_security``:
    it must apply to the table's owner too."""

    table: str
    row_level_security: bool = attrs.field(default=False, kw_only=True)
    force_row_level_security: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        check_identifier(self.table, field="TableSecurity.table")
        for field in ("row_level_security", "force_row_level_security"):
            if not isinstance(getattr(self, field), bool):
                raise ValidationError(f"TableSecurity.{field}", "must be true or false")


@attrs.frozen
class AuditFinding:
    code: str
    severity: AuditSeverity
    object: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


@attrs.frozen
class AuditReport:
    findings: tuple[AuditFinding, ...]
    dialect: str = "postgresql"

    @property
    def ok(self) -> bool:
        """No critical and no warning finding."""
        return all(f.severity == "info" for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 warnings, 2 a critical finding."""
        return max((_RANK[f.severity] for f in self.findings), default=0)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "dialect": self.dialect,
            "findings": [f.to_dict() for f in self.findings],
        }

    def render_text(self) -> str:
        if not self.findings:
            return "security audit: no findings"
        lines = [f"security audit: {len(self.findings)} finding(s)"]
        lines += [f"  {f.severity:8} {f.code:20} {f.object}: {f.message}" for f in self.findings]
        return "\n".join(lines)


def _roles(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        check_identifier(name, field="allowed_roles")
    return frozenset(names)


def _tables(value: Iterable[TableSecurity]) -> tuple[TableSecurity, ...]:
    tables = tuple(value)
    for item in tables:
        if not isinstance(item, TableSecurity):
            raise ValidationError("tables", "must contain TableSecurity values")
    return tables


class SecurityAudit:
    """Audits ``db_schema`` on a PostgreSQL backend.

    ``tables``: per-table expectations (row-level security). ``allowed_roles``:
    the roles that may own objects or hold write privileges in the schema
    (None: ownership and grants are not checked). ``allow_superuser``: do not
    flag a superuser connection (local development).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        tables: Iterable[TableSecurity] = (),
        allowed_roles: Iterable[str] | None = None,
        allow_superuser: bool = False,
        db_schema: str = "public",
    ) -> None:
        self._backend: SqlBackend = require_sql(backend, "SecurityAudit")
        self.tables = _tables(tables)
        self.allowed_roles = _roles(allowed_roles)
        self.allow_superuser = bool(allow_superuser)
        self.db_schema = check_identifier(db_schema, field="db_schema")

    async def audit(self) -> AuditReport:
        """Every finding, most severe first. Never changes anything."""
        if self._backend.dialect != "postgresql":
            return AuditReport((), dialect=self._backend.dialect)
        findings = await self._connection_findings()
        findings += await self._table_findings()
        findings += await self._partition_findings()
        if self.allowed_roles is not None:
            findings += await self._grant_findings(self.allowed_roles)
        findings.sort(key=lambda f: (-_RANK[f.severity], f.code, f.object))
        return AuditReport(tuple(findings))

    async def _connection_findings(self) -> list[AuditFinding]:
        row = await self._backend.fetchrow(
            "SELECT current_user::text AS name, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        )
        if row is None:
            return []
        role = f"role {row['name']}"
        findings = []
        if row["rolsuper"]:
            if not self.allow_superuser:
                findings.append(
                    AuditFinding(
                        "superuser_connection",
                        "critical",
                        role,
                        "the application connects as a superuser: it bypasses every "
                        "privilege and row-level security; connect as a role that owns "
                        "only what it needs",
                    )
                )
        elif row["rolbypassrls"] and any(t.row_level_security for t in self.tables):
            findings.append(
                AuditFinding(
                    "bypasses_rls",
                    "warning",
                    role,
                    "the connecting role has BYPASSRLS, so row-level security never "
                    "applies to the application",
                )
            )
        if self.allowed_roles is not None and row["name"] not in self.allowed_roles:
            findings.append(
                AuditFinding(
                    "unexpected_connection_role",
                    "warning",
                    role,
                    f"connects as a role not in allowed_roles {sorted(self.allowed_roles)}",
                )
            )
        return findings

    async def _table_findings(self) -> list[AuditFinding]:
        wanted = [t for t in self.tables if t.row_level_security or t.force_row_level_security]
        if not wanted:
            return []
        rows = await self._backend.fetch(
            "SELECT c.relname::text AS name, c.relrowsecurity AS rls, "
            "c.relforcerowsecurity AS forced, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2::text[])",
            self.db_schema,
            [t.table for t in wanted],
        )
        live = {str(r["name"]): r for r in rows}
        findings = []
        for expected in wanted:
            name = f"table {self.db_schema}.{expected.table}"
            row = live.get(expected.table)
            if row is None:
                findings.append(
                    AuditFinding("missing_table", "warning", name, "declared but not found")
                )
                continue
            if not row["rls"]:
                findings.append(
                    AuditFinding(
                        "rls_disabled",
                        "critical",
                        name,
                        "row-level security is expected but not enabled "
                        "(ALTER TABLE ... ENABLE ROW LEVEL SECURITY)",
                    )
                )
            elif not row["policies"]:
                findings.append(
                    AuditFinding(
                        "rls_without_policies",
                        "warning",
                        name,
                        "row-level security is enabled with no policy: every row is "
                        "hidden from roles other than the owner",
                    )
                )
            if expected.force_row_level_security and not row["forced"]:
                findings.append(
                    AuditFinding(
                        "rls_not_forced",
                        "warning",
                        name,
                        "row-level security does not apply to the table's owner "
                        "(ALTER TABLE ... FORCE ROW LEVEL SECURITY)",
                    )
                )
        return findings

    async def _partition_findings(self) -> list[AuditFinding]:
        """Partitions (at any depth, in any schema) of a table of ``db_schema``
        whose nearest ancestor with row-level security has it while they do not.
        PostgreSQL applies a table's policies only to queries naming that table:
        a role granted access to a partition reads every row of it directly.
        Critical when roles other than the owner hold privileges on the
        partition (they read or change it unfiltered now), else a warning."""
        rows = await self._backend.fetch(
            "SELECT pn.nspname::text || '.' || c.relname::text AS partition, "
            "an.nspname::text || '.' || a.relname::text AS parent, "
            "ARRAY(SELECT DISTINCT CASE WHEN g.grantee = 0 THEN 'PUBLIC' "
            "ELSE pg_get_userbyid(g.grantee)::text END FROM aclexplode(c.relacl) g "
            "WHERE g.grantee <> c.relowner AND g.privilege_type IN "
            "('SELECT', 'INSERT', 'UPDATE', 'DELETE') ORDER BY 1) AS grantees "
            "FROM pg_class c JOIN pg_namespace pn ON pn.oid = c.relnamespace "
            "CROSS JOIN LATERAL (SELECT p.relname, p.relnamespace "
            "FROM pg_partition_ancestors(c.oid) WITH ORDINALITY u(relid, depth) "
            "JOIN pg_class p ON p.oid = u.relid "
            "WHERE u.relid <> c.oid AND p.relrowsecurity ORDER BY u.depth LIMIT 1) a "
            "JOIN pg_namespace an ON an.oid = a.relnamespace "
            "WHERE c.relispartition AND NOT c.relrowsecurity AND c.relkind IN ('r', 'p', 'f') "
            "AND $1 IN (SELECT rn.nspname FROM pg_partition_root(c.oid) r(relid) "
            "JOIN pg_class rc ON rc.oid = r.relid "
            "JOIN pg_namespace rn ON rn.oid = rc.relnamespace) "
            "ORDER BY 1",
            self.db_schema,
        )
        findings = []
        for r in rows:
            grantees = [str(g) for g in r["grantees"] or ()]
            who = (
                f"{', '.join(grantees)} may query it directly and see or change every row"
                if grantees
                else "a role granted access to it would see every row"
            )
            findings.append(
                AuditFinding(
                    "rls_partition_unprotected",
                    "critical" if grantees else "warning",
                    f"partition {r['partition']}",
                    f"its parent {r['parent']} has row-level security but the partition "
                    f"does not, and the parent's policies do not filter queries on the "
                    f"partition: {who} (ALTER TABLE ... ENABLE ROW LEVEL SECURITY on the "
                    "partition with the parent's policies, or revoke access to it)",
                )
            )
        return findings

    async def _grant_findings(self, allowed: frozenset[str]) -> list[AuditFinding]:
        findings: list[AuditFinding] = []
        owners = await self._backend.fetch(
            "SELECT c.relname::text AS name, c.relkind::text AS kind, "
            "pg_get_userbyid(c.relowner)::text AS owner "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
            "UNION ALL SELECT p.proname::text || '()', 'function', "
            "pg_get_userbyid(p.proowner)::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 "
            "ORDER BY 1",
            self.db_schema,
        )
        owner_of: dict[str, str] = {}
        for r in owners:
            kind = _KINDS.get(str(r["kind"]), str(r["kind"]))
            name = f"{kind} {self.db_schema}.{r['name']}"
            owner_of[str(r["name"])] = str(r["owner"])
            if r["owner"] not in allowed:
                findings.append(
                    AuditFinding(
                        "unexpected_owner",
                        "warning",
                        name,
                        f"owned by {r['owner']!r}, not one of allowed_roles {sorted(allowed)}",
                    )
                )
        grants = await self._backend.fetch(
            "SELECT c.relname::text AS name, c.relkind::text AS kind, "
            "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END "
            "AS grantee, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privs "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL aclexplode(c.relacl) a "
            "WHERE n.nspname = $1 AND a.privilege_type = ANY($2::text[]) "
            "GROUP BY 1, 2, 3 ORDER BY 1, 3",
            self.db_schema,
            list(_WRITES),
        )
        for r in grants:
            grantee = str(r["grantee"])
            if grantee in allowed or grantee == owner_of.get(str(r["name"])):
                continue
            kind = _KINDS.get(str(r["kind"]), str(r["kind"]))
            public = grantee == "PUBLIC"
            findings.append(
                AuditFinding(
                    "public_writable" if public else "unexpected_writer",
                    "critical" if public else "warning",
                    f"{kind} {self.db_schema}.{r['name']}",
                    f"{grantee} may {r['privs']}; allowed_roles are {sorted(allowed)}",
                )
            )
        schema_grants = await self._backend.fetch(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text "
            "END AS grantee, pg_get_userbyid(n.nspowner)::text AS owner "
            "FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a "
            "WHERE n.nspname = $1 AND a.privilege_type = 'CREATE'",
            self.db_schema,
        )
        for r in schema_grants:
            grantee = str(r["grantee"])
            if grantee in allowed or grantee == r["owner"]:
                continue
            findings.append(
                AuditFinding(
                    "unexpected_schema_create",
                    "critical" if grantee == "PUBLIC" else "warning",
                    f"schema {self.db_schema}",
                    f"{grantee} may create objects in it",
                )
            )
        return findings


class _AuditOptions(TypedDict, total=False):
    """``SecurityAudit``'s keyword arguments, for ``audit``."""

    tables: Iterable[TableSecurity]
    allowed_roles: Iterable[str] | None
    allow_superuser: bool
    db_schema: str


async def audit(backend: Backend, **options: Unpack[_AuditOptions]) -> AuditReport:
    """``SecurityAudit(backend, **options).audit()`` in one call."""
    return await SecurityAudit(backend, **options).audit()
