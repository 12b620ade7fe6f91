"""A scenario driven through the desk, calls and reporting APIs only, against figures worked out by hand
from the requirements (REP-1, REP-2, REP-3, REP-5; DESK-3, CALL-3, CALL-5), not from the project's recount.

Two desks (chuo-1, kita-1) and the phone line over the week of Monday 2021-03-29 to Sunday 2021-04-04,
which crosses a month boundary: Thursday 04-01 (extended to 19:00), Friday 04-02 (a day of zero
activity at kita-1), a visit spanning lunch, a visit corrected the next day, the desk service restarted
in the middle of a desk-day (two sessions of one day), calls at 23:59:59 and 00:00:00 JST (15:00 UTC
of the day before: the day boundary is Japan's, not UTC's).
"""

from __future__ import annotations

from datetime import date, datetime
import contextlib
import csv
import io
from typing import Any

import httpx
import openpyxl

from madoguchi_desk.main import create_app as desk_create_app
from madoguchi_reporting.main import create_app as reporting_create_app
from madoguchi_calls.main import create_app as calls_create_app
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events.admin import TrainingItemCompleted, TrainingTestRecorded
from madoguchi_shared.municipality import TrainingPlan
from tests.utils.auth import credential_headers, staff_headers
from tests.utils.clock import FakeClock
from tests.utils.servers import as_service
from pathlib import Path

SAPPORO_TOML = Path(__file__).resolve().parents[1] / "config" / "municipalities" / "011002.toml"
CONTRACT = {"contract_start": "2021-03-15", "contract_end": "2021-09-30", "deadline_check_seconds": "0"}


def jst(d: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=TOKYO)


THU = date(2021, 4, 1)
FRI = date(2021, 4, 2)


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response.json()


class Desk:
    """The desk app in its lifespan; `restart()` stops it and starts a new one on the same bus (a second session)."""

    def __init__(self, settings, clock: FakeClock):
        self.settings = settings
        self.clock = clock
        self.app = None
        self.client: httpx.AsyncClient | None = None
        self._ctx = None

    async def start(self) -> None:
        self.app = desk_create_app(self.settings, clock=self.clock, staffing_check_seconds=3600)
        self._ctx = self.app.router.lifespan_context(self.app)
        await self._ctx.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t", timeout=60)

    async def stop(self) -> None:
        assert self.client is not None and self._ctx is not None
        await self.client.aclose()
        await self._ctx.__aexit__(None, None, None)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def post(self, path: str, who: dict, json: dict | None = None, status: int = 200) -> dict:
        assert self.client is not None
        return ok(await self.client.post(path, headers=who, json=json if json is not None else {}), status)


async def _train(js, m: str, staff_id: str) -> None:
    events: list = [
        TrainingItemCompleted(municipality=m, staff_id=staff_id, item=i.key, hours=i.hours)
        for i in TrainingPlan().items
    ]
    events.append(TrainingTestRecorded(municipality=m, staff_id=staff_id, score=90, passed=True))
    await bus.publish_many(js, events)


async def _visit(
    desk: Desk, who: dict, visit_id: str, *, gender: str, age: str, purposes: list[str], needed: bool, given: bool
) -> None:
    await desk.post(
        f"/v1/visits/{visit_id}/details",
        who,
        {"gender": gender, "age_band": age, "purposes": purposes, "support_needed": needed, "support_given": given},
    )


@contextlib.asynccontextmanager
async def line(settings, m: str, clock: FakeClock):
    """The calls service of municipality `m` under `clock`, served in-process: yields `cpost(path, who, body, status)`."""
    calls_settings = as_service(settings, "calls").model_copy(
        update={"municipality": m, "config_file": SAPPORO_TOML, "log_level": "WARNING"}
    )
    capp = calls_create_app(calls_settings, clock=clock, check_interval=0)
    async with capp.router.lifespan_context(capp):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=capp), base_url="http://t", timeout=60) as cc:

            async def cpost(path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
                return ok(await cc.post(path, headers=who, json=body or {}), status)

            yield cpost


async def test_a_week_through_the_apis_gives_the_figures_worked_out_by_hand(settings, js, municipality):
    m = municipality
    clock = FakeClock(jst(THU, 8, 30))
    desk_settings = settings.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    for staff in ("S1", "S2", "OP1"):
        await _train(js, m, staff)
    manager = await staff_headers(js, settings, m, "M1", [Role.manager])
    s1 = await staff_headers(js, settings, m, "S1", [Role.supporter], ["chuo"])
    s2 = await staff_headers(js, settings, m, "S2", [Role.supporter], ["kita"])
    city = await staff_headers(js, settings, m, "C1", [Role.city_staff])

    desk = Desk(desk_settings, clock)
    await desk.start()
    try:
        chuo, kita = "/v1/desks/chuo-1", "/v1/desks/kita-1"
        # ---- Thursday 04-01, extended to 19:00 -------------------------------------------------
        clock.at(8, 40)
        for base, who in ((chuo, s1), (kita, s2)):
            await desk.post(f"{base}/day/start", manager)
            await desk.post(f"{base}/staff/check-in", who)
        # chuo-1 ticket 1 at 09:00, served 09:05-09:25, completed
        clock.at(9, 0)
        assert (await desk.post(f"{chuo}/tickets", s1, status=201))["ticket_no"] == 1
        clock.at(9, 5)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        v1 = (await desk.post(f"{chuo}/tickets/1/visit", s1, status=201))["visit_id"]
        await _visit(desk, s1, v1, gender="female", age="70s", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(9, 25)
        await desk.post(f"/v1/visits/{v1}/end", s1, {"outcome": "completed"})
        await desk.post(f"{chuo}/disinfections", s1, status=201)
        # chuo-1 ticket 2 at 11:40, served 11:50 to 13:10 (over lunch): not completed, corrected on Friday
        clock.at(11, 40)
        await desk.post(f"{chuo}/tickets", s1, status=201)
        clock.at(11, 50)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        v2 = (await desk.post(f"{chuo}/tickets/2/visit", s1, status=201))["visit_id"]
        await _visit(
            desk, s1, v2, gender="male", age="40s", purposes=["mynapoint_application"], needed=True, given=False
        )
        await desk.post(
            f"/v1/visits/{v2}/opinions",
            s1,
            {"kind": "difficulty", "step": "pin_entry", "text": "暗証番号を忘れた"},
            201,
        )
        clock.at(13, 10)
        await desk.post(f"/v1/visits/{v2}/end", s1, {"outcome": "not_completed", "reason": "pin_locked_or_forgotten"})
        await desk.post(f"{chuo}/disinfections", s1, status=201)

        # the desk service restarts in the middle of the day: a second session of the same desk-day
        await desk.restart()

        # chuo-1 ticket 3 at 13:30: called, does not come (left unserved)
        clock.at(13, 30)
        assert (await desk.post(f"{chuo}/tickets", s1, status=201))["ticket_no"] == 3
        clock.at(13, 40)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        await desk.post(f"{chuo}/tickets/3/no-show", s1)
        # an escalation to the city
        esc = await desk.post(f"{chuo}/escalations", s1, {"category": "procedure", "summary": "制度の照会"}, 201)
        await desk.post(f"{chuo}/escalations/{esc['escalation_no']}/acknowledge", manager)
        await desk.post(
            f"{chuo}/escalations/{esc['escalation_no']}/escalate-to-city", manager, {"summary": "市の判断が必要"}
        )
        # chuo-1 a walk-in at 18:30 (extended hours), completed, no support needed
        clock.at(18, 30)
        v4 = (await desk.post(f"{chuo}/walk-in", s1, status=201))["visit_id"]
        await _visit(desk, s1, v4, gender="male", age="30s", purposes=["mykey_smartphone"], needed=False, given=False)
        clock.at(18, 45)
        await desk.post(f"/v1/visits/{v4}/end", s1, {"outcome": "completed"})
        await desk.post(f"{chuo}/disinfections", s1, status=201)

        # kita-1: ticket 1 at 10:00 served 10:02-10:20 completed; ticket 2 at 16:59:59 called at 17:05, gone
        clock.at(10, 0)
        await desk.post(f"{kita}/tickets", s2, status=201)
        clock.at(10, 2)
        await desk.post(f"{kita}/tickets/call-next", s2)
        k1 = (await desk.post(f"{kita}/tickets/1/visit", s2, status=201))["visit_id"]
        await _visit(desk, s2, k1, gender="female", age="20s", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(10, 20)
        await desk.post(f"/v1/visits/{k1}/end", s2, {"outcome": "completed"})
        await desk.post(f"{kita}/disinfections", s2, status=201)
        clock.at(16, 59, 59)
        await desk.post(f"{kita}/tickets", s2, status=201)
        clock.at(17, 5)
        await desk.post(f"{kita}/tickets/call-next", s2)
        await desk.post(f"{kita}/tickets/2/no-show", s2)

        clock.at(19, 5)
        for base, who in ((chuo, s1), (kita, s2)):
            await desk.post(f"{base}/staff/check-out", who)
            await desk.post(f"{base}/day/end", manager)

        # ---- Friday 04-02: V2 corrected (completed after all); kita-1 opens with no visitor ----
        clock.set(jst(FRI, 8, 40))
        for base, who in ((chuo, s1), (kita, s2)):
            await desk.post(f"{base}/day/start", manager)
            await desk.post(f"{base}/staff/check-in", who)
        clock.at(9, 0)
        await desk.post(f"/v1/visits/{v2}/corrections", manager, {"outcome": "completed", "support_given": True}, 201)
        clock.at(9, 30)
        v5 = (await desk.post(f"{chuo}/walk-in", s1, status=201))["visit_id"]
        await _visit(desk, s1, v5, gender="other", age="80_and_over", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(9, 50)
        await desk.post(f"/v1/visits/{v5}/end", s1, {"outcome": "not_completed", "reason": "card_not_brought"})
        # 04-02 is extended to 19:00 as well: S1 leaves at 17:20 and is back at 17:50 (a 30-minute gap, DESK-5)
        clock.at(17, 20)
        await desk.post(f"{chuo}/staff/check-out", s1)
        clock.at(17, 50)
        await desk.post(f"{chuo}/staff/check-in", s1)
        clock.at(19, 5)
        for base, who in ((chuo, s1), (kita, s2)):
            await desk.post(f"{base}/staff/check-out", who)
            await desk.post(f"{base}/day/end", manager)
    finally:
        await desk.stop()

    # ---- the phone line: one seat -------------------------------------------------------------
    op = await staff_headers(js, settings, m, "OP1", [Role.operator])
    pbx = credential_headers(settings, m, "pbx", [Role.service], "service")
    cclock = FakeClock(jst(THU, 8, 40))
    async with line(settings, m, cclock) as cpost:
        await cpost("/v1/lines/main/seats/s1/sign-in", op, status=201)
        # c1 09:10 answered at once, closed 09:16 on the spot
        cclock.at(9, 10)
        c1 = (await cpost("/v1/calls", pbx, status=201))["call_id"]
        await cpost(f"/v1/calls/{c1}/answer", op, {"seat": "s1"})
        # c2 09:12 while the one seat is busy: overflow, the caller chooses a callback
        cclock.at(9, 12)
        c2 = await cpost("/v1/calls", pbx, status=201)
        assert c2["route"] == "overflow", c2
        await cpost(f"/v1/calls/{c2['call_id']}/offer-choice", pbx, {"choice": "callback"})
        cclock.at(9, 16)
        await cpost(f"/v1/calls/{c1}/close", op, {"categories": ["mykey_id.setup"], "resolution": "answered_on_spot"})
        # c3 10:00 rings out (never connected); c4 10:05 the same caller again, by c3's reference
        cclock.at(10, 0)
        c3 = await cpost("/v1/calls", pbx, status=201)
        cclock.at(10, 1)
        await cpost(f"/v1/calls/{c3['call_id']}/missed", pbx)
        cclock.at(10, 5)
        c4 = (await cpost("/v1/calls", pbx, status=201))["call_id"]
        await cpost(f"/v1/calls/{c4}/repeat-of", pbx, {"reference": c3["reference"]})
        cclock.at(10, 6)
        await cpost(f"/v1/calls/{c4}/answer", op, {"seat": "s1"})
        cclock.at(10, 12)
        await cpost(
            f"/v1/calls/{c4}/close",
            op,
            {"categories": ["card"], "resolution": "referred_national_call_centre"},
        )
        cclock.at(17, 15)
        await cpost("/v1/lines/main/seats/s1/sign-out", op, {"reason": "end_of_shift"})
        # 18:00: the desks are open till 19:00 this Thursday, the phone line is not (CALL-1: 8:45-17:15)
        cclock.at(18, 0)
        c5 = await cpost("/v1/calls", pbx, status=201)
        assert c5["route"] == "out_of_hours", c5
        # 23:59:59 JST is still Thursday; 00:00:00 JST Friday is 15:00 UTC on Thursday
        cclock.at(23, 59, 59)
        c6 = await cpost("/v1/calls", pbx, status=201)
        assert c6["route"] == "out_of_hours", c6
        cclock.set(jst(FRI, 0, 0, 0))
        c7 = await cpost("/v1/calls", pbx, status=201)
        assert c7["route"] == "out_of_hours", c7
        await cpost(f"/v1/calls/{c7['call_id']}/offer-choice", pbx, {"choice": "call_again"})
        # Friday: c8 09:00 hangs up while ringing (no seat taken yet: it rings)
        cclock.at(8, 50)
        await cpost("/v1/lines/main/seats/s1/sign-in", op, status=201)
        cclock.at(9, 0)
        c8 = (await cpost("/v1/calls", pbx, status=201))["call_id"]
        cclock.at(9, 1)
        await cpost(f"/v1/calls/{c8}/abandoned", pbx)
        cclock.at(17, 15)
        await cpost("/v1/lines/main/seats/s1/sign-out", op, {"reason": "end_of_shift"})

    rs = as_service(settings, "reporting")
    rs = rs.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "extra": {**rs.extra, **CONTRACT}})
    app = reporting_create_app(rs)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as rc:
            await app.state.reporting.caught_up()
            await _check_reports(rc, city)


def _pick(figures: dict, expected: dict) -> dict:
    return {k: figures[k] for k in expected}


async def _get(rc: httpx.AsyncClient, path: str, who: dict, **params: str) -> dict:
    return ok(await rc.get(path, params=params, headers=who))


ZERO_DESK = {
    "visitors": 0,
    "served": 0,
    "left_unserved": 0,
    "tickets_issued": 0,
    "no_shows": 0,
    "support_needed": 0,
    "support_given": 0,
    "completed": 0,
    "not_completed": 0,
    "escalations": 0,
    "opinions": 0,
    "disinfections": 0,
}


async def _check_reports(rc: httpx.AsyncClient, city: dict) -> None:
    # chuo-1 Thursday: tickets 1, 2, 3 and a walk-in; ticket 3 gone when called; V2 (over lunch) corrected to
    # completed with support given; waits 300, 600, 0 s; services 1200, 4800, 900 s
    chuo_thu = (await _get(rc, "/v1/reports/daily", city, desk="chuo-1", date="2021-04-01"))["figures"]
    assert _pick(chuo_thu, ZERO_DESK | {"visit_corrections": 0}) == {
        "visitors": 4,
        "served": 3,
        "left_unserved": 1,
        "tickets_issued": 4,
        "no_shows": 1,
        "support_needed": 2,
        "support_given": 2,
        "completed": 3,
        "not_completed": 0,
        "escalations": 1,
        "opinions": 1,
        "disinfections": 3,
        "visit_corrections": 1,
    }
    assert (chuo_thu["support_needed_ratio"], chuo_thu["support_given_ratio"]) == (0.5, 0.5)
    assert chuo_thu["support_given_of_needed"] == 1.0 and chuo_thu["escalations_to_city"] == 1
    hours = {f"{h:02d}": 0 for h in range(8, 19)}  # 08:45-19:00 (extended)
    assert chuo_thu["by_hour"] == hours | {"09": 1, "11": 1, "13": 1, "18": 1}
    assert chuo_thu["by_gender"] == {"female": 1, "male": 2, "other": 0, "not_stated": 0, "unknown": 1}
    assert {k: v for k, v in chuo_thu["by_age_band"].items() if v} == {"30s": 1, "40s": 1, "70s": 1, "unknown": 1}
    assert chuo_thu["outcomes_by_purpose"]["mynapoint_application"] == {"completed": 1, "not_completed": 0}
    assert sum(chuo_thu["not_completed_reasons"].values()) == 0
    assert chuo_thu["wait"] == {"n": 3, "mean_s": 300.0, "p90_s": 600.0, "max_s": 600.0}
    assert chuo_thu["service"] == {"n": 3, "mean_s": 2300.0, "p90_s": 4800.0, "max_s": 4800.0}
    assert chuo_thu["staffing_breaches"] == 0

    # kita-1 Thursday: one served 10:02-10:20 after a 2-minute wait; a ticket at 16:59:59 gone when called
    kita_thu = (await _get(rc, "/v1/reports/daily", city, desk="kita-1", date="2021-04-01"))["figures"]
    assert _pick(kita_thu, ZERO_DESK) == ZERO_DESK | {
        "visitors": 2,
        "served": 1,
        "left_unserved": 1,
        "tickets_issued": 2,
        "no_shows": 1,
        "support_needed": 1,
        "support_given": 1,
        "completed": 1,
        "disinfections": 1,
    }
    assert kita_thu["by_hour"] == hours | {"10": 1, "16": 1}
    assert kita_thu["wait"]["mean_s"] == 120.0 and kita_thu["service"]["mean_s"] == 1080.0

    # Friday: chuo-1 one walk-in, not completed (card not brought), the correction counted on Thursday only;
    # a 30-minute gap without a supporter. kita-1 open, nobody came: zeros, not 閉庁
    chuo_fri = (await _get(rc, "/v1/reports/daily", city, desk="chuo-1", date="2021-04-02"))["figures"]
    assert _pick(chuo_fri, ZERO_DESK | {"visit_corrections": 0}) == ZERO_DESK | {
        "visitors": 1,
        "served": 1,
        "tickets_issued": 1,
        "support_needed": 1,
        "support_given": 1,
        "not_completed": 1,
        "visit_corrections": 0,
    }
    assert chuo_fri["not_completed_reasons"]["card_not_brought"] == 1
    assert (chuo_fri["staffing_breaches"], chuo_fri["staffing_breach_s"]) == (1, 1800)
    assert chuo_fri["service"]["mean_s"] == 1200.0 and chuo_fri["wait"]["mean_s"] == 0.0
    kita_fri = await _get(rc, "/v1/reports/daily", city, desk="kita-1", date="2021-04-02")
    assert _pick(kita_fri["figures"], ZERO_DESK) == ZERO_DESK and kita_fri["figures"]["staffing_breaches"] == 0
    assert kita_fri["opening"]["kind"] == "extended"

    # the phone line. Thursday: c1 answered at once (6 min), c2 overflow -> callback chosen, c3 missed,
    # c4 its repeat answered after 60 s (6 min), c5 18:00 and c6 23:59:59 out of hours
    line_thu = (await _get(rc, "/v1/reports/line/daily", city, date="2021-04-01"))["figures"]
    assert _pick(line_thu, LINE_THU) == LINE_THU
    assert line_thu["answer_wait"] == {"n": 2, "mean_s": 30.0, "p90_s": 60.0, "max_s": 60.0}
    assert line_thu["duration"] == {"n": 2, "mean_s": 360.0, "p90_s": 360.0, "max_s": 360.0}
    assert {h: n for h, n in line_thu["by_hour"].items() if n} == {"09": 2, "10": 2, "18": 1, "23": 1}
    assert line_thu["by_resolution"]["answered_on_spot"] == 1
    assert line_thu["by_resolution"]["referred_national_call_centre"] == 1
    # Friday: c7 at 00:00:00 JST (15:00 UTC on Thursday) belongs to Friday; c8 abandoned
    line_fri = (await _get(rc, "/v1/reports/line/daily", city, date="2021-04-02"))["figures"]
    assert _pick(line_fri, LINE_FRI) == LINE_FRI
    assert {h: n for h, n in line_fri["by_hour"].items() if n} == {"00": 1, "09": 1}

    # the city-wide daily table: both desks and the phone line, summed
    city_thu = await _get(rc, "/v1/reports/city/daily", city, date="2021-04-01")
    total = city_thu["figures"]["total"]
    assert _pick(total, WEEKLY_DESK) == {
        "visitors": 6,
        "support_needed": 3,
        "support_given": 3,
        "completed": 4,
        "not_completed": 0,
        "no_shows": 2,
        "escalations": 1,
        "opinions": 1,
    }
    # means over every visit of the city (not a mean of the desks' means): (300+600+0+120)/4, (1200+4800+900+1080)/4
    assert (total["wait"]["mean_s"], total["service"]["mean_s"]) == (255.0, 1995.0)
    assert city_thu["figures"]["desks"]["chuo-1"]["visitors"] == 4 and city_thu["figures"]["line"]["received"] == 6

    # the week of Monday 03-29 to Sunday 04-04 (March into April)
    week = await _get(rc, "/v1/reports/weekly", city, week_start="2021-03-31")  # any day of the week
    assert week["week_start"] == "2021-03-29"
    wards = week["figures"]["wards"]
    assert wards["chuo"]["days"]["2021-04-01"] == _pick(chuo_thu, WEEKLY_DESK)
    assert wards["chuo"]["days"]["2021-04-02"] == _pick(chuo_fri, WEEKLY_DESK)
    assert wards["chuo"]["total"] == {
        "visitors": 5,
        "support_needed": 3,
        "support_given": 3,
        "completed": 3,
        "not_completed": 1,
        "no_shows": 1,
        "escalations": 1,
        "opinions": 1,
    }
    assert wards["kita"]["total"] == dict.fromkeys(WEEKLY_DESK, 0) | {
        "visitors": 2,
        "support_needed": 1,
        "support_given": 1,
        "completed": 1,
        "no_shows": 1,
    }
    # the desks open on 04-01 (仕様書 3): Monday to Wednesday are before the first day of operations, not days on
    # which nobody came; Saturday is closed; Sunday 04-04 opens
    assert {d["date"]: d["closed_ja"] for d in week["days"] if not d["open"]} == {
        "2021-03-29": "開設前",
        "2021-03-30": "開設前",
        "2021-03-31": "開設前",
        "2021-04-03": "閉庁",
    }
    city_week = week["figures"]["total"]
    assert city_week["days"]["2021-04-01"] == _pick(total, WEEKLY_DESK)
    assert city_week["total"] == {
        "visitors": 7,
        "support_needed": 4,
        "support_given": 4,
        "completed": 4,
        "not_completed": 1,
        "no_shows": 2,
        "escalations": 1,
        "opinions": 1,
    }
    line_week = week["figures"]["line"]
    for day, cell in line_week["days"].items():  # every call received is in exactly one column
        ended = ("answered", "missed", "abandoned", "out_of_hours", "still_waiting")
        assert cell["received"] == sum(cell[k] for k in ended), (day, cell)
    assert line_week["days"]["2021-04-02"]["received"] == 2  # the 00:00:00 JST call is Friday's
    assert line_week["total"] == {
        "received": 8,
        "answered": 2,
        "missed": 1,
        "abandoned": 1,
        "out_of_hours": 3,
        "still_waiting": 1,
        "escalations": 0,
        "callbacks_opened": 0,
        "callbacks_done": 0,
        "opinions": 0,
    }

    # the files the city receives hold the same figures: the weekly CSV and xlsx
    csv_text = (
        await rc.get("/v1/reports/weekly", params={"week_start": "2021-03-29", "format": "csv"}, headers=city)
    ).text
    xlsx = await rc.get("/v1/reports/weekly", params={"week_start": "2021-03-29", "format": "xlsx"}, headers=city)
    rows = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))
    sheet = next(ws for ws in openpyxl.load_workbook(io.BytesIO(xlsx.content)).worksheets if ws.title == "週次報告書")
    cells = [[("" if v is None else str(v)) for v in row] for row in sheet.iter_rows(values_only=True)]
    before = ["開設前"] * 3
    for table in (rows, cells):
        assert _block(table, "■ 来庁者数（区別・日別）", "中央区") == [*before, "4", "1", "閉庁", "0", "5"]
        assert _block(table, "■ 来庁者数（区別・日別）", "北区") == [*before, "2", "0", "閉庁", "0", "2"]
        assert _block(table, "■ 来庁者数（区別・日別）", "合計") == [*before, "6", "1", "閉庁", "0", "7"]
        assert _block(table, "■ 未完了件数（区別・日別）", "中央区") == [*before, "0", "1", "閉庁", "0", "1"]
        assert _block(table, "■ 電話対応（日別）", "入電数") == [*before, "6", "2", "0", "0", "8"]
        assert _block(table, "■ 電話対応（日別）", "時間外入電") == [*before, "2", "1", "0", "0", "3"]
        assert _block(table, "■ 電話対応（日別）", "応答待ちのまま（集計時点）") == [*before, "1", "0", "0", "0", "1"]


def _block(table: list[list[str]], heading: str, label: str) -> list[str]:
    """The cells after `label` in the first row so labelled below `heading` (a file's table, as text)."""
    start = next(i for i, row in enumerate(table) if row and row[0] == heading)
    row = next(r for r in table[start + 1 :] if r and r[0] == label)
    return [c for c in row[1:9]]


WEEKLY_DESK = (
    "visitors",
    "support_needed",
    "support_given",
    "completed",
    "not_completed",
    "no_shows",
    "escalations",
    "opinions",
)
LINE_THU = {
    "received": 6,
    "received_in_hours": 4,
    "answered": 2,
    "missed": 1,
    "abandoned": 0,
    "out_of_hours": 2,
    "never_connected": 3,
    # c3's caller got through on c4 (its repeat, answered): the people not reached are c5's and c6's
    "never_connected_people": 2,
    "never_connected_share": 0.5,
    # c2 chose a callback and was never hung up or answered: not dropped from the breakdown
    "still_waiting": 1,
    "answer_rate": 0.3333,
    "overflow_offered": 1,
    "after_hours_guided": 2,
    "offer_choices": {"wait": 0, "callback": 1, "call_again": 0},
    "repeat_calls": 1,
    "closed": 2,
    "by_category": {"card": 1, "mykey_id.setup": 1},
}
LINE_FRI = {
    "received": 2,
    "received_in_hours": 1,
    "answered": 0,
    "missed": 0,
    "abandoned": 1,
    "out_of_hours": 1,
    "never_connected": 2,
    "never_connected_people": 2,
    "never_connected_share": 1.0,
    "still_waiting": 0,
    "answer_rate": 0.0,
    "after_hours_guided": 1,
    "offer_choices": {"wait": 0, "callback": 0, "call_again": 1},
    "repeat_calls": 0,
    "closed": 0,
}
