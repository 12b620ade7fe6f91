"""The log is append-only for the application role and for everyone through the trigger; only a
verified archive, deleted as the owner role, ever removes records (ASVS 16.4.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from audit_harness import migrator_pool, publish, running_ingest, sample_events

from madoguchi_audit import checkpoints, retention, schema, verify
from madoguchi_audit.config import AuditSettings

REFUSED = (asyncpg.InsufficientPrivilegeError,)


async def _log_with_rows(nc, js, pg_pool, audit, n=60):
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, n))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    return audit


async def _old_and_newer_rows(nc, js, pg_pool, audit_settings) -> tuple[AuditSettings, datetime]:
    """A log of 100 records, then 30 more written after the returned moment (what a retention keeps)."""
    audit = audit_settings.model_copy(update={"checkpoint_every": 20, "ingest_batch": 20})
    await _log_with_rows(nc, js, pg_pool, audit, n=100)
    middle = datetime.now(UTC)
    await publish(js, sample_events(audit.municipality, 30, seed=9))  # signed after `middle`: kept
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    return audit, middle


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE {t}.log SET ward = 'kita' WHERE position = 1",
        "DELETE FROM {t}.log WHERE position = 1",
        "TRUNCATE {t}.log",
        "UPDATE {t}.checkpoint SET head = '\\x00'::bytea",
        "DELETE FROM {t}.checkpoint",
        "INSERT INTO {t}.archive (archive_id, from_position, to_position, records, checkpoint_position, checkpoint_head, "
        "file_name, file_sha256, verified) VALUES ('x', 1, 1, 1, 1, '\\x00', 'x', 'x', true)",
    ],
)
async def test_the_application_role_cannot_change_or_remove_records(nc, js, pg_pool, audit_settings, sql):
    audit = await _log_with_rows(nc, js, pg_pool, audit_settings, n=10)
    async with pg_pool.acquire() as conn:
        with pytest.raises(REFUSED):
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {schema.WRITER}")
                await conn.execute(sql.format(t=f'"{audit.schema_name}"'))
        async with conn.transaction():  # while appending is what it may do
            await conn.execute(f"SET LOCAL ROLE {schema.WRITER}")
            assert await conn.fetchval(f'SELECT count(*) FROM "{audit.schema_name}".log') >= 10
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'log'", audit.schema_name
        )
        assert owner == schema.OWNER
        grants = {
            r["privilege_type"]
            for r in await conn.fetch(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = $1 AND table_schema = $2 AND table_name = 'log'",
                schema.WRITER,
                audit.schema_name,
            )
        }
        assert grants == {"SELECT", "INSERT"}


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE {t}.log SET ward = 'kita' WHERE position = 1",
        "DELETE FROM {t}.log WHERE position = 1",
        "TRUNCATE {t}.log",
    ],
)
async def test_the_trigger_refuses_even_the_owner_and_a_superuser(nc, js, pg_pool, audit_settings, sql):
    audit = await _log_with_rows(nc, js, pg_pool, audit_settings, n=5)
    async with pg_pool.acquire() as conn:
        for role in (schema.OWNER, None):  # None: the login user, a superuser here
            with pytest.raises(REFUSED, match="append-only"):
                async with conn.transaction():
                    if role:
                        await conn.execute(f"SET LOCAL ROLE {role}")
                    await conn.execute(sql.format(t=f'"{audit.schema_name}"'))


async def test_retention_archives_verifies_then_deletes_as_owner_and_the_rest_still_verifies(
    nc, js, pg_pool, audit_settings
):
    audit, middle = await _old_and_newer_rows(nc, js, pg_pool, audit_settings)
    later = middle + timedelta(days=30)
    async with pg_pool.acquire() as conn:
        # Deleting without the flag, or without an archive, is refused even to the owner.
        with pytest.raises(REFUSED):
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {schema.OWNER}")
                await conn.execute(f"SET LOCAL {schema.RETENTION_FLAG} = 'verified-archive'")
                await conn.execute(f'DELETE FROM "{audit.schema_name}".log WHERE position = 1')

        result = await retention.archive(conn, audit, js, now=later, delete=True, retention_days=30)
        assert result is not None and result.report.ok and result.deleted, result and result.report.lines()
        assert result.from_position == 1 and result.records == result.to_position
        first = await conn.fetchval(f'SELECT min(position) FROM "{audit.schema_name}".log')
        assert first == result.to_position + 1

        keyring = checkpoints.load_keyring(audit)
        found = await checkpoints.gather(audit, conn)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, keyring)
        assert report.ok and report.from_position == first, report.lines()
        assert "archive" in report.notes[0]
        again = await retention.verify_archive(result.path, keyring, audit.log_id)
        assert again.ok and again.records == result.records
        # Deleting what the archive does not cover stays refused.
        with pytest.raises(REFUSED):
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {schema.OWNER}")
                await conn.execute(f"SET LOCAL {schema.RETENTION_FLAG} = 'verified-archive'")
                await conn.execute(f'DELETE FROM "{audit.schema_name}".log WHERE position = $1', first)


async def test_the_service_logs_in_as_its_own_role_which_can_append_and_nothing_more(nc, js, pg_pool, audit_settings):
    """Least privilege (SEC-2): the audit service's login role, as `madoguchi run` provisions it, is no superuser,
    cannot become the owner, cannot switch the append-only trigger off, and cannot change the log."""
    import audit_harness

    audit = await _log_with_rows(nc, js, pg_pool, audit_settings, n=10)
    t = f'"{audit.schema_name}"'
    async with audit_harness.service_pool().acquire() as conn:
        me = await conn.fetchrow(
            "SELECT current_user AS who, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert me["who"] == "mg_audit" and not me["rolsuper"] and not me["rolcreaterole"] and not me["rolcreatedb"]
        for sql in (
            "SET session_replication_role = replica",  # the superuser's way around the trigger
            f"SET ROLE {schema.OWNER}",
            f"UPDATE {t}.log SET ward = 'kita' WHERE position = 1",
            f"DELETE FROM {t}.log WHERE position = 1",
            f"TRUNCATE {t}.log",
            f"ALTER TABLE {t}.log DISABLE TRIGGER log_append_only",
            f"DROP TABLE {t}.log",
            "CREATE SCHEMA elsewhere",
            f"DELETE FROM {t}.checkpoint",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(sql)
        assert await conn.fetchval(f"SELECT count(*) FROM {t}.log") >= 10  # reading and appending is what it does
        members = {
            r["rolname"]
            for r in await conn.fetch(
                "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user"
            )
        }
        assert members == {schema.WRITER, schema.READER}


async def test_retention_drops_whole_day_partitions_that_are_all_archived_and_the_chain_verifies_across_the_cut(
    nc, js, pg_pool, audit_settings
):
    """Days of writing older than the retention whose records are all archived go as whole partitions (an empty old
    day too); the day the archived range ends in keeps its newer records (the archived ones deleted row by row)."""
    audit, middle = await _old_and_newer_rows(nc, js, pg_pool, audit_settings)
    t = f'"{audit.schema_name}"'
    today = middle.date()
    old, older, oldest = today - timedelta(days=35), today - timedelta(days=40), today - timedelta(days=45)
    async with pg_pool.acquire() as conn:
        top = await conn.fetchval(f"SELECT max(position) FROM {t}.log")
        assert top > 110
        # As if written on earlier days: 1..40 forty days ago, 41..110 thirty-five days ago (the row's day is its
        # partition, not part of the hashed header; moved by a superuser with the trigger off, a test's setup).
        await conn.execute(f"SELECT {t}.ensure_log_days($1, $2)", oldest, old)
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f"UPDATE {t}.log SET day = $1 WHERE position <= 40", older)
            await conn.execute(f"UPDATE {t}.log SET day = $1 WHERE position BETWEEN 41 AND 110", old)

        async def partitions() -> set[str]:
            return {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = $1::regclass",
                    f"{t}.log",
                )
            }

        name = "log_{:%Y%m%d}".format
        before = await partitions()
        assert {name(oldest), name(older), name(old), name(today)} <= before
        result = await retention.archive(
            conn, audit, js, now=middle + timedelta(days=30), delete=True, retention_days=30
        )
        assert result is not None and result.report.ok and result.deleted, result and result.report.lines()
        assert result.from_position == 1 and 40 < result.to_position < 110, result.to_position
        # The forty-days-ago day (all archived) and every empty day before today went whole (the ones made between
        # them and yesterday's); the day the range ends in stays with its newer records; today (after the cutoff) and
        # the days ahead stay.
        gone = {p for p in before if p < name(today)} - {name(old)}
        assert {name(oldest), name(older)} <= gone and set(result.partitions_dropped) == gone
        assert await partitions() == before - gone
        kept = [r["position"] for r in await conn.fetch(f'SELECT position FROM {t}."{name(old)}" ORDER BY position')]
        assert kept == list(range(result.to_position + 1, 111))
        assert await conn.fetchval(f"SELECT count(*) FROM {t}.log") == top - result.to_position
        assert await conn.fetchval(f"SELECT deleted_at IS NOT NULL FROM {t}.archive") is True

        keyring = checkpoints.load_keyring(audit)
        found = await checkpoints.gather(audit, conn)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, keyring)
        assert report.ok and report.from_position == result.to_position + 1 and report.to_position == top, (
            report.lines()
        )
        assert (await retention.verify_archive(result.path, keyring, audit.log_id)).records == result.records
