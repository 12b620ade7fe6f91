"""Poison isolation in the shared runner (issue 12): a schema-valid event that a projection cannot
store is found by bisecting its batch, dead-lettered with its reason, recorded, alerted, and the
position moves past it; everything else is applied. A database that goes away is a transient
failure: retried with backoff, nothing dead-lettered."""

from __future__ import annotations

import asyncio

from madoguchi_shared import bus, db, reader, subjects
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import ALERT_RULE, Projection
from madoguchi_shared.runtime import PostgresServer

SCHEMA = "test_poison"


async def setup_schema(pool) -> None:
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            SCHEMA,
            [
                db.CHECKPOINTS_SQL
                + ";"
                + """
            CREATE TABLE training_log (municipality text, staff_id text, hours numeric CHECK (hours <= 24));
            CREATE TABLE training_total (municipality text PRIMARY KEY, n int, hours numeric)"""
            ],
        )


async def apply(conn, batch) -> None:
    for stored in batch:
        e = stored.event
        if e.staff_id == "BUG":
            raise KeyError("a bug in one handler")
        await conn.execute(
            f'INSERT INTO "{SCHEMA}".training_log VALUES ($1, $2, $3)', e.municipality, e.staff_id, e.hours
        )
    await conn.executemany(
        f"""INSERT INTO "{SCHEMA}".training_total VALUES ($1, 1, $2) ON CONFLICT (municipality) DO UPDATE
            SET n = training_total.n + 1, hours = training_total.hours + EXCLUDED.hours""",
        [(s.event.municipality, s.event.hours) for s in batch],
    )


def projection(name: str, municipality: str, schema: str = SCHEMA) -> Projection:
    return Projection(
        name=name,
        stream="MG_ADMIN",
        filter_subjects=[subjects.context_filter("admin", municipality)],
        apply=apply,
        schema=schema,
        batch=40,
    )


def ev(municipality: str, staff: str, hours: float = 1.0) -> TrainingItemCompleted:
    return TrainingItemCompleted(municipality=municipality, staff_id=staff, item="system", hours=hours)


async def total(pool, municipality: str) -> tuple[int, float]:
    row = await pool.fetchrow(
        f'SELECT coalesce(sum(n), 0) n, coalesce(sum(hours), 0) h FROM "{SCHEMA}".training_total '
        "WHERE municipality = $1",
        municipality,
    )
    return row["n"], float(row["h"])


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_poison_events_are_dead_lettered_alerted_and_the_rest_is_applied(nc, js, pg_pool, municipality):
    await setup_schema(pg_pool)
    events = [ev(municipality, f"S{i % 3}") for i in range(100)]
    events[17] = ev(municipality, "S1", hours=30.0)  # valid (≤ 40 h), but the table holds ≤ 24: a database error
    events[71] = ev(municipality, "BUG")  # a bug in one handler
    await bus.publish_many(js, events)

    name = f"poison{municipality}"
    p = projection(name, municipality)
    task = asyncio.create_task(p.run(nc, pg_pool))
    try:
        await until(lambda: _eq(total(pg_pool, municipality), (98, 98.0)))
        assert not task.done()  # no restart loop: the runner went on
        assert p.dead_lettered == 2 and p.health()["status"] == "dead_lettered"

        # later events are projected within 5 s
        await bus.publish_many(js, [ev(municipality, "S9", 2.0) for _ in range(5)])
        await until(lambda: _eq(total(pg_pool, municipality), (103, 108.0)), timeout=5.0)
        assert not task.done()
    finally:
        p.stop()
        await task

    # the dead-letter stream has both, with reasons that never echo content
    dead = [m async for m in reader.read_all(nc, subjects.dlq_subject(name), stream="MG_DLQ")]
    assert [parse_event(m.data).event_id for m in dead] == [events[17].event_id, events[71].event_id]
    assert "CheckViolation" in dead[0].headers["Mg-Reason"] and "30" not in dead[0].headers["Mg-Reason"]
    assert dead[1].headers["Mg-Reason"].startswith("KeyError")
    # recorded in the same transaction as the position, which is past them
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch(
            f'SELECT seq, reason FROM "{SCHEMA}".projection_dead_letter WHERE name = $1 ORDER BY seq', name
        )
        assert [r["seq"] for r in rows] == [int(m.headers["Mg-Original-Seq"]) for m in dead]
        assert await p.stored_position(conn) > rows[-1]["seq"]
    # an HQ alert per dead letter
    alerts = [
        parse_event(m.data)
        async for m in reader.read_all(nc, subjects.context_filter("audit", municipality, "alert"), stream="MG_AUDIT")
    ]
    assert [a.rule for a in alerts] == [ALERT_RULE, ALERT_RULE]
    assert all(a.severity == "warning" and name in a.message for a in alerts)
    assert {a.source_event_ids[0] for a in alerts} == {events[17].event_id, events[71].event_id}


async def test_dead_letter_replayed_after_a_fix(nc, js, pg_pool, municipality):
    await setup_schema(pg_pool)
    await bus.publish_many(js, [ev(municipality, "S1"), ev(municipality, "BUG"), ev(municipality, "S2")])
    name = f"replay{municipality}"
    p = projection(name, municipality)
    task = asyncio.create_task(p.run(nc, pg_pool))
    try:
        await until(lambda: _eq(total(pg_pool, municipality), (2, 2.0)))
        assert p.dead_lettered == 1
        async with pg_pool.acquire() as conn:
            seq = await conn.fetchval(f'SELECT seq FROM "{SCHEMA}".projection_dead_letter WHERE name = $1', name)

        async def fixed(conn, batch):  # the handler after the fix
            await apply(conn, [b for b in batch if b.event.staff_id != "BUG"])
            await conn.execute(
                f"""INSERT INTO "{SCHEMA}".training_total VALUES ($1, 1, 0) ON CONFLICT (municipality)
                                   DO UPDATE SET n = training_total.n + 1""",
                municipality,
            )

        p.apply = fixed
        await js.publish(subjects.dlq_replay_subject(name), b'{"seq": %d}' % seq)
        await until(lambda: _eq(total(pg_pool, municipality), (3, 2.0)))
        await js.publish(subjects.dlq_replay_subject(name), b'{"seq": %d}' % seq)  # a second request: no effect
        await asyncio.sleep(2.5)
        assert await total(pg_pool, municipality) == (3, 2.0)
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval(
                f'SELECT replayed_at IS NOT NULL FROM "{SCHEMA}".projection_dead_letter WHERE name = $1', name
            )
    finally:
        p.stop()
        await task


async def test_database_down_is_retried_with_backoff_and_never_dead_lettered(nc, js, tmp_path, municipality):
    server = PostgresServer(tmp_path / "pg").start()
    pool = await db.create_pool(server.dsn, max_size=4)
    try:
        await setup_schema(pool)
        await bus.publish_many(js, [ev(municipality, "S1") for _ in range(10)])
        name = f"transient{municipality}"
        p = projection(name, municipality)
        task = asyncio.create_task(p.run(nc, pool))
        await until(lambda: _eq(total(pool, municipality), (10, 10.0)))

        server.stop()  # the database goes away; events keep arriving
        await bus.publish_many(js, [ev(municipality, "S2") for _ in range(15)])

        async def retried() -> bool:
            return p.transient_failures >= 2

        await until(retried, timeout=20)
        assert not task.done() and p.dead_lettered == 0

        server.start()  # back on the same port: the runner goes on by itself
        await until(lambda: _eq(total(pool, municipality), (25, 25.0)), timeout=40)
        assert p.dead_lettered == 0 and not task.done()
        p.stop()
        await task
        dead = [m async for m in reader.read_all(nc, subjects.dlq_subject(name), stream="MG_DLQ")]
        assert dead == []
    finally:
        await pool.close()
        server.stop()


async def _eq(coro, expected) -> bool:
    return await coro == expected
