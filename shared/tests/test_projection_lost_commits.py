"""A projection whose last commits the database lost (`make faults`: reporting's commits are asynchronous, and
PostgreSQL killed with -9 lost the batch committed just before: 37 tickets in no report, the position stored by
the next batch past them). The runner, still holding the position it committed, must read again from the stored
one, never claim from it a batch that starts after it.

A rebuild also puts the stored position behind a live runner's: while the rebuild's lock is held, the live
runner waits (it read the whole stream again behind the lock before); a rebuild abandoned half way leaves the
stored position behind for good, and the live runner then reads again from it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import Projection, Transient
from madoguchi_shared.runtime import PostgresServer

SCHEMA = "test_projection_lost"
REBUILD_LOCK = 0x4C4F5354  # this test's rebuild lock, as reporting's: exclusive for a rebuild, shared by a live batch


async def setup_schema(pool) -> None:
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            SCHEMA,
            [db.CHECKPOINTS_SQL + "; CREATE TABLE applied (name text NOT NULL, seq bigint NOT NULL, event_id uuid)"],
        )


class Rebuilding(Transient):
    pass


async def live_guard(conn) -> None:
    """A live batch's check, as reporting's `live_batch_guard`: never waits for the rebuild's lock."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock_shared($1)", REBUILD_LOCK):
        raise Rebuilding("a rebuild runs")


def recording_projection(name: str, municipality: str, *, live: bool = False) -> Projection:
    """Records every event it applies (one row each), in the projection's transaction; a live one checks for
    a rebuild first (in its batches and as its `rebuild_guard`)."""

    async def apply(conn, batch):
        if live:
            await live_guard(conn)
        await conn.executemany(
            f'INSERT INTO "{SCHEMA}".applied VALUES ($1, $2, $3)', [(name, s.seq, s.event.event_id) for s in batch]
        )
        await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")  # as reporting's batches

    return Projection(
        name=name,
        stream="MG_ADMIN",
        filter_subjects=[subjects.context_filter("admin", municipality)],
        apply=apply,
        schema=SCHEMA,
        batch=10,
        rebuild_guard=live_guard if live else None,
    )


def events(municipality: str, n: int) -> list[TrainingItemCompleted]:
    return [TrainingItemCompleted(municipality=municipality, staff_id="S1", item="system", hours=1.0) for _ in range(n)]


async def applied(pool, name: str) -> list[int]:
    """The sequences applied, in order (one row per application: a sequence applied twice shows twice)."""
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


@contextlib.asynccontextmanager
async def caught_up(js, nc, pool, p: Projection, municipality: str, n: int):
    """`n` events published, `p` running and caught up with them; yields their sequences; stops `p` after."""
    await setup_schema(pool)
    await bus.publish_many(js, events(municipality, n))
    task = asyncio.create_task(p.run(nc, pool))
    try:
        await p.wait_idle(20)
        seqs = await stored_seqs(js, municipality)
        assert await applied(pool, p.name) == seqs and p.position == seqs[-1]
        yield seqs
    finally:
        p.stop()
        await task


async def rebuild(nc, js, pool, name: str, municipality: str, *, until: int | None = None, during: int = 0) -> int:
    """What `madoguchi report rebuild` does, under the rebuild lock: the effects and the position forgotten, the
    stream replayed by a projection of its own. With `until`, a rebuild abandoned half way: killed in its first
    batch past `until` (that batch rolls back). `during` events are published after the reset, and the live runner
    has 2.5 s (an idle check) to see the position at 0 before the replay. Returns the stored position it leaves."""
    lock = await pool.acquire()
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK)
        r = recording_projection(name, municipality)
        killed = asyncio.Event()
        if until is not None:
            record = r.apply

            async def apply(conn, batch):
                if batch[-1].seq > until:
                    killed.set()
                    await asyncio.Event().wait()  # until cancelled, as a killed process's transaction
                await record(conn, batch)

            r.apply = apply
        async with lock.transaction():
            await lock.execute(f'DELETE FROM "{SCHEMA}".applied WHERE name = $1', name)
            await r.reset(lock)
        if during:
            await bus.publish_many(js, events(municipality, during))
            await asyncio.sleep(2.5)
        task = asyncio.create_task(r.run(nc, pool))
        try:
            deadline = asyncio.get_running_loop().time() + 20
            end = (await stored_seqs(js, municipality))[-1]
            while r.position < end and not killed.is_set():
                assert not task.done() and asyncio.get_running_loop().time() < deadline, r.position
                await asyncio.sleep(0.02)
        finally:
            r.stop()
            if killed.is_set():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert r.positions_lost == 0
        async with pool.acquire() as conn:
            return await r.stored_position(conn)
    finally:
        await lock.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)
        await pool.release(lock)


async def test_commits_lost_by_the_database_are_applied_again_by_the_next_batch(js, nc, pg_pool, municipality):
    p = recording_projection(f"lost{municipality}", municipality)
    async with caught_up(js, nc, pg_pool, p, municipality, 30) as seqs:
        p._replay_checked = float("inf")  # pyright: ignore[reportPrivateUsage] - no idle check: the next batch must notice
        await lose_commits_after(pg_pool, p, seqs[11])
        await bus.publish_many(js, events(municipality, 5))  # the next batch starts after the runner's position
        seqs = await stored_seqs(js, municipality)
        # before: seqs[12:30] never applied, the position past them
        assert await until_applied(pg_pool, p, seqs) == seqs
    assert p.dead_lettered == 0 and p.positions_lost == 1


async def test_commits_lost_while_the_projection_is_idle_are_applied_again(js, nc, pg_pool, municipality):
    p = recording_projection(f"lostidle{municipality}", municipality)
    async with caught_up(js, nc, pg_pool, p, municipality, 30) as seqs:
        await lose_commits_after(pg_pool, p, seqs[4])
        assert await until_applied(pg_pool, p, seqs) == seqs  # nothing new comes: noticed while idle
    assert p.positions_lost == 1


async def test_a_rebuild_while_the_live_projection_runs_is_waited_for_not_read_again(js, nc, pg_pool, municipality):
    live = recording_projection(f"rebuilt{municipality}", municipality, live=True)
    async with caught_up(js, nc, pg_pool, live, municipality, 60) as seqs:
        # while the rebuild runs, the live runner checks the position while idle and claims a batch of new events
        assert await rebuild(nc, js, pg_pool, live.name, municipality, during=5) >= seqs[-1] + 5
        await bus.publish_many(js, events(municipality, 5))  # after the rebuild: the live runner applies them
        seqs = await stored_seqs(js, municipality)
        assert await until_applied(pg_pool, live, seqs, timeout=60) == seqs  # each once
    assert live.positions_lost == 0  # before: the live runner read the stream again behind the rebuild's lock


async def test_a_rebuild_abandoned_half_way_is_read_again_by_the_live_projection(js, nc, pg_pool, municipality):
    live = recording_projection(f"abandoned{municipality}", municipality, live=True)
    async with caught_up(js, nc, pg_pool, live, municipality, 60) as seqs:
        left = await rebuild(nc, js, pg_pool, live.name, municipality, until=seqs[15], during=1)
        assert left <= seqs[15]
        seqs = await stored_seqs(js, municipality)
        assert await until_applied(pg_pool, live, seqs) == seqs  # the rest applied once, by the live runner
    assert live.positions_lost == 1


def kill_9(server: PostgresServer) -> None:
    """PostgreSQL killed with -9, the postmaster and every backend (each its own session): what its WAL buffers
    held, not yet written, is gone."""
    assert server.proc is not None
    pid = server.proc.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for victim in [pid, *children]:
        os.kill(victim, signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + 10
    for child in children:  # gone (or a zombie) before the restart: none still holds the shared memory
        while time.monotonic() < deadline:
            try:
                if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.01)


async def test_commits_a_postgresql_killed_with_minus_9_lost_are_read_again(js, nc, tmp_path, municipality):
    """The crash itself, not its imitation: asynchronous commits still in the WAL buffers (the WAL writer made to
    wait 10 s) when every PostgreSQL process is killed -9; restarted on the same port under the running projection."""
    server = PostgresServer(tmp_path / "pg").start()
    pool = await db.create_pool(server.dsn, max_size=4)
    try:
        async with pool.acquire() as conn:
            await conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            await conn.execute("SELECT pg_reload_conf()")
        p = recording_projection(f"killed{municipality}", municipality)
        async with caught_up(js, nc, pool, p, municipality, 30) as seqs:
            kill_9(server)
            server.start()
            await pool.expire_connections()  # this test's own reads: the runner finds its connections gone itself
            assert await until_applied(pool, p, seqs, timeout=40) == seqs  # each once
        assert p.positions_lost == 1  # the crash lost commits (what this test is about), and they were read again
    finally:
        await pool.close()
        server.stop()
