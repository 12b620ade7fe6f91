"""The calls service (電話対応, CALL-1 … CALL-5): `create_app(settings)` and `run()`.

The lifespan (inside the shared one, which opens NATS and the pool) migrates the service's own
PostgreSQL schema ``calls`` (the callback phone store), starts the live view of the default
municipality and the periodic checks (seat coverage, overdue callbacks, phone store sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from madoguchi_calls import api, phone_store
from madoguchi_calls.phone_store import InvalidPhoneNumber, PhoneStore
from madoguchi_calls.schedule import CallbackPolicy
from madoguchi_calls.service import CallsService
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared import db
from madoguchi_shared.logging import get_logger
from madoguchi_shared.settings import Settings
from madoguchi_shared.web import create_service_app, problem

log = get_logger(__name__)

DEFAULT_CHECK_INTERVAL = 30.0  # seconds between periodic checks


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    policy: CallbackPolicy | None = None,
    check_interval: float | None = None,
) -> FastAPI:
    """The calls service app. `clock`, `policy` and `check_interval` are injectable for tests."""
    interval = check_interval
    if interval is None:
        interval = float(settings.extra.get("calls_check_interval", DEFAULT_CHECK_INTERVAL))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.pool.acquire() as conn:
            await db.migrate(conn, phone_store.SCHEMA, phone_store.MIGRATIONS)
        service = CallsService(
            settings, app.state.nc, PhoneStore(app.state.pool), clock=clock or utc_clock, policy=policy
        )
        app.state.calls = service
        await service.views.get(settings.municipality)
        stop = asyncio.Event()
        checks = (
            asyncio.create_task(service.checks_forever(interval, stop), name="calls-checks") if interval > 0 else None
        )
        try:
            yield
        finally:
            stop.set()
            if checks is not None:
                checks.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await checks
            await service.views.close()

    app = create_service_app(
        "calls",
        settings,
        routers=api.routers(),
        first=api.FIRST,
        lifespan=lifespan,
        use_db=True,
        description="The phone line: seats, calls, overflow, callbacks, escalations to the city, the operators' Q&A.",
        command_ids=True,
    )

    @app.exception_handler(InvalidPhoneNumber)
    async def bad_phone(request: Request, exc: InvalidPhoneNumber):
        return problem(422, "入力内容に誤りがあります", str(exc), request, field="phone")

    return app


def run() -> None:
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.calls_port, log_level="warning")
