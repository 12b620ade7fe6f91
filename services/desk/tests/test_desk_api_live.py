"""The console's live feed (server-sent events) over a real HTTP server, and the calendar queries."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import httpx
import uvicorn
from desk_api import SAPPORO_TOML, FakeClock, auth, desk_app, ok, train
from typer.testing import CliRunner

from madoguchi_desk.cli import app as cli
from madoguchi_desk.main import create_app
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.runtime import free_port


async def _sse_events(response: httpx.Response):
    event, data = None, []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and event:
            yield event, json.loads("\n".join(data))
            event, data = None, []


async def test_desk_live_stream_shows_queue_staff_and_alerts(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    s = settings.model_copy(update={"municipality": municipality, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    app = create_app(s, clock=clock, staffing_check_seconds=3600)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("chuo",))
    console = await auth(js, settings, municipality, "M1", Role.manager)
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                ok(await client.post("/v1/desks/chuo-1/staff/check-in", headers=s1, json={}))
                async with client.stream("GET", "/v1/desks/chuo-1/live", headers=console) as live:
                    assert live.headers["content-type"].startswith("text/event-stream")
                    events = _sse_events(live)
                    kind, state = await anext(events)
                    assert kind == "state" and [p["staff_id"] for p in state["on_duty"]] == ["S1"]
                    ok(await client.post("/v1/desks/chuo-1/tickets", headers=s1), 201)
                    kind, state = await anext(events)
                    assert kind == "state" and state["queue"]["waiting"] == [1]
                    ok(await client.post("/v1/desks/chuo-1/staff/check-out", headers=s1, json={}))
                    seen = []
                    while "desk.staffing_breach_detected" not in [e.get("type") for k, e in seen if k == "alert"]:
                        seen.append(await anext(events))
                    kind, state = await anext(events)
                    assert (
                        kind == "state" and state["on_duty"] == [] and state["alerts"][0]["kind"] == "staffing_breach"
                    )
    finally:
        server.should_exit = True
        await serving


async def test_desk1_calendar_queries_through_the_api(settings, municipality, js):
    clock = FakeClock(datetime(2021, 4, 28, 10, 0, tzinfo=TOKYO))
    city = await auth(js, settings, municipality, "C1", Role.city_staff)
    manager = await auth(js, settings, municipality, "M1", Role.manager)
    async with desk_app(settings, municipality, clock) as (_app, client):
        sunday = ok(await client.get("/v1/calendar/days/2021-04-04?desk=chuo-1", headers=city))
        assert sunday["kind"] == "special_opening" and sunday["intervals"] == [
            ["2021-04-04T08:45:00+09:00", "2021-04-04T12:00:00+09:00"]
        ]
        nxt = ok(await client.get("/v1/calendar/next-business-day", headers=city))
        assert nxt == {
            "after": "2021-04-28",
            "next_business_day": "2021-04-30",
            "deadline": "2021-04-30T17:15:00+09:00",
        }
        days = ok(await client.get("/v1/calendar/business-days?start=2021-04-26&end=2021-05-09", headers=city))
        assert days["count"] == 6
        assert (
            ok(await client.get("/v1/calendar/add-business-days?date=2021-04-30&n=3", headers=city))["result"]
            == "2021-05-10"
        )
        assert (
            await client.post(
                "/v1/calendar/special-openings",
                headers=city,
                json={"date": "2021-05-09", "open": "08:45", "close": "12:00"},
            )
        ).status_code == 403
        ok(
            await client.post(
                "/v1/calendar/special-openings",
                headers=manager,
                json={"date": "2021-05-09", "open": "08:45", "close": "12:00", "desks": ["chuo-1"]},
            ),
            201,
        )
        ok(
            await client.post(
                "/v1/calendar/extended-hours", headers=manager, json={"date": "2021-05-10", "close": "19:00"}
            ),
            201,
        )
        # a time with a zone is no wall-clock closing time: a clear 422 in Japanese, nothing stored (it was a 500)
        for bad in (
            {"path": "/v1/calendar/extended-hours", "json": {"date": "2021-05-17", "close": "00:00:00Z"}},
            {"path": "/v1/calendar/extended-hours", "json": {"date": "2021-05-17", "close": "19:00+09:00"}},
            {
                "path": "/v1/calendar/special-openings",
                "json": {"date": "2021-05-16", "open": "08:45Z", "close": "12:00"},
            },
        ):
            refused = await client.post(bad["path"], headers=manager, json=bad["json"])
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "タイムゾーンを付けずに" in refused.json()["detail"]
        assert (
            ok(await client.get("/v1/calendar/days/2021-05-17", headers=city))["intervals"][0][1]
            == "2021-05-17T17:15:00+09:00"
        )
        assert ok(await client.get("/v1/calendar/days/2021-05-16?desk=chuo-1", headers=city))["kind"] == "closed"
        assert (
            ok(await client.get("/v1/calendar/days/2021-05-09?desk=chuo-1", headers=city))["kind"] == "special_opening"
        )
        assert ok(await client.get("/v1/calendar/days/2021-05-09?desk=kita-1", headers=city))["kind"] == "closed"
        assert (
            ok(await client.get("/v1/calendar/days/2021-05-10", headers=city))["intervals"][0][1]
            == "2021-05-10T19:00:00+09:00"
        )
        delay = ok(
            await client.post(
                "/v1/calendar/delays",
                headers=manager,
                json={
                    "instruction_id": "delay-1",
                    "start": "2021-05-11T00:00:00+09:00",
                    "until": "2021-05-13T00:00:00+09:00",
                    "reason": "pandemic",
                },
            ),
            201,
        )
        assert delay["events"][0]["type"] == "desk.opening_delayed"
        assert ok(await client.get("/v1/calendar/days/2021-05-12", headers=city))["closed_reason"] == "delayed"
        listed = ok(await client.get("/v1/calendar/instructions", headers=city))
        assert [i["id"] for i in listed["instructions"]] == ["delay-1"] and len(listed["special_days"]) == 2
        opened = ok(await client.get("/v1/desks/chuo-1/open?at=2021-05-11T10:00:00%2B09:00", headers=city))
        assert opened["open"] is False and opened["next_open_at"] == "2021-05-13T08:45:00+09:00"


def test_desk1_cli_prints_hours_and_next_business_day():
    result = CliRunner().invoke(cli, ["calendar", "--date", "2021-04-04", "--desk", "chuo-1", "-m", "011002"])
    assert result.exit_code == 0, result.output
    assert "08:45～12:00" in result.output and "next business day: 2021-04-05" in result.output
    result = CliRunner().invoke(cli, ["business-days", "--start", "2021-12-27", "--end", "2022-01-05", "-m", "011002"])
    assert result.output.splitlines() == ["2021-12-27", "2021-12-28", "2022-01-04", "2022-01-05", "4 business days"]
