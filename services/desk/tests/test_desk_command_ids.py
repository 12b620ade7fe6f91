"""A command sent again with the same Idempotency-Key (the console's double click, a retry after a
dropped answer) is answered, not decided again: one ticket, one visit (REP-5: nobody counted twice).
The HQ desk ignored the header: two POSTs with one key issued tickets 4550 and 4551 under `make run`."""

from __future__ import annotations

from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, stream_types, train

from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.subjects import aggregate_subject


async def test_a_repeated_command_is_answered_once_and_counted_once(settings, municipality, nc, js):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    await train(js, m, "S1")
    await train(js, m, "S2")
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("kita",))
    s2 = await auth(js, settings, m, "S2", Role.supporter, ("kita",))
    manager = await auth(js, settings, m, "M1", Role.manager)
    base = "/v1/desks/kita-1"
    async with desk_app(settings, m, clock) as (_app, client):
        ok(await client.post(f"{base}/day/start", headers=manager))
        ok(await client.post(f"{base}/staff/check-in", headers=s1, json={}))

        first = await client.post(f"{base}/tickets", headers=s1 | {"Idempotency-Key": "form-0001-1"})
        again = await client.post(f"{base}/tickets", headers=s1 | {"Idempotency-Key": "form-0001-1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and first.json()["ticket_no"] == 1
        assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
        assert again.headers["x-content-type-options"] == "nosniff"  # the security headers as on any answer
        # another form, or another person's same key: a command of its own
        other = ok(await client.post(f"{base}/tickets", headers=s1 | {"Idempotency-Key": "form-0002-1"}), 201)
        theirs = ok(await client.post(f"{base}/tickets", headers=s2 | {"Idempotency-Key": "form-0001-1"}), 201)
        assert (other["ticket_no"], theirs["ticket_no"]) == (2, 3)

        # a walk-in sent twice is one visit; a refusal sent twice is decided again (nothing was stored)
        for n in (1, 2, 3):
            ok(await client.post(f"{base}/tickets/call-next", headers=s1, json={}))
            ok(await client.post(f"{base}/tickets/{n}/no-show", headers=s1, json={}))
        walk = [await client.post(f"{base}/walk-in", headers=s1 | {"Idempotency-Key": "form-0003-1"}) for _ in "ab"]
        assert [w.status_code for w in walk] == [201, 201] and walk[0].json() == walk[1].json()
        end = {"outcome": "completed"}
        visit = walk[0].json()["visit_id"]
        ended = [
            await client.post(f"/v1/visits/{visit}/end", headers=s1 | {"Idempotency-Key": "form-0004-1"}, json=end)
            for _ in "ab"
        ]
        assert [e.status_code for e in ended] == [200, 200] and ended[0].json() == ended[1].json()
        late = await client.post(f"/v1/visits/{visit}/end", headers=s1 | {"Idempotency-Key": "form-0005-1"}, json=end)
        assert late.status_code == 409
        late_again = await client.post(
            f"/v1/visits/{visit}/end", headers=s1 | {"Idempotency-Key": "form-0005-1"}, json=end
        )
        # a refusal is not kept: nothing was decided, so the same command is decided again (still refused)
        assert late_again.status_code == 409 and "idempotent-replayed" not in late_again.headers
        assert late_again.json()["title"] == late.json()["title"]

        bad = await client.post(f"{base}/tickets", headers=s1 | {"Idempotency-Key": "no"})
        assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]

    types = await stream_types(nc, aggregate_subject("desk", m, "deskday", "kita-1_2021-04-06"))
    assert types.count("desk.ticket_issued") == 4  # tickets 1-3 and the walk-in's, each once
    visit_types = await stream_types(nc, aggregate_subject("desk", m, "visit", visit))
    assert visit_types.count("desk.visit_started") == 1 and visit_types.count("desk.visit_ended") == 1
