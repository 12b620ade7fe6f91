"""The desk service (issue 3): calendar, day lifecycle, staffing, reception queue, visits,
incidents. `create_app(settings)` builds the app; `madoguchi serve desk` runs it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Counter

from madoguchi_desk.api import first, routers
from madoguchi_desk.notices import NoticeBook
from madoguchi_desk.service import Appended, DeskService
from madoguchi_shared import subjects
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared.events.desk import StaffingBreachDetected
from madoguchi_shared.logging import get_logger
from madoguchi_shared.municipality import Municipality, load_municipality
from madoguchi_shared.settings import Settings
from madoguchi_shared.web import create_service_app

log = get_logger(__name__)

DEFAULT_STAFFING_CHECK_SECONDS = 15.0


def load_config(settings: Settings) -> Municipality:
    """The municipality this deployment serves: `config_file` (taking the settings' code) or the
    file named after `settings.municipality` in the config folders."""
    if settings.config_file:
        return load_municipality(settings.config_file, code=settings.municipality)
    return load_municipality(settings.municipality, config_dir=settings.extra.get("config_dir"))


def create_app(
    settings: Settings, *, clock: Clock | None = None, staffing_check_seconds: float | None = None
) -> FastAPI:
    municipality = load_config(settings)
    interval = staffing_check_seconds or float(
        settings.extra.get("desk_staffing_check_seconds", DEFAULT_STAFFING_CHECK_SECONDS)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = app.state.metrics_registry
        counters = {
            "breaches": Counter(
                "madoguchi_desk_staffing_breaches_total",
                "DESK-5 staffing breaches detected",
                ["desk"],
                registry=registry,
            ),
            "events": Counter("madoguchi_desk_events_total", "Desk events appended", ["type"], registry=registry),
        }

        by_type: dict[str, Counter] = {}  # the counter's child per event type (labels() validates and locks each call)

        def on_appended(appended: list[Appended]) -> None:
            for a in appended:
                child = by_type.get(a.event.type)
                if child is None:
                    child = by_type[a.event.type] = counters["events"].labels(a.event.type)
                child.inc()
                if isinstance(a.event, StaffingBreachDetected):
                    counters["breaches"].labels(a.event.desk or "-").inc()
                    log.warning("desk.staffing_breach", desk=a.event.desk, breach_no=a.event.breach_no)

        service = DeskService(app.state.nc, app.state.js, municipality, clock or utc_clock, on_appended)
        await service.vault.ensure()  # the desk edges seal into it and may not create it (EDGE.md)
        app.state.desk = service

        async def staffing_timer() -> None:
            # DESK-5: also evaluated on every staffing change; the timer catches time passing
            # (opening with nobody there, closing during a breach).
            while True:
                await asyncio.sleep(interval)
                await service.staffing_sweep()

        task = asyncio.create_task(staffing_timer(), name="desk-staffing-timer")

        async def edge_beat(msg) -> None:
            service.note_edge(msg.data)

        beats = await app.state.nc.subscribe(subjects.edge_filter(municipality.code), cb=edge_beat)
        notices = app.state.notices = NoticeBook(app.state.js, municipality.code)
        await notices.start()
        try:
            yield
        finally:
            await notices.stop()
            await beats.unsubscribe()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = create_service_app(
        "desk",
        settings,
        routers=routers(),
        first=first,
        lifespan=lifespan,
        description="窓口: opening calendar, day lifecycle, staffing, queue, visits, incidents",
        command_ids=True,
    )
    app.state.municipality = municipality

    return app


def run() -> None:
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.desk_port, log_level="warning")


if __name__ == "__main__":
    run()
