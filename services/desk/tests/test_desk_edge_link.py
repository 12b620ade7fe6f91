"""The desk edge on the laptop (issue 21, services/desk/EDGE.md): the desk keeps serving through a
lost link and HQ ends up with exactly what it did, once; command ids make a replay harmless."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, train
from edge_harness import LinkProxy, edge_app, laptop_identity, until

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO

BASE = "/v1/desks/chuo-1"


async def _hq_day(nc, m: str, day: str = "2021-04-06") -> list[bus.Stored]:
    return await bus.load(nc, subjects.aggregate_subject("desk", m, "deskday", f"chuo-1_{day}"))


async def test_a_desk_served_through_a_cut_link_reaches_hq_once(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    await train(js, m, "S1")
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, m, "chuo-1")
    async with (
        desk_app(settings, m, clock) as (_hq, hq),
        edge_app(settings, "chuo-1", tmp_path, link, laptop, clock) as (_app, edge),
    ):
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
        await until(lambda: _hq_heard_at(_hq, "09:00"))  # a heartbeat since the clock moved

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
        assert _app.state.link.journal.forget_answers(older_than=0) >= 1  # later: the answer is no longer kept ...
        late = ok(await edge.post(f"{BASE}/tickets/call-next", headers=s1 | key, json={}))
        assert late["replayed"] and [e["event_id"] for e in late["events"]] == [e["event_id"] for e in called["events"]]
        visit = ok(await edge.post(f"{BASE}/tickets/1/visit", headers=s1), 201)["visit_id"]
        ok(
            await edge.post(
                f"/v1/visits/{visit}/details",
                headers=s1,
                json={
                    "gender": "female",
                    "age_band": "70s",
                    "purposes": ["mykey_pc"],
                    "support_needed": True,
                    "support_given": True,
                },
            )
        )
        ok(await edge.post(f"/v1/visits/{visit}/card/handed", headers=s1))
        ok(await edge.post(f"/v1/visits/{visit}/card/returned", headers=s1))
        clock.at(9, 20)
        ok(await edge.post(f"/v1/visits/{visit}/end", headers=s1, json={"outcome": "completed"}))
        ok(await edge.post(f"{BASE}/disinfections", headers=s1, json={}), 201)
        state = ok(await edge.get("/v1/edge"))
        assert (
            not state["online"]
            and state["pending"] >= 12
            and state["label_ja"] == f"オフライン：{state['pending']}件 未送信"
        )
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
        visit_events = await bus.load(nc, subjects.aggregate_subject("desk", m, "visit", visit))
        assert [s.event.type for s in visit_events] == [
            "desk.visit_started",
            "desk.visit_details_recorded",
            "desk.card_handed_to_staff",
            "desk.card_returned",
            "desk.visit_ended",
        ]
        assert [s.event.type for s in stored].count("desk.ticket_called") == 1  # the repeated command made nothing
        await until(lambda: _hq_online(hq, manager))
    await link.cut()


async def _hq_heard_at(hq_app, hm: str) -> bool:
    seen = hq_app.state.desk.edges.get("chuo-1")
    return bool(seen) and f"{seen['seen_at'].astimezone(TOKYO):%H:%M}" == hm


async def _attached(nc, m: str) -> bool:
    return any(s.event.type == "desk.edge_attached" for s in await _hq_day(nc, m))


async def _edge_knows_start(edge, headers) -> bool:
    response = await edge.get(f"{BASE}/status", headers=headers)
    return response.status_code == 200 and response.json()["day_status"] == "started"


async def _edge_state(edge, label: str) -> dict | None:
    state = (await edge.get("/v1/edge")).json()
    return state if state["label_ja"].startswith(label) else None


async def _hq_offline(hq, headers) -> dict | None:
    status = (await hq.get(f"{BASE}/status", headers=headers)).json()
    return status if status["edge_link"] and not status["edge_link"]["online"] else None


async def _hq_online(hq, headers) -> bool:
    status = (await hq.get(f"{BASE}/status", headers=headers)).json()
    return bool(status["edge_link"] and status["edge_link"]["online"])


async def test_a_suspension_decided_at_hq_during_the_outage_keeps_and_marks_the_offline_visits(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    await train(js, m, "S1")
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, m, "chuo-1")
    async with (
        desk_app(settings, m, clock) as (_hq, hq),
        edge_app(settings, "chuo-1", tmp_path, link, laptop, clock) as (_app, edge),
    ):
        ok(await hq.post(f"{BASE}/day/start", headers=manager))
        await until(lambda: _edge_knows_start(edge, s1))
        ok(await edge.post(f"{BASE}/staff/check-in", headers=s1, json={}))
        clock.at(10, 0)
        ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)
        await until(lambda: _edge_state(edge, "送信済み"))

        await link.cut()
        await until(lambda: _edge_state(edge, "オフライン"))
        clock.at(10, 1)
        ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)  # ticket 2, before the suspension
        ok(await edge.post(f"{BASE}/tickets/call-next", headers=s1, json={}))
        first = ok(await edge.post(f"{BASE}/tickets/1/visit", headers=s1), 201)["visit_id"]
        # HQ: the city suspends the desk from 10:03 (the desk cannot hear it)
        clock.at(10, 3)
        suspension = ok(
            await hq.post(
                "/v1/calendar/suspensions",
                headers=manager,
                json={"start": "2021-04-06T10:03:00+09:00", "desks": ["chuo-1"], "reason": "disaster"},
            ),
            201,
        )
        instruction = suspension["events"][0]["instruction_id"]
        clock.at(10, 4)
        assert (
            ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)["ticket_no"] == 3
        )  # offline, it does not know yet
        ok(await edge.post(f"/v1/visits/{first}/end", headers=s1, json={"outcome": "completed"}))
        clock.at(10, 5)
        ok(await edge.post(f"{BASE}/tickets/call-next", headers=s1, json={}))
        second = ok(await edge.post(f"{BASE}/tickets/2/visit", headers=s1), 201)["visit_id"]

        clock.at(10, 8)
        await link.restore()
        await until(lambda: _edge_state(edge, "送信済み"))
        stored = await _hq_day(nc, m)
        marks = [s.event for s in stored if s.event.type == "desk.edge_records_marked"]
        assert len(marks) == 1
        mark = marks[0]
        # the suspension applies from the moment the desk learned of it; what it did offline after
        # the suspension began is kept, and marked
        assert (mark.rule, mark.instruction_id, mark.tickets, [str(v) for v in mark.visit_ids]) == (
            "during_suspension",
            instruction,
            (3,),
            [second],
        )
        assert mark.decided_at == datetime(2021, 4, 6, 10, 3, tzinfo=TOKYO) and mark.learned_at == clock.now
        assert [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"] == [1, 2, 3]
        for visit in (first, second):
            assert (await bus.load(nc, subjects.aggregate_subject("desk", m, "visit", visit)))[
                0
            ].event.type == "desk.visit_started"
        # from now on the desk refuses new visitors, as the suspension says
        refused = await edge.post(f"{BASE}/tickets", headers=s1)
        assert refused.status_code == 409 and refused.json()["code"] == "suspended"
        status = ok(await hq.get(f"{BASE}/status", headers=manager))
        assert status["marked"][0]["tickets"] == [3]
        # the merge ran once: a second sync finds nothing new to mark
        await edge.post(f"{BASE}/tickets", headers=s1)
        await until(lambda: _edge_state(edge, "送信済み"))
        assert [s.event.type for s in await _hq_day(nc, m)].count("desk.edge_records_marked") == 1
    await link.cut()


async def test_a_day_end_confirmed_at_hq_during_the_outage_marks_what_it_could_not_see(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    await train(js, m, "S1")
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, m, "chuo-1")
    async with (
        desk_app(settings, m, clock) as (_hq, hq),
        edge_app(settings, "chuo-1", tmp_path, link, laptop, clock) as (_app, edge),
    ):
        ok(await hq.post(f"{BASE}/day/start", headers=manager))
        await until(lambda: _edge_knows_start(edge, s1))
        ok(await edge.post(f"{BASE}/staff/check-in", headers=s1, json={}))
        await until(lambda: _edge_state(edge, "送信済み"))
        await link.cut()
        await until(lambda: _edge_state(edge, "オフライン"))
        clock.at(16, 50)
        ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)
        clock.at(16, 55)
        ended = ok(await hq.post(f"{BASE}/day/end", headers=manager))  # HQ sees an empty queue
        clock.at(17, 0)
        await link.restore()
        await until(lambda: _edge_state(edge, "送信済み"))
        stored = [s.event for s in await _hq_day(nc, m)]
        types = [e.type for e in stored]
        # both sides kept: HQ's confirmation, then the desk's ticket it could not see, marked
        assert (
            types.index("desk.day_ended") < types.index("desk.ticket_issued") < types.index("desk.edge_records_marked")
        )
        mark = next(e for e in stored if e.type == "desk.edge_records_marked")
        assert mark.rule == "after_day_end" and mark.tickets == (1,)
        assert (
            mark.decided_at
            == datetime.fromisoformat(ended["events"][0]["occurred_at"])
            == datetime(2021, 4, 6, 16, 55, tzinfo=TOKYO)
        )
        edge_status = ok(await edge.get(f"{BASE}/status", headers=s1))
        assert edge_status["day_status"] == "ended" and edge_status["marked"][0]["rule"] == "after_day_end"
    await link.cut()


async def test_an_edge_restarted_while_offline_loses_nothing_and_refuses_a_bad_command_id(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    """The journal is the laptop's disk: commands recorded offline survive a restart of the edge
    (a reboot, a crash) and reach HQ once; a restarted edge serves offline on the accounts it kept;
    a malformed command id is a 422 that stores nothing."""
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    await train(js, m, "S1")
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, m, "chuo-1")
    async with desk_app(settings, m, clock) as (_hq, hq):
        ok(await hq.post(f"{BASE}/day/start", headers=manager))
        async with edge_app(settings, "chuo-1", tmp_path, link, laptop, clock) as (_app, edge):
            await until(lambda: _edge_knows_start(edge, s1))
            ok(await edge.post(f"{BASE}/staff/check-in", headers=s1, json={}))
            await until(lambda: _edge_state(edge, "送信済み"))
            await link.cut()
            await until(lambda: _edge_state(edge, "オフライン"))
            for _ in range(4):
                ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)
            assert (await edge.get(f"{BASE}/live", headers=s1)).status_code == 404  # HQ's bus feed is not on the laptop
            assert (await edge.get("/v1/desks/kita-1/status", headers=manager)).status_code == 404  # one desk only
            bad = await edge.post(f"{BASE}/tickets", headers=s1 | {"Idempotency-Key": "x y"})
            assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]
            assert (await edge.get("/v1/edge")).json()["pending"] == 4
        # the laptop restarts, still without a link: the last copy of the accounts checks the token,
        # and it numbers on from its journal
        async with edge_app(settings, "chuo-1", tmp_path, link, laptop, clock, wait_for_accounts=False) as (app, edge):
            assert app.state.link.journal.depth() == 4 and not app.state.link.online
            assert ok(await edge.post(f"{BASE}/tickets", headers=s1), 201)["ticket_no"] == 5
            assert (
                await edge.post(f"{BASE}/tickets", headers=manager | {"Authorization": "Bearer forged"})
            ).status_code == 401
            await link.restore()
            await until(lambda: _edge_state(edge, "送信済み"))
        stored = await _hq_day(nc, m)
        assert [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"] == [1, 2, 3, 4, 5]
        assert max(Counter(str(s.event.event_id) for s in stored).values()) == 1
    await link.cut()


async def test_the_edge_credential_appends_only_desk_work_of_its_municipality(nats_server, data_dir, municipality):
    """The laptop's edge identity (EDGE.md, credentials): its desk-days, visits and heartbeat; not the
    phone line, the admin stream, another municipality or a stream deletion."""
    import nats

    from madoguchi_shared import natsauth

    refusals: list[str] = []

    async def on_error(exc: Exception) -> None:
        refusals.append(str(exc))

    options = laptop_identity(data_dir, nats_server, municipality, "chuo-1")
    options.pop("municipality")
    await asyncio.sleep(0.3)  # the reload is asynchronous
    client = await nats.connect(nats_server.address, error_cb=on_error, **options)
    try:
        for subject in (
            subjects.aggregate_subject("calls", municipality, "call", "x"),
            subjects.aggregate_subject("admin", municipality, "staff", "S1"),
            subjects.aggregate_subject("desk", municipality, "calendar", "city"),
            subjects.aggregate_subject("desk", "011002", "deskday", "chuo-1_2021-04-06"),
            subjects.aggregate_subject("device", municipality, "agent", "chuo-1-pc"),
            "$JS.API.STREAM.DELETE.MG_DESK",
            subjects.edge_subject(municipality, "kita-1"),
        ):
            before = len(refusals)
            await client.publish(subject, b"{}")
            await client.flush()
            await asyncio.sleep(0.1)
            assert len(refusals) > before and "permissions violation" in refusals[-1].lower(), subject
        before = len(refusals)
        await client.publish(subjects.edge_subject(municipality, "chuo-1"), b"{}")  # its heartbeat
        await client.flush()
        await asyncio.sleep(0.1)
        assert len(refusals) == before
        assert natsauth.load(data_dir, natsauth.edge_user("chuo-1-pc")).kind == "edge"
    finally:
        await client.close()
