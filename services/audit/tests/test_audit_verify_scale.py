"""Verification at scale (issue 13 item 7): the full run checks the day partitions in parallel, with the links
across partitions; the incremental run starts from the last verified signed checkpoint and reads only what is new."""

from __future__ import annotations

import asyncpg
from audit_harness import migrator_pool, publish, running_ingest, sample_events

from madoguchi_audit import schema, verify
from madoguchi_audit.cli import _record_run


async def _written_over_days(nc, js, pg_pool, audit, n: int = 240, days: int = 4):
    """A log written by the real writer, its records then spread over `days` day partitions in position order (as
    if written on consecutive days: the superuser moves whole runs of positions; `day` is not hashed)."""
    audit = audit.model_copy(update={"checkpoint_every": 25, "ingest_batch": 25})
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, n))
    async with running_ingest(audit, nc) as ingest:
        await ingest.wait_idle()
    t = f'"{audit.schema_name}"'
    async with pg_pool.acquire() as conn:
        total = await conn.fetchval(f"SELECT max(position) FROM {t}.log")
        per = total // days + 1
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                f"SELECT {t}.ensure_log_days(current_date - {days}, current_date)",
            )
            await conn.execute(
                f"UPDATE {t}.log SET day = (now() AT TIME ZONE 'UTC')::date - ({days - 1} - (position - 1) / {per})::int"
            )
        spread = await conn.fetch(f"SELECT day, min(position), max(position) FROM {t}.log GROUP BY day ORDER BY 2")
    assert len(spread) == days, spread
    return audit, total, [(r[1], r[2]) for r in spread]


def _connect(dsn: str):
    return lambda: asyncpg.connect(dsn)


async def test_the_full_run_checks_the_partitions_in_parallel_and_the_links_between_them(
    nc, js, pg_pool, settings, audit_settings
):
    audit, total, spans = await _written_over_days(nc, js, pg_pool, audit_settings)
    t = f'"{audit.schema_name}".log'
    dsn = settings.resolved_pg_dsn()
    async with pg_pool.acquire() as conn:
        one = await verify.verify_all(conn, nc, audit, jobs=1)
        par = await verify.verify_all(conn, nc, audit, jobs=3, connect=_connect(dsn))
        assert one.ok and par.ok, (one.lines(), par.lines())
        assert "verified in parallel: 4 partitions, 3 connections" in par.notes
        assert (par.records, par.to_position, par.head, par.checkpoints_checked) == (
            one.records,
            one.to_position,
            one.head,
            one.checkpoints_checked,
        ) and par.records == total
        assert par.reconciliation is not None and par.reconciliation.ok and par.reconciliation.records == total

        # The link across a partition boundary: the first record of the third partition re-chained from a forged
        # predecessor, every later hash recomputed, so each partition on its own is self-consistent.
        boundary = spans[2][0]
        rows = await conn.fetch(
            f"SELECT position, {verify.chain.HEADER_SQL} AS header, data FROM {t} WHERE position >= $1 ORDER BY position",
            boundary,
        )
        prev = b"\x07" * 32
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for r in rows:
                digest = verify.chain.link(prev, bytes(r["header"]), bytes(r["data"]))
                await conn.execute(
                    f"UPDATE {t} SET prev_hash = $2, hash = $3 WHERE position = $1", r["position"], prev, digest
                )
                prev = digest
        # Without checkpoints only the link between the partitions can tell: the parallel pass declines ...
        assert await verify.verify_db_parallel(conn, _connect(dsn), audit.schema_name, audit.log_id, [], {}) is None
        # ... and the full run locates the first bad record exactly (one pass after the parallel one declined).
        bad = await verify.verify_all(conn, nc, audit, jobs=3, connect=_connect(dsn))
        assert not bad.ok and bad.first_fault is not None and bad.first_fault.position == boundary, bad.lines()
        assert bad.fault is not None and bad.fault.position == boundary


async def test_moving_records_between_partitions_is_not_tampering_and_the_full_run_still_passes(
    nc, js, pg_pool, settings, audit_settings
):
    """`day` only places a record: records moved to another day's partition interleave the partitions' positions,
    the parallel pass declines, the single pass verifies the chain as intact."""
    audit, _, spans = await _written_over_days(nc, js, pg_pool, audit_settings, n=120, days=2)
    t = f'"{audit.schema_name}".log'
    async with pg_pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f"UPDATE {t} SET day = day - 1 WHERE position = $1", spans[1][0] + 5)
        report = await verify.verify_all(conn, nc, audit, jobs=2, connect=_connect(settings.resolved_pg_dsn()))
        assert report.ok, report.lines()
        assert not any(n.startswith("verified in parallel") for n in report.notes)


async def test_incremental_verification_reads_only_what_is_new_from_the_verified_signed_head(
    nc, js, pg_pool, audit_settings
):
    audit = audit_settings.model_copy(update={"checkpoint_every": 50, "ingest_batch": 50})
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, 400))
    async with running_ingest(audit, nc) as ingest:
        await ingest.wait_idle()
    t = f'"{audit.schema_name}".log'
    async with pg_pool.acquire() as conn:
        assert await verify.last_verified_checkpoint(conn, nc, audit) is None  # never verified: full
        full = await verify.verify_all(conn, nc, audit)
        assert full.ok and full.records >= 400
        await _record_run(nc, audit, full)  # what `audit verify` records on MG_AUDIT (the database cannot rewrite it)
        for added in (30, 300):
            await publish(js, sample_events(audit.municipality, added, seed=added))
            async with running_ingest(audit, nc) as ingest:
                await ingest.wait_idle()
            start = await verify.last_verified_checkpoint(conn, nc, audit)
            assert start is not None and start >= full.to_position - 50
            inc = await verify.verify_all(conn, nc, audit, from_checkpoint=start)
            top = await conn.fetchval(f"SELECT max(position) FROM {t}")
            assert inc.ok, inc.lines()
            assert inc.from_position == start + 1 and inc.records == top - start  # only what is new
            assert inc.records <= added + 60  # proportional to the records added (+ checkpoints, the last batch)
            assert inc.reconciliation is not None and inc.reconciliation.ok
            await _record_run(nc, audit, inc)
            full = inc

        # The next run checks the link from the verified signed head: the first record after it re-chained.
        await publish(js, sample_events(audit.municipality, 5, seed=99))
        async with running_ingest(audit, nc) as ingest:
            await ingest.wait_idle()
        start = await verify.last_verified_checkpoint(conn, nc, audit)
        assert start is not None and await conn.fetchval(f"SELECT max(position) FROM {t}") > start
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                f"UPDATE {t} SET prev_hash = '\\x00'::bytea || substr(prev_hash, 2) WHERE position = $1", start + 1
            )
        bad = await verify.verify_all(conn, nc, audit, from_checkpoint=start)
        assert not bad.ok and bad.first_fault is not None and bad.first_fault.position == start + 1, bad.lines()


def test_full_refuses_a_partial_run():
    from typer.testing import CliRunner

    from madoguchi_audit.cli import app

    result = CliRunner().invoke(app, ["verify", "--full", "--incremental"])
    assert result.exit_code == 2 and "--full verifies every record" in result.output
