"""The security audit on a real PostgreSQL: superuser connections, row-level
security where it is expected, unexpected owners and writers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from buttress import connect
from buttress.backends import SqlBackend, require_sql
from buttress.errors import UnsupportedBackendError, ValidationError
from buttress.schema.audit import AuditReport, SecurityAudit, TableSecurity, audit


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[SqlBackend]:
    async with connect(postgres_dsn, migrate=False) as backend:
        db = require_sql(backend, "tests")
        await db.execute("CREATE TABLE orders (id integer PRIMARY KEY, owner text)")
        yield db


@pytest.fixture
async def role(pg: SqlBackend) -> AsyncIterator[tuple[str, str]]:
    """A login role (cluster-wide, so uniquely named) and its password; dropped afterwards."""
    name, password = f"app_{secrets.token_hex(4)}", secrets.token_hex(12)
    await pg.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        yield name, password
    finally:
        await pg.execute(f"DROP OWNED BY {name}")
        await pg.execute(f"DROP ROLE {name}")


def as_role(dsn: str, name: str, password: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{name}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def codes(report: AuditReport) -> list[tuple[str, str, str]]:
    return [(f.code, f.severity, f.object) for f in report.findings]


def test_declarations_are_validated() -> None:
    with pytest.raises(ValidationError, match=r"TableSecurity\.table"):
        TableSecurity("")
    with pytest.raises(ValidationError, match="row_level_security"):
        TableSecurity("orders", row_level_security="yes")  # type: ignore[arg-type]  # the point


async def test_sqlite_has_nothing_to_audit(sqlite_dsn: str) -> None:
    async with connect(sqlite_dsn) as db:
        report = await audit(db, tables=[TableSecurity("orders", row_level_security=True)])
    assert report.findings == ()
    assert report.ok
    assert report.exit_code == 0
    assert report.dialect == "sqlite"
    async with connect("memory://") as memory:
        with pytest.raises(UnsupportedBackendError, match="SecurityAudit"):
            SecurityAudit(memory)


@pytest.mark.postgres
async def test_a_superuser_connection_is_critical(pg: SqlBackend) -> None:
    report = await audit(pg)
    assert codes(report) == [("superuser_connection", "critical", "role postgres")]
    assert report.exit_code == 2
    assert not report.ok
    assert "superuser" in report.render_text()
    assert (await audit(pg, allow_superuser=True)).findings == ()


@pytest.mark.postgres
async def test_row_level_security_where_declared(pg: SqlBackend) -> None:
    expected = [
        TableSecurity("orders", row_level_security=True, force_row_level_security=True),
        TableSecurity("ghost", row_level_security=True),
        TableSecurity("plain"),
    ]
    report = await audit(pg, tables=expected, allow_superuser=True)
    assert codes(report) == [
        ("rls_disabled", "critical", "table public.orders"),
        ("missing_table", "warning", "table public.ghost"),
        ("rls_not_forced", "warning", "table public.orders"),
    ]
    await pg.execute("ALTER TABLE orders ENABLE ROW LEVEL SECURITY")
    await pg.execute("ALTER TABLE orders FORCE ROW LEVEL SECURITY")
    report = await audit(pg, tables=expected[:1], allow_superuser=True)
    assert codes(report) == [("rls_without_policies", "warning", "table public.orders")]
    await pg.execute("CREATE POLICY mine ON orders USING (owner = current_user)")
    assert (await audit(pg, tables=expected[:1], allow_superuser=True)).findings == ()


@pytest.mark.postgres
async def test_owners_and_writers_outside_the_allowed_roles(
    pg: SqlBackend, role: tuple[str, str]
) -> None:
    app, _ = role
    await pg.execute("CREATE TABLE notes (id integer)")
    await pg.execute("CREATE SEQUENCE counter")
    await pg.execute(f"ALTER TABLE notes OWNER TO {app}")
    await pg.execute(f"GRANT SELECT, UPDATE, DELETE ON orders TO {app}")
    await pg.execute("GRANT INSERT ON orders TO PUBLIC")
    await pg.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    report = await audit(pg, allowed_roles=["postgres"], allow_superuser=True)
    assert codes(report) == [
        ("public_writable", "critical", "table public.orders"),
        ("unexpected_schema_create", "critical", "schema public"),
        ("unexpected_owner", "warning", "table public.notes"),
        ("unexpected_writer", "warning", "table public.orders"),
    ]
    writer = next(f for f in report.findings if f.code == "unexpected_writer")
    assert writer.message.startswith(f"{app} may DELETE, UPDATE")
    allowed = await audit(pg, allowed_roles=["postgres", app], allow_superuser=True)
    assert [f.code for f in allowed.findings] == ["public_writable", "unexpected_schema_create"]
    assert allowed.to_dict()["ok"] is False


@pytest.mark.postgres
async def test_an_ordinary_role_is_not_flagged_but_bypassrls_is(
    pg: SqlBackend, role: tuple[str, str], postgres_dsn: str
) -> None:
    app, password = role
    await pg.execute(f"GRANT CREATE ON SCHEMA public TO {app}")
    async with connect(as_role(postgres_dsn, app, password), migrate=False) as raw:
        db = require_sql(raw, "tests")
        assert (await audit(db)).findings == ()
        report = await audit(db, allowed_roles=["postgres"])
        assert [f.code for f in report.findings] == [
            "unexpected_connection_role",
            "unexpected_schema_create",
        ]
        rls = [TableSecurity("orders", row_level_security=True)]
        await pg.execute(f"ALTER ROLE {app} BYPASSRLS")
        report = await audit(db, tables=rls)
        assert ("bypasses_rls", "warning", f"role {app}") in codes(report)


@pytest.mark.postgres
async def test_partitions_without_the_parents_row_level_security(
    pg: SqlBackend, role: tuple[str, str], postgres_dsn: str
) -> None:
    """RLS on a partitioned table filters queries on that table only: a role
    with access to a partition reads all of it. The audit names every such
    partition (at any depth), critical where roles besides the owner hold
    privileges on it."""
    app, password = role
    await pg.execute_script(
        f"""
        CREATE TABLE events (id integer, tenant text) PARTITION BY LIST (tenant);
        CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('{app}', 'other');
        CREATE TABLE events_b PARTITION OF events FOR VALUES IN ('third')
            PARTITION BY RANGE (id);
        CREATE TABLE events_b1 PARTITION OF events_b FOR VALUES FROM (0) TO (100);
        CREATE TABLE plain_parent (id integer) PARTITION BY RANGE (id);
        CREATE TABLE plain_part PARTITION OF plain_parent FOR VALUES FROM (0) TO (10);
        INSERT INTO events VALUES (1, '{app}'), (2, 'other'), (3, 'other'), (4, 'third');
        ALTER TABLE events ENABLE ROW LEVEL SECURITY;
        CREATE POLICY own ON events USING (tenant = current_user);
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO {app};
        REVOKE SELECT ON events_b, events_b1 FROM {app};
        """
    )
    async with connect(as_role(postgres_dsn, app, password), migrate=False) as raw:
        db = require_sql(raw, "tests")
        assert await db.fetchval("SELECT count(*) FROM events") == 1
        assert await db.fetchval("SELECT count(*) FROM events_a") == 3  # the leak
    report = await audit(pg, allow_superuser=True)
    assert codes(report) == [
        ("rls_partition_unprotected", "critical", "partition public.events_a"),
        ("rls_partition_unprotected", "warning", "partition public.events_b"),
        ("rls_partition_unprotected", "warning", "partition public.events_b1"),
    ]
    critical = report.findings[0]
    assert "its parent public.events has row-level security" in critical.message
    assert f"{app} may query it directly" in critical.message
    assert report.exit_code == 2

    await pg.execute("ALTER TABLE events_a ENABLE ROW LEVEL SECURITY")
    await pg.execute("CREATE POLICY own ON events_a USING (tenant = current_user)")
    await pg.execute("ALTER TABLE events_b ENABLE ROW LEVEL SECURITY")
    report = await audit(pg, allow_superuser=True)
    # events_b1's nearest ancestor with RLS is now events_b.
    assert [(f.object, f.message.split(" has ")[0]) for f in report.findings] == [
        ("partition public.events_b1", "its parent public.events_b")
    ]
    await pg.execute("ALTER TABLE events_b1 ENABLE ROW LEVEL SECURITY")
    assert (await audit(pg, allow_superuser=True)).findings == ()
    async with connect(as_role(postgres_dsn, app, password), migrate=False) as raw:
        db = require_sql(raw, "tests")
        assert await db.fetchval("SELECT count(*) FROM events_a") == 1
