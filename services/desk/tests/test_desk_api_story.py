"""A full day at one desk through the API, on the real NATS JetStream (issue 3 story)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, train

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.subjects import context_filter


async def test_story_full_day_at_one_desk(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 1, 8, 20, tzinfo=TOKYO))  # Thursday, extended to 19:00
    m = municipality
    for staff in ("S1", "S2"):
        await train(js, m, staff)
    manager = await auth(js, settings, m, "M1", Role.manager)
    s1 = await auth(js, settings, m, "S1", Role.supporter, ("chuo",))
    s2 = await auth(js, settings, m, "S2", Role.supporter, ("chuo",))
    city = await auth(js, settings, m, "C1", Role.city_staff)
    base = "/v1/desks/chuo-1"
    async with desk_app(settings, m, clock) as (_app, client):
        # ORG-3 / DESK-5 / DESK-10: preparation before opening, the manager confirms the start, checks, check-in
        ok(
            await client.post(
                f"{base}/day/preparation",
                headers=s1,
                json={"start": "2021-04-01T08:10:00+09:00", "end": "2021-04-01T08:35:00+09:00"},
            )
        )
        clock.at(8, 35)
        ok(await client.post(f"{base}/day/start", headers=manager))
        ok(await client.post(f"{base}/equipment-checks", headers=s1, json={"phase": "opening"}), 201)
        for h in (s1, s2):
            ok(await client.post(f"{base}/staff/check-in", headers=h, json={}))
            ok(await client.post(f"{base}/staff/mask", headers=h, json={"wearing": True}))

        # DESK-3: three visitors take tickets
        clock.at(9, 0)
        numbers = [ok(await client.post(f"{base}/tickets", headers=s1), 201)["ticket_no"] for _ in range(3)]
        assert numbers == [1, 2, 3]

        # ticket 1: MyKey ID on the PC, card handed over and returned, completed, devices disinfected
        clock.at(9, 5)
        called = ok(await client.post(f"{base}/tickets/call-next", headers=s1, json={}))
        assert called["ticket_no"] == 1
        started = ok(await client.post(f"{base}/tickets/1/visit", headers=s1), 201)
        v1 = started["visit_id"]
        assert [e["type"] for e in started["events"]] == ["desk.ticket_served", "desk.visit_started"]
        ok(
            await client.post(
                f"/v1/visits/{v1}/details",
                headers=s1,
                json={
                    "gender": "female",
                    "age_band": "70s",
                    "purposes": ["mykey_pc", "mynapoint_application"],
                    "support_needed": True,
                    "support_given": True,
                    "payment_service": "qr_code",
                },
            )
        )
        ok(await client.post(f"/v1/visits/{v1}/card/handed", headers=s1))
        ok(await client.post(f"/v1/visits/{v1}/card/returned", headers=s1))
        clock.at(9, 25)
        ended = ok(await client.post(f"/v1/visits/{v1}/end", headers=s1, json={"outcome": "completed"}))
        assert ended["events"][0]["service_seconds"] == 20 * 60
        ok(await client.post(f"{base}/disinfections", headers=s1, json={}), 201)

        # ticket 2: PIN forgotten, warned after the second failure, not completed, an opinion
        called = ok(await client.post(f"{base}/tickets/call-next", headers=s2, json={}))
        v2 = ok(await client.post(f"{base}/tickets/2/visit", headers=s2), 201)["visit_id"]
        ok(await client.post(f"/v1/visits/{v2}/pin-failures", headers=s2, json={"pin": "user_auth"}), 201)
        warned = ok(await client.post(f"/v1/visits/{v2}/pin-failures", headers=s2, json={}), 201)
        assert "あと1回" in warned["warning_ja"]
        ok(
            await client.post(
                f"/v1/visits/{v2}/details",
                headers=s2,
                json={
                    "gender": "not_stated",
                    "age_band": "60s",
                    "purposes": ["mynapoint_application"],
                    "support_needed": True,
                    "support_given": False,
                },
            )
        )
        ok(
            await client.post(
                f"/v1/visits/{v2}/opinions",
                headers=s2,
                json={"kind": "difficulty", "step": "pin_entry", "text": "暗証番号を覚えていなかった"},
            ),
            201,
        )
        ok(
            await client.post(
                f"/v1/visits/{v2}/end",
                headers=s2,
                json={"outcome": "not_completed", "reason": "pin_locked_or_forgotten"},
            )
        )
        ok(await client.post(f"{base}/disinfections", headers=s2, json={}), 201)

        # ticket 3 does not come; an escalation is raised and resolved by the manager
        ok(await client.post(f"{base}/tickets/call-next", headers=s1, json={}))
        ok(await client.post(f"{base}/tickets/3/recall", headers=s1, json={}))
        ok(await client.post(f"{base}/tickets/3/no-show", headers=s1, json={}))
        esc = ok(
            await client.post(
                f"{base}/escalations",
                headers=s1,
                json={"category": "complaint", "summary": "案内表示がわかりにくいとのご意見"},
            ),
            201,
        )
        ok(await client.post(f"{base}/escalations/{esc['escalation_no']}/acknowledge", headers=manager))
        ok(
            await client.post(
                f"{base}/escalations/{esc['escalation_no']}/resolve",
                headers=manager,
                json={"outcome": "表示位置を変更"},
            )
        )

        # city staff read the desk status (and only read)
        status = ok(await client.get(f"{base}/status", headers=city))
        assert status["open_now"] and status["queue"]["served"] == 2 and status["visitors"] == 3
        assert [p["staff_id"] for p in status["on_duty"]] == ["S1", "S2"]
        assert status["disinfection"]["compliance"] == 1.0 and status["staffing"]["breaches"] == 0
        # the summary and the outcome are stored sealed (issue 14) and shown decrypted
        assert [(e["summary"], e["outcome"]) for e in status["escalations"]] == [
            ("案内表示がわかりにくいとのご意見", "表示位置を変更")
        ]
        visit = ok(await client.get(f"/v1/visits/{v1}", headers=city))
        assert visit["outcome"] == "completed" and visit["details"]["age_band"] == "70s"

        # closing at 19:00 (extended day): check-out, closing check, clean-up, the manager ends the day
        clock.at(19, 5)
        for h in (s1, s2):
            ok(await client.post(f"{base}/staff/check-out", headers=h, json={}))
        ok(await client.post(f"{base}/equipment-checks", headers=s1, json={"phase": "closing"}), 201)
        ok(
            await client.post(
                f"{base}/day/cleanup",
                headers=s1,
                json={"start": "2021-04-01T19:05:00+09:00", "end": "2021-04-01T19:30:00+09:00"},
            )
        )
        clock.at(19, 30)
        ok(await client.post(f"{base}/day/end", headers=manager))
        assert ok(await client.get(f"{base}/status", headers=manager))["day_status"] == "ended"

    # the day's event stream (types and counts), for the closing note
    counts: Counter[str] = Counter()
    async for _seq, _subject, data, headers in bus.load_filter(js, context_filter("desk", m)):
        counts[headers.get("Mg-Type", "?")] += 1
        # free text leaves the desk sealed: the stream holds a reference and ciphertext only
        assert "案内表示" not in data.decode() and "表示位置" not in data.decode()
        if headers.get("Mg-Type") in ("desk.escalation_raised", "desk.escalation_resolved"):
            assert '"sealed:v1:' in data.decode()
    print("\nsample day's event stream:", dict(sorted(counts.items())))
    assert counts["desk.ticket_issued"] == 3 and counts["desk.visit_started"] == 2 and counts["desk.visit_ended"] == 2
    assert counts["desk.pin_lock_warning_issued"] == 1 and counts["desk.staffing_breach_detected"] == 0
    assert counts["desk.day_started"] == 1 and counts["desk.day_ended"] == 1
