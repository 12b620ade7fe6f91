"""Corrections and revisions (REP-5, REP-6): a late correction updates the statistics; the
submitted version stays as delivered; the change is a marked revision with what changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import openpyxl

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.base import Actor, Role

from madoguchi_reporting import queries
from madoguchi_reporting.cli import verify_async

from reporting_harness import headers, reporting_settings, running_app
from sim_week import WEEK_START, simulate

DAY = WEEK_START


async def _report_events(js, m: str, rid: str) -> list:
    return [
        parse_event(data)
        async for _s, _subj, data, _h in bus.load_filter(js, subjects.aggregate_subject("report", m, "report", rid))
    ]


async def test_late_correction_makes_a_marked_revision(settings, js, municipality):
    s = reporting_settings(settings)
    week = simulate(municipality, WEEK_START, desks=1, days=2, visitors=14, seed=11)
    await bus.publish_many(js, week.events)
    rid = f"daily_chuo-1_{DAY.isoformat()}"
    async with running_app(s) as (app, client):
        worker = app.state.reporting
        await worker.caught_up()
        h = await headers(js, s, municipality)
        params = {"desk": "chuo-1", "date": DAY.isoformat()}

        # the manager delivers the day's report: revision 1, frozen with its files' sha256
        first = (await client.post(f"/v1/reports/{rid}/submit", headers=h)).json()
        assert first["revision"] == 1 and first["new"]
        again = (await client.post(f"/v1/reports/{rid}/submit", headers=h)).json()
        assert again == {"report_id": rid, "revision": 1, "sha256": first["sha256"], "new": False}  # unchanged
        report = (await client.get("/v1/reports/daily", params=params, headers=h)).json()
        assert report["revision"]["status"] == "submitted" and report["revision"]["revision"] == 1
        completed_before = report["figures"]["completed"]

        # next day, the supervisor corrects a visit: it was not completed after all
        res, visit = next(
            (r, v) for r, v in week.served("chuo-1", DAY) if v.outcome == "completed" and not v.visitor.correction
        )
        corrected_before = week.desk_truth("chuo-1", DAY)["visit_corrections"]
        assert visit.visit_id is not None
        correction = dk.VisitCorrected(
            municipality=municipality,
            ward=res.ward,
            desk=res.desk,
            visit_id=visit.visit_id,
            outcome="not_completed",
            reason="card_not_brought",
            note="翌日に訂正",
            actor=Actor(id="M001", role=Role.manager),
            occurred_at=dt.datetime(2021, 3, 30, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
        )
        await bus.append(js, correction)
        visit.outcome, visit.reason, visit.visitor.correction = "not_completed", "card_not_brought", True
        # and a malformed message on the desk stream goes to the dead-letter stream, counting nothing
        await js.publish(
            subjects.aggregate_subject("desk", municipality, "visit", "broken"),
            b'{"type": "desk.visit_ended", "oops": 1}',
        )
        await worker.caught_up()
        await worker.flush_outbox()

        # the statistics follow the correction
        report = (await client.get("/v1/reports/daily", params=params, headers=h)).json()
        flat = queries.flatten(report)
        truth = week.desk_truth("chuo-1", DAY)
        assert {k: flat.get(k, 0) for k in truth if isinstance(truth[k], int)} == {
            k: v for k, v in truth.items() if isinstance(v, int)
        }
        assert report["figures"]["completed"] == completed_before - 1
        # ... and the report is marked as a revision of the delivered version, with what changed
        rev = report["revision"]
        assert rev["status"] == "revised" and rev["revision"] == 2 and rev["based_on"] == 1
        changed = {c["key"]: (c["old"], c["new"]) for c in rev["changes"]}
        assert changed["completed"] == (completed_before, completed_before - 1)
        assert (
            changed["not_completed_reasons.card_not_brought"][1]
            == changed["not_completed_reasons.card_not_brought"][0] + 1
        )
        assert changed["visit_corrections"] == (corrected_before, corrected_before + 1)
        assert "第2版" in rev["label_ja"]

        # on the bus: submitted (1), then the revision with the same changes, and updates naming revision 2
        events = await _report_events(js, municipality, rid)
        submitted = [e for e in events if e.type == "report.report_submitted"]
        made = [e for e in events if e.type == "report.report_revision_made"]
        assert [e.revision for e in submitted] == [1]
        assert len(made) == 1 and made[0].revision == 2 and made[0].based_on == 1
        assert {c.key: (c.old, c.new) for c in made[0].changes} == changed
        assert [e.revision for e in events if e.type == "report.report_updated"][-1] == 2

        # the delivered version is kept exactly as delivered
        v1 = await client.get(f"/v1/reports/{rid}/submissions/1", params={"format": "json"}, headers=h)
        assert json.loads(v1.content)["figures"]["completed"] == completed_before
        x1 = await client.get(f"/v1/reports/{rid}/submissions/1", params={"format": "xlsx"}, headers=h)
        listed = {f.format: f.sha256 for f in submitted[0].files}
        assert hashlib.sha256(x1.content).hexdigest() == listed["xlsx"]

        # delivering again makes revision 2, whose files say what changed
        second = (await client.post(f"/v1/reports/{rid}/submit", headers=h)).json()
        assert second["revision"] == 2 and second["new"]
        x2 = await client.get(f"/v1/reports/{rid}/submissions/2", params={"format": "xlsx"}, headers=h)
        values = [c.value for row in openpyxl.load_workbook(io.BytesIO(x2.content)).active.iter_rows() for c in row]
        assert "版：第2版（訂正版）" in values
        assert any(isinstance(v, str) and v.startswith("■ 訂正内容（第1版からの変更）") for v in values)
        report = (await client.get("/v1/reports/daily", params=params, headers=h)).json()
        assert report["revision"]["status"] == "submitted" and report["revision"]["revision"] == 2
        listing = (await client.get(f"/v1/reports/{rid}/submissions", headers=h)).json()["submissions"]
        assert [x["revision"] for x in listing] == [1, 2] and len(listing[0]["files"]) == 4

        # the recount from the stream agrees with the corrected figures; the bad message was set aside
        checks, text = await verify_async(
            app.state.nc, app.state.pool, worker.cfg, municipality, DAY, DAY + dt.timedelta(days=1)
        )
        assert sum(len(c.mismatches) for c in checks) == 0, text
        assert worker.projections[0].dead_lettered >= 1
