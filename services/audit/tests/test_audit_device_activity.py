"""HQ's counts of the desk PCs' activity per desk and PC for a day (device_activity.py), from the
real log; the query is recorded like every read of the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from audit_harness import make_audit_settings, publish
from test_audit_api import _auth, serve

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.events import Actor
from madoguchi_shared.events import device as dev

from madoguchi_audit.main import create_app


def _pc(municipality: str, desk: str, ward: str, at: datetime) -> dict:
    return dict(
        municipality=municipality,
        ward=ward,
        desk=desk,
        device_id=f"{desk}-pc",
        occurred_at=at,
        actor=Actor(id=f"{desk}-pc", role=Role.device),
    )


async def test_counts_per_desk_and_pc_with_a_link_to_the_timeline(settings, municipality, js, nc, tmp_path):
    app_settings = settings.model_copy(update={"municipality": municipality, "data_dir": tmp_path})
    audit = make_audit_settings(app_settings, municipality, tmp_path)
    now = datetime.now(UTC)
    chuo, kita = _pc(municipality, "chuo-1", "chuo", now), _pc(municipality, "kita-1", "kita", now)
    events = [
        *[dev.ProcessStarted(pid=100 + i, name="chromium", allowed=True, source="netlink", **chuo) for i in range(3)],
        dev.FileActivity(root="desktop", path="memo.txt", action="created", **chuo),
        dev.SessionChanged(action="logon", session="2", os_uid=1000, **chuo),
        *[
            dev.Heartbeat(
                agent_version="1", policy_version=1, outbox_depth=0, outbox_bytes=0, link_up=True, uptime_s=i, **kita
            )
            for i in range(4)
        ],
        dev.PrintJob(job_id=1, printer="desk-printer", state="completed", pages=2, **kita),
        dev.ProcessStarted(
            pid=9,
            name="old",
            allowed=True,
            source="scan",
            **_pc(municipality, "chuo-1", "chuo", now - timedelta(days=2)),
        ),  # another day
    ]
    await publish(js, events)
    app = create_app(app_settings, audit)
    manager = await _auth(js, app_settings, municipality, "M1", Role.manager)
    kita_manager = await _auth(js, app_settings, municipality, "M2", Role.manager, ("kita",))
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        await app.state.ingest.wait_idle()
        r = await client.get("/v1/audit/device-activity", headers=manager)
        assert r.status_code == 200, r.text
        body = r.json()
        by_pc = {pc["device_id"]: pc for pc in body["pcs"]}
        assert by_pc["chuo-1-pc"]["counts"] == {"process_started": 3, "file_activity": 1, "session_changed": 1}
        assert by_pc["kita-1-pc"]["counts"] == {"heartbeat": 4, "print_job": 1}
        assert body["total"] == 10
        timeline = (
            await client.get(
                by_pc["chuo-1-pc"]["timeline"], headers=await _auth(js, app_settings, municipality, "A1", Role.auditor)
            )
        ).json()
        assert [rec["type"] for rec in timeline["records"]] == ["device.process_started"] * 3 + [
            "device.file_activity",
            "device.session_changed",
        ]
        # the manager's own timeline of one PC: time and kind only, newest first, heartbeats left out
        line = (await client.get("/v1/audit/device-activity/chuo-1-pc/timeline", headers=manager)).json()
        assert [e["type"] for e in line["events"]] == ["session_changed", "file_activity"] + ["process_started"] * 3
        assert all(set(e) == {"position", "at", "type", "desk", "ward"} for e in line["events"])  # no data fields
        beats = (
            await client.get(
                "/v1/audit/device-activity/kita-1-pc/timeline", headers=manager, params={"routine": "true"}
            )
        ).json()
        assert [e["type"] for e in beats["events"]].count("heartbeat") == 4
        hidden = await client.get("/v1/audit/device-activity/chuo-1-pc/timeline", headers=kita_manager)
        assert hidden.status_code == 200 and hidden.json()["events"] == []  # another ward's PC
        mine = (await client.get("/v1/audit/device-activity", headers=kita_manager)).json()
        assert [pc["device_id"] for pc in mine["pcs"]] == ["kita-1-pc"]  # a ward manager sees their ward
        refused = await client.get("/v1/audit/device-activity", headers=kita_manager, params={"ward": "chuo"})
        assert refused.status_code == 403
        supporter = await _auth(js, app_settings, municipality, "S1", Role.supporter)
        assert (await client.get("/v1/audit/device-activity", headers=supporter)).status_code == 403
    recorded = [
        s.event
        for s in await bus.load(nc, subjects.aggregate_subject("audit", municipality, "query", body["query_id"]))
    ]
    assert recorded and recorded[0].endpoint == "device_activity" and recorded[0].result_count == 10
    read = [
        s.event
        for s in await bus.load(nc, subjects.aggregate_subject("audit", municipality, "query", line["query_id"]))
    ]
    assert read and read[0].filters.device == "chuo-1-pc" and read[0].result_count == 5
