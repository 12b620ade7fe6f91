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
async def service_role(pg_server, tmp_path_factory):
    """The audit service's own login role, as `madoguchi run` provisions it: the writer, the alert engine and
    the API of these tests connect as mg_audit (member of audit_writer and audit_reader, not a superuser).
    Fixtures migrate and attacks tamper with the session's superuser pool (`pg_pool`)."""
    dsns = await db.provision(pg_server.dsn, tmp_path_factory.mktemp("secrets"), ["audit"])
    pool = await db.create_pool(dsns["audit"], max_size=10)
    audit_harness.SERVICE_DSN, audit_harness.SERVICE_POOL = dsns["audit"], pool
    yield dsns
    await pool.close()


@pytest.fixture
def audit_settings(settings, municipality, tmp_path):
    return make_audit_settings(settings, municipality, tmp_path)


@pytest_asyncio.fixture
async def migrated(pg_pool, audit_settings):
    await schema.migrate_pool(pg_pool, audit_settings.schema_name)
    return audit_settings
