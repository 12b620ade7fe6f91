"""Deliverables and deadlines (REP-6, 仕様書 5): due dates from the contract and the business-day
calendar, the manager marks them submitted, overdue ones raise an event once."""

from __future__ import annotations

import datetime as dt

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.base import Actor, Role
from madoguchi_shared.municipality import load_municipality

from madoguchi_reporting import deadlines

from reporting_harness import headers, reporting_settings, running_app

D = dt.date
SAPPORO = load_municipality("011002")
CAL = SAPPORO.calendar()


def _plan() -> dict[str, deadlines.Deliverable]:
    days = [d.day for d in CAL.open_days(D(2021, 4, 1), D(2021, 9, 30), "chuo-1")]
    return {p.id: p for p in deadlines.plan(D(2021, 3, 15), D(2021, 9, 30), days, CAL.is_business_day)}


def test_due_dates_follow_the_specification_and_the_calendar():
    plan = _plan()
    # 業務計画書・研修計画書: within two weeks of the contract
    assert plan["business_plan_2021-03-15"].due == plan["training_plan_2021-03-15"].due == D(2021, 3, 29)
    # 日次報告書: by the next business day (Friday -> Monday; the Sunday opening -> Monday;
    # before 昭和の日 4/29 -> 4/30; before Golden Week -> 5/6)
    assert plan["daily_report_2021-04-02"].due == D(2021, 4, 5)
    assert plan["daily_report_2021-04-04"].due == D(2021, 4, 5)
    assert plan["daily_report_2021-04-28"].due == D(2021, 4, 30)
    assert plan["daily_report_2021-04-30"].due == D(2021, 5, 6)
    # 週次報告書: during the following week (its last business day)
    assert plan["weekly_report_2021-04-05"].due == D(2021, 4, 16)
    assert plan["weekly_report_2021-04-26"].due == D(2021, 5, 7)  # 5/3-5/5 are holidays, 5/7 is a Friday
    # 最終報告書: by the end of the contract, 令和3年9月30日（木）
    assert plan["final_report_2021-03-15"].due == D(2021, 9, 30)
    assert plan["daily_report_2021-04-01"].title == "日次報告書（令和3年4月1日（木）分）"
    assert "daily_report_2021-04-03" not in plan  # a closed Saturday has no daily report


def test_overdue_is_raised_once_and_submission_records_lateness():
    p = _plan()["daily_report_2021-04-01"]
    state = deadlines.evolve(
        None,
        deadlines.decide_define(
            None, p, municipality="011002", contract_start=D(2021, 3, 15), contract_end=D(2021, 9, 30)
        )[0],
    )
    assert deadlines.decide_overdue(state, today=D(2021, 4, 2), municipality="011002") == []  # due day itself
    [overdue] = deadlines.decide_overdue(state, today=D(2021, 4, 3), municipality="011002")
    state = deadlines.evolve(state, overdue)
    assert deadlines.decide_overdue(state, today=D(2021, 4, 4), municipality="011002") == []
    manager = Actor(id="M001", role=Role.manager)
    [submitted] = deadlines.decide_submit(state, today=D(2021, 4, 5), municipality="011002", actor=manager)
    assert submitted.late and submitted.revision == 1
    state = deadlines.evolve(state, submitted)
    [again] = deadlines.decide_submit(state, today=D(2021, 4, 6), municipality="011002", actor=manager)
    assert again.revision == 2 and again.late


async def test_deliverables_api(settings, js, municipality):
    s = reporting_settings(settings)
    async with running_app(s) as (app, client):
        h = await headers(js, s, municipality)
        planned = (await client.post("/v1/deliverables/plan", headers=h)).json()
        assert planned["defined"] > 150 and planned["overdue"] == planned["defined"]  # 2021 is long past
        again = (await client.post("/v1/deliverables/plan", headers=h)).json()
        assert again == {"defined": 0, "overdue": 0}  # idempotent; overdue raised once
        listing = (
            await client.get("/v1/deliverables", headers=await headers(js, s, municipality, Role.city_staff))
        ).json()
        items = {d["deliverable_id"]: d for d in listing["deliverables"]}
        assert items["business_plan_2021-03-15"]["due"] == "2021-03-29"
        # daily and weekly reports only from the first day of operations ([contract] opens = 2021-04-01)
        dailies = sorted(d for d in items if d.startswith("daily_report_"))
        assert dailies[0] == "daily_report_2021-04-01" and "daily_report_2021-03-15" not in items
        assert min(d for d in items if d.startswith("weekly_report_")) == "weekly_report_2021-03-29"
        assert items["business_plan_2021-03-15"]["status"] == "overdue"
        assert items["business_plan_2021-03-15"]["overdue_raised_on"] is not None

        # the manager marks the business plan delivered (a document: its sha256 is the record)
        digest = "ab" * 32
        r = await client.post("/v1/deliverables/business_plan_2021-03-15/submit", json={"sha256": digest}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["late"] is True
        # a weekly report deliverable freezes the weekly report it consists of
        r = await client.post("/v1/deliverables/weekly_report_2021-04-05/submit", headers=h)
        assert r.status_code == 200, r.text
        assert [x["report_id"] for x in r.json()["reports"]] == ["weekly_city_2021-04-05"]
        # a daily deliverable consists of the city-wide daily report beside each desk's
        from madoguchi_reporting import deliverables

        state, _last = await deliverables.load_state(app.state.nc, municipality, "daily_report_2021-04-01")
        async with app.state.pool.acquire() as conn:
            rids = await deliverables.reports_of(conn, app.state.reporting.cfg, municipality, state)
        assert rids[0] == "daily_city_2021-04-01" and "daily_chuo-1_2021-04-01" in rids
        r = await client.post("/v1/reports/daily_city_2021-04-01/submit", headers=h)
        assert r.status_code == 200, r.text
        delivered = await client.get("/v1/reports/daily_city_2021-04-01/submissions/1", headers=h)
        assert delivered.json()["signature"]["submitted_on"] is not None  # 提出日 in the delivered files
        items = {
            d["deliverable_id"]: d for d in (await client.get("/v1/deliverables", headers=h)).json()["deliverables"]
        }
        assert items["business_plan_2021-03-15"]["status"] == "submitted"
        assert items["business_plan_2021-03-15"]["sha256"] == digest
        assert items["weekly_report_2021-04-05"]["report_ids"] == ["weekly_city_2021-04-05"]

        # only the manager delivers; an unknown deliverable is refused
        r = await client.post(
            "/v1/deliverables/training_plan_2021-03-15/submit",
            headers=await headers(js, s, municipality, Role.city_staff),
        )
        assert r.status_code == 403
        r = await client.post("/v1/deliverables/no_such_thing/submit", headers=h)
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")

    kinds = [
        parse_event(data).type
        async for _s, _subj, data, _h in bus.load_filter(
            js, subjects.aggregate_subject("report", municipality, "deliverable", "business_plan_2021-03-15")
        )
    ]
    assert kinds == ["report.deliverable_defined", "report.deliverable_overdue", "report.deliverable_submitted"]
