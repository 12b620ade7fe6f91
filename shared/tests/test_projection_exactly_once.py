"""ARCHITECTURE rule 3: a projection killed and restarted, with redelivery, counts each event once;
a malformed message goes to the dead-letter stream with its reason and the consumer keeps going."""

from __future__ import annotations

import asyncio
import json

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import Projection

SCHEMA = "test_projection"


async def setup_schema(pool) -> None:
    async with pool.acquire() as conn:
        await db.migrate(conn, SCHEMA, [db.CHECKPOINTS_SQL + ";" + """
            CREATE TABLE training_hours (municipality text, staff_id text, n int, hours numeric,
                                         PRIMARY KEY (municipality, staff_id))"""])


def counting_projection(name: str, municipality: str, hang_after: int | None = None) -> Projection:
    calls = {"n": 0}

    async def apply(conn, batch):
        calls["n"] += 1
        rows: dict[tuple[str, str], list[float]] = {}
        for stored in batch:
            e = stored.event
            if isinstance(e, TrainingItemCompleted):
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

    return Projection(name=name, stream="MG_ADMIN", filter_subjects=[subjects.context_filter("admin", municipality)],
                      apply=apply, schema=SCHEMA, batch=50)


async def count(pool, municipality: str) -> tuple[int, float]:
    row = await pool.fetchrow(f'SELECT coalesce(sum(n),0) n, coalesce(sum(hours),0) h FROM "{SCHEMA}".training_hours WHERE municipality=$1', municipality)
    return row["n"], float(row["h"])


def events(municipality: str, n: int) -> list[TrainingItemCompleted]:
    return [TrainingItemCompleted(municipality=municipality, staff_id=f"S{i % 7}", item="system", hours=1.5) for i in range(n)]


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


async def test_malformed_message_goes_to_dead_letter_with_reason_and_consumer_keeps_going(js, nc, pg_pool, municipality):
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
