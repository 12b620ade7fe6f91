"""Two workers of the desk service (issue 19): each process keeps its own cache of the aggregates it
folded, so one of them is often stale. A stale cache costs a conflict and a refresh, never a wrong
write: tickets are numbered once each across both, an edit without a version lands on the current
state, and two edits of what both screens saw get one 200 and one 409."""

from __future__ import annotations

import asyncio
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, train

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.subjects import aggregate_subject


async def test_two_workers_racing_on_one_desk_day_and_one_visit(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    async with (
        desk_app(settings, municipality, clock) as (app_a, a),
        desk_app(settings, municipality, clock) as (app_b, b),
    ):
        ok(await a.post("/v1/desks/kita-1/staff/check-in", headers=s1, json={}))
        ok(await b.post("/v1/desks/kita-1/tickets", headers=s1), 201)  # b caches the desk-day ...
        ok(await a.post("/v1/desks/kita-1/tickets", headers=s1), 201)  # ... stale after a's ticket 2
        responses = await asyncio.gather(
            *(c.post("/v1/desks/kita-1/tickets", headers=s1) for _ in range(20) for c in (a, b))
        )
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201][:3]
        assert sorted(r.json()["ticket_no"] for r in responses) == list(range(3, 43))
        stats = [app.state.desk.group_stats for app in (app_a, app_b)]
        assert sum(s.stale_cache for s in stats) >= 1  # a stale cache was found out, then refreshed
        subject = aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06")
        numbers = [s.event.ticket_no for s in await bus.load(nc, subject) if s.event.type == "desk.ticket_issued"]
        assert numbers == list(range(1, 43))  # in stream order: no gap, no duplicate

        ok(await a.post("/v1/desks/kita-1/tickets/call-next", headers=s1, json={}))
        visit_id = ok(await a.post("/v1/desks/kita-1/tickets/1/visit", headers=s1), 201)["visit_id"]
        seen = ok(await b.get(f"/v1/visits/{visit_id}", headers=s1))["version"]  # b folds the visit too
        details = {
            "gender": "female",
            "age_band": "30s",
            "purposes": ["inquiry_only"],
            "support_needed": False,
            "support_given": False,
        }
        ok(await a.post(f"/v1/visits/{visit_id}/details", headers=s1, json=details))  # b's fold is stale now
        # without a version: b's edit lands on the current state, after a's
        ok(
            await b.post(
                f"/v1/visits/{visit_id}/opinions",
                headers=s1,
                json={"kind": "opinion", "text": "説明が分かりやすかった"},
            ),
            201,
        )
        # both screens saw the same version: one edit wins, the other is a 409, whichever worker took it
        seen = ok(await a.get(f"/v1/visits/{visit_id}", headers=s1))["version"]
        r1, r2 = await asyncio.gather(
            a.post(f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed", "version": seen}),
            b.post(f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed", "version": seen}),
        )
        assert sorted([r1.status_code, r2.status_code]) == [200, 409], (r1.text, r2.text)
    types = [s.event.type for s in await bus.load(nc, aggregate_subject("desk", municipality, "visit", visit_id))]
    assert types.count("desk.visit_ended") == 1 and types.count("desk.visit_details_recorded") == 1
    assert (
        types.index("desk.visit_details_recorded")
        < types.index("desk.opinion_recorded")
        < types.index("desk.visit_ended")
    )
