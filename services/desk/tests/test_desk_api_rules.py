"""Rules through the API: DESK-1 suspension, DESK-5 breach with an injected clock, DESK-9 card
left behind, DESK-7 PII refusal, ORG-4 training, DESK-10 equipment, DESK-2 capacity, access."""

from __future__ import annotations

from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, stream_types, train

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.subjects import aggregate_subject, context_filter


def deskday(m: str, desk: str, day: str) -> str:
    return aggregate_subject("desk", m, "deskday", f"{desk}_{day}")


async def test_desk1_suspended_day_refuses_tickets(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    manager = await auth(js, settings, municipality, "M1", Role.manager)
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("minami",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        r = ok(
            await client.post(
                "/v1/calendar/suspensions",
                headers=manager,
                json={
                    "instruction_id": "covid-0406",
                    "start": "2021-04-06T00:00:00+09:00",
                    "end": "2021-04-07T00:00:00+09:00",
                    "desks": ["minami-1"],
                    "reason": "pandemic",
                    "note": "感染拡大防止のため市の指示で休止",
                },
            ),
            201,
        )
        assert r["events"][0]["type"] == "desk.opening_suspended"
        refused = await client.post("/v1/desks/minami-1/tickets", headers=s1)
        assert (
            refused.status_code == 409
            and "市の指示" in refused.json()["detail"]
            and refused.json()["code"] == "suspended"
        )
        status = ok(await client.get("/v1/desks/minami-1/status", headers=s1))
        assert status["open_now"] is False and status["hours"]["closed_reason"] == "suspended"
        opened = ok(await client.get("/v1/desks/minami-1/open", headers=s1))
        assert opened["next_open_at"] == "2021-04-07T08:45:00+09:00"
        # another desk is not affected; lifting the instruction reopens minami-1
        ok(
            await client.post(
                "/v1/desks/nishi-1/tickets",
                headers=await auth(js, settings, municipality, "S3", Role.supporter, ("nishi",)),
            ),
            201,
        )
        ok(await client.post("/v1/calendar/instructions/covid-0406/lift", headers=manager, json={}))
        assert ok(await client.post("/v1/desks/minami-1/tickets", headers=s1), 201)["ticket_no"] == 1
    assert await stream_types(nc, deskday(municipality, "minami-1", "2021-04-06")) == ["desk.ticket_issued"]


async def test_desk5_nobody_on_duty_for_a_minute(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("teine",))
    async with desk_app(settings, municipality, clock) as (app, client):
        ok(await client.post("/v1/desks/teine-1/staff/check-in", headers=s1, json={}))
        out = ok(await client.post("/v1/desks/teine-1/staff/check-out", headers=s1, json={}))
        assert [e["type"] for e in out["events"]] == [
            "desk.staff_checked_out",
            "desk.staffing_breach_detected",
        ]  # at once
        clock.advance(minutes=1)
        swept = await app.state.desk.staffing_sweep()  # the periodic timer's work, driven by the test
        assert all(a.event.desk != "teine-1" for a in swept)  # the same breach: nothing new for teine-1
        status = ok(await client.get("/v1/desks/teine-1/status", headers=s1))
        assert status["staffing"] == {"breach_open": True, "breaches": 1, "breach_seconds": 60.0}
        assert any(a["kind"] == "staffing_breach" for a in status["alerts"])
        out = ok(await client.post("/v1/desks/teine-1/staff/check-in", headers=s1, json={}))
        assert out["events"][-1]["type"] == "desk.staffing_breach_ended" and out["events"][-1]["duration_seconds"] == 60
        metrics = (await client.get("/metrics")).text
        assert 'madoguchi_desk_staffing_breaches_total{desk="teine-1"} 1.0' in metrics
    # the timer found every other desk open with nobody on duty at 10:01: one breach each
    for desk in ("chuo-1", "kita-1"):
        assert (await stream_types(nc, deskday(municipality, desk, "2021-04-06"))) == ["desk.staffing_breach_detected"]


async def test_desk9_card_left_behind_is_urgent(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 11, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kiyota",))
    manager = await auth(js, settings, municipality, "M1", Role.manager)
    async with desk_app(settings, municipality, clock) as (_app, client):
        ok(await client.post("/v1/desks/kiyota-1/staff/check-in", headers=s1, json={}))
        ok(await client.post("/v1/desks/kiyota-1/tickets", headers=s1), 201)
        ok(await client.post("/v1/desks/kiyota-1/tickets/call-next", headers=s1, json={}))
        visit_id = ok(await client.post("/v1/desks/kiyota-1/tickets/1/visit", headers=s1), 201)["visit_id"]
        ok(await client.post(f"/v1/visits/{visit_id}/card/handed", headers=s1))
        held = await client.post(f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed"})
        assert held.status_code == 409 and "返却" in held.json()["detail"]
        ok(await client.post(f"/v1/visits/{visit_id}/card/returned", headers=s1))
        ok(await client.post(f"/v1/visits/{visit_id}/end", headers=s1, json={"outcome": "completed"}))
        left = ok(await client.post(f"/v1/visits/{visit_id}/card/left-behind", headers=s1), 201)
        assert [e["type"] for e in left["events"]] == ["desk.incident_opened", "desk.card_left_behind"]
        assert left["incident"]["message_ja"].startswith("【至急】")
        assert [s["text_ja"] for s in left["incident"]["checklist"]][0] == "委託者（市）へ電話で速やかに報告する"
        status = ok(await client.get("/v1/desks/kiyota-1/status", headers=manager))
        assert status["alerts"][0]["kind"] == "incident.card_left_behind" and status["alerts"][0]["level"] == "urgent"
        refused = await client.post("/v1/desks/kiyota-1/incidents/1/close", headers=manager, json={})
        assert refused.status_code == 409
        for step in ("phone_city", "keep_card_safe", "record_handover"):
            ok(await client.post("/v1/desks/kiyota-1/incidents/1/steps", headers=manager, json={"step": step}))
        ok(
            await client.post(
                "/v1/desks/kiyota-1/incidents/1/close", headers=manager, json={"note": "市職員へ引渡し済み"}
            )
        )


async def test_desk7_free_text_with_my_number_refused_422_and_nothing_stored(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 11, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("higashi",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        ok(await client.post("/v1/desks/higashi-1/staff/check-in", headers=s1, json={}))
        ok(await client.post("/v1/desks/higashi-1/tickets", headers=s1), 201)
        ok(await client.post("/v1/desks/higashi-1/tickets/call-next", headers=s1, json={}))
        visit_id = ok(await client.post("/v1/desks/higashi-1/tickets/1/visit", headers=s1), 201)["visit_id"]
        before = await stream_types(nc, aggregate_subject("desk", municipality, "visit", visit_id))
        my_number = "1234 5678 9018"  # a valid check digit
        r = await client.post(
            f"/v1/visits/{visit_id}/opinions", headers=s1, json={"kind": "opinion", "text": f"番号は{my_number}です"}
        )
        assert r.status_code == 422 and my_number not in r.text and "個人番号" in r.text
        r = await client.post(
            "/v1/desks/higashi-1/escalations",
            headers=s1,
            json={"category": "complaint", "summary": f"連絡先 taro@example.jp 番号{my_number}"},
        )
        assert r.status_code == 422 and "taro@example.jp" not in r.text
        # a PIN has no field to go in
        r = await client.post(
            f"/v1/visits/{visit_id}/pin-failures", headers=s1, json={"pin": "user_auth", "value": "1234"}
        )
        assert r.status_code == 422
    assert await stream_types(nc, aggregate_subject("desk", municipality, "visit", visit_id)) == before
    async for _seq, _subject, data, _headers in bus.load_filter(js, context_filter("desk", municipality)):
        # the number in the spellings it was sent in (a bare "9018" also turns up in random UUIDs)
        assert b"5678 9018" not in data and b"123456789018" not in data and b"example.jp" not in data


async def test_ids_typed_by_a_person_hold_no_personal_data(settings, municipality, nc, js):
    """An instruction's id is recorded in events and subjects: a My Number or a phone number typed
    as one is refused (422), nothing is stored; an unknown equipment item typed as a phone number
    is refused without echoing it."""
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    manager = await auth(js, settings, municipality, "M1", Role.manager)
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("teine",))
    window = {"start": "2021-05-06T09:00:00+09:00", "end": "2021-05-06T12:00:00+09:00", "reason": "pandemic"}
    async with desk_app(settings, municipality, clock) as (_app, client):
        for instruction_id in ("123456789018", "s-09012345678", "1234-5678-9018"):
            r = await client.post(
                "/v1/calendar/suspensions", headers=manager, json={"instruction_id": instruction_id, **window}
            )
            assert r.status_code == 422, r.text
            assert "9018" not in r.text and "5678" not in r.text
        ok(
            await client.post("/v1/calendar/suspensions", headers=manager, json={"instruction_id": "s-0506", **window}),
            201,
        )
        r = await client.post(
            "/v1/desks/teine-1/equipment-checks", headers=s1, json={"phase": "opening", "missing": ["09012345678"]}
        )
        assert r.status_code == 422 and "5678" not in r.text and "個人情報" in r.json()["detail"]
    async for _seq, subject, data, _headers in bus.load_filter(js, context_filter("desk", municipality)):
        assert b"123456789018" not in data and b"09012345678" not in data and b"5678-9018" not in data, subject


async def test_org4_untrained_staff_cannot_check_in(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    await train(js, municipality, "S7", passed=False)
    s7 = await auth(js, settings, municipality, "S7", Role.supporter, ("atsubetsu",))
    s8 = await auth(js, settings, municipality, "S8", Role.supporter, ("atsubetsu",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        r = await client.post("/v1/desks/atsubetsu-1/staff/check-in", headers=s7, json={})
        assert r.status_code == 403 and "理解度テスト" in r.json()["detail"]
        r = await client.post("/v1/desks/atsubetsu-1/staff/check-in", headers=s8, json={})  # no records at all
        assert r.status_code == 403 and "コンプライアンス" in r.json()["detail"]


async def test_desk10_missing_laptop_at_opening_is_an_incident(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 8, 30, tzinfo=TOKYO))
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("shiroishi",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        out = ok(
            await client.post(
                "/v1/desks/shiroishi-1/equipment-checks", headers=s1, json={"phase": "opening", "missing": ["laptop"]}
            ),
            201,
        )
        assert [e["type"] for e in out["events"]] == ["desk.equipment_checked", "desk.incident_opened"]
        bad = await client.post(
            "/v1/desks/shiroishi-1/equipment-checks", headers=s1, json={"phase": "opening", "missing": ["tv"]}
        )
        assert bad.status_code == 422


async def test_desk2_capacity_alert_through_the_api(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("toyohira",))
    async with desk_app(settings, municipality, clock) as (app, client):
        # this deployment's toyohira desk expects 4 visitors (configuration)
        m = app.state.desk.m
        app.state.desk.m = m.model_copy(
            update={
                "wards": tuple(
                    w.model_copy(
                        update={"desks": tuple(dk.model_copy(update={"expected_max_visitors": 4}) for dk in w.desks)}
                    )
                    for w in m.wards
                )
            }
        )
        types = []
        for _ in range(4):
            types += [
                e["type"] for e in ok(await client.post("/v1/desks/toyohira-1/tickets", headers=s1), 201)["events"]
            ]
        assert types.count("desk.capacity_threshold_reached") == 2  # 80 % and 100 % at the 4th visitor
        status = ok(await client.get("/v1/desks/toyohira-1/status", headers=s1))
        assert status["capacity_ratio"] == 1.0 and any(
            a["kind"] == "capacity" and a["threshold"] == 1.0 for a in status["alerts"]
        )


async def test_access_roles_and_wards(settings, municipality, nc, js):
    """ORG-2: each role does its own part: supporters and rounders work the desks of their wards, only the
    manager confirms the day, city staff and auditors read and never write."""
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    other_ward = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    city = await auth(js, settings, municipality, "C1", Role.city_staff)
    auditor = await auth(js, settings, municipality, "A1", Role.auditor)
    rounder = await auth(js, settings, municipality, "R1", Role.rounder)
    foreign = await auth(
        js, settings, "999999" if municipality != "999999" else "999998", "S1", Role.supporter, ("chuo",)
    )
    async with desk_app(settings, municipality, clock) as (_app, client):
        assert (await client.post("/v1/desks/chuo-1/tickets", headers=other_ward)).status_code == 403
        assert (await client.get("/v1/desks/chuo-1/status", headers=other_ward)).status_code == 403
        assert (await client.post("/v1/desks/chuo-1/tickets", headers=city)).status_code == 403
        assert (await client.post("/v1/desks/chuo-1/tickets", headers=auditor)).status_code == 403
        assert (await client.post("/v1/desks/chuo-1/day/start", headers=rounder)).status_code == 403  # the manager's
        assert (await client.get("/v1/desks/chuo-1/status", headers=city)).status_code == 200
        assert (await client.get("/v1/desks/chuo-1/status", headers=foreign)).status_code == 403
        assert (await client.post("/v1/desks/chuo-1/tickets", headers=rounder)).status_code == 201
        assert (await client.post("/v1/desks/chuo-1/tickets")).status_code == 401
        assert (await client.post("/v1/desks/nowhere-1/tickets", headers=rounder)).status_code == 404
        listed = ok(await client.get("/v1/desks", headers=other_ward))
        assert [x["desk"] for x in listed["desks"]] == ["kita-1"]
    denied = await stream_types(nc, aggregate_subject("admin", municipality, "access", "S1"))
    assert denied.count("admin.access_denied") >= 2


async def test_dates_of_birth_and_names_are_refused_without_echo_or_event(settings, municipality, nc, js):
    """The second independent pass's spellings through the API: a date of birth in 和暦, a name with a label and
    no honorific, a romaji name, the first 11 digits of a My Number: each refused 422 as problem+json naming the
    kind, the value neither echoed nor on the bus."""
    clock = FakeClock(datetime(2021, 4, 6, 11, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("higashi",))
    hostile = {
        "昭和50年1月1日": "生年月日は昭和50年1月1日とのこと",
        "H元.5.5": "H元.5.5生まれの方",
        "東海林太郎": "氏名：東海林太郎",
        "Taro Yamada": "Mr. Taro Yamada from the office",
        "12345678901": "マイナンバー 12345678901 を口頭で",
    }
    async with desk_app(settings, municipality, clock) as (_app, client):
        ok(await client.post("/v1/desks/higashi-1/staff/check-in", headers=s1, json={}))
        ok(await client.post("/v1/desks/higashi-1/tickets", headers=s1), 201)
        ok(await client.post("/v1/desks/higashi-1/tickets/call-next", headers=s1, json={}))
        visit_id = ok(await client.post("/v1/desks/higashi-1/tickets/1/visit", headers=s1), 201)["visit_id"]
        for value, text in hostile.items():
            for path, body in (
                (f"/v1/visits/{visit_id}/opinions", {"kind": "opinion", "text": text}),
                ("/v1/desks/higashi-1/escalations", {"category": "complaint", "summary": text}),
            ):
                r = await client.post(path, headers=s1, json=body)
                assert r.status_code == 422, (text, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
                assert value not in r.text and "個人情報" in r.text, r.text
    async for _seq, _subject, data, _headers in bus.load_filter(js, context_filter("desk", municipality)):
        for value in hostile:
            assert value.encode() not in data
