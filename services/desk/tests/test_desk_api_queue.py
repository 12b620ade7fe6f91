"""Queue concurrency through the API on the real JetStream (DESK-3, ARCHITECTURE rule 2)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, stream_types, train

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.subjects import aggregate_subject


async def test_desk3_fifty_concurrent_tickets_numbered_without_gaps(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        responses = await asyncio.gather(*(client.post("/v1/desks/kita-1/tickets", headers=s1) for _ in range(50)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201][:3]
    assert sorted(r.json()["ticket_no"] for r in responses) == list(range(1, 51))
    stored = await bus.load(nc, aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06"))
    numbers = [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"]
    assert numbers == list(range(1, 51))  # in stream order: no gaps, no duplicates


async def test_desk3_two_supporters_racing_for_the_same_ticket_one_409(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    for staff in ("S1", "S2"):
        await train(js, municipality, staff)
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    s2 = await auth(js, settings, municipality, "S2", Role.supporter, ("kita",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        for h in (s1, s2):
            ok(await client.post("/v1/desks/kita-1/staff/check-in", headers=h, json={}))
        for _ in range(2):
            ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)
        queue = ok(await client.get("/v1/desks/kita-1/queue", headers=s1))
        assert queue["next_ticket"] == 1
        # both screens show ticket 1 as next, at the same version; both press "call next"
        body = {"version": queue["version"]}
        r1, r2 = await asyncio.gather(
            client.post("/v1/desks/kita-1/tickets/call-next", headers=s1, json=body),
            client.post("/v1/desks/kita-1/tickets/call-next", headers=s2, json=body),
        )
        assert sorted([r1.status_code, r2.status_code]) == [200, 409]
        loser = r1 if r1.status_code == 409 else r2
        assert loser.headers["content-type"].startswith("application/problem+json") and loser.json()["status"] == 409
        # without a version, a call-next that names the ticket the screen showed is refused too
        r3 = await client.post("/v1/desks/kita-1/tickets/call-next", headers=s2, json={"expected_ticket": 1})
        assert r3.status_code == 409 and "すでに呼び出されています" in r3.json()["detail"]
        assert ok(await client.post("/v1/desks/kita-1/tickets/call-next", headers=s2, json={}))["ticket_no"] == 2
        # a ticket issued while someone calls next does not make the call fail
        for _ in range(3):
            ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)
        issued, called = await asyncio.gather(
            client.post("/v1/desks/kita-1/tickets", headers=s1),
            client.post("/v1/desks/kita-1/tickets/call-next", headers=s1, json={}),
        )
        assert issued.status_code == 201 and called.status_code == 200 and called.json()["ticket_no"] == 3
    types = await stream_types(nc, aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06"))
    assert types.count("desk.ticket_called") == 3


async def test_visit_stale_edit_is_409(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        ok(await client.post("/v1/desks/kita-1/staff/check-in", headers=s1, json={}))
        ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)
        ok(await client.post("/v1/desks/kita-1/tickets/call-next", headers=s1, json={}))
        visit_id = ok(await client.post("/v1/desks/kita-1/tickets/1/visit", headers=s1), 201)["visit_id"]
        seen = ok(await client.get(f"/v1/visits/{visit_id}", headers=s1))["version"]
        details = {
            "gender": "male",
            "age_band": "40s",
            "purposes": ["inquiry_only"],
            "support_needed": False,
            "support_given": False,
        }
        ok(await client.post(f"/v1/visits/{visit_id}/details", headers=s1, json={**details, "version": seen}))
        stale = await client.post(
            f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed", "version": seen}
        )
        assert stale.status_code == 409
        ok(await client.post(f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed"}))
        # a later correction of the outcome (reporting recounts from it)
        fixed = ok(
            await client.post(
                f"/v1/visits/{visit_id}/corrections",
                headers=s1,
                json={"outcome": "not_completed", "reason": "card_not_issued", "note": "後日判明"},
            ),
            201,
        )
        assert fixed["events"][0]["type"] == "desk.visit_corrected"
        assert ok(await client.get(f"/v1/visits/{visit_id}", headers=s1))["reason"] == "card_not_issued"


async def test_call_whoever_is_next_never_409s_and_a_walk_in_starts_in_one_step(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    for staff in ("S1", "S2"):
        await train(js, municipality, staff)
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    s2 = await auth(js, settings, municipality, "S2", Role.supporter, ("kita",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        for h in (s1, s2):
            ok(await client.post("/v1/desks/kita-1/staff/check-in", headers=h, json={}))
        # An empty desk: ticket, call and visit in one request.
        walk = ok(await client.post("/v1/desks/kita-1/walk-in", headers=s1), 201)
        assert walk["ticket_no"] == 1 and walk["visit_id"]
        visit = ok(await client.get(f"/v1/visits/{walk['visit_id']}", headers=s1))
        assert visit["staff_id"] == "S1" and visit["ticket_no"] == 1
        # Two waiting, both supporters press at once: each gets someone, no 409.
        for _ in range(2):
            ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)
        body = {"whoever_is_next": True}
        r1, r2 = await asyncio.gather(
            client.post("/v1/desks/kita-1/tickets/call-next", headers=s1, json=body),
            client.post("/v1/desks/kita-1/tickets/call-next", headers=s2, json=body),
        )
        assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
        assert sorted([r1.json()["ticket_no"], r2.json()["ticket_no"]]) == [2, 3]
        # With someone waiting, a walk-in would jump the queue: refused.
        ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)
        refused = await client.post("/v1/desks/kita-1/walk-in", headers=s2)
        assert refused.status_code == 409 and "お待ちの方がいます" in refused.json()["detail"]
    types = await stream_types(nc, aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06"))
    assert types.count("desk.ticket_called") == 3 and types.count("desk.ticket_served") == 1
