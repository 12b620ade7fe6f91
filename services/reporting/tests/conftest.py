"""Fixtures of the reporting tests: the app on the session's real NATS and PostgreSQL, and one
simulated week (10 desks and the phone line) published onto the bus, shared by the week's tests."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest_asyncio

from madoguchi_shared import bus
from reporting_harness import headers, reporting_settings, running_app
from sim_week import WEEK_START, simulate
from tests.utils.servers import unique_municipality


class WeekRun:
    """The simulated week after it went through the projections (with a stop and a kill midway)."""

    def __init__(self, settings, week, app, client):
        self.settings = settings
        self.week = week
        self.m = week.municipality
        self.app = app
        self.client = client
        self.worker = app.state.reporting
        self.h: dict = {}

    async def get(self, path: str, **params):
        r = await self.client.get(path, params=params, headers=self.h)
        assert r.status_code == 200, r.text
        return r


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def week_run(settings, js):
    s = reporting_settings(settings)
    m = unique_municipality()
    week = simulate(m, WEEK_START)
    events = week.events
    half = next(i for i, e in enumerate(events) if e.occurred_at.date() >= WEEK_START + dt.timedelta(days=3))
    async with running_app(s) as (app, client):
        worker = app.state.reporting
        # days 1-3, then the projections stop between batches
        await bus.publish_many(js, events[:half])
        await worker.caught_up()
        await worker.stop_projections()
        # the rest of the week arrives while they are stopped; they restart, and are killed
        # (cancelled, mid-batch if one is in flight) and restart again
        await bus.publish_many(js, events[half:])
        worker.start_projections()
        await asyncio.sleep(0.5)
        for t in [
            t
            for t in worker.tasks
            if t.get_name().startswith("reporting-") and t.get_name() not in ("reporting-outbox", "reporting-deadlines")
        ]:
            t.cancel()
        await worker.stop_projections()
        worker.start_projections()
        await worker.caught_up()
        run = WeekRun(s, week, app, client)
        run.h = await headers(js, s, run.m)
        yield run
