"""A projection whose last commits the database lost (`make faults`: reporting's commits are asynchronous, and
PostgreSQL killed with -9 lost the batch committed just before: 37 tickets in no report, the position stored by
the next batch past them). The runner, still holding the position it committed, must read again from the stored
one, never claim from it a batch that starts after it."""

from __future__ import annotations

import asyncio

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import Projection

SCHEMA = "test_projection_lost"


async def setup_schema(pool) -> None:
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            SCHEMA,
            [db.CHECKPOINTS_SQL + "; CREATE TABLE applied (name text NOT NULL, seq bigint NOT NULL, event_id uuid)"],
        )


def recording_projection(name: str, municipality: str) -> Projection:
    """Records every event it applies (one row each), in the projection's transaction."""

    async def apply(conn, batch):
        await conn.executemany(
            f'INSERT INTO "{SCHEMA}".applied VALUES ($1, $2, $3)', [(name, s.seq, s.event.event_id) for s in batch]
        )

    return Projection(
        name=name,
        stream="MG_ADMIN",
        filter_subjects=[subjects.context_filter("admin", municipality)],
        apply=apply,
        schema=SCHEMA,
        batch=10,
    )


def events(municipality: str, n: int) -> list[TrainingItemCompleted]:
    return [TrainingItemCompleted(municipality=municipality, staff_id="S1", item="system", hours=1.0) for _ in range(n)]


async def applied(pool, name: str) -> list[int]:
    rows = await pool.fetch(f'SELECT seq FROM "{SCHEMA}".applied WHERE name = $1 ORDER BY seq', name)
    return [r["seq"] for r in rows]


async def lose_commits_after(pool, p: Projection, seq: int) -> None:
    """What a crash does to commits not yet flushed: every transaction after the one that stored `seq` is
    gone, its effects, its applied event ids and its position with it."""
    async with pool.acquire() as conn, conn.transaction():
        lost = await conn.fetch(
            f'DELETE FROM "{SCHEMA}".applied WHERE name = $1 AND seq > $2 RETURNING event_id', p.name, seq
        )
        await conn.execute(
            f'DELETE FROM "{SCHEMA}".projection_applied_event WHERE name = $1 AND event_id = ANY($2::uuid[])',
            p.name,
            [r["event_id"] for r in lost],
        )
        await conn.execute(f'UPDATE "{SCHEMA}".projection_checkpoint SET last_seq = $2 WHERE name = $1', p.name, seq)


async def until_applied(pool, p: Projection, want: list[int], timeout: float = 10.0) -> list[int]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await applied(pool, p.name)
        async with pool.acquire() as conn:
            stored = await p.stored_position(conn)
        if (got == want and stored == want[-1]) or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.05)


async def stored_seqs(js, municipality: str) -> list[int]:
    return [seq async for seq, *_ in bus.load_filter(js, subjects.context_filter("admin", municipality))]


async def test_commits_lost_by_the_database_are_applied_again_by_the_next_batch(js, nc, pg_pool, municipality):
    await setup_schema(pg_pool)
    await bus.publish_many(js, events(municipality, 30))
    p = recording_projection(f"lost{municipality}", municipality)
    task = asyncio.create_task(p.run(nc, pg_pool))
    try:
        await p.wait_idle(20)
        seqs = await stored_seqs(js, municipality)
        assert await applied(pg_pool, p.name) == seqs and p.position == seqs[-1]
        p._replay_checked = float("inf")  # pyright: ignore[reportPrivateUsage] - no idle check: the next batch must notice
        await lose_commits_after(pg_pool, p, seqs[11])
        await bus.publish_many(js, events(municipality, 5))  # the next batch starts after the runner's position
        seqs = await stored_seqs(js, municipality)
        assert (
            await until_applied(pg_pool, p, seqs) == seqs
        )  # before: seqs[12:30] never applied, the position past them
    finally:
        p.stop()
        await task
    assert p.dead_lettered == 0


async def test_commits_lost_while_the_projection_is_idle_are_applied_again(js, nc, pg_pool, municipality):
    await setup_schema(pg_pool)
    await bus.publish_many(js, events(municipality, 30))
    p = recording_projection(f"lostidle{municipality}", municipality)
    task = asyncio.create_task(p.run(nc, pg_pool))
    try:
        await p.wait_idle(20)
        seqs = await stored_seqs(js, municipality)
        await lose_commits_after(pg_pool, p, seqs[4])
        assert await until_applied(pg_pool, p, seqs) == seqs  # nothing new comes: noticed while idle
    finally:
        p.stop()
        await task
