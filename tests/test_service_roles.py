"""Least privilege in `make test` as in `make run`: the session provisions one PostgreSQL login role per service
(root conftest `pg_roles`, the same db.provision `madoguchi run` calls), and a service the tests start logs in as
its own role — never a superuser, unable to create schemas or roles, unable to read another service's tables."""

from __future__ import annotations

import asyncpg
import pytest

from madoguchi_shared import db
from tests.utils.servers import PG_SERVICES, SERVICE_DSNS, as_service


async def _who(pool) -> tuple[str, bool, bool]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT current_user AS u, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        return row["u"], row["rolsuper"], row["rolcreaterole"]


async def test_services_started_by_the_tests_log_in_as_their_own_roles(settings):
    from madoguchi_calls.main import create_app as calls_app
    from madoguchi_reporting.main import create_app as reporting_app

    assert set(PG_SERVICES) <= set(SERVICE_DSNS) and "migrator" in SERVICE_DSNS
    for service, create in (("reporting", reporting_app), ("calls", calls_app)):
        service_settings = as_service(settings, service)
        assert service_settings.resolved_pg_dsn() != settings.resolved_pg_dsn()
        app = create(service_settings)
        async with app.router.lifespan_context(app):
            assert await _who(app.state.pool) == (f"mg_{service}", False, False)


@pytest.mark.parametrize("service", PG_SERVICES)
async def test_a_service_role_cannot_create_schemas_or_read_another_services_tables(service, pg_pool):
    conn = await asyncpg.connect(SERVICE_DSNS[service])
    try:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA intruder")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE ROLE intruder")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")  # the audit trigger stays on
        others = {
            "reporting": "calls.callback_key",
            "calls": "reporting.schema_version",
            "audit": "reporting.schema_version",
        }
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval(f"SELECT count(*) FROM {others[service]}")
        if service == "audit":  # the writer appends, never rewrites (trigger aside: no UPDATE grant at all)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE audit.log SET ward = 'x' WHERE position = 0")
    finally:
        await conn.close()
    assert db.role_of(service) == f"mg_{service}"
