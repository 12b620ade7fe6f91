"""The API's edges: who may read what, clear refusals, and the live stream of report changes (SSE)
over a real HTTP server."""

from __future__ import annotations

import asyncio
import json

import httpx
import uvicorn

from madoguchi_shared import bus
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import free_port

from madoguchi_reporting.main import create_app

from reporting_harness import headers, reporting_settings, running_app
from sim_week import WEEK_START, simulate


async def test_roles_wards_and_refusals(settings, municipality, js):
    s = reporting_settings(settings)
    day = {"desk": "chuo-1", "date": WEEK_START.isoformat()}
    async with running_app(s) as (_app, client):

        async def get(path, params, role=Role.manager, wards=()):
            return await client.get(path, params=params, headers=await headers(js, s, municipality, role, wards))

        for role in (Role.city_staff, Role.manager, Role.rounder, Role.auditor):
            assert (await get("/v1/reports/daily", day, role)).status_code == 200, role
        for role in (Role.supporter, Role.operator):
            r = await get("/v1/reports/daily", day, role)
            assert r.status_code == 403 and r.json()["detail"] == "この操作を行う権限がありません。"
        assert (await client.get("/v1/reports/daily", params=day)).status_code == 401
        # a rounder scoped to Kita reads Kita's desk, not Chuo's, nor the city-wide tables
        assert (await get("/v1/reports/daily", {**day, "desk": "kita-1"}, Role.rounder, ["kita"])).status_code == 200
        assert (await get("/v1/reports/daily", day, Role.rounder, ["kita"])).status_code == 403
        assert (
            await get("/v1/reports/weekly", {"week_start": "2021-03-29"}, Role.rounder, ["kita"])
        ).status_code == 403
        # clear refusals, in Japanese, as problem+json
        r = await get("/v1/reports/daily", {**day, "desk": "nowhere-9"})
        assert r.status_code == 404 and "nowhere-9" in r.json()["detail"]
        r = await get("/v1/reports/daily", {**day, "date": "2021-02-30"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        r = await get("/v1/reports/daily", {**day, "format": "docx"})
        assert r.status_code == 422
        r = await get("/v1/reports/final", {"from": "2021-05-01", "to": "2021-04-01"})
        assert r.status_code == 422 and r.json()["detail"] == "終了日は開始日以降にしてください。"
        # an empty day still has its frame: every opening hour, zeros, headings in both calendars
        report = (await get("/v1/reports/daily", day)).json()
        assert report["figures"]["visitors"] == 0 and report["revision"]["status"] == "draft"
        assert report["figures"]["by_hour"]["08"] == 0 and report["period"]["start_wareki"] == "令和3年3月29日（月）"
        assert report["title"] == "日次報告書（窓口）　中央区"


async def test_live_stream_of_report_updates(settings, js, municipality):
    """GET /v1/reports/live streams report.report_updated as server-sent events (real uvicorn)."""
    s = reporting_settings(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(s), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        week = simulate(municipality, WEEK_START, desks=1, days=1, visitors=6, seed=3)
        got: list[dict] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            async with client.stream(
                "GET", "/v1/reports/live", headers=await headers(js, s, municipality, Role.city_staff)
            ) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                event = None
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                        if event == "ready":
                            await bus.publish_many(js, week.events)
                    elif line.startswith("data:") and event == "report.report_updated":
                        got.append(json.loads(line.split(":", 1)[1]))
                        if {g["report_id"] for g in got} >= {"daily_chuo-1_2021-03-29", "daily_line-main_2021-03-29"}:
                            break
        desk = next(g for g in got if g["report_id"] == "daily_chuo-1_2021-03-29")
        assert (
            desk["ward"] == "chuo"
            and desk["desk"] == "chuo-1"
            and desk["kind"] == "daily"
            and desk["data_revision"] >= 1
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
