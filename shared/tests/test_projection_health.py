"""/readyz tells the truth about a projection of part of a stream: the messages outside its filter
are not work it has left. The reporting deliverables projection (a slice of MG_REPORT) showed
"behind 4442" on a quiet system, and would have turned /readyz "degraded" past lag_threshold."""

from __future__ import annotations

import asyncio

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.projection import Projection
from tests.utils.servers import unique_municipality

SCHEMA = "test_projection_health"


async def _nothing(_conn, _batch) -> None:
    return None


async def test_a_projection_of_part_of_a_stream_is_not_behind_the_rest_of_it(nc, js, pg_pool, municipality):
    async with pg_pool.acquire() as conn:
        await db.migrate(conn, SCHEMA, [db.CHECKPOINTS_SQL])
    other = unique_municipality()
    ours = [TrainingItemCompleted(municipality=municipality, staff_id="S1", item="system", hours=1.0)]
    theirs = [TrainingItemCompleted(municipality=other, staff_id="S2", item="system", hours=1.0) for _ in range(30)]
    await bus.publish_many(js, ours)
    await bus.publish_many(js, theirs)  # the same stream, outside the filter, after ours

    p = Projection(
        name=f"health{municipality}",
        stream="MG_ADMIN",
        filter_subjects=[subjects.context_filter("admin", municipality)],
        apply=_nothing,
        schema=SCHEMA,
        batch=10,
        lag_threshold=10,
    )
    task = asyncio.create_task(p.run(nc, pg_pool))
    try:
        await p.wait_idle()
        await p.wait_idle()  # a second idle round: the stream's last message was read after the first
        assert p.applied == 1
        assert p.health()["behind"] == 0 and p.health()["status"] == "ok", p.health()
    finally:
        p.stop()
        await asyncio.wait_for(task, 10)
