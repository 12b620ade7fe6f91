"""The desk PCs' monitoring notice, as the desk needs it (SEC-2).

Each desk PC's agent records who was shown the monitoring notice and whether they acknowledged or
declined it (device.monitoring_notice_* on mg.device.<municipality>.agent.<device>). `NoticeBook`
follows those events from the start of yesterday (an ordered consumer; other device events are
skipped by their Mg-Type header, unparsed) and keeps, per day and staff id, the latest answer.

- check-in: a staff member whose latest answer today is "declined" cannot go on duty (403);
- HQ: `GET /v1/monitoring-notice?date=` lists who acknowledged, who declined and who is on duty
  (checked in at a desk that day) without an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from nats.js import api

from madoguchi_shared import subjects
from madoguchi_shared.auth import Principal, Role, require
from madoguchi_shared.web import problems
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import parse_event
from madoguchi_shared.logging import get_logger

if TYPE_CHECKING:
    from madoguchi_desk.service import DeskService

log = get_logger(__name__)

NOTICE_TYPES = ("device.monitoring_notice_acknowledged", "device.monitoring_notice_declined")


@dataclass(frozen=True)
class Answer:
    staff_id: str
    answer: str  # acknowledged | declined
    at: datetime
    desk: str | None
    device_id: str


class NoticeBook:
    def __init__(self, js, municipality: str):
        self.js = js
        self.municipality = municipality
        self.answers: dict[tuple[date, str], Answer] = {}
        self.seen = 0
        self._sub = None

    async def start(self) -> None:
        start = datetime.now(UTC) - timedelta(days=2)
        for attempt in range(3):
            try:
                self._sub = await self.js.subscribe(
                    subjects.pattern("device", self.municipality, "agent", ">"),
                    cb=self._on_msg,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.BY_START_TIME,
                    config=api.ConsumerConfig(opt_start_time=start),
                )
                return
            except Exception as exc:  # noqa: BLE001 - the device stream may not exist yet on a fresh bus
                log.warning("desk.notice_book_failed", error=type(exc).__name__, attempt=attempt)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_msg(self, msg) -> None:
        if (msg.headers or {}).get("Mg-Type") not in NOTICE_TYPES:
            return
        try:
            event = parse_event(msg.data)
        except ValueError:
            return
        self.note(event)

    def note(self, event) -> None:
        day = event.occurred_at.astimezone(TOKYO).date()
        answer = "acknowledged" if event.type.endswith("acknowledged") else "declined"
        key = (day, event.staff_id)
        current = self.answers.get(key)
        if current is None or current.at <= event.occurred_at:
            self.answers[key] = Answer(event.staff_id, answer, event.occurred_at, event.desk, event.device_id)
        self.seen += 1
        for old in [k for k in self.answers if k[0] < day - timedelta(days=2)]:
            del self.answers[old]

    def declined(self, staff_id: str, day: date) -> bool:
        a = self.answers.get((day, staff_id))
        return a is not None and a.answer == "declined"

    def of_day(self, day: date) -> list[Answer]:
        return sorted((a for (d, _), a in self.answers.items() if d == day), key=lambda a: a.staff_id)


router = APIRouter(prefix="/v1/monitoring-notice", tags=["monitoring notice"], responses=problems(401, 403, 422, 503))
HQ = Annotated[Principal, Depends(require(Role.manager, Role.auditor, Role.administrator))]


@router.get("")
async def notice_status(
    request: Request,
    principal: HQ,
    day: Annotated[date | None, Query(alias="date", description="default: today")] = None,
) -> dict[str, Any]:
    """Who acknowledged the monitoring notice on a day, who declined, and who went on duty without
    acknowledging it (HQ: manager, auditor, administrator)."""
    service: DeskService = request.app.state.desk
    await principal.check_municipality(request, service.m.code)
    book: NoticeBook = request.app.state.notices
    day = day or service.today()
    answers = book.of_day(day)
    on_duty: dict[str, list[str]] = {}
    for desk in service.m.desks:
        loaded = await service.deskday(desk, day)
        for staff_id in getattr(loaded.state, "staff", {}):
            on_duty.setdefault(staff_id, []).append(desk.id)
    acknowledged = {a.staff_id for a in answers if a.answer == "acknowledged"}

    def row(a: Answer) -> dict[str, Any]:
        return {"staff_id": a.staff_id, "at": a.at.isoformat(), "desk": a.desk, "device_id": a.device_id}

    return {
        "date": day.isoformat(),
        "acknowledged": [row(a) for a in answers if a.answer == "acknowledged"],
        "declined": [row(a) for a in answers if a.answer == "declined"],
        "not_acknowledged": [
            {"staff_id": s, "desks": desks} for s, desks in sorted(on_duty.items()) if s not in acknowledged
        ],
    }
