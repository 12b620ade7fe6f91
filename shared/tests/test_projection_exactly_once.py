"""ARCHITECTURE rule 3: a projection killed and restarted, with redelivery, counts each event once;
a malformed message goes to the dead-letter stream with its reason and the consumer keeps going."""

from __future__ import annotations

import asyncio
import json
import time

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import Projection
from madoguchi_shared.read_events import is_a

SCHEMA = "test_projection"


async def setup_schema(pool) -> None:
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            SCHEMA,
            [
                db.CHECKPOINTS_SQL
                + ";"
                + """
            CREATE TABLE training_hours (municipality text, staff_id text, n int, hours numeric,
                                         PRIMARY KEY (municipality, staff_id))"""
            ],
        )


def counting_projection(name: str, municipality: str, hang_after: int | None = None) -> Projection:
    calls = {"n": 0}

    async def apply(conn, batch):
        calls["n"] += 1
        rows: dict[tuple[str, str], list[float]] = {}
        for stored in batch:
            e = stored.event
            if is_a(e, TrainingItemCompleted):  # a Struct read by the fast path (read_events)
                acc = rows.setdefault((e.municipality, e.staff_id), [0, 0.0])
                acc[0] += 1
                acc[1] += e.hours
        await conn.executemany(
            f"""INSERT INTO "{SCHEMA}".training_hours VALUES ($1, $2, $3, $4)
                ON CONFLICT (municipality, staff_id) DO UPDATE
                SET n = training_hours.n + EXCLUDED.n, hours = training_hours.hours + EXCLUDED.hours""",
            [(m, s, n, h) for (m, s), (n, h) in rows.items()],
        )
        if hang_after is not None and calls["n"] > hang_after:
            await asyncio.Event().wait()  # hangs mid-batch until the process is killed (cancelled)

    return Projection(
        name=name,
        stream="MG_ADMIN",
        filter_subjects=[subjects.context_filter("admin", municipality)],
        apply=apply,
        schema=SCHEMA,
        batch=50,
    )


async def count(pool, municipality: str) -> tuple[int, float]:
    row = await pool.fetchrow(
        f'SELECT coalesce(sum(n),0) n, coalesce(sum(hours),0) h FROM "{SCHEMA}".training_hours WHERE municipality=$1',
        municipality,
    )
    return row["n"], float(row["h"])


def events(municipality: str, n: int) -> list[TrainingItemCompleted]:
    return [
        TrainingItemCompleted(municipality=municipality, staff_id=f"S{i % 7}", item="system", hours=1.5)
        for i in range(n)
    ]


async def test_killed_projection_restarted_with_redelivery_counts_each_event_once(js, nc, pg_pool, municipality):
    await setup_schema(pg_pool)
    await bus.publish_many(js, events(municipality, 120))
    name = f"p{municipality}"

    # first run is killed in its third batch: two batches (100 events) committed, the third rolled back
    dying = counting_projection(name, municipality, hang_after=2)
    task = asyncio.create_task(dying.run(nc, pg_pool))
    for _ in range(400):
        if dying.position and await count(pg_pool, municipality) == (100, 150.0):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await count(pg_pool, municipality) == (100, 150.0)

    # more arrive while it is down; the restart replays from sequence 1 (every message redelivered)
    await bus.publish_many(js, events(municipality, 30))
    again = counting_projection(name, municipality)
    task = asyncio.create_task(again.run(nc, pg_pool, from_seq=1))
    await again.wait_idle(20)
    await asyncio.sleep(0.2)
    await again.wait_idle(20)
    again.stop()
    await task
    assert await count(pg_pool, municipality) == (150, 225.0)

    # a third run after everything is applied changes nothing
    third = counting_projection(name, municipality)
    task = asyncio.create_task(third.run(nc, pg_pool, from_seq=1))
    await third.wait_idle(20)
    third.stop()
    await task
    assert await count(pg_pool, municipality) == (150, 225.0)
    assert third.applied == 0


async def test_malformed_message_goes_to_dead_letter_with_reason_and_consumer_keeps_going(
    js, nc, pg_pool, municipality
):
    await setup_schema(pg_pool)
    good = events(municipality, 3)
    subject = good[0].subject
    await bus.publish_many(js, good[:1])
    await js.publish(subject, b"{not json")
    bad = json.loads(good[1].model_dump_json())
    bad["hours"] = -5  # fails validation
    bad["event_id"] = "0192f0a4-0000-7000-8000-000000000001"
    await js.publish(subject, json.dumps(bad).encode())
    await js.publish(subject, json.dumps({"type": "no.such_type", "municipality": municipality}).encode())
    await bus.publish_many(js, good[1:])

    name = f"dlq{municipality}"
    projection = counting_projection(name, municipality)
    task = asyncio.create_task(projection.run(nc, pg_pool))
    await projection.wait_idle(20)
    projection.stop()
    await task
    assert await count(pg_pool, municipality) == (3, 4.5)
    assert projection.dead_lettered == 3

    reasons = []
    async for _seq, dlq_subject, _data, headers in bus.load_filter(js, subjects.dlq_subject(name)):
        assert dlq_subject == subjects.dlq_subject(name)
        assert headers["Mg-Original-Subject"] == subject
        reasons.append(headers["Mg-Reason"])
    assert len(reasons) == 3
    assert reasons[0].startswith("JSONDecodeError")
    assert "hours" in reasons[1] and "-5" not in reasons[1]  # the reason never echoes content
    assert "unknown event type" in reasons[2]


async def resend_after_window(js, batch, attempt: int = 1) -> None:
    """What the stream holds when an outbox sends a batch again after the duplicate window: the same
    events under new sequences (a new Nats-Msg-Id is what the server sees once the window is over)."""
    for event in batch:
        await js.publish(
            event.subject,
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"{event.event_id}.resent-{attempt}"},
        )


async def test_events_resent_after_the_duplicate_window_count_once(js, nc, pg_pool, municipality):
    await setup_schema(pg_pool)
    batch = events(municipality, 40)
    await bus.publish_many(js, batch)
    name = f"dup{municipality}"
    first = counting_projection(name, municipality)
    task = asyncio.create_task(first.run(nc, pg_pool))
    await first.wait_idle(20)
    assert await count(pg_pool, municipality) == (40, 60.0)

    # the re-send reaches the running projection (the stream holds both copies), plus 10 new events;
    # inside one batch, a copy and its original may meet too
    await resend_after_window(js, batch[:25])
    await bus.publish_many(js, events(municipality, 10))
    await resend_after_window(js, batch[25:] + batch[:5], attempt=2)
    for _ in range(200):
        await first.wait_idle(20)
        if first.duplicates == 45:
            break
        await asyncio.sleep(0.05)
    first.stop()
    await task
    assert await count(pg_pool, municipality) == (50, 75.0)
    assert first.duplicates == 45 and first.health()["duplicates"] == 45

    # a restart from sequence 1 still counts once; a rebuild (reset) replays both copies and keeps the first
    again = counting_projection(name, municipality)
    task = asyncio.create_task(again.run(nc, pg_pool, from_seq=1))
    await again.wait_idle(20)
    again.stop()
    await task
    assert await count(pg_pool, municipality) == (50, 75.0) and again.applied == 0

    async with pg_pool.acquire() as conn:
        await conn.execute(f'DELETE FROM "{SCHEMA}".training_hours WHERE municipality = $1', municipality)
        await again.reset(conn)
    rebuilt = counting_projection(name, municipality)
    task = asyncio.create_task(rebuilt.run(nc, pg_pool))
    await rebuilt.wait_idle(20)
    rebuilt.stop()
    await task
    assert await count(pg_pool, municipality) == (50, 75.0)
    assert rebuilt.duplicates == 45


async def test_applied_event_ids_are_pruned_by_their_own_time(nc, pg_pool, municipality):
    from madoguchi_shared.events.base import new_id
    from madoguchi_shared.projection import uuid7_floor

    await setup_schema(pg_pool)
    p = counting_projection(f"prune{municipality}", municipality)
    p.dedupe_days = 1.0
    async with pg_pool.acquire() as conn:
        await p.ensure_tables(conn)
        old = uuid7_floor(time.time() - 2 * 86400)
        fresh = new_id()
        await conn.executemany(
            f'INSERT INTO "{SCHEMA}".projection_applied_event VALUES ($1, $2)',
            [(p.name, old), (p.name, fresh), ("other", old)],
        )
    assert await p.prune_applied(pg_pool) == 1
    rows = await pg_pool.fetch(
        f'SELECT name, event_id FROM "{SCHEMA}".projection_applied_event WHERE name = ANY($1)', [p.name, "other"]
    )
    assert sorted((r["name"], r["event_id"]) for r in rows) == sorted([(p.name, fresh), ("other", old)])
