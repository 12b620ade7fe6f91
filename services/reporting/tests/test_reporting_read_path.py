"""The read path of one ticket (issue 12 target): from the stream to its stored row in at most 12
function hops, traced with `sys.setprofile` (`bench.read_path`: what a hop is)."""

from __future__ import annotations

from madoguchi_shared import db

from bench.read_path import trace_ticket
from tests.utils import servers


async def test_one_ticket_reaches_its_row_in_at_most_twelve_hops(js, nc, municipality):
    pool = await db.create_pool(servers.SERVICE_DSNS["reporting"], max_size=2)  # as the service's own role
    try:
        hops = await trace_ticket(nc, js, pool, municipality)
    finally:
        # the trace projected the ticket under a projection of its own: its rows go, so the service's
        # reporting-desk (which will read the ticket too) counts it once, as a rebuild does
        async with pool.acquire() as conn:
            for table in ("day_count", "ticket", "desk_day"):
                await conn.execute(f"DELETE FROM reporting.{table} WHERE municipality = $1", municipality)
            for table in ("projection_checkpoint", "projection_applied_event"):
                await conn.execute(f"DELETE FROM reporting.{table} WHERE name = $1", f"read-path-{municipality}")
        await pool.close()
    print(f"\nread path of one ticket: {len(hops)} hops: {' -> '.join(hops)}")
    # the path goes where it should: the reader, the runner's fast parse, the desk projection, the store
    assert hops[:2] == ["framing._FastParser.parse", "reader.Reader._on_deliveries"]
    assert "read_events.read_batch" in hops and "desk.on_ticket_issued" in hops and hops[-1] == "store.Writes.upsert"
    assert len(hops) <= 12, hops
