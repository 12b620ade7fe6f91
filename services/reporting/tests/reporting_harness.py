"""Helpers of the reporting tests: settings with a contract, the app in its lifespan, tokens."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx

from madoguchi_shared.events.base import Role

from madoguchi_reporting.main import create_app
from tests.utils.auth import staff_headers
from tests.utils.servers import as_service

CONTRACT = {"contract_start": "2021-03-15", "contract_end": "2021-09-30"}


def reporting_settings(settings, **extra):
    """The service's settings: a contract, and its own PostgreSQL login (mg_reporting), as `madoguchi run` gives it."""
    settings = as_service(settings, "reporting")
    return settings.model_copy(update={"extra": {**settings.extra, "deadline_check_seconds": "0", **CONTRACT, **extra}})


@asynccontextmanager
async def running_app(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as client:
            yield app, client


async def headers(
    js, settings, municipality: str, role: Role = Role.manager, wards=(), staff_id: str | None = None
) -> dict:
    """A bearer token of a staff account with this role and wards (made if missing; one account per role and wards)."""
    staff_id = staff_id or f"T-{role.value}-{'_'.join(wards) or 'all'}"
    return await staff_headers(js, settings, municipality, staff_id, [role], wards)
