"""Story tests through the REST API on the real servers (NATS JetStream, PostgreSQL)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from calls_harness import jst, running_line


async def test_call1_day_with_25_calls_against_a_maximum_of_20(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 8, 40)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        line.clock.set(jst(2021, 4, 8, 9, 0))
        for _ in range(25):
            line.clock.advance(minutes=10)
            r = await line.post("/v1/calls", line.phone_system, {"line": "main"}, expect=201)
            assert r["route"] == "ring"
            await line.post(f"/v1/calls/{r['call_id']}/answer", line.operator, {"seat": "s1"})
            line.clock.advance(minutes=4)
            await line.post(
                f"/v1/calls/{r['call_id']}/close",
                line.operator,
                {"categories": ["mynapoint.application"], "resolution": "answered_on_spot"},
            )
        events = await line.events(aggregate="line")
        crossed = [e for e in events if e.type == "calls.capacity_threshold_crossed"]
        assert [(e.level, e.count, e.expected_max) for e in crossed] == [
            ("approaching", 16, 20),
            ("reached", 20, 20),
            ("exceeded", 25, 20),
        ]
        state = await line.get("/v1/lines/main/state", line.city)
        assert [a["kind"] for a in state["alerts"]] == ["capacity_approaching", "capacity_reached", "capacity_exceeded"]
        assert "委託者" in state["alerts"][-1]["message_ja"]
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert stats["received"] == 25 and stats["closed"] == 25 and stats["never_connected_share"] == 0.0


async def test_call3_after_hours_call_becomes_a_callback_done_the_next_business_day(settings, municipality):
    # Thursday 2021-04-08 18:30: the line closed at 17:15.
    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 30)) as line:
        r = await line.post("/v1/calls", line.phone_system, {"line": "main"}, expect=201)
        assert r["route"] == "out_of_hours" and "callback" in r["options"]
        call_id = r["call_id"]
        cb = await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": "090-1234-5678"}, expect=201)
        assert cb["due_at"] == jst(2021, 4, 9, 12).isoformat()  # the next business day's morning
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": "090-1234-5678"}, expect=409)
        queue = await line.get("/v1/callbacks", line.operator)
        assert [c["callback_id"] for c in queue["callbacks"]] == [call_id]
        # Friday 9:10: an operator takes a seat, reads the number, calls back, done.
        line.clock.set(jst(2021, 4, 9, 8, 50))
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        line.clock.set(jst(2021, 4, 9, 9, 10))
        number = await line.get(f"/v1/callbacks/{call_id}/phone", line.operator)
        assert number["phone"] == "09012345678"
        done = await line.post(
            f"/v1/callbacks/{call_id}/attempts",
            line.operator,
            {
                "reached": True,
                "categories": ["mynapoint.application"],
                "duration_seconds": 300,
                "notes": "申込み手順を案内し、解決した",
            },
        )
        assert done["status"] == "done"
        assert [e["type"] for e in done["events"]] == ["calls.callback_completed", "calls.callback_contact_erased"]
        await line.get(f"/v1/callbacks/{call_id}/phone", line.operator, expect=410)
        assert (await line.get("/v1/callbacks", line.operator))["callbacks"] == []
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert stats["out_of_hours"] == 1 and stats["never_connected_share"] == 1.0
        types = [e.type for e in await line.events(aggregate="callback", aggregate_id=call_id)]
        assert types == [
            "calls.callback_requested",
            "calls.callback_number_read",
            "calls.callback_completed",
            "calls.callback_contact_erased",
        ]
        assert not any(b"5678" in raw for raw in await line.raw_messages())


async def test_call4_city_escalation_through_the_manager_then_call_back(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 8, 45)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        line.clock.set(jst(2021, 4, 8, 10, 0))
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/answer", line.operator, {"seat": "s1"})
        line.clock.set(jst(2021, 4, 8, 10, 7))
        late = await line.client.post(
            f"/v1/calls/{call_id}/close",
            headers=line.operator,
            json={
                "categories": ["mynapoint.eligibility"],
                "resolution": "escalated_callback",
                "callback": {"phone": "011-211-2345", "window_end": jst(2021, 4, 8, 9).isoformat()},
            },
        )
        assert late.status_code == 422 and late.json()["field"] == "window_end"
        assert (await line.get(f"/v1/calls/{call_id}", line.operator))["status"] == "answered"
        closed = await line.post(
            f"/v1/calls/{call_id}/close",
            line.operator,
            {
                "categories": ["mynapoint.eligibility"],
                "resolution": "escalated_callback",
                "notes": "転入者のポイント対象可否について市の判断が必要",
                "opinions": [{"kind": "request", "text": "対象者の条件をホームページに載せてほしい"}],
                "callback": {
                    "phone": "011-211-2345",
                    "window_start": jst(2021, 4, 8, 13).isoformat(),
                    "window_end": jst(2021, 4, 8, 17).isoformat(),
                },
            },
        )
        assert closed["callback_id"] == call_id
        # the operator cannot call back before the city has answered, nor escalate (manager only)
        await line.get(f"/v1/callbacks/{call_id}/phone", line.operator, expect=409)
        await line.post(
            f"/v1/callbacks/{call_id}/escalate", line.operator, {"question": "対象か確認したい"}, expect=403
        )
        line.clock.set(jst(2021, 4, 8, 10, 30))
        await line.post(
            f"/v1/callbacks/{call_id}/escalate",
            line.manager,
            {"question": "転入者はマイナポイントの対象か", "channel": "phone"},
        )
        state = await line.get("/v1/lines/main/state", line.manager)
        assert state["callback_queue"][0]["status"] == "awaiting_city"
        assert any(a["kind"] == "callback_escalated" for a in state["alerts"])
        await line.post(f"/v1/callbacks/{call_id}/city-answer", line.city, {"answer": "対象"}, expect=403)
        line.clock.set(jst(2021, 4, 8, 14, 0))
        await line.post(
            f"/v1/callbacks/{call_id}/city-answer",
            line.manager,
            {"answer": "対象となる。区役所窓口での手続きを案内すること"},
        )
        cb = await line.get(f"/v1/callbacks/{call_id}", line.city)
        assert cb["status"] == "open" and cb["city_answered"] and cb["due_at"] == jst(2021, 4, 8, 16).isoformat()
        assert "2112345" not in str(cb)
        # the case is shown as written (notes, opinions, question, answer), though the stream holds it sealed
        shown = {e["type"]: e for e in cb["events"]} | {
            e["type"]: e for e in (await line.get(f"/v1/calls/{call_id}", line.operator))["events"]
        }
        assert shown["calls.call_closed"]["notes"] == "転入者のポイント対象可否について市の判断が必要"
        assert shown["calls.call_closed"]["opinions"][0]["text"] == "対象者の条件をホームページに載せてほしい"
        assert "sealed:" not in str(shown)
        assert not any("市の判断が必要".encode() in raw for raw in await line.raw_messages())
        assert (await line.get(f"/v1/callbacks/{call_id}/phone", line.operator))["phone"] == "0112112345"
        done = await line.post(
            f"/v1/callbacks/{call_id}/attempts",
            line.operator,
            {"reached": True, "resolution": "guided_to_ward_desk", "duration_seconds": 180},
        )
        assert done["status"] == "done"
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert (
            stats["escalations"] == 1 and stats["opinions"] == 1 and stats["resolutions"] == {"escalated_callback": 1}
        )


async def test_call4_failed_callback_retried_and_closed(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        await line.post("/v1/lines/main/seats/s1/sign-in", line.operator, expect=201)
        # a call rings out unanswered; the phone system leaves a callback request
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        line.clock.advance(minutes=1)
        await line.post(f"/v1/calls/{call_id}/missed", line.phone_system)
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": "080-9876-5432"}, expect=201)
        line.clock.set(jst(2021, 4, 8, 16, 45))
        r = await line.post(
            f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": False, "failure": "no_answer"}
        )
        assert r["status"] == "open"
        cb = await line.get(f"/v1/callbacks/{call_id}", line.operator)
        assert (
            cb["failed_attempts"] == 1 and cb["due_at"] == jst(2021, 4, 9, 9, 15).isoformat()
        )  # 60 open minutes later
        line.clock.set(jst(2021, 4, 9, 9, 5))
        await line.post(f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": False, "failure": "busy"})
        line.clock.set(jst(2021, 4, 9, 10, 30))
        assert (await line.get(f"/v1/callbacks/{call_id}/phone", line.operator))["phone"] == "08098765432"
        r = await line.post(
            f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": True, "duration_seconds": 120}
        )
        assert r["status"] == "done"
        types = [e.type for e in await line.events(aggregate="callback", aggregate_id=call_id)]
        assert types == [
            "calls.callback_requested",
            "calls.callback_attempt_failed",
            "calls.callback_attempt_failed",
            "calls.callback_number_read",
            "calls.callback_completed",
            "calls.callback_contact_erased",
        ]
        assert not await line.service.store.holds(UUID(call_id))


async def test_call4_callback_failed_for_good_after_the_maximum_attempts(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 0)) as line:
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": "03-1234-5678"}, expect=201)
        line.clock.set(jst(2021, 4, 9, 9, 0))
        for failure in ("no_answer", "voicemail", "no_answer"):
            r = await line.post(
                f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": False, "failure": failure}
            )
            line.clock.advance(hours=1)
        assert r["status"] == "failed"
        assert [e["type"] for e in r["events"]] == ["calls.callback_failed", "calls.callback_contact_erased"]
        await line.post(f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": True}, expect=409)
        state = await line.get("/v1/lines/main/state", line.manager)
        assert any(a["kind"] == "callback_failed" for a in state["alerts"])


async def test_call1_thresholds_raised_once_each_under_concurrent_calls(settings, municipality):
    """30 calls at once against a maximum of 20: each call is answered on its acks (the live view not
    waited for unless its count may reach a threshold), and each threshold is still raised once, by a
    call that had reached it."""
    async with running_line(settings, municipality, jst(2021, 4, 8, 9, 0)) as line:
        answers = await asyncio.gather(
            *(line.post("/v1/calls", line.phone_system, {"line": "main"}, expect=201) for _ in range(30))
        )
        assert len({a["call_id"] for a in answers}) == 30
        events = await line.events(aggregate="line")
        crossed = [e for e in events if e.type == "calls.capacity_threshold_crossed"]
        assert sorted(e.threshold for e in crossed) == [16, 20, 25]
        assert all(e.count >= e.threshold for e in crossed)
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert stats["received"] == 30  # read right after: the read catches the view up
