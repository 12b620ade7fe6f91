"""A second week through the desk, calls and reporting APIs only, against figures worked out by hand
(REP-1..REP-5; DESK-5, DESK-6; CALL-3, CALL-4), as an independent tester would add to
tests/test_scenario_exact.py: a third desk in another ward, a supporter trained in the middle of the week
(refused on Monday, on duty on Tuesday), a desk-day in two sessions (stopped, then resumed), a visit
corrected after its day closed, an escalation raised on Monday and resolved on Tuesday, an after-hours call
called back the next morning, a phone escalation answered by the city the next day, the final report over
the contract, and the weekly and final reports as CSV, xlsx and PDF holding the JSON's figures.

The week of Monday 2021-04-05; desks chuo-1, higashi-1 (kita-1 is not opened: 閉庁 is not asserted here).
"""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import date

import httpx
import openpyxl

from madoguchi_reporting.main import create_app as reporting_create_app
from madoguchi_shared.auth import Role
from tests.test_scenario_exact import (
    CONTRACT,
    SAPPORO_TOML,
    WEEKLY_DESK,
    ZERO_DESK,
    Desk,
    _get,
    _pick,
    _train,
    _visit,
    jst,
    line,
)
from tests.utils.auth import credential_headers, staff_headers
from tests.utils.clock import FakeClock
from tests.utils.servers import as_service

MON, TUE = date(2021, 4, 5), date(2021, 4, 6)


async def test_a_second_week_with_a_third_desk_late_training_corrections_and_next_day_follow_ups(
    settings, js, municipality, tmp_path
):
    m = municipality
    clock = FakeClock(jst(MON, 8, 30))
    desk_settings = settings.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    for staff in ("S1", "S5", "OP1"):
        await _train(js, m, staff)
    manager = await staff_headers(js, settings, m, "M1", [Role.manager])
    s1 = await staff_headers(js, settings, m, "S1", [Role.supporter], ["chuo"])
    s3 = await staff_headers(js, settings, m, "S3", [Role.supporter], ["higashi"])  # trained on Tuesday
    s5 = await staff_headers(js, settings, m, "S5", [Role.supporter], ["higashi"])
    city = await staff_headers(js, settings, m, "C1", [Role.city_staff])
    chuo, higashi = "/v1/desks/chuo-1", "/v1/desks/higashi-1"

    desk = Desk(desk_settings, clock)
    await desk.start()
    try:
        # ---- Monday 04-05 ----------------------------------------------------------------------------
        clock.at(8, 40)
        await desk.post(f"{chuo}/day/start", manager)
        await desk.post(f"{chuo}/staff/check-in", s1)
        await desk.post(f"{higashi}/day/start", manager)
        assert desk.client is not None
        refused = await desk.client.post(f"{higashi}/staff/check-in", headers=s3, json={})
        assert 400 <= refused.status_code < 500, refused.text  # not trained yet (ORG-4)
        await desk.post(f"{higashi}/staff/check-in", s5)
        # chuo-1: ticket 1 served 09:05-09:25, 60s, completed (its age band corrected to 70s on Tuesday)
        clock.at(9, 0)
        await desk.post(f"{chuo}/tickets", s1, status=201)
        clock.at(9, 5)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        v1 = (await desk.post(f"{chuo}/tickets/1/visit", s1, status=201))["visit_id"]
        await _visit(desk, s1, v1, gender="female", age="60s", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(9, 25)
        await desk.post(f"/v1/visits/{v1}/end", s1, {"outcome": "completed"})
        await desk.post(f"{chuo}/disinfections", s1, status=201)
        # the desk cannot go on at 10:00 (the laptop fails) and resumes at 11:00: a day in two sessions
        clock.at(10, 0)
        await desk.post(f"{chuo}/day/cannot-continue", manager, {"reason": "equipment_failure"})
        clock.at(11, 0)
        await desk.post(f"{chuo}/day/resume", manager)
        clock.at(11, 10)
        v2 = (await desk.post(f"{chuo}/walk-in", s1, status=201))["visit_id"]
        await _visit(
            desk, s1, v2, gender="male", age="50s", purposes=["mynapoint_application"], needed=True, given=False
        )
        clock.at(11, 30)
        await desk.post(f"/v1/visits/{v2}/end", s1, {"outcome": "not_completed", "reason": "card_not_brought"})
        await desk.post(f"{chuo}/disinfections", s1, status=201)
        # an escalation raised and acknowledged on Monday, resolved on Tuesday
        clock.at(14, 0)
        esc = await desk.post(f"{chuo}/escalations", s1, {"category": "procedure", "summary": "手続の照会"}, 201)
        await desk.post(f"{chuo}/escalations/{esc['escalation_no']}/acknowledge", manager)
        # higashi-1 (a third desk, another ward): a walk-in at 10:00, no support needed, completed
        clock.at(10, 0)
        v3 = (await desk.post(f"{higashi}/walk-in", s5, status=201))["visit_id"]
        await _visit(desk, s5, v3, gender="female", age="20s", purposes=["mykey_smartphone"], needed=False, given=False)
        clock.at(10, 15)
        await desk.post(f"/v1/visits/{v3}/end", s5, {"outcome": "completed"})
        await desk.post(f"{higashi}/disinfections", s5, status=201)
        clock.at(17, 20)
        for base, who in ((chuo, s1), (higashi, s5)):
            await desk.post(f"{base}/staff/check-out", who)
            await desk.post(f"{base}/day/end", manager)

        # ---- Tuesday 04-06: S3 trained; Monday's visit corrected; the escalation resolved ---------------
        await _train(js, m, "S3")
        clock.set(jst(TUE, 8, 40))
        await desk.post(f"{chuo}/day/start", manager)
        await desk.post(f"{chuo}/staff/check-in", s1)
        await desk.post(f"{higashi}/day/start", manager)
        await desk.post(f"{higashi}/staff/check-in", s3)
        clock.at(9, 0)
        await desk.post(f"/v1/visits/{v1}/corrections", manager, {"age_band": "70s"}, 201)
        clock.at(9, 30)
        await desk.post(
            f"{chuo}/escalations/{esc['escalation_no']}/resolve?date=2021-04-05",
            manager,
            {"outcome": "市の回答により解決"},
        )
        # higashi-1: S3 serves ticket 1, 10:00 -> called 10:02 -> 10:30, completed with support
        clock.at(10, 0)
        await desk.post(f"{higashi}/tickets", s3, status=201)
        clock.at(10, 2)
        await desk.post(f"{higashi}/tickets/call-next", s3)
        v4 = (await desk.post(f"{higashi}/tickets/1/visit", s3, status=201))["visit_id"]
        await _visit(desk, s3, v4, gender="male", age="80_and_over", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(10, 30)
        await desk.post(f"/v1/visits/{v4}/end", s3, {"outcome": "completed"})
        await desk.post(f"{higashi}/disinfections", s3, status=201)
        clock.at(17, 20)
        for base, who in ((chuo, s1), (higashi, s3)):
            await desk.post(f"{base}/staff/check-out", who)
            await desk.post(f"{base}/day/end", manager)
    finally:
        await desk.stop()

    # ---- the phone line ------------------------------------------------------------------------------
    op = await staff_headers(js, settings, m, "OP1", [Role.operator])
    pbx = credential_headers(settings, m, "pbx", [Role.service], "service")
    cclock = FakeClock(jst(MON, 8, 40))
    async with line(settings, m, cclock) as cpost:
        await cpost("/v1/lines/main/seats/s1/sign-in", op, status=201)
        # c1 Monday 10:00, answered after 30 s; the city must decide: escalated, called back on Tuesday
        cclock.at(10, 0)
        c1 = (await cpost("/v1/calls", pbx, status=201))["call_id"]
        cclock.at(10, 0, 30)
        await cpost(f"/v1/calls/{c1}/answer", op, {"seat": "s1"})
        cclock.at(10, 5)
        await cpost(
            f"/v1/calls/{c1}/close",
            op,
            {
                "categories": ["mynapoint.eligibility"],
                "resolution": "escalated_callback",
                "callback": {
                    "phone": "011-211-2345",
                    "window_start": jst(TUE, 9).isoformat(),
                    "window_end": jst(TUE, 12).isoformat(),
                },
            },
        )
        cclock.at(10, 30)
        await cpost(f"/v1/callbacks/{c1}/escalate", manager, {"question": "転入者は対象か", "channel": "phone"})
        cclock.at(17, 15)
        await cpost("/v1/lines/main/seats/s1/sign-out", op, {"reason": "end_of_shift"})
        # c2 Monday 17:40, out of hours: a callback requested, called back the next morning
        cclock.at(17, 40)
        c2 = await cpost("/v1/calls", pbx, status=201)
        assert c2["route"] == "out_of_hours", c2
        await cpost(f"/v1/calls/{c2['call_id']}/callback", pbx, {"phone": "090-1234-5678"}, 201)
        # Tuesday: the city answers c1's question at 09:00; both callbacks done; c3 answered on the spot
        cclock.set(jst(TUE, 8, 40))
        await cpost("/v1/lines/main/seats/s1/sign-in", op, status=201)
        cclock.at(9, 0)
        await cpost(f"/v1/callbacks/{c1}/city-answer", manager, {"answer": "対象となる"})
        cclock.at(9, 10)
        done = await cpost(
            f"/v1/callbacks/{c2['call_id']}/attempts",
            op,
            {"reached": True, "categories": ["mynapoint.application"], "duration_seconds": 300},
        )
        assert done["status"] == "done", done
        cclock.at(9, 30)
        done = await cpost(
            f"/v1/callbacks/{c1}/attempts",
            op,
            {"reached": True, "resolution": "guided_to_ward_desk", "duration_seconds": 180},
        )
        assert done["status"] == "done", done
        cclock.at(11, 0)
        c3 = (await cpost("/v1/calls", pbx, status=201))["call_id"]
        cclock.at(11, 1)
        await cpost(f"/v1/calls/{c3}/answer", op, {"seat": "s1"})
        cclock.at(11, 4)
        await cpost(f"/v1/calls/{c3}/close", op, {"categories": ["card"], "resolution": "answered_on_spot"})
        cclock.at(17, 15)
        await cpost("/v1/lines/main/seats/s1/sign-out", op, {"reason": "end_of_shift"})

    rs = as_service(settings, "reporting")
    rs = rs.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "extra": {**rs.extra, **CONTRACT}})
    app = reporting_create_app(rs)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as rc:
            await app.state.reporting.caught_up()
            await _check(rc, city, tmp_path)


async def _check(rc: httpx.AsyncClient, city: dict, tmp_path) -> None:
    desk_keys = ZERO_DESK | {"visit_corrections": 0, "day_stops": 0}
    chuo_mon = (await _get(rc, "/v1/reports/daily", city, desk="chuo-1", date="2021-04-05"))["figures"]
    assert _pick(chuo_mon, desk_keys) == desk_keys | {
        "visitors": 2,
        "served": 2,
        "tickets_issued": 2,
        "support_needed": 2,
        "support_given": 1,
        "completed": 1,
        "not_completed": 1,
        "escalations": 1,
        "disinfections": 2,
        "visit_corrections": 1,  # the correction made on Tuesday counts on the visit's day
        "day_stops": 1,
    }
    # the correction moved the visitor of 09:05 from 60s to 70s on Monday's report
    assert {k: v for k, v in chuo_mon["by_age_band"].items() if v} == {"50s": 1, "70s": 1}
    assert chuo_mon["not_completed_reasons"]["card_not_brought"] == 1
    chuo_tue = (await _get(rc, "/v1/reports/daily", city, desk="chuo-1", date="2021-04-06"))["figures"]
    assert _pick(chuo_tue, desk_keys) == desk_keys  # the resolution is not a second escalation
    higashi_mon = (await _get(rc, "/v1/reports/daily", city, desk="higashi-1", date="2021-04-05"))["figures"]
    assert _pick(higashi_mon, desk_keys) == desk_keys | {
        "visitors": 1,
        "served": 1,
        "tickets_issued": 1,
        "completed": 1,
        "disinfections": 1,
    }
    higashi_tue = (await _get(rc, "/v1/reports/daily", city, desk="higashi-1", date="2021-04-06"))["figures"]
    assert _pick(higashi_tue, desk_keys) == desk_keys | {
        "visitors": 1,
        "served": 1,
        "tickets_issued": 1,
        "support_needed": 1,
        "support_given": 1,
        "completed": 1,
        "disinfections": 1,
    }
    assert higashi_tue["wait"]["mean_s"] == 120.0 and higashi_tue["service"]["mean_s"] == 1680.0
    assert higashi_tue["staffing_breaches"] == 0  # S3 on duty from 08:40 once trained

    # the phone line: Monday c1 answered (escalated), c2 out of hours with a callback; Tuesday c3
    line_mon = (await _get(rc, "/v1/reports/line/daily", city, date="2021-04-05"))["figures"]
    assert _pick(line_mon, LINE_MON) == LINE_MON
    line_tue = (await _get(rc, "/v1/reports/line/daily", city, date="2021-04-06"))["figures"]
    assert _pick(line_tue, LINE_TUE) == LINE_TUE
    # the escalation of Monday, resolved on Tuesday, is listed with its outcome in Monday's desk report
    chuo_mon_report = await _get(rc, "/v1/reports/daily", city, desk="chuo-1", date="2021-04-05")
    assert [(e["date"], e["text"], e["status"], e["outcome"]) for e in chuo_mon_report["escalations"]] == [
        ("2021-04-05", "手続の照会", "resolved", "市の回答により解決")
    ]

    # the weekly table: three wards' rows (kita's zeros), the city total, the line
    week = await _get(rc, "/v1/reports/weekly", city, week_start="2021-04-05")
    wards = week["figures"]["wards"]
    assert wards["chuo"]["total"] == dict.fromkeys(WEEKLY_DESK, 0) | {
        "visitors": 2,
        "support_needed": 2,
        "support_given": 1,
        "completed": 1,
        "not_completed": 1,
        "escalations": 1,
    }
    assert wards["higashi"]["total"] == dict.fromkeys(WEEKLY_DESK, 0) | {
        "visitors": 2,
        "support_needed": 1,
        "support_given": 1,
        "completed": 2,
    }
    city_total = week["figures"]["total"]["total"]
    assert city_total == dict.fromkeys(WEEKLY_DESK, 0) | {
        "visitors": 4,
        "support_needed": 3,
        "support_given": 2,
        "completed": 3,
        "not_completed": 1,
        "escalations": 1,
    }
    assert week["figures"]["line"]["total"] == WEEK_LINE
    assert all(d["open"] for d in week["days"][:5]), week["days"]  # after 04-01: no 開設前

    # the final report over the contract (2021-03-15..09-30): this week is all there is
    final = await _get(rc, "/v1/reports/final", city)
    ff = final["figures"]
    assert _pick(ff["city"], ("visitors", "served", "support_needed", "support_given", "completed")) == {
        "visitors": 4,
        "served": 4,
        "support_needed": 3,
        "support_given": 2,
        "completed": 3,
    }
    assert (ff["wards"]["chuo"]["visitors"], ff["wards"]["higashi"]["visitors"]) == (2, 2)
    assert _pick(ff["line"], ("received", "answered", "out_of_hours", "escalations", "never_connected_people")) == {
        "received": 3,
        "answered": 2,
        "out_of_hours": 1,
        "escalations": 1,
        "never_connected_people": 1,
    }
    assert ff["call_records"] == len(final["call_records"]) == 3
    assert [(e["text"], e["status"]) for e in final["escalations"]] == [("手続の照会", "resolved")]
    assert len(final["line_escalations"]) == 1

    # the files hold the JSON's figures: weekly and final as CSV and xlsx; the weekly PDF's text
    for path, params in (("/v1/reports/weekly", {"week_start": "2021-04-05"}), ("/v1/reports/final", {})):
        csv_text = (await rc.get(path, params={**params, "format": "csv"}, headers=city)).text
        xlsx = await rc.get(path, params={**params, "format": "xlsx"}, headers=city)
        rows = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))
        book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
        cells = [
            [("" if v is None else str(v)) for v in row]
            for ws in book.worksheets
            for row in ws.iter_rows(values_only=True)
        ]
        for table in (rows, cells):
            flat = [c for row in table for c in row]
            assert "東区" in flat and "中央区" in flat, path
        if path.endswith("weekly"):
            expect = {
                "東区": _expected_row(week, wards["higashi"], "visitors"),
                "中央区": _expected_row(week, wards["chuo"], "visitors"),
                "合計": _expected_row(week, week["figures"]["total"], "visitors"),
            }
            assert expect["東区"][:2] == ["1", "1"] and expect["合計"][:2] == ["3", "1"] and expect["合計"][-1] == "4"
            for table in (rows, cells):
                for label, row in expect.items():
                    assert _row(table, "■ 来庁者数（区別・日別）", label) == row, (label, path)
                line = [str(week["figures"]["line"]["days"][d["date"]]["received"]) for d in week["days"]]
                assert _row(table, "■ 電話対応（日別）", "入電数") == [*line, "3"]
            pdf = await rc.get(path, params={**params, "format": "pdf"}, headers=city)
            assert pdf.content.startswith(b"%PDF")
            (tmp_path / "weekly.pdf").write_bytes(pdf.content)
            text = subprocess.run(
                ["pdftotext", "-layout", str(tmp_path / "weekly.pdf"), "-"], capture_output=True, text=True, check=True
            ).stdout
            higashi_line = next(line for line in text.splitlines() if line.strip().startswith("東区"))
            assert higashi_line.split()[1:] == expect["東区"], higashi_line


def _expected_row(week: dict, table: dict, name: str) -> list[str]:
    """A weekly row as the files must print it, from the JSON: a closed day without figures shows why."""
    out = []
    for d in week["days"]:
        n = table["days"][d["date"]][name]
        out.append(d["closed_ja"] if not d["open"] and not n else str(n))
    return [*out, str(table["total"][name])]


def _row(table: list[list[str]], heading: str, label: str) -> list[str]:
    start = next(i for i, row in enumerate(table) if row and row[0] == heading)
    row = next(r for r in table[start + 1 :] if r and r[0] == label)
    return row[1:9]


LINE_MON = {
    "received": 2,
    "answered": 1,
    "out_of_hours": 1,
    "missed": 0,
    "abandoned": 0,
    "never_connected": 1,
    "never_connected_people": 1,
    "still_waiting": 0,
    "escalations": 1,
    "closed": 1,
    "after_hours_guided": 1,
}
LINE_TUE = {
    "received": 1,
    "answered": 1,
    "out_of_hours": 0,
    "never_connected": 0,
    "never_connected_people": 0,
    "still_waiting": 0,
    "escalations": 0,
    "closed": 1,
}
WEEK_LINE = {
    "received": 3,
    "answered": 2,
    "missed": 0,
    "abandoned": 0,
    "out_of_hours": 1,
    "still_waiting": 0,
    "escalations": 1,
    "callbacks_opened": 2,
    "callbacks_done": 2,
    "opinions": 0,
}
