"""audit.log is partitioned by day (issue 13 item 7): partitions exist ahead, a record dated anywhere is kept,
the append-only rules and the roles hold on every partition, and an existing plain table migrates with every
record, its chain and its signed checkpoints intact."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import pytest
from audit_harness import memory_log, migrator_pool, publish, running_ingest, sample_events

from madoguchi_shared import db, subjects
from madoguchi_shared.events import Actor, Role
from madoguchi_shared.events.admin import LoginSucceeded

from madoguchi_audit import chain, checkpoints, schema, verify

PARTITIONED_AT = schema.MIGRATIONS.index(schema.PARTITION_BY_DAY_SQL) + 1


def _today() -> date:
    return datetime.now(UTC).date()


async def _partitions(conn, schema_name: str) -> dict[str, dict]:
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl,
                  pg_get_expr(c.relpartbound, c.oid) AS bound,
                  array(SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = c.oid ORDER BY 1) AS triggers
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = format('%I.log', $1::text)::regclass""",
        schema_name,
    )
    return {r["relname"]: dict(r) for r in rows}


async def test_partitions_exist_ahead_and_carry_the_rules_and_no_grants(pg_pool, audit_settings):
    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    async with pg_pool.acquire() as conn:
        kind = await conn.fetchval(
            "SELECT relkind FROM pg_class WHERE oid = $1::regclass", f'"{audit.schema_name}".log'
        )
        assert kind == b"p"
        parts = await _partitions(conn, audit.schema_name)
        for offset in range(-1, 8):
            name = f"log_{(_today() + timedelta(days=offset)):%Y%m%d}"
            assert name in parts, (name, sorted(parts))
        for p in parts.values():
            assert p["owner"] == schema.OWNER, p
            # No privilege for anyone but the owner: the writer and the reader go through the parent.
            assert p["acl"] is None or all(
                entry.startswith(f"{schema.OWNER}=") for entry in p["acl"][1:-1].split(",")
            ), p
            assert {"log_append_only", "log_no_truncate"} <= set(p["triggers"]), p


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE {p} SET ward = 'kita'",
        "DELETE FROM {p}",
        "TRUNCATE {p}",
        "INSERT INTO {p} SELECT * FROM {p} LIMIT 1",
        "UPDATE {t}.log SET ward = 'kita' WHERE position = 1",
        "DELETE FROM {t}.log WHERE position = 1",
        "UPDATE {t}.log SET day = day + 1 WHERE position = 1",
        "TRUNCATE {t}.log",
        "ALTER TABLE {t}.log DETACH PARTITION {p}",
        "DROP TABLE {p}",
        "ALTER TABLE {p} DISABLE TRIGGER log_append_only",
        "SELECT {t}.ensure_log_days('2000-01-01', '2000-01-02')",
    ],
)
async def test_the_writer_cannot_change_a_partition_directly_or_through_the_log(nc, js, pg_pool, audit_settings, sql):
    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, 10))
    async with running_ingest(audit, nc) as ingest:
        await ingest.wait_idle()
    t = f'"{audit.schema_name}"'
    part = f"{t}.log_{_today():%Y%m%d}"
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {part}") >= 10  # today's partition holds the records
        for role in (schema.WRITER, schema.READER):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL ROLE {role}")
                    await conn.execute(sql.format(t=t, p=part))
        # The owner (or an administrator's slip) is stopped by the trigger on the partition itself.
        if sql.split()[0] in ("UPDATE", "DELETE", "TRUNCATE"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL ROLE {schema.OWNER}")
                    await conn.execute(sql.format(t=t, p=part))
        assert await conn.fetchval(f"SELECT count(*) FROM {t}.log") >= 10


async def test_events_dated_anywhere_are_kept_in_the_partition_of_the_day_written(nc, js, pg_pool, audit_settings):
    """An outbox replayed years late, a device clock years ahead: the partition is the day the database wrote the
    record (its clock), so no event date can miss a partition; the auditors' time filter still finds them."""
    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    odd = [datetime(2001, 2, 3, 4, 5, tzinfo=UTC), datetime(2099, 12, 31, 23, 0, tzinfo=UTC)]
    events = [
        LoginSucceeded(
            municipality=audit.municipality,
            staff_id="S0001",
            service="desk",
            occurred_at=at,
            actor=Actor(id="S0001", role=Role.supporter),
        )
        for at in odd
    ]
    await publish(js, events)
    async with running_ingest(audit, nc) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch(
            f'SELECT occurred_at, day, tableoid::regclass::text AS part FROM "{audit.schema_name}".log '
            "WHERE type = 'admin.login_succeeded' ORDER BY position"
        )
        assert [r["occurred_at"] for r in rows] == odd
        assert {r["day"] for r in rows} <= {_today(), _today() - timedelta(days=1)}  # written today (UTC)
        assert all(r["part"].endswith(f"log_{r['day']:%Y%m%d}") for r in rows)


async def test_a_day_without_a_partition_is_made_on_demand(pg_pool, audit_settings):
    """The database's clock jumping to a day without a partition: the writer's per-batch `ensure_log_ahead()` makes
    it (here: the partitions of today are dropped by the owner to stand for a clock that moved on)."""
    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    t = f'"{audit.schema_name}"'
    async with pg_pool.acquire() as conn:
        for offset in range(-1, 8):
            await conn.execute(f"DROP TABLE {t}.log_{(_today() + timedelta(days=offset)):%Y%m%d}")
        rows, _, _ = chain.chain_records(
            [chain.Message("MG_ADMIN", 1, subjects.aggregate_subject("admin", "011002", "staff", "x"), b"{}")],
            0,
            chain.GENESIS,
        )
        with pytest.raises(asyncpg.CheckViolationError):  # without a partition a write fails (and is retried)
            await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=rows, columns=chain.COLUMNS)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {schema.WRITER}")
            assert await conn.fetchval(f"SELECT {t}.ensure_log_ahead()") == 9
            assert await conn.fetchval(f"SELECT {t}.ensure_log_ahead()") == 0  # a look when they exist
            await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=rows, columns=chain.COLUMNS)
        assert await conn.fetchval(f"SELECT count(*) FROM {t}.log") == 1
        parts = await _partitions(conn, audit.schema_name)
        assert all(p["owner"] == schema.OWNER for p in parts.values())  # made by the writer's call, owned by the owner


async def test_a_plain_log_migrates_with_every_record_its_chain_and_checkpoints(pg_pool, audit_settings):
    """An install from before partitioning: its plain table, written over several days, becomes the partitioned log;
    every record, its position and hash stay, the chain verifies against the checkpoints signed before, and a
    superuser's deletion afterwards is still found at its exact position."""
    audit = audit_settings
    key = checkpoints.SigningKey(Ed25519PrivateKey.generate())
    start = datetime.now(UTC) - timedelta(days=7)
    events = [
        e.model_copy(update={"occurred_at": start + timedelta(minutes=30 * i)})
        for i, e in enumerate(sample_events(audit.municipality, 300))
    ]  # over 6 days
    events[7] = events[7].model_copy(update={"occurred_at": datetime(2099, 1, 1, tzinfo=UTC)})  # a clock far ahead
    full, cps = memory_log(events, key, audit.municipality, cp_every=50, log_id=audit.log_id)
    keyring = {key.key_id: key.public}
    async with migrator_pool().acquire() as conn:  # the schema as it was before this migration
        await db.migrate(conn, audit.schema_name, schema.MIGRATIONS[: PARTITIONED_AT - 1])
    async with pg_pool.acquire() as conn:
        await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=full, columns=chain.COLUMNS)
        before = await verify.verify_db(conn, audit.schema_name, audit.log_id, cps, keyring)
        assert before.ok and before.records == 300
    assert await schema.migrate_pool(migrator_pool(), audit.schema_name) == len(schema.MIGRATIONS)
    async with pg_pool.acquire() as conn:
        t = f'"{audit.schema_name}".log'
        stored = [
            tuple(r) for r in await conn.fetch(f"SELECT position, data, prev_hash, hash FROM {t} ORDER BY position")
        ]
        assert stored == [(r[0], r[15], r[16], r[17]) for r in full]  # and the columns: the chain verifies below
        first = f'"{audit.schema_name}".event_first'  # each event id's first position (the writer's duplicate check)
        assert await conn.fetchval(f"SELECT count(*) FROM {first}") == len({r[5] for r in full}) == 300
        days = [r["day"] for r in await conn.fetch(f"SELECT day FROM {t} ORDER BY position")]
        assert days == sorted(days) and len(set(days)) >= 5 and max(days) <= _today()  # clamped, not 2099
        parts = await _partitions(conn, audit.schema_name)
        assert {f"log_{d:%Y%m%d}" for d in days} <= set(parts)
        after = await verify.verify_db(conn, audit.schema_name, audit.log_id, cps, keyring)
        assert after.ok and after.records == 300 and after.checkpoints_checked == len(cps), after.lines()
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f"DELETE FROM {t} WHERE position = 123")
        bad = await verify.verify_db(conn, audit.schema_name, audit.log_id, cps, keyring)
        assert not bad.ok and bad.fault is not None and (bad.fault.kind, bad.fault.position) == ("deleted", 123)
