"""The live view's catch-up (LineView.catch_up): a command decided on cross-aggregate facts (is a seat
free?) sees everything stored before it, whoever stored it: another worker process of the service, or
a message of another municipality last in the stream (the view reads the stream's last sequence, not
the last message of its own filter, and must then find its municipality's last one before it)."""

from __future__ import annotations

import asyncio
from typing import Any

from calls_harness import jst, running_line

from madoguchi_calls.live import LineView
from madoguchi_shared import bus
from madoguchi_shared.events import SYSTEM, new_id
from madoguchi_shared.events import calls as ev
from tests.utils.servers import unique_municipality


def _call(municipality: str, **fields: Any) -> ev.CallReceived:
    return ev.CallReceived(
        **fields,
        municipality=municipality,
        actor=SYSTEM,
        call_id=new_id(),
        line="main",
        within_hours=True,
        seats_signed_in=0,
        seats_free=0,
    )


async def test_a_call_is_routed_on_what_another_worker_stored_just_before(settings, municipality):
    now = jst(2021, 4, 8, 9, 0)
    async with running_line(settings, municipality, now) as a, running_line(settings, municipality, now) as b:
        await a.post("/v1/calls", a.phone_system, {}, expect=201)  # a's view is running and has appended
        await b.post("/v1/lines/main/seats/s1/sign-in", b.operator, expect=201)
        first = await asyncio.wait_for(a.post("/v1/calls", a.phone_system, {}, expect=201), 10)
        assert first["route"] == "ring"  # b's sign-in, stored just before, seen by a
        await b.post(f"/v1/calls/{first['call_id']}/answer", b.operator, {"seat": "s1"})
        second = await asyncio.wait_for(a.post("/v1/calls", a.phone_system, {}, expect=201), 10)
        assert second["route"] == "overflow"  # the only operator is on a call (b stored it)
        await b.post(
            f"/v1/calls/{first['call_id']}/close",
            b.operator,
            {"categories": ["other"], "resolution": "answered_on_spot"},
        )
        await bus.append(
            a.service.js, _call(unique_municipality())
        )  # the stream's last message: no event of this municipality
        third = await asyncio.wait_for(a.post("/v1/calls", a.phone_system, {}, expect=201), 10)
        assert third["route"] == "ring"  # b's close, stored before another municipality's call, seen by a


async def test_the_view_catches_up_past_another_municipality_s_last_message(municipality, nc):
    js = nc.jetstream()
    mine = [_call(municipality) for _ in range(3000)]
    await bus.publish_many(js, mine)  # more than the view applies while it reads where to stop
    for _ in range(3):
        await bus.append(js, _call(unique_municipality()))  # the stream's last messages: none of the view's
    view = LineView(municipality)
    try:
        await asyncio.wait_for(view.start(nc), 10)  # ready once it has applied what was stored before
        assert all(e.call_id in view.calls for e in mine)
        await bus.append(js, _call(unique_municipality()))
        await asyncio.wait_for(view.catch_up(), 10)  # nothing new of its own: answered, not waited out
        await bus.append(js, mine[0].model_copy(update={"event_id": new_id(), "call_id": new_id()}))
        await bus.append(js, _call(unique_municipality()))
        await asyncio.wait_for(view.catch_up(), 10)
        assert len(view.calls) == len(mine) + 1
    finally:
        await view.stop()


async def test_own_calls_applied_at_their_ack_are_counted_once_around_another_process_s(settings, municipality, nc):
    """LineView.acked: a call this process appended is applied when its ack comes if it is stored right
    after the view's position (its delivery, later, passed over); after another process's call it waits
    for its delivery. Either way each call counts once, in stream order."""
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        view: LineView = await line.service.view(municipality)
        for _ in range(10):
            await line.post("/v1/calls", line.phone_system, {}, expect=201)
        elsewhere = _call(municipality, occurred_at=jst(2021, 4, 8, 9, 0))
        await bus.append(nc.jetstream(), elsewhere)  # another process's call between this process's
        await asyncio.gather(*(line.post("/v1/calls", line.phone_system, {}, expect=201) for _ in range(10)))
        await asyncio.wait_for(view.catch_up(), 10)
        await asyncio.sleep(0.3)  # the deliveries of the calls applied at their acks come and are passed over
        assert view.day_stats("main", jst(2021, 4, 8).date()).received == 21
        assert elsewhere.call_id in view.calls
        assert not view._own  # every event kept for its delivery was taken out
