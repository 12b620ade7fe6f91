"""Fixtures of the audit tests: per-test audit settings (own schema, own municipality filter, own
data folder) on the session's real nats-server and PostgreSQL (root conftest)."""

from __future__ import annotations

import audit_harness
import pytest
import pytest_asyncio
from audit_harness import make_audit_settings

from madoguchi_shared import db

from madoguchi_audit import schema


@pytest_asyncio.fixture(scope="session", autouse=True)
async def service_role(pg_roles):
    """The audit service's own login role as the root conftest provisions it (`madoguchi run` does the same): the
    writer, the alert engine and the API of these tests connect as mg_audit (member of audit_writer and
    audit_reader, not a superuser); `migrated` migrates as the owner role mg_migrator. Attacks tamper with the
    session's superuser pool (`pg_pool`)."""
    pool = await db.create_pool(pg_roles["audit"], max_size=10)
    migrator = await db.create_pool(pg_roles["migrator"], max_size=2)
    audit_harness.SERVICE_DSN, audit_harness.SERVICE_POOL, audit_harness.MIGRATOR_POOL = (
        pg_roles["audit"],
        pool,
        migrator,
    )
    yield pg_roles
    await pool.close()
    await migrator.close()


@pytest.fixture
def audit_settings(settings, municipality, tmp_path):
    return make_audit_settings(settings, municipality, tmp_path)


@pytest_asyncio.fixture
async def migrated(audit_settings):
    await schema.migrate_pool(audit_harness.MIGRATOR_POOL, audit_settings.schema_name)  # as the owner role
    return audit_settings
