"""Rules through the API: personal data refused, roles, overflow and the never-connected share,
seat coverage and overdue alerts from the periodic check, concurrency, the live SSE feed."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import httpx
import uvicorn
from calls_harness import jst, running_line

from madoguchi_calls.main import create_app
from madoguchi_shared.events.calls import call_reference
from madoguchi_shared.runtime import free_port


async def test_call5_note_with_a_phone_number_is_refused_422_and_nothing_stored(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/answer", line.operator, {"seat": "s1"})
        before = await line.raw_messages()
        # a seat is recorded in events: a phone number typed as one is refused, not stored
        r = await line.client.post("/v1/lines/main/seats/09087654321/sign-in", headers=line.operator2)
        assert r.status_code == 422 and "4321" not in r.text, r.text
        r = await line.client.post(f"/v1/calls/{call_id}/answer", headers=line.operator, json={"seat": "09087654321"})
        assert r.status_code == 422 and "4321" not in r.text, r.text
        for body in (
            {"notes": "折り返しは 090-8765-4321 まで"},
            {"notes": "カード番号 1234 5678 9018 を読み上げた"},
            {"opinions": [{"kind": "opinion", "text": "連絡先 taro@example.jp"}]},
            # one number split over two fields of the request (each alone is clean)
            # (halves of six: 「1234 5678」 alone is refused as two of the card's groups of four)
            {"notes": "番号は 123456", "opinions": [{"kind": "opinion", "text": "続きは 789018 とのこと"}]},
        ):
            r = await line.client.post(
                f"/v1/calls/{call_id}/close",
                headers=line.operator,
                json={"categories": ["other"], "resolution": "answered_on_spot", **body},
            )
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "個人情報" in r.text
            assert "4321" not in r.text and "9018" not in r.text and "taro@" not in r.text  # never echoed
        assert await line.raw_messages() == before  # nothing stored
        call = await line.get(f"/v1/calls/{call_id}", line.city)
        assert call["status"] == "answered"
        # the same close without the number goes through
        await line.post(
            f"/v1/calls/{call_id}/close",
            line.operator,
            {"categories": ["other"], "resolution": "answered_on_spot", "notes": "折り返し不要と確認"},
        )


async def test_call4_roles_operators_write_manager_escalates_city_and_auditors_read(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        for who in (line.city, line.auditor):
            await line.post("/v1/calls", who, {}, expect=403)
            await line.post("/v1/lines/main/seats/s9/sign-in", who, expect=403)
            await line.post("/v1/faq", who, {"question": "Q", "answer": "A"}, expect=403)
        await line.post("/v1/faq", line.operator, {"question": "Q", "answer": "A"}, expect=403)
        r = await line.client.get("/v1/lines/main/state")
        assert r.status_code == 401
        await line.get("/v1/lines/main/state", line.auditor)
        await line.get("/v1/callbacks", line.city)
        denied = [e for e in await line.events() if e.type == "admin.access_denied"]
        assert denied == []  # access denials are admin events, on their own stream
        from madoguchi_shared import bus, subjects

        admin = []
        async for _s, _subj, data, _h in bus.load_filter(
            line.service.js, subjects.context_filter("admin", municipality), timeout=0.5
        ):
            admin.append(json.loads(data)["type"])
        assert admin.count("admin.access_denied") == 7


async def test_call3_overflow_and_the_never_connected_share_per_day(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        first = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{first}/answer", line.operator, {"seat": "s1"})
        busy = await line.post("/v1/calls", line.phone_system, {}, expect=201)  # the only seat is busy
        assert busy["route"] == "overflow" and busy["options"] == ["wait", "callback"]
        hung_up = await line.post("/v1/calls", line.phone_system, {}, expect=201)
        line.clock.advance(minutes=2)
        await line.post(f"/v1/calls/{hung_up['call_id']}/abandoned", line.phone_system)
        # the second caller chooses a callback instead of waiting
        await line.post(
            f"/v1/calls/{busy['call_id']}/callback", line.phone_system, {"phone": "090-1111-3333"}, expect=201
        )
        await line.post(
            f"/v1/calls/{first}/close", line.operator, {"categories": ["pin"], "resolution": "answered_on_spot"}
        )
        line.clock.set(jst(2021, 4, 8, 19, 0))
        await line.post("/v1/calls", line.phone_system, {}, expect=201)  # out of hours, no callback
        line.clock.set(jst(2021, 4, 9, 10, 0))
        await line.post("/v1/calls", line.phone_system, {}, expect=201)  # next day: ringing
        share = await line.get("/v1/lines/main/never-connected", line.city, start="2021-04-08", end="2021-04-09")
        day1, day2 = share["days"]
        assert (day1["received"], day1["missed"], day1["abandoned"], day1["out_of_hours"]) == (4, 1, 1, 1)
        assert day1["share"] == 0.75 and day2 == {**day2, "received": 1, "never_connected": 0, "share": 0.0}
        assert share["total"]["share"] == 0.6
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.manager)
        assert stats["callback_chosen"] == 1 and stats["overflow_offered"] == 3 and stats["callbacks_requested"] == 1
        await line.get("/v1/lines/main/never-connected", line.city, expect=422, start="2021-04-09", end="2021-04-01")


async def test_call1_no_operator_seated_during_hours_alerts_from_the_periodic_check(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 8, 30)) as line:
        report = await line.service.run_checks(municipality)
        assert report.breaches == []  # before opening: no breach
        line.clock.set(jst(2021, 4, 8, 8, 50))
        report = await line.service.run_checks(municipality)
        assert report.breaches == ["main"]
        assert (await line.service.run_checks(municipality)).breaches == []  # once per gap
        state = await line.get("/v1/lines/main/state", line.manager)
        assert state["breach_open"] and state["alerts"][0]["kind"] == "no_operator_seated"
        assert "8:45" in state["alerts"][0]["message_ja"] or "08:45" in state["alerts"][0]["message_ja"]
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator2, expect=409)  # seat taken
        line.clock.set(jst(2021, 4, 8, 12, 0))
        out = await line.post("/v1/lines/main/seats/s1/sign-out", line.operator, {"reason": "break"})
        assert [e["type"] for e in out["events"]] == ["calls.operator_signed_out", "calls.no_operator_seated"]
        line.clock.set(jst(2021, 4, 8, 12, 40))
        back = await line.post("/v1/lines/main/seats/s2/sign-in", line.operator2, expect=201)
        assert [e["type"] for e in back["events"]] == ["calls.operator_signed_in", "calls.seat_coverage_restored"]
        # a Saturday: the line is closed, nobody needs to sit
        line.clock.set(jst(2021, 4, 10, 10, 0))
        assert (await line.service.run_checks(municipality)).breaches == []


async def test_call4_overdue_callback_raises_an_alert_from_the_lifespan_check(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 0), check_interval=0.1) as line:
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": "090-5555-6666"}, expect=201)
        line.clock.set(jst(2021, 4, 9, 12, 5))  # past the due time (Friday 12:00)
        view = await line.service.view(municipality)
        for _ in range(100):  # the background check runs every 0.1 s
            if any(a.kind == "callback_overdue" for a in view.alerts):
                break
            await asyncio.sleep(0.05)
        overdue = [
            e
            for e in await line.events(aggregate="callback", aggregate_id=call_id)
            if e.type == "calls.callback_overdue"
        ]
        assert len(overdue) == 1 and overdue[0].due_at == jst(2021, 4, 9, 12)
        queue = await line.get("/v1/callbacks", line.manager)
        assert queue["callbacks"][0]["overdue"] is True


async def test_call2_concurrent_answers_one_wins_the_other_gets_409(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        await line.post("/v1/lines/main/seats/s2/sign-in", line.operator2, expect=201)
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        r1, r2 = await asyncio.gather(
            line.client.post(f"/v1/calls/{call_id}/answer", json={"seat": "s1"}, headers=line.operator),
            line.client.post(f"/v1/calls/{call_id}/answer", json={"seat": "s2"}, headers=line.operator2),
        )
        assert sorted([r1.status_code, r2.status_code]) == [200, 409]
        answered = [
            e for e in await line.events(aggregate="call", aggregate_id=call_id) if e.type == "calls.call_answered"
        ]
        assert len(answered) == 1


async def test_live_line_state_over_sse(settings, municipality):
    """The SSE feed on a real HTTP server: the state at once, then alerts and new states on changes."""
    from calls_harness import headers, train

    from tests.utils.clock import FakeClock
    from madoguchi_shared.events.base import Role

    clock = FakeClock(jst(2021, 4, 8, 9, 0))
    from tests.utils.servers import as_service

    app = create_app(as_service(settings, "calls"), clock=clock, check_interval=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        js = app.state.calls.js
        await train(js, municipality, "OP1")
        manager = await headers(js, settings, municipality, "MG1", Role.manager)
        operator = await headers(js, settings, municipality, "OP1", Role.operator)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            once = await client.get("/v1/lines/main/live", params={"once": "true"}, headers=manager)
            assert once.status_code == 200 and "event: state" in once.text
            async with client.stream("GET", "/v1/lines/main/live", headers=manager) as stream:
                received: list[tuple[str, dict]] = []

                async def read():
                    kind = None
                    async for raw in stream.aiter_lines():
                        if raw.startswith("event:"):
                            kind = raw.split(":", 1)[1].strip()
                        elif raw.startswith("data:") and kind:
                            received.append((kind, json.loads(raw.split(":", 1)[1])))
                            if (
                                any(k == "alert" for k, _ in received)
                                and received[-1][0] == "state"
                                and received[-1][1]["seats"]
                            ):
                                return

                reader = asyncio.create_task(read())
                while not received:
                    await asyncio.sleep(0.02)
                assert received[0][0] == "state" and received[0][1]["seats"] == []
                await app.state.calls.run_checks(municipality)  # nobody seated at 9:00 -> alert
                r = await client.post("/v1/lines/main/seats/s1/sign-in", headers=operator)
                assert r.status_code == 201
                await asyncio.wait_for(reader, 10)
        kinds = [k for k, _ in received]
        assert "alert" in kinds
        alert = next(data for k, data in received if k == "alert")
        assert alert["kind"] == "no_operator_seated"
        assert received[-1][1]["seats"][0]["operator"] == "OP1"
    finally:
        server.should_exit = True
        await task


async def test_org4_an_untrained_operator_is_refused_a_seat_until_the_training_is_recorded(settings, municipality):
    """Training gates the phone as it gates the desk: recorded through /v1/staff (which the calls
    service serves too), item by item with date and trainer, then the test."""
    from calls_harness import headers

    from madoguchi_shared.events.base import Role

    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        js = line.service.js
        newcomer = await headers(js, settings, municipality, "OP9", Role.operator)
        r = await line.client.post("/v1/lines/main/seats/s3/sign-in", headers=newcomer)
        assert r.status_code == 403 and "研修が完了していないため電話対応に従事できません" in r.json()["detail"]
        assert "理解度テスト" in r.json()["detail"] and "コンプライアンス" in r.json()["detail"]
        plan = await line.get("/v1/staff/training-plan", line.manager)
        for item in plan["items"]:
            await line.post(
                "/v1/staff/OP9/training",
                line.manager,
                {"item": item["key"], "completed_on": "2021-04-01", "trainer": "MG1"},
                expect=201,
            )
        r = await line.client.post("/v1/lines/main/seats/s3/sign-in", headers=newcomer)
        assert (
            r.status_code == 403
            and "理解度テスト" in r.json()["detail"]
            and "コンプライアンス" not in r.json()["detail"]
        )
        cleared = await line.post(
            "/v1/staff/OP9/training-test",
            line.manager,
            {"score": 92, "tested_on": "2021-04-02", "trainer": "MG1"},
            expect=201,
        )
        assert cleared["cleared"]["phone"] is True
        await line.post("/v1/lines/main/seats/s3/sign-in", newcomer, expect=201)


async def test_call3_offer_choice_and_repeat_call_by_reference(settings, municipality):
    """The caller's choice at an offer is recorded once and checked against the offer; a repeat call
    links to the earlier call by the reference the caller was given (no phone number anywhere)."""
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        first = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{first}/answer", line.operator, {"seat": "s1"})
        busy = await line.post("/v1/calls", line.phone_system, {}, expect=201)  # every seat busy: an offer
        assert busy["reference"] == call_reference(UUID(busy["call_id"]))
        r = await line.post(f"/v1/calls/{first}/offer-choice", line.phone_system, {"choice": "wait"}, expect=409)
        assert "案内をしていない" in r["detail"]  # no offer was made on the answered call
        await line.post(f"/v1/calls/{busy['call_id']}/offer-choice", line.phone_system, {"choice": "call_again"})
        again = await line.post(
            f"/v1/calls/{busy['call_id']}/offer-choice", line.phone_system, {"choice": "wait"}, expect=409
        )
        assert "既に記録" in again["detail"]
        await line.post(f"/v1/calls/{busy['call_id']}/abandoned", line.phone_system)
        # out of hours: waiting is not a choice
        line.clock.set(jst(2021, 4, 8, 19, 0))
        closed = await line.post("/v1/calls", line.phone_system, {}, expect=201)
        await line.post(
            f"/v1/calls/{closed['call_id']}/offer-choice", line.phone_system, {"choice": "wait"}, expect=422
        )
        await line.post(f"/v1/calls/{closed['call_id']}/offer-choice", line.phone_system, {"choice": "call_again"})
        # the next morning the caller calls again and quotes the reference given at the busy call
        line.clock.set(jst(2021, 4, 9, 9, 30))
        repeat = await line.post("/v1/calls", line.phone_system, {}, expect=201)
        ref = busy["reference"]
        await line.post(f"/v1/calls/{repeat['call_id']}/repeat-of", line.operator, {"reference": ref.replace("-", "")})
        await line.post(f"/v1/calls/{repeat['call_id']}/repeat-of", line.operator, {"reference": ref}, expect=409)
        await line.post(f"/v1/calls/{repeat['call_id']}/repeat-of", line.operator, {"reference": "12-34"}, expect=422)
        own = await line.post("/v1/calls", line.phone_system, {}, expect=201)
        await line.post(
            f"/v1/calls/{own['call_id']}/repeat-of", line.operator, {"reference": own["reference"]}, expect=422
        )
        call = await line.get(f"/v1/calls/{repeat['call_id']}", line.city)
        assert call["repeat_of"] == ref and call["reference"] == repeat["reference"]
        kinds = [e.type for e in await line.events()]
        assert kinds.count("calls.offer_choice_recorded") == 2 and kinds.count("calls.repeat_call_linked") == 1
