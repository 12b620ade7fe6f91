"""Which projection transactions commit synchronously. A batch's commit is asynchronous (a crash may lose it with
its position, and the runner reads it again: `madoguchi_shared.projection.PositionLost`), except a batch that
queued report events: those are published as soon as it commits, so it must be on disk first, or a batch lost
after its `report.report_updated` went out would announce the same data revisions again, under other event ids.
A rebuild queues none and stays asynchronous."""

from __future__ import annotations

from madoguchi_shared import subjects
from madoguchi_shared.bus import Stored

from madoguchi_reporting import schema
from madoguchi_reporting.projections import Notifier
from madoguchi_reporting.projections.calls import apply_calls
from madoguchi_reporting.projections.desk import apply_desk

from sim_week import WEEK_START, simulate


async def test_a_batch_that_queues_report_events_commits_synchronously_a_rebuild_batch_does_not(pg_pool, municipality):
    week = simulate(municipality, WEEK_START, desks=1, days=1, visitors=8, seed=3)
    desk = [Stored(i + 1, e) for i, e in enumerate(e for e in week.events if subjects.parse(e.subject)[0] == "desk")]
    calls = [Stored(i + 1, e) for i, e in enumerate(e for e in week.events if subjects.parse(e.subject)[0] == "calls")]
    assert desk and calls
    found = {}
    async with pg_pool.acquire() as conn:
        await schema.migrate(conn)
        for live in (True, False):
            for name, apply, batch in (("desk", apply_desk, desk), ("calls", apply_calls, calls)):
                tr = conn.transaction()
                await tr.start()
                try:  # the batch's transaction up to its commit, then rolled back: nothing stays
                    await apply(conn, batch, notifier=Notifier(enabled=live))
                    queued = await conn.fetchval(
                        "SELECT count(*) FROM reporting.outbox WHERE subject LIKE $1",
                        subjects.context_filter("report", municipality).removesuffix(">") + "%",
                    )
                    found[(name, live)] = (queued > 0, await conn.fetchval("SHOW synchronous_commit"))
                finally:
                    await tr.rollback()
    assert found == {
        ("desk", True): (True, "on"),
        ("calls", True): (True, "on"),
        ("desk", False): (False, "off"),
        ("calls", False): (False, "off"),
    }
