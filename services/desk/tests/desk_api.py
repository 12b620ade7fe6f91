"""Helpers for the desk API tests: the app on the session's real NATS, a settable clock, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from madoguchi_desk.main import create_app
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.events.admin import TRAINING_ITEMS, TrainingItemCompleted, TrainingTestRecorded
from madoguchi_shared.settings import Settings
from tests.utils.auth import staff_headers
from tests.utils.clock import FakeClock

SAPPORO_TOML = Path(__file__).resolve().parents[3] / "config" / "municipalities" / "011002.toml"


@asynccontextmanager
async def desk_app(
    settings: Settings, municipality: str, clock: FakeClock, log_level: str = "WARNING"
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The desk app serving Sapporo's configuration under the test's own municipality code."""
    s = settings.model_copy(update={"municipality": municipality, "config_file": SAPPORO_TOML, "log_level": log_level})
    app = create_app(s, clock=clock, staffing_check_seconds=3600)  # the tests drive the DESK-5 timer themselves
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield app, client


async def auth(
    js, settings: Settings, municipality: str, staff_id: str, role: Role, wards: tuple[str, ...] = ()
) -> dict[str, str]:
    """A bearer token of a staff account with this role and wards (made if missing)."""
    return await staff_headers(js, settings, municipality, staff_id, [role], wards)


async def train(js, municipality: str, staff_id: str, *, passed: bool = True) -> None:
    """Record a complete training (ORG-4) for a staff member on the admin stream."""
    for item in TRAINING_ITEMS:
        await bus.append(js, TrainingItemCompleted(municipality=municipality, staff_id=staff_id, item=item, hours=1.5))
    await bus.append(
        js,
        TrainingTestRecorded(municipality=municipality, staff_id=staff_id, score=90 if passed else 30, passed=passed),
    )


async def stream_types(nc, subject: str) -> list[str]:
    return [s.event.type for s in await bus.load(nc, subject)]


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json()
