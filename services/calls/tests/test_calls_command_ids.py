"""The phone system's or an operator's command sent again with the same Idempotency-Key is one call,
one closing: answered from the first answer, never counted twice (REP-5)."""

from __future__ import annotations

from calls_harness import jst, running_line


async def test_a_repeated_call_and_closing_are_recorded_once(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 8, 40)) as line:
        op, pbx = line.operator, line.phone_system
        await line.post("/v1/lines/main/seats/s1/sign-in", op, expect=201)
        line.clock.set(jst(2021, 4, 8, 9, 0))
        key = {"Idempotency-Key": "pbx-call-000001"}
        first = await line.client.post("/v1/calls", json={}, headers=pbx | key)
        again = await line.client.post("/v1/calls", json={}, headers=pbx | key)
        assert first.status_code == again.status_code == 201 and first.json() == again.json()
        assert again.headers["idempotent-replayed"] == "true"
        call = first.json()["call_id"]
        await line.post(f"/v1/calls/{call}/answer", op, {"seat": "s1"})
        body = {"categories": ["mykey_id.setup"], "resolution": "answered_on_spot"}
        closed = [
            await line.client.post(f"/v1/calls/{call}/close", json=body, headers=op | {"Idempotency-Key": "close-0001"})
            for _ in "ab"
        ]
        assert [c.status_code for c in closed] == [200, 200] and closed[0].json() == closed[1].json()
        types = [e.type for e in await line.events()]
        assert types.count("calls.call_received") == 1 and types.count("calls.call_closed") == 1
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert (stats["received"], stats["closed"]) == (1, 1)
