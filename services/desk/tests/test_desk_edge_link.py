"""The desk edge on the laptop (issue 21, services/desk/EDGE.md): the desk keeps serving through a
lost link and HQ ends up with exactly what it did, once; command ids make a replay harmless."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, train
from edge_harness import LinkProxy, edge_app, laptop_identity, until

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO

BASE = "/v1/desks/chuo-1"


async def _hq_day(nc, m: str, day: str = "2021-04-06") -> list[bus.Stored]:
    return await bus.load(nc, f"mg.desk.{m}.deskday.chuo-1_{day}")


async def test_a_desk_served_through_a_cut_link_reaches_hq_once(settings, municipality, nc, js, nats_server, data_dir,
                                                                 tmp_path):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    await train(js, m, "S1")
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, m, "chuo-1")
    async with desk_app(settings, m, clock) as (_hq, hq), \
            edge_app(settings, "chuo-1", tmp_path, link, laptop, clock) as (_app, edge):
        ok(await hq.post(f"{BASE}/day/start", headers=manager))
        await until(lambda: _attached(nc, m))
        # the desk's own work now goes through the laptop; HQ refuses it for this desk-day
        refused = await hq.post(f"{BASE}/tickets", headers=s1)
        assert refused.status_code == 409 and refused.json()["code"] == "edge_holds_desk"
        await until(lambda: _edge_knows_start(edge, s1))
        ok(await edge.post(f"{BASE}/staff/check-in", headers=s1, json={}))
        clock.at(9, 0)
        assert ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)["ticket_no"] == 1
        await until(lambda: _edge_state(edge, "送信済み"))

        # the pocket WiFi drops: the desk keeps issuing, calling and recording
        await link.cut()
        offline = await until(lambda: _edge_state(edge, "オフライン"))
        assert offline["offline_since_hm"] == "09:00"
        numbers = [ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)["ticket_no"] for _ in range(5)]
        assert numbers == [2, 3, 4, 5, 6]
        key = {"Idempotency-Key": "cmd-0000-visit-1"}
        clock.at(9, 5)
        called = ok(await edge.post(f"{BASE}/tickets/call-next", headers=s1 | key, json={}))
        again = await edge.post(f"{BASE}/tickets/call-next", headers=s1 | key, json={})  # the screen sent it twice
        assert again.json() == called and again.headers["idempotent-replayed"] == "true"
        visit = ok(await edge.post(f"{BASE}/tickets/1/visit", headers=s1), 201)["visit_id"]
        ok(await edge.post(f"/v1/visits/{visit}/details", headers=s1, json={
            "gender": "female", "age_band": "70s", "purposes": ["mykey_pc"], "support_needed": True, "support_given": True}))
        ok(await edge.post(f"/v1/visits/{visit}/card/handed", headers=s1))
        ok(await edge.post(f"/v1/visits/{visit}/card/returned", headers=s1))
        clock.at(9, 20)
        ok(await edge.post(f"/v1/visits/{visit}/end", headers=s1, json={"outcome": "completed"}))
        ok(await edge.post(f"{BASE}/disinfections", headers=s1, json={}), 201)
        state = ok(await edge.get("/v1/edge"))
        assert not state["online"] and state["pending"] >= 12 and state["label_ja"] == f"オフライン：{state['pending']}件 未送信"
        # HQ shows the desk offline since its last heartbeat, with the queue it last received
        hq_view = await until(lambda: _hq_offline(hq, manager))
        assert hq_view["edge_link"]["label_ja"] == "オフライン（09:00 から）" and hq_view["queue"]["last_issued"] == 1

        await link.restore()
        done = await until(lambda: _edge_state(edge, "送信済み"))
        assert done["pending"] == 0 and done["outages"][-1]["queued"] >= 12
        stored = await _hq_day(nc, m)
        tickets = [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"]
        assert tickets == [1, 2, 3, 4, 5, 6]
        ids = Counter(str(s.event.event_id) for s in stored)
        assert max(ids.values()) == 1
        visit_events = await bus.load(nc, f"mg.desk.{m}.visit.{visit}")
        assert [s.event.type for s in visit_events] == ["desk.visit_started", "desk.visit_details_recorded",
                                                          "desk.card_handed_to_staff", "desk.card_returned", "desk.visit_ended"]
        assert [s.event.type for s in stored].count("desk.ticket_called") == 1  # the repeated command made nothing
        await until(lambda: _hq_online(hq, manager))
    await link.cut()


async def _attached(nc, m: str) -> bool:
    return any(s.event.type == "desk.edge_attached" for s in await _hq_day(nc, m))


async def _edge_knows_start(edge, headers) -> bool:
    status = (await edge.get(f"{BASE}/status", headers=headers)).json()
    return status["day_status"] == "started"


async def _edge_state(edge, label: str) -> dict | None:
    state = (await edge.get("/v1/edge")).json()
    return state if state["label_ja"].startswith(label) else None


async def _hq_offline(hq, headers) -> dict | None:
    status = (await hq.get(f"{BASE}/status", headers=headers)).json()
    return status if status["edge_link"] and not status["edge_link"]["online"] else None


async def _hq_online(hq, headers) -> bool:
    status = (await hq.get(f"{BASE}/status", headers=headers)).json()
    return bool(status["edge_link"] and status["edge_link"]["online"])
