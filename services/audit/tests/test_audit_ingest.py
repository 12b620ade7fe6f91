"""The log writer: exactly once across a kill -9, gap-free positions, checkpoints outside the
database, and it records what the bus holds (duplicates by event id, unreadable messages)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import audit_harness
from audit_harness import service_pool, publish, running_ingest, sample_events

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.events import dump_event

from madoguchi_audit import checkpoints, schema, verify


def _start_writer(settings, audit, log_path):
    env = {
        **os.environ,
        "MADOGUCHI_NATS_URL": settings.nats_url,
        "MADOGUCHI_PG_DSN": audit_harness.SERVICE_DSN,  # the writer logs in as mg_audit
        "MADOGUCHI_DATA_DIR": str(audit.data_dir),
        "MADOGUCHI_MUNICIPALITY": audit.municipality,
        "MADOGUCHI_LOG_JSON": "false",
        "MADOGUCHI_LOG_LEVEL": "WARNING",
        "MADOGUCHI_AUDIT_SCHEMA_NAME": audit.schema_name,
        "MADOGUCHI_AUDIT_MUNICIPALITIES": json.dumps(audit.municipalities),
        "MADOGUCHI_AUDIT_CHECKPOINT_EVERY": "400",
        "MADOGUCHI_AUDIT_INGEST_BATCH": "300",
    }
    out = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "madoguchi_audit.cli", "ingest"], env=env, stdout=out, stderr=out)


async def _count(pg_pool, audit) -> int:
    async with pg_pool.acquire() as conn:
        return await conn.fetchval(
            f"""SELECT count(*) FROM "{audit.schema_name}".log WHERE type IS DISTINCT FROM 'audit.checkpoint_signed'"""
        )


async def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_killing_the_writer_during_a_load_loses_and_doubles_nothing(
    nc, js, pg_pool, settings, migrated, tmp_path
):
    audit = migrated
    events = sample_events(audit.municipality, 6000, seed=7)
    log_path = tmp_path / "writer.log"

    async def load():  # the load keeps coming while the writer dies and comes back
        for i in range(0, len(events), 500):
            await publish(js, events[i : i + 500])
            await asyncio.sleep(0.02)

    loader = asyncio.create_task(load())
    first = _start_writer(settings, audit, log_path)
    try:
        await _wait_for(lambda: _ready(pg_pool, audit, 1000), 30, "the first writer to write")
        first.send_signal(signal.SIGKILL)  # mid-load: maybe mid-transaction
        first.wait(10)
        killed_at = await _count(pg_pool, audit)
        await loader
        second = _start_writer(settings, audit, log_path)
        try:
            await _wait_for(lambda: _ready(pg_pool, audit, len(events)), 60, "the second writer to catch up")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, log_path.read_text()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert 0 < killed_at < len(events)

    async with pg_pool.acquire() as conn:
        t = f'"{audit.schema_name}".log'
        count, low, high = await conn.fetchrow(f"SELECT count(*), min(position), max(position) FROM {t}")
        assert (low, high) == (1, count)  # 1..N: no gap, no duplicate (position is the key)
        assert await conn.fetchval(f"SELECT count(DISTINCT (stream, stream_seq)) FROM {t}") == count
        ids = await conn.fetchval(
            f"SELECT count(DISTINCT event_id) FROM {t} WHERE type NOT IN ('audit.checkpoint_signed', 'audit.signing_key_introduced')"
        )
        assert ids == len(events)
        # the auditors' hour spans, kept by the writer batch by batch across the kill, equal those of the records
        spans = f'SELECT municipality, hour, first_position, last_position FROM "{audit.schema_name}".hour_span ORDER BY 1, 2, 3'
        kept = [tuple(r) for r in await conn.fetch(spans)]
        assert kept and kept == [
            tuple(r)
            for r in await conn.fetch(f"{schema.HOUR_SPANS_SELECT.replace('FROM log', f'FROM {t}')} ORDER BY 1, 2, 3")
        ]
        found = await checkpoints.gather(audit, conn, nc)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, checkpoints.load_keyring(audit))
    assert report.ok and report.records == count, report.lines()
    assert report.last_checkpoint is not None and report.last_checkpoint >= len(events)


async def _ready(pg_pool, audit, n: int) -> bool:
    return await _count(pg_pool, audit) >= n


async def test_checkpoints_go_to_the_file_and_the_stream_and_an_idle_log_stops_signing(nc, js, pg_pool, migrated):
    audit = migrated.model_copy(update={"checkpoint_every": 50, "checkpoint_seconds": 0.2})
    await publish(js, sample_events(audit.municipality, 120))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        await asyncio.sleep(1.0)  # several timer periods with only our own checkpoint records arriving
        await ingest.wait_idle()
        before = ingest.last_cp_position
        await asyncio.sleep(1.0)
        await ingest.wait_idle()
        assert ingest.last_cp_position == before  # it does not chase its own checkpoint records
    in_file = checkpoints.read_file(audit.resolved_checkpoint_file, audit.log_id)
    subject = subjects.aggregate_subject("audit", audit.municipality, "checkpoint", audit.log_id)
    on_bus = [s.event for s in await bus.load(nc, subject)]
    assert [c.position for c in in_file] == [c.position for c in on_bus]
    keyring = checkpoints.load_keyring(audit)
    assert all(checkpoints.signature_ok(c, keyring) for c in in_file)
    assert in_file[-1].position >= 120
    assert (audit.resolved_signing_key_file.stat().st_mode & 0o777) == 0o600


async def test_duplicates_and_unreadable_messages_are_recorded_as_the_bus_holds_them(nc, js, pg_pool, migrated):
    audit = migrated
    events = sample_events(audit.municipality, 3)
    await publish(js, events)
    # An outbox resend after the dedup window: the same event id with a different message id.
    await js.publish(
        events[0].subject, dump_event(events[0]), headers={"Nats-Msg-Id": "resend-" + str(events[0].event_id)}
    )
    await js.publish(
        subjects.aggregate_subject("admin", audit.municipality, "staff", "S1"),
        b"\xff not json",
        headers={"Nats-Msg-Id": "bad-1"},
    )
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        t = f'"{audit.schema_name}".log'
        assert await conn.fetchval(f"SELECT count(*) FROM {t} WHERE event_id = $1", events[0].event_id) == 2
        # the resend is named a duplicate of the first record (in the writer's transaction), nothing else is
        first, again = [
            r["position"]
            for r in await conn.fetch(
                f"SELECT position FROM {t} WHERE event_id = $1 ORDER BY position", events[0].event_id
            )
        ]
        named = await conn.fetch(f'SELECT position, first_position FROM "{audit.schema_name}".duplicate')
        assert [(r["position"], r["first_position"]) for r in named] == [(again, first)]
        bad = await conn.fetchrow(f"SELECT parsed, type, data FROM {t} WHERE NOT parsed")
        assert bad["type"] is None and bytes(bad["data"]) == b"\xff not json"
        found = await checkpoints.gather(audit, conn)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, checkpoints.load_keyring(audit))
    assert report.ok, report.lines()


async def test_duplicates_across_batches_name_the_first_record(nc, js, pg_pool, migrated):
    """An id first written in an earlier batch (or run), resent twice in one later batch, and an id repeated
    inside one batch: each later copy is named with the position of the first, nothing else is."""
    audit = migrated
    events = sample_events(audit.municipality, 6, seed=7)
    await publish(js, events[:4])
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    resends = [events[0], events[0], events[1], events[4], events[4]]  # [4] is new: first and repeat in one batch
    for i, e in enumerate(resends):
        await js.publish(e.subject, dump_event(e), headers={"Nats-Msg-Id": f"resend-{i}-{e.event_id}"})
    await publish(js, events[5:])
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        t = f'"{audit.schema_name}".log'
        positions: dict[str, list[int]] = {}
        for r in await conn.fetch(f"SELECT event_id, position FROM {t} WHERE event_id IS NOT NULL ORDER BY position"):
            positions.setdefault(str(r["event_id"]), []).append(r["position"])
        want = sorted((later, copies[0]) for copies in positions.values() if len(copies) > 1 for later in copies[1:])
        named = await conn.fetch(f'SELECT position, first_position FROM "{audit.schema_name}".duplicate')
        assert sorted((r["position"], r["first_position"]) for r in named) == want
        assert len(want) == 4 and len(positions[str(events[0].event_id)]) == 3
        firsts = await conn.fetch(f'SELECT event_id, position FROM "{audit.schema_name}".event_first')
        assert {str(r["event_id"]): r["position"] for r in firsts} == {k: v[0] for k, v in positions.items()}


async def test_a_second_writer_waits_as_a_standby(nc, js, pg_pool, migrated):
    audit = migrated
    await publish(js, sample_events(audit.municipality, 50))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        from madoguchi_audit.ingest import Ingest

        standby = Ingest(audit, nc, service_pool())
        task = asyncio.create_task(standby.run())
        await asyncio.sleep(1.5)
        assert not standby._running.is_set()  # still waiting for the lock
        standby.stop()
        await asyncio.wait_for(task, 5)
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval(f'SELECT count(*) FROM "{audit.schema_name}".log') >= 50
    assert schema.WRITER == "audit_writer"


async def test_interleaved_municipalities_are_chained_in_arrival_order_and_paged_each(
    nc, js, pg_pool, settings, tmp_path
):
    """Batches of several municipalities interleaved: the positions and the chain follow arrival, each
    municipality's pages (and the type prefix filter, on the byte-compared columns) find its records, and the log
    verifies."""
    from madoguchi_shared.events.audit import QueryFilters

    from madoguchi_audit import query
    from tests.utils.servers import unique_municipality

    towns = [unique_municipality() for _ in range(3)]
    audit = audit_harness.make_audit_settings(settings, towns[0], tmp_path, municipalities=towns)
    await schema.migrate_pool(audit_harness.MIGRATOR_POOL, audit.schema_name)
    per_town = [sample_events(town, 40, seed=i) for i, town in enumerate(towns)]
    interleaved = [e for group in zip(*per_town, strict=True) for e in group]
    await publish(js, interleaved)
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        t = f'"{audit.schema_name}".log'
        by_position = await conn.fetch(f"SELECT position, event_id, municipality FROM {t} ORDER BY position")
        stored = [r for r in by_position if r["event_id"] is not None]
        # each stream's events in publishing order, at increasing positions (positions follow arrival)
        for stream_events in ([e for e in interleaved if bus.stream_for(e.subject) == s] for s in bus.LOG_STREAMS):
            ids = {e.event_id for e in stream_events}
            assert [r["event_id"] for r in stored if r["event_id"] in ids] == [e.event_id for e in stream_events]
        assert [r["position"] for r in by_position] == list(range(1, len(by_position) + 1))
        for town, events in zip(towns, per_town, strict=True):
            sql, args = query.build(audit.schema_name, QueryFilters(), query.Scope(town), 1000)
            page = [r["event_id"] for r in await conn.fetch(sql, *args)]
            assert page == [r["event_id"] for r in stored if r["municipality"] == town]
            assert {e.event_id for e in events} <= set(page)  # and the signed checkpoints of the first town
            sql, args = query.build(audit.schema_name, QueryFilters(event_type="device."), query.Scope(town), 1000)
            assert {r["type"] for r in await conn.fetch(sql, *args)} == {
                e.type for e in events if e.type.startswith("device.")
            }
        found = await checkpoints.gather(audit, conn)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, checkpoints.load_keyring(audit))
    assert report.ok, report.lines()
