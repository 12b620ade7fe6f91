"""The read path of one ticket (issue 12 target): from the stream to its stored row in at most 12
function hops, traced with `sys.setprofile` (`bench.read_path`: what a hop is)."""

from __future__ import annotations

from bench.read_path import trace_ticket


async def test_one_ticket_reaches_its_row_in_at_most_twelve_hops(js, nc, pg_pool, municipality):
    hops = await trace_ticket(nc, js, pg_pool, municipality)
    print(f"\nread path of one ticket: {len(hops)} hops: {' -> '.join(hops)}")
    # the path goes where it should: the reader, the runner's fast parse, the desk projection, the store
    assert hops[:2] == ["framing._FastParser.parse", "reader.Reader._on_deliveries"]
    assert "read_events.read_event" in hops and "desk.on_ticket_issued" in hops and hops[-1] == "store.Writes.upsert"
    assert len(hops) <= 12, hops
