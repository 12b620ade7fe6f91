"""Deterministic rebuilds (issue 12): the statistics of a desk-day with two overlapping sessions
(the day restarted, ticket numbers issued again from 1), a late correction, and events published
out of wall-clock order are byte-identical however the stream is cut into batches; the recount
from the stream agrees."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from madoguchi_shared import bus, subjects
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events.base import Actor, Role

from madoguchi_reporting import schema
from madoguchi_reporting.cli import verify_async
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.projections import Notifier, desk_projection
from madoguchi_reporting.schema import SCHEMA, STAT_TABLES

from reporting_harness import reporting_settings
from sim_week import WEEK_START, simulate


def second_session(events: list, shift: dt.timedelta) -> list:
    """The same desk-day again, later (a restarted day): same ticket numbers, new visits and ids."""
    new_visit: dict = {}
    out = []
    for e in events:
        changes = {"event_id": uuid.uuid4(), "occurred_at": e.occurred_at + shift}
        if getattr(e, "visit_id", None) is not None:
            changes["visit_id"] = new_visit.setdefault(e.visit_id, uuid.uuid4())
        out.append(e.model_copy(update=changes))
    return out


async def project(nc, pool, m: str, name: str, batch: int) -> dict:
    """Drop the municipality's statistics, project its desk stream with batches of `batch`, checksum."""
    await clear(pool, m)
    p = desk_projection(Notifier(enabled=False), name=name, filters=[subjects.context_filter("desk", m)], batch=batch)
    target = await p.target(nc.jetstream())
    task = asyncio.create_task(p.run(nc, pool))
    try:
        while p.position < target:
            assert not task.done(), task
            await asyncio.sleep(0.02)
    finally:
        p.stop()
        await task
    assert p.dead_lettered == 0
    async with pool.acquire() as conn:
        return await schema.checksums(conn, m)


async def test_rebuilds_give_identical_tables_however_the_stream_is_batched(settings, nc, js, pg_pool, municipality):
    m = municipality
    async with pg_pool.acquire() as conn:
        await schema.migrate(conn)
    day = simulate(m, WEEK_START, desks=1, days=1, visitors=26, seed=21).events
    desk_events = [e for e in day if e.context == "desk"]
    again = second_session(
        [
            e
            for e in desk_events
            if e.type not in ("desk.extended_hours_scheduled", "desk.opening_suspended", "desk.opening_delayed")
        ],
        dt.timedelta(hours=2, minutes=30),
    )
    # overlapping sessions, published out of wall-clock order: half of the first, all of the second, the rest
    half = len(desk_events) // 2
    await bus.publish_many(js, desk_events[:half] + again + desk_events[half:])
    visit = next(e for e in desk_events if isinstance(e, dk.VisitEnded) and e.outcome == "completed")
    await bus.append(
        js,
        dk.VisitCorrected(
            municipality=m,
            ward=visit.ward,
            desk=visit.desk,
            visit_id=visit.visit_id,
            outcome="not_completed",
            reason="card_not_brought",
            note="訂正",
            actor=Actor(id="M001", role=Role.manager),
            occurred_at=visit.occurred_at - dt.timedelta(hours=1),
        ),
    )  # dated before the visit ended: out of order

    runs = [await project(nc, pg_pool, m, f"det{m}-{i}", batch) for i, batch in enumerate((1000, 7, 1000, 50))]
    assert all(r == runs[0] for r in runs[1:]), [
        (t, [r[t] for r in runs]) for t in runs[0] if len({r[t] for r in runs}) > 1
    ]
    assert runs[0]["visit"][0] >= 40 and runs[0]["ticket"][0] >= 20  # both sessions are in the tables

    cfg = ReportConfig(reporting_settings(settings))
    checks, text = await verify_async(nc, pg_pool, cfg, m, WEEK_START, WEEK_START, final=False)
    assert sum(len(c.mismatches) for c in checks) == 0, text
    await clear(pg_pool, m)  # the service's own projection applies these events later, from nothing


async def clear(pool, m: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for table in STAT_TABLES:
            await conn.execute(f'DELETE FROM "{SCHEMA}".{table} WHERE municipality = $1', m)
