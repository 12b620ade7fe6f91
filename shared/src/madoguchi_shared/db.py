"""PostgreSQL helpers: a pool, and per-schema migrations. Services never share tables:
each owns one schema (reporting, audit, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=60)


async def migrate(conn: asyncpg.Connection, schema: str, migrations: Sequence[str]) -> int:
    """Apply, in order and once each, the SQL migrations of one schema. Returns the version.

    Migration i (1-based) runs in a transaction together with recording it; an advisory lock
    keeps two starting replicas from migrating at once.
    """
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}".schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())'
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        current = await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version')
        for version, sql in enumerate(migrations, start=1):
            if version <= current:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            await conn.execute(sql)
            await conn.execute(f'INSERT INTO "{schema}".schema_version(version) VALUES ($1)', version)
            current = version
    return current


CHECKPOINTS_SQL = """
CREATE TABLE IF NOT EXISTS projection_checkpoint (
    name text PRIMARY KEY,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
