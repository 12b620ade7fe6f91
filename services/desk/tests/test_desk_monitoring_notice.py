"""SEC-2 at the desk: a staff member who declined the desk PC's monitoring notice today cannot
check in; HQ lists who acknowledged, who declined, and who is on duty without acknowledging."""

from __future__ import annotations

import asyncio
from datetime import datetime

from desk_api import FakeClock, auth, desk_app, ok, train

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Actor
from madoguchi_shared.events import device as dev


def _answer(cls, municipality: str, staff_id: str, at: datetime):
    return cls(
        municipality=municipality,
        ward="teine",
        desk="teine-1",
        device_id="teine-1-pc",
        staff_id=staff_id,
        notice_sha256="c" * 64,
        occurred_at=at,
        actor=Actor(id="teine-1-pc", role="device"),
    )


async def _until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_declining_the_notice_blocks_check_in_and_hq_sees_who_has_not_acknowledged(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 9, 0, tzinfo=TOKYO))
    for staff in ("S1", "S2", "S3"):
        await train(js, municipality, staff)
    s1, s2, s3 = [await auth(js, settings, municipality, s, Role.supporter, ("teine",)) for s in ("S1", "S2", "S3")]
    manager = await auth(js, settings, municipality, "M1", Role.manager)
    async with desk_app(settings, municipality, clock) as (app, client):
        await bus.append(js, _answer(dev.MonitoringNoticeAcknowledged, municipality, "S1", clock()))
        await bus.append(js, _answer(dev.MonitoringNoticeDeclined, municipality, "S2", clock()))
        await _until(lambda: app.state.notices.seen >= 2)
        ok(await client.post("/v1/desks/teine-1/staff/check-in", headers=s1, json={}))
        refused = await client.post("/v1/desks/teine-1/staff/check-in", headers=s2, json={})
        assert refused.status_code == 403 and refused.json()["code"] == "monitoring_notice_declined"
        assert "同意していない" in refused.json()["detail"]
        ok(await client.post("/v1/desks/teine-1/staff/check-in", headers=s3, json={}))  # never answered: HQ sees it
        status = ok(await client.get("/v1/monitoring-notice", headers=manager))
        assert status["date"] == "2021-04-06"
        assert [r["staff_id"] for r in status["acknowledged"]] == ["S1"]
        assert [r["staff_id"] for r in status["declined"]] == ["S2"] and status["declined"][0]["desk"] == "teine-1"
        assert status["not_acknowledged"] == [{"staff_id": "S3", "desks": ["teine-1"]}]
        # a later acknowledgement the same day lifts the block
        await bus.append(js, _answer(dev.MonitoringNoticeAcknowledged, municipality, "S2", clock.advance(minutes=5)()))
        await _until(lambda: app.state.notices.seen >= 3)
        ok(await client.post("/v1/desks/teine-1/staff/check-in", headers=s2, json={}))
        # supporters cannot list the others' answers
        assert (await client.get("/v1/monitoring-notice", headers=s1)).status_code == 403
        yesterday = ok(await client.get("/v1/monitoring-notice?date=2021-04-05", headers=manager))
        assert yesterday["acknowledged"] == yesterday["declined"] == []
