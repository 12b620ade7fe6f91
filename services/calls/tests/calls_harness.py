"""Helpers for the calls service tests: a settable clock, tokens, an app on the real servers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import httpx

from madoguchi_calls.main import create_app
from madoguchi_calls.schedule import CallbackPolicy
from tests.utils.auth import credential_headers, staff_headers
from tests.utils.clock import FakeClock
from tests.utils.servers import as_service
from madoguchi_shared import bus, subjects
from madoguchi_shared.events.admin import TrainingItemCompleted, TrainingTestRecorded
from madoguchi_shared.municipality import TrainingPlan
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event, parse_event
from madoguchi_shared.events.base import Role


def jst(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TOKYO)


async def headers(js, settings, municipality: str, staff_id: str, *roles: Role, kind: str = "staff") -> dict[str, str]:
    """A bearer token: of a staff account with these roles (made if missing), or a service credential."""
    if kind == "staff":
        return await staff_headers(js, settings, municipality, staff_id, roles)
    return credential_headers(settings, municipality, staff_id, roles, kind)


async def train(js, municipality: str, staff_id: str) -> None:
    """A complete training record (ORG-4): the line refuses a seat to anyone without one."""
    events = [
        TrainingItemCompleted(municipality=municipality, staff_id=staff_id, item=i.key, hours=i.hours)
        for i in TrainingPlan().items
    ]
    events.append(TrainingTestRecorded(municipality=municipality, staff_id=staff_id, score=90, passed=True))
    await bus.publish_many(js, events)


@dataclass
class Line:
    """One app on the real servers plus the people who use it."""

    client: httpx.AsyncClient
    app: object
    clock: FakeClock
    municipality: str
    operator: dict[str, str]
    operator2: dict[str, str]
    manager: dict[str, str]
    city: dict[str, str]
    auditor: dict[str, str]
    phone_system: dict[str, str]

    @property
    def service(self):
        return self.app.state.calls  # type: ignore[attr-defined]

    async def post(self, url: str, who: dict[str, str], json: dict | None = None, expect: int | None = 200) -> dict:
        r = await self.client.post(url, json=json or {}, headers=who)
        if expect is not None:
            assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    async def get(self, url: str, who: dict[str, str], expect: int | None = 200, **params) -> dict:
        r = await self.client.get(url, headers=who, params=params)
        if expect is not None:
            assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    async def events(self, *, aggregate: str | None = None, aggregate_id: str | UUID | None = None) -> list[Event]:
        """Every calls event of this test's municipality (or one aggregate), in stream order."""
        js = self.service.js
        if aggregate_id is not None:
            stored = await bus.load(
                self.service.nc, subjects.aggregate_subject("calls", self.municipality, aggregate, str(aggregate_id))
            )
            return [s.event for s in stored]
        out = []
        async for _seq, _subject, data, _h in bus.load_filter(
            js, subjects.context_filter("calls", self.municipality, aggregate), timeout=0.5
        ):
            out.append(parse_event(data))
        return out

    async def raw_messages(self) -> list[bytes]:
        out = []
        async for _seq, _subject, data, _h in bus.load_filter(
            self.service.js, subjects.context_filter("calls", self.municipality), timeout=0.5
        ):
            out.append(data)
        return out


@contextlib.asynccontextmanager
async def running_line(
    settings, municipality: str, now: datetime, *, check_interval: float = 0, policy: CallbackPolicy | None = None
) -> AsyncIterator[Line]:
    clock = FakeClock(now)
    app = create_app(as_service(settings, "calls"), clock=clock, check_interval=check_interval, policy=policy)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            js = app.state.calls.js

            async def h(staff, *roles, **kw):
                return await headers(js, settings, municipality, staff, *roles, **kw)

            for staff in ("OP1", "OP2", "MG1"):
                await train(js, municipality, staff)
            yield Line(
                client=client,
                app=app,
                clock=clock,
                municipality=municipality,
                operator=await h("OP1", Role.operator),
                operator2=await h("OP2", Role.operator),
                manager=await h("MG1", Role.manager),
                city=await h("CITY1", Role.city_staff),
                auditor=await h("AUD1", Role.auditor),
                phone_system=await h("pbx", Role.service, kind="service"),
            )
