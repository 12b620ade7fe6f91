"""Fixtures of the audit tests: per-test audit settings (own schema, own municipality filter, own
data folder) on the session's real nats-server and PostgreSQL (root conftest)."""

from __future__ import annotations

import pytest
import pytest_asyncio
from audit_harness import make_audit_settings

from madoguchi_audit import schema


@pytest.fixture
def audit_settings(settings, municipality, tmp_path):
    return make_audit_settings(settings, municipality, tmp_path)


@pytest_asyncio.fixture
async def migrated(pg_pool, audit_settings):
    await schema.migrate_pool(pg_pool, audit_settings.schema_name)
    return audit_settings
