"""CALL-5: a sample day on the line, every call recorded, the day's counts and its event stream."""

from __future__ import annotations

from calls_harness import jst, running_line


async def run_sample_day(line) -> None:
    op, pbx = line.operator, line.phone_system
    line.clock.set(jst(2021, 4, 8, 8, 40))
    await line.post("/v1/lines/main/seats/s1/sign-in", op, expect=201)
    line.clock.set(jst(2021, 4, 8, 9, 2))
    a = (await line.post("/v1/calls", pbx, {}, expect=201))["call_id"]
    await line.post(f"/v1/calls/{a}/answer", op, {"seat": "s1"})
    line.clock.set(jst(2021, 4, 8, 9, 5))
    b = await line.post("/v1/calls", pbx, {}, expect=201)  # overflow: the seat is busy
    line.clock.set(jst(2021, 4, 8, 9, 8))
    await line.post(f"/v1/calls/{a}/close", op, {"categories": ["mykey_id.setup"], "resolution": "answered_on_spot"})
    await line.post(f"/v1/calls/{b['call_id']}/answer", op, {"seat": "s1"})
    line.clock.set(jst(2021, 4, 8, 9, 14))
    await line.post(
        f"/v1/calls/{b['call_id']}/close",
        op,
        {
            "categories": ["payment_services"],
            "resolution": "referred_payment_provider",
            "provider_category": "qr_code",
            "opinions": [
                {"kind": "difficulty", "step": "payment_service_choice", "text": "どの決済サービスを選べばよいか迷った"}
            ],
        },
    )
    line.clock.set(jst(2021, 4, 8, 11, 30))
    c = (await line.post("/v1/calls", pbx, {}, expect=201))["call_id"]
    line.clock.set(jst(2021, 4, 8, 11, 31))
    await line.post(f"/v1/calls/{c}/abandoned", pbx)
    line.clock.set(jst(2021, 4, 8, 17, 15))
    await line.post("/v1/lines/main/seats/s1/sign-out", op, {"reason": "end_of_shift"})
    line.clock.set(jst(2021, 4, 8, 18, 10))
    d = (await line.post("/v1/calls", pbx, {}, expect=201))["call_id"]
    await line.post(f"/v1/calls/{d}/callback", pbx, {"phone": "090-1212-3434"}, expect=201)


async def test_call5_every_call_recorded_and_counted_for_the_daily_report(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 8, 0)) as line:
        await run_sample_day(line)
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert {
            k: stats[k] for k in ("received", "answered", "closed", "abandoned", "out_of_hours", "never_connected")
        } == {"received": 4, "answered": 2, "closed": 2, "abandoned": 1, "out_of_hours": 1, "never_connected": 2}
        assert stats["never_connected_share"] == 0.5 and stats["average_wait_seconds"] == 90.0
        assert stats["per_hour"] == {"09": 2, "11": 1, "18": 1}
        assert stats["payment_provider_categories"] == {"qr_code": 1} and stats["opinions"] == 1
        types = [e.type for e in await line.events()]
        assert types == [
            "calls.operator_signed_in",
            "calls.call_received",
            "calls.call_answered",
            "calls.call_received",
            "calls.overflow_offered",
            "calls.call_closed",
            "calls.call_answered",
            "calls.call_closed",
            "calls.call_received",
            "calls.call_abandoned",
            "calls.operator_signed_out",
            "calls.call_received",
            "calls.overflow_offered",
            "calls.call_out_of_hours",
            "calls.callback_requested",
        ]
