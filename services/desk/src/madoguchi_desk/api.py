"""REST resources under /v1/ (thin: check scope, build a command, let the service run it).

Every command answers with the events it produced (`events`, each with its stream `seq`) and the
new `version` of the aggregate(s) it changed; a client may send that `version` back with its next
command to refuse a stale edit (409).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from madoguchi_desk import domain as d
from madoguchi_desk.notices import router as notice_router
from madoguchi_desk.deps import DeskWorker, EscalationHandler, Manager, Reader, Service, desk_in_scope
from madoguchi_desk.service import Appended
from madoguchi_shared import subjects
from madoguchi_shared.errors import Invalid, NotFound
from madoguchi_shared.auth import Principal, Role, deny, revocable
from madoguchi_shared.events import desk as ev
from madoguchi_shared.events import new_id, parse_event
from madoguchi_shared.events.base import Ident, WallClockTime
from madoguchi_shared.hot import HotRoute
from madoguchi_shared.pii import FreeText, TypedIdent
from madoguchi_shared.web import ServiceDate, ServiceInstant, correlation_id, event_stream, problems

DayParam = Annotated[ServiceDate | None, Query(alias="date", description="the desk-day (default: today in Asia/Tokyo)")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Versioned(Body):
    version: int | None = Field(
        default=None, ge=0, description="the aggregate version you saw; a different one is a 409"
    )


def result(appended: list[Appended], **extra: Any) -> dict[str, Any]:
    versions: dict[str, int] = {}
    for a in appended:
        versions[a.event.aggregate] = a.seq
    return {
        "events": [a.as_json() for a in appended],
        "version": appended[-1].seq if appended else None,
        "versions": versions,
        **extra,
    }


async def _self_or_manager(request: Request, principal: Principal, staff_id: str | None) -> str:
    """Staff act for themselves; the manager may act for someone else (e.g. a forgotten check-out)."""
    target = staff_id or principal.staff_id
    if target != principal.staff_id and not principal.has(Role.manager):
        await deny(request, principal, "role", required=(Role.manager,))
    return target


# =====================================================================================
# calendar (DESK-1)
# =====================================================================================

calendar_router = APIRouter(prefix="/v1/calendar", tags=["calendar"], responses=problems(401, 403, 422, 503))


class SuspendBody(Body):
    instruction_id: TypedIdent | None = None
    start: ServiceInstant
    end: ServiceInstant | None = None
    desks: list[Ident] = []
    reason: ev.InstructionReason
    note: FreeText | None = None


class DelayBody(Body):
    instruction_id: TypedIdent | None = None
    start: ServiceInstant | None = None
    until: ServiceInstant
    desks: list[Ident] = []
    reason: ev.InstructionReason
    note: FreeText | None = None


class LiftBody(Body):
    at: ServiceInstant | None = None


class SpecialOpeningBody(Body):
    date: ServiceDate
    open: WallClockTime = Field(description="the desk's local time, without a zone (e.g. 08:45)")
    close: WallClockTime = Field(description="the desk's local time, without a zone (e.g. 19:00)")
    desks: list[Ident] = []
    note: FreeText | None = None


class ExtendedHoursBody(Body):
    date: ServiceDate
    close: WallClockTime = Field(description="the desk's local time, without a zone (e.g. 19:00)")
    desks: list[Ident] = []
    note: FreeText | None = None


@calendar_router.get("/days/{day}")
async def calendar_day(day: ServiceDate, service: Service, principal: Reader, desk: str | None = None) -> dict:
    """Opening hours of a date (for one desk, or the general rule)."""
    cal = await service.calendar()
    return cal.hours(day, desk).as_dict() | {"next_business_day": cal.next_business_day(day).isoformat()}


@calendar_router.get("/next-business-day")
async def next_business_day(service: Service, principal: Reader, after: ServiceDate | None = None) -> dict:
    """The first ward-office business day after a date (default: today)."""
    cal = await service.calendar()
    after = after or service.today(cal)
    nxt = cal.next_business_day(after)
    return {
        "after": after.isoformat(),
        "next_business_day": nxt.isoformat(),
        "deadline": cal.next_business_day_deadline(after).isoformat(),
    }


@calendar_router.get("/business-days")
async def business_days(start: ServiceDate, end: ServiceDate, service: Service, principal: Reader) -> dict:
    """Business days in [start, end]."""
    if (end - start).days > 800:
        raise Invalid("期間は800日以内にしてください。", code="range")
    cal = await service.calendar()
    days = cal.business_days(start, end)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "count": len(days),
        "days": [x.isoformat() for x in days],
    }


@calendar_router.get("/add-business-days")
async def add_business_days(
    day: Annotated[ServiceDate, Query(alias="date")],
    n: Annotated[int, Query(ge=-400, le=400)],
    service: Service,
    principal: Reader,
) -> dict:
    """The date n business days from a date."""
    cal = await service.calendar()
    return {"date": day.isoformat(), "n": n, "result": cal.add_business_days(day, n).isoformat()}


@calendar_router.get("/instructions")
async def instructions(service: Service, principal: Reader) -> dict:
    """City instructions and special days recorded at run time."""
    loaded = await service.city_calendar()
    state: d.CityCalendar = loaded.state
    return {
        "version": loaded.seq,
        "instructions": [
            {
                "id": i.id,
                "kind": i.kind,
                "start": i.start.isoformat(),
                "end": i.end.isoformat() if i.end else None,
                "desks": sorted(i.desks),
                "reason": i.reason,
            }
            for i in state.instructions
        ],
        "special_days": [
            {
                "date": s.day.isoformat(),
                "kind": s.kind,
                "open": s.open.isoformat() if s.open else None,
                "close": s.close.isoformat() if s.close else None,
                "desks": sorted(s.desks),
            }
            for s in state.special_days
        ],
    }


@calendar_router.post("/suspensions", status_code=201, responses=problems(409))
async def suspend(body: SuspendBody, request: Request, service: Service, principal: Manager) -> dict:
    """The city instructs to suspend opening for a period (manager records it)."""
    await principal.check_municipality(request, service.m.code)
    cmd = d.SuspendOpening(
        body.instruction_id or f"s-{new_id()}", body.start, body.end, body.reason, tuple(body.desks), body.note
    )
    return result(await service.calendar_command(cmd, principal.actor, correlation_id=correlation_id(request)))


@calendar_router.post("/delays", status_code=201, responses=problems(409))
async def delay(body: DelayBody, request: Request, service: Service, principal: Manager) -> dict:
    """The city instructs to delay opening until a time."""
    await principal.check_municipality(request, service.m.code)
    cmd = d.DelayOpening(
        body.instruction_id or f"d-{new_id()}",
        body.start or service.clock(),
        body.until,
        body.reason,
        tuple(body.desks),
        body.note,
    )
    return result(await service.calendar_command(cmd, principal.actor, correlation_id=correlation_id(request)))


@calendar_router.post("/instructions/{instruction_id}/lift", responses=problems(404, 409))
async def lift(instruction_id: Ident, body: LiftBody, request: Request, service: Service, principal: Manager) -> dict:
    """End a suspension or delay (default: now)."""
    await principal.check_municipality(request, service.m.code)
    cmd = d.LiftInstruction(instruction_id, body.at or service.clock())
    return result(await service.calendar_command(cmd, principal.actor, correlation_id=correlation_id(request)))


@calendar_router.post("/special-openings", status_code=201, responses=problems(409))
async def special_opening(body: SpecialOpeningBody, request: Request, service: Service, principal: Manager) -> dict:
    """Add a special opening (e.g. a Sunday 8:45–12:00)."""
    await principal.check_municipality(request, service.m.code)
    cmd = d.ScheduleSpecialOpening(body.date, body.open, body.close, tuple(body.desks), body.note)
    return result(await service.calendar_command(cmd, principal.actor, correlation_id=correlation_id(request)))


@calendar_router.post("/extended-hours", status_code=201, responses=problems(409))
async def extended_hours(body: ExtendedHoursBody, request: Request, service: Service, principal: Manager) -> dict:
    """Extend a day's hours (e.g. to 19:00)."""
    await principal.check_municipality(request, service.m.code)
    cmd = d.ScheduleExtendedHours(body.date, body.close, tuple(body.desks), body.note)
    return result(await service.calendar_command(cmd, principal.actor, correlation_id=correlation_id(request)))


# =====================================================================================
# desks: status, day lifecycle, equipment, staffing, queue, disinfection, escalations, incidents
# =====================================================================================

desks_router = APIRouter(prefix="/v1/desks", tags=["desks"], responses=problems(401, 403, 404, 422, 503))
# The reception queue's routes (DESK-3), the busiest of the service, in a router of their own that
# the app matches before any other (`create_service_app(first=...)`): FastAPI tries routes in order.
queue_router = APIRouter(
    prefix="/v1/desks", tags=["desks"], responses=problems(401, 403, 404, 422, 503), route_class=HotRoute
)  # served without FastAPI's solver


class StopBody(Body):
    reason: ev.StopReason
    note: FreeText | None = None
    reported_to_city_at: ServiceInstant | None = None


class PeriodBody(Body):
    start: ServiceInstant
    end: ServiceInstant


class EquipmentBody(Body):
    phase: Literal["opening", "closing"]
    missing: list[Ident] = []
    damaged: list[Ident] = []
    note: FreeText | None = None


class StaffBody(Body):
    staff_id: Ident | None = None


class AbsenceBody(Body):
    staff_id: Ident | None = None
    reason: ev.AbsenceReason = "other"
    expected_minutes: int = Field(default=5, ge=1, le=60)


class MaskBody(Body):
    staff_id: Ident | None = None
    wearing: bool


class CallNextBody(Versioned):
    expected_ticket: int | None = Field(default=None, ge=1, description="the ticket your screen shows as next")
    whoever_is_next: bool = Field(
        default=False,
        description="call whoever is next when the request lands (no 409 when "
        "another supporter took the number the screen showed)",
    )


class TransferBody(Body):
    to_staff: Ident


class DisinfectionBody(Body):
    after_visit_id: UUID | None = None


class EscalationBody(Body):
    category: ev.EscalationCategory
    summary: FreeText = Field(min_length=1)
    visit_id: UUID | None = None


class CitySummaryBody(Body):
    summary: FreeText = Field(min_length=1)


class ResolveBody(Body):
    outcome: FreeText = Field(min_length=1)


class StepBody(Body):
    step: Ident


class CloseIncidentBody(Body):
    note: FreeText | None = None


@desks_router.get("")
async def list_desks(request: Request, service: Service, principal: Reader) -> dict:
    """Every desk of the municipality in the caller's scope, open now or not."""
    await principal.check_municipality(request, service.m.code)
    cal = await service.calendar()
    now = service.clock()
    return {
        "municipality": service.m.code,
        "name_ja": service.m.name_ja,
        "desks": [
            {
                "desk": dk.id,
                "ward": dk.ward,
                "ward_name_ja": service.m.ward(dk.ward).name_ja,
                "name_ja": dk.name_ja,
                "expected_max_visitors": dk.expected_max_visitors,
                "open_now": cal.is_open(now, dk.id),
            }
            for dk in service.m.desks
            if principal.sees_ward(dk.ward)
        ],
    }


@desks_router.get("/{desk_id}/status")
async def desk_status(
    desk_id: str, request: Request, service: Service, principal: Reader, day: DayParam = None
) -> dict:
    """Open now? hours, queue, staff on duty, visitors vs capacity, estimated wait, alerts."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    return await service.status(desk, day)


@desks_router.get("/{desk_id}/queue")
async def desk_queue(desk_id: str, request: Request, service: Service, principal: Reader) -> dict:
    """Today's queue and the estimated wait (send `version` back with call-next)."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    status = await service.status(desk)
    return {**status["queue"], "estimated_wait_minutes": status["estimated_wait_minutes"], "version": status["version"]}


@desks_router.get("/{desk_id}/open")
async def desk_open(
    desk_id: str, request: Request, service: Service, principal: Reader, at: ServiceInstant | None = None
) -> dict:
    """Is the desk open at a moment (default now), and when does it open next."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    cal = await service.calendar()
    at = at or service.clock()
    nxt = cal.next_open_at(at, desk.id)
    return {
        "desk": desk.id,
        "at": at.isoformat(),
        "open": cal.is_open(at, desk.id),
        "next_open_at": nxt.isoformat() if nxt else None,
        "hours": cal.hours(cal.local_date(at), desk.id).as_dict(),
    }


async def _day_cmd(
    request: Request,
    service,
    principal: Principal,
    desk_id: str,
    cmd: Any,
    day: date | None = None,
    *,
    retry: bool = True,
    version: int | None = None,
) -> dict:
    desk = await desk_in_scope(request, service, principal, desk_id)
    return result(
        await service.deskday_command(
            desk, day, cmd, principal.actor, retry=retry, version=version, correlation_id=correlation_id(request)
        )
    )


# --- day lifecycle (ORG-3) ---


@desks_router.post("/{desk_id}/day/start", responses=problems(409))
async def start_day(desk_id: str, request: Request, service: Service, principal: Manager) -> dict:
    """The manager confirms the start of the desk's day."""
    return await _day_cmd(request, service, principal, desk_id, d.StartDay())


@desks_router.post("/{desk_id}/day/end", responses=problems(409))
async def end_day(desk_id: str, request: Request, service: Service, principal: Manager) -> dict:
    """The manager confirms the end of the desk's day."""
    return await _day_cmd(request, service, principal, desk_id, d.EndDay())


@desks_router.post("/{desk_id}/day/cannot-start", responses=problems(409))
async def cannot_start(desk_id: str, body: StopBody, request: Request, service: Service, principal: Manager) -> dict:
    """The desk cannot start today: reported to the city with the reason."""
    cmd = d.ReportCannotStart(body.reason, body.reported_to_city_at or service.clock(), body.note)
    return await _day_cmd(request, service, principal, desk_id, cmd)


@desks_router.post("/{desk_id}/day/cannot-continue", responses=problems(409))
async def cannot_continue(desk_id: str, body: StopBody, request: Request, service: Service, principal: Manager) -> dict:
    """The desk cannot continue today: reported to the city with the reason."""
    cmd = d.ReportCannotContinue(body.reason, body.reported_to_city_at or service.clock(), body.note)
    return await _day_cmd(request, service, principal, desk_id, cmd)


@desks_router.post("/{desk_id}/day/resume", responses=problems(409))
async def resume_day(desk_id: str, request: Request, service: Service, principal: Manager) -> dict:
    """Work resumes after a stop."""
    return await _day_cmd(request, service, principal, desk_id, d.ResumeDay())


@desks_router.post("/{desk_id}/day/preparation", responses=problems(409))
async def preparation(
    desk_id: str, body: PeriodBody, request: Request, service: Service, principal: DeskWorker, day: DayParam = None
) -> dict:
    """Record the preparation (flagged when inside opening hours)."""
    return await _day_cmd(request, service, principal, desk_id, d.RecordPreparation(body.start, body.end), day)


@desks_router.post("/{desk_id}/day/cleanup", responses=problems(409))
async def cleanup(
    desk_id: str, body: PeriodBody, request: Request, service: Service, principal: DeskWorker, day: DayParam = None
) -> dict:
    """Record the clean-up (flagged when inside opening hours)."""
    return await _day_cmd(request, service, principal, desk_id, d.RecordCleanup(body.start, body.end), day)


@desks_router.post("/{desk_id}/equipment-checks", status_code=201, responses=problems(409))
async def equipment_check(
    desk_id: str, body: EquipmentBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """DESK-10: the opening or closing equipment check; a missing laptop or card reader opens an incident."""
    cmd = d.CheckEquipment(body.phase, tuple(body.missing), tuple(body.damaged), body.note)
    return await _day_cmd(request, service, principal, desk_id, cmd)


# --- staffing (DESK-5, ORG-4) ---


_DUTIES: tuple[tuple[Role, ev.DeskRole], ...] = (
    (Role.supporter, "supporter"),
    (Role.rounder, "rounder"),
    (Role.manager, "manager"),
)


def _duty_role(principal: Principal, for_self: bool) -> ev.DeskRole:
    if for_self:
        for role, duty in _DUTIES:
            if role in principal.roles:
                return duty
    return "supporter"


@desks_router.post("/{desk_id}/staff/check-in", responses=problems(409))
async def check_in(desk_id: str, body: StaffBody, request: Request, service: Service, principal: DeskWorker) -> dict:
    """Go on duty at the desk; only staff whose training is complete (ORG-4)."""
    staff_id = await _self_or_manager(request, principal, body.staff_id)
    missing = await service.training_missing(staff_id)
    notices = getattr(request.app.state, "notices", None)
    declined = notices is not None and notices.declined(staff_id, service.today())
    cmd = d.CheckIn(staff_id, _duty_role(principal, staff_id == principal.staff_id), missing, declined)
    return await _day_cmd(request, service, principal, desk_id, cmd)


@desks_router.post("/{desk_id}/staff/check-out", responses=problems(409))
async def check_out(desk_id: str, body: StaffBody, request: Request, service: Service, principal: DeskWorker) -> dict:
    """Go off duty (DESK-5 is checked at once)."""
    staff_id = await _self_or_manager(request, principal, body.staff_id)
    return await _day_cmd(request, service, principal, desk_id, d.CheckOut(staff_id))


@desks_router.post("/{desk_id}/staff/absence/start", responses=problems(409))
async def absence_start(
    desk_id: str, body: AbsenceBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Start a short absence; the desk shows the notice (DESK-5)."""
    staff_id = await _self_or_manager(request, principal, body.staff_id)
    cmd = d.StartAbsence(staff_id, body.reason, body.expected_minutes)
    return await _day_cmd(request, service, principal, desk_id, cmd)


@desks_router.post("/{desk_id}/staff/absence/end", responses=problems(409))
async def absence_end(desk_id: str, body: StaffBody, request: Request, service: Service, principal: DeskWorker) -> dict:
    """End a short absence."""
    staff_id = await _self_or_manager(request, principal, body.staff_id)
    return await _day_cmd(request, service, principal, desk_id, d.EndAbsence(staff_id))


@desks_router.post("/{desk_id}/staff/mask", responses=problems(409))
async def mask(desk_id: str, body: MaskBody, request: Request, service: Service, principal: DeskWorker) -> dict:
    """DESK-8: record whether a staff member wears a mask."""
    staff_id = await _self_or_manager(request, principal, body.staff_id)
    return await _day_cmd(request, service, principal, desk_id, d.RecordMask(staff_id, body.wearing))


# --- queue (DESK-3) ---


@queue_router.post("/{desk_id}/tickets", status_code=201, responses=problems(409))
async def issue_ticket(desk_id: str, request: Request, service: Service, principal: DeskWorker) -> dict:
    """Issue the next queue ticket (numbers without gaps per desk and day; DESK-2 alerts)."""
    out = await _day_cmd(request, service, principal, desk_id, d.IssueTicket())
    out["ticket_no"] = out["events"][0]["ticket_no"]
    return out


@queue_router.post("/{desk_id}/tickets/call-next", responses=problems(409))
async def call_next(
    desk_id: str, body: CallNextBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Call the next waiting ticket to yourself; a concurrent call for the same ticket gets 409."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    appended = await service.call_next(
        desk,
        principal.staff_id,
        principal.actor,
        expected_ticket=body.expected_ticket,
        version=body.version,
        correlation_id=correlation_id(request),
        pinned=not body.whoever_is_next,
    )
    called = appended[0].event
    assert isinstance(called, ev.TicketCalled)  # CallNext's one event
    return result(appended, ticket_no=called.ticket_no, visit_id=str(called.visit_id))


@queue_router.post("/{desk_id}/walk-in", status_code=201, responses=problems(409))
async def walk_in(desk_id: str, request: Request, service: Service, principal: DeskWorker) -> dict:
    """A visitor at an empty desk: ticket, call and start of the visit in one step (tickets matter
    only when people wait). Refused with 409 when someone is already waiting."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    appended = await service.walk_in(
        desk,
        principal.staff_id,
        principal.actor,
        may_take_over=principal.has(Role.manager, Role.rounder),
        correlation_id=correlation_id(request),
    )
    started = next(a.event for a in appended if isinstance(a.event, ev.VisitStarted))
    return result(appended, visit_id=str(started.visit_id), ticket_no=started.ticket_no)


@queue_router.post("/{desk_id}/tickets/{ticket_no}/recall", responses=problems(409))
async def recall(
    desk_id: str, ticket_no: int, body: Versioned, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Call a ticket again."""
    return await _day_cmd(request, service, principal, desk_id, d.Recall(ticket_no), retry=False, version=body.version)


@queue_router.post("/{desk_id}/tickets/{ticket_no}/no-show", responses=problems(409))
async def no_show(
    desk_id: str, ticket_no: int, body: Versioned, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """The called visitor did not come."""
    return await _day_cmd(request, service, principal, desk_id, d.NoShow(ticket_no), retry=False, version=body.version)


@queue_router.post("/{desk_id}/tickets/{ticket_no}/transfer", responses=problems(409))
async def transfer(
    desk_id: str, ticket_no: int, body: TransferBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Hand a called ticket to another supporter on duty."""
    return await _day_cmd(request, service, principal, desk_id, d.Transfer(ticket_no, body.to_staff), retry=False)


@queue_router.post("/{desk_id}/tickets/{ticket_no}/visit", status_code=201, responses=problems(409))
async def start_visit(desk_id: str, ticket_no: int, request: Request, service: Service, principal: DeskWorker) -> dict:
    """The called visitor arrives: the ticket is served and the visit starts (DESK-8 check)."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    appended = await service.start_visit(
        desk,
        ticket_no,
        principal.staff_id,
        principal.actor,
        may_take_over=principal.has(Role.manager, Role.rounder),
        correlation_id=correlation_id(request),
    )
    started = next(a.event for a in appended if isinstance(a.event, ev.VisitStarted))
    return result(appended, visit_id=str(started.visit_id), version=appended[-1].seq)


# --- disinfection (DESK-8) ---


@desks_router.post("/{desk_id}/disinfections", status_code=201, responses=problems(409))
async def disinfected(
    desk_id: str, body: DisinfectionBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Mark the devices disinfected after a visit (default: the latest one)."""
    return await _day_cmd(request, service, principal, desk_id, d.MarkDisinfected(body.after_visit_id))


# --- escalations (DESK-6) ---


@desks_router.post("/{desk_id}/escalations", status_code=201, responses=problems(409))
async def raise_escalation(
    desk_id: str, body: EscalationBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Raise a case to the manager with a summary (PII-screened)."""
    out = await _day_cmd(
        request, service, principal, desk_id, d.RaiseEscalation(body.category, body.summary, body.visit_id)
    )
    out["escalation_no"] = out["events"][0]["escalation_no"]
    return out


@desks_router.post("/{desk_id}/escalations/{no}/acknowledge", responses=problems(409))
async def acknowledge(
    desk_id: str, no: int, request: Request, service: Service, principal: EscalationHandler, day: DayParam = None
) -> dict:
    """The manager (or a rounder) takes the case."""
    return await _day_cmd(request, service, principal, desk_id, d.AcknowledgeEscalation(no), day)


@desks_router.post("/{desk_id}/escalations/{no}/escalate-to-city", responses=problems(409))
async def escalate_to_city(
    desk_id: str,
    no: int,
    body: CitySummaryBody,
    request: Request,
    service: Service,
    principal: Manager,
    day: DayParam = None,
) -> dict:
    """The manager takes the case to the city."""
    return await _day_cmd(request, service, principal, desk_id, d.EscalateToCity(no, body.summary), day)


@desks_router.post("/{desk_id}/escalations/{no}/resolve", responses=problems(409))
async def resolve(
    desk_id: str,
    no: int,
    body: ResolveBody,
    request: Request,
    service: Service,
    principal: Manager,
    day: DayParam = None,
) -> dict:
    """Record the outcome (by the manager, or the city's after escalation)."""
    return await _day_cmd(request, service, principal, desk_id, d.ResolveEscalation(no, body.outcome), day)


# --- incidents (DESK-9, DESK-10) ---


@desks_router.post("/{desk_id}/incidents/{no}/steps", responses=problems(409))
async def incident_step(
    desk_id: str,
    no: int,
    body: StepBody,
    request: Request,
    service: Service,
    principal: EscalationHandler,
    day: DayParam = None,
) -> dict:
    """Tick a step of the incident's checklist."""
    return await _day_cmd(request, service, principal, desk_id, d.CompleteIncidentStep(no, body.step), day)


@desks_router.post("/{desk_id}/incidents/{no}/close", responses=problems(409))
async def incident_close(
    desk_id: str,
    no: int,
    body: CloseIncidentBody,
    request: Request,
    service: Service,
    principal: Manager,
    day: DayParam = None,
) -> dict:
    """Close an incident once its checklist is done."""
    return await _day_cmd(request, service, principal, desk_id, d.CloseIncident(no, body.note), day)


# --- live state for the console (server-sent events) ---

ALERT_TYPES = frozenset(
    {
        "desk.staffing_breach_detected",
        "desk.staffing_breach_ended",
        "desk.capacity_threshold_reached",
        "desk.incident_opened",
        "desk.card_left_behind",
        "desk.escalation_raised",
        "desk.pin_lock_warning_issued",
        "desk.visit_started_before_disinfection",
        "desk.short_absence_started",
        "desk.short_absence_ended",
        "desk.day_cannot_start",
        "desk.day_cannot_continue",
        "desk.opening_suspended",
        "desk.opening_delayed",
    }
)


@desks_router.get("/{desk_id}/live", responses=event_stream())
async def live(
    desk_id: str,
    request: Request,
    service: Service,
    principal: Reader,
    refresh_seconds: Annotated[float, Query(ge=0.5, le=300)] = 30.0,
) -> EventSourceResponse:
    """Server-sent events: `state` (queue, staff on duty, alerts) on every change, and `alert` events."""
    desk = await desk_in_scope(request, service, principal, desk_id)
    queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
    day_prefix = subjects.aggregate_subject("desk", service.m.code, "deskday", f"{desk.id}_")

    async def on_msg(msg) -> None:
        if not queue.full():
            queue.put_nowait(msg)

    sub = await service.nc.subscribe(subjects.context_filter("desk", service.m.code), cb=on_msg)

    async def stream():
        try:
            yield {"event": "state", "data": json.dumps(await service.status(desk), ensure_ascii=False)}
            while True:
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout=refresh_seconds)
                except TimeoutError:
                    yield {"event": "state", "data": json.dumps(await service.status(desk), ensure_ascii=False)}
                    continue
                changed = False
                batch = [msg]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                for m in batch:
                    relevant = m.subject.startswith(day_prefix) or ".calendar." in m.subject
                    kind = (m.headers or {}).get("Mg-Type", "")
                    if not relevant and ".visit." in m.subject and kind in ALERT_TYPES:
                        try:
                            relevant = parse_event(m.data).desk == desk.id
                        except ValueError:
                            relevant = False
                    if not relevant:
                        continue
                    changed = True
                    if kind in ALERT_TYPES:
                        yield {"event": "alert", "data": m.data.decode()}
                if changed:
                    yield {"event": "state", "data": json.dumps(await service.status(desk), ensure_ascii=False)}
        finally:
            await sub.unsubscribe()

    return EventSourceResponse(revocable(request.app, principal, stream()), ping=15)


# =====================================================================================
# visits (DESK-4, DESK-7, DESK-9, PIN-lock guard)
# =====================================================================================

visits_router = APIRouter(prefix="/v1/visits", tags=["visits"], responses=problems(401, 403, 404, 422, 503))


class DetailsBody(Versioned):
    gender: ev.Gender
    age_band: ev.AgeBand
    purposes: list[ev.Purpose] = Field(min_length=1)
    support_needed: bool
    support_given: bool
    payment_service: ev.PaymentServiceCategory | None = None


class OpinionBody(Body):
    kind: ev.OpinionKind
    step: ev.ProcedureStep | None = None
    text: FreeText = Field(min_length=1)


class PinFailureBody(Body):
    """Which PIN failed. There is deliberately no field for the PIN itself."""

    pin: ev.PinKind = "user_auth"


class EndVisitBody(Versioned):
    outcome: ev.Outcome
    reason: ev.NotCompletedReason | None = None


class CorrectionBody(Versioned):
    outcome: ev.Outcome | None = None
    reason: ev.NotCompletedReason | None = None
    gender: ev.Gender | None = None
    age_band: ev.AgeBand | None = None
    purposes: list[ev.Purpose] | None = None
    support_needed: bool | None = None
    support_given: bool | None = None
    payment_service: ev.PaymentServiceCategory | None = None
    note: FreeText | None = None


async def _visit_in_scope(request: Request, service, principal: Principal, visit_id: UUID) -> d.Visit:
    await principal.check_municipality(request, service.m.code)
    loaded = await service.visit(visit_id)
    if loaded.state is None:
        raise NotFound("来訪記録が見つかりません。")
    await principal.check_ward(request, loaded.state.ward)
    return loaded.state


async def _visit_cmd(
    request: Request, service, principal: Principal, visit_id: UUID, cmd: Any, version: int | None = None
) -> dict:
    await _visit_in_scope(request, service, principal, visit_id)
    return result(
        await service.visit_command(
            visit_id, cmd, principal.actor, version=version, correlation_id=correlation_id(request)
        )
    )


@visits_router.get("/{visit_id}")
async def get_visit(visit_id: UUID, request: Request, service: Service, principal: Reader) -> dict:
    """One visit (send `version` back with an edit)."""
    visit = await _visit_in_scope(request, service, principal, visit_id)
    loaded = await service.visit(visit_id)
    return d.visit_view(visit) | {"version": loaded.seq}


@visits_router.post("/{visit_id}/details", responses=problems(409))
async def visit_details(
    visit_id: UUID, body: DetailsBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Record gender, age band, purposes, support and payment-service category."""
    cmd = d.RecordDetails(
        body.gender, body.age_band, tuple(body.purposes), body.support_needed, body.support_given, body.payment_service
    )
    return await _visit_cmd(request, service, principal, visit_id, cmd, body.version)


@visits_router.post("/{visit_id}/opinions", status_code=201, responses=problems(409))
async def visit_opinion(
    visit_id: UUID, body: OpinionBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """DESK-7: an opinion, request or topic (free text through the PII guard)."""
    return await _visit_cmd(request, service, principal, visit_id, d.RecordOpinion(body.kind, body.text, body.step))


@visits_router.post("/{visit_id}/pin-failures", status_code=201, responses=problems(409))
async def pin_failure(
    visit_id: UUID, body: PinFailureBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Record a failed PIN attempt (never the PIN); warns before the attempt that would lock the card."""
    out = await _visit_cmd(request, service, principal, visit_id, d.RecordPinFailure(body.pin))
    warning = next((e for e in out["events"] if e["type"] == "desk.pin_lock_warning_issued"), None)
    out["warning_ja"] = warning["message_ja"] if warning else None
    return out


@visits_router.post("/{visit_id}/card/handed", responses=problems(409))
async def card_handed(visit_id: UUID, request: Request, service: Service, principal: DeskWorker) -> dict:
    """DESK-9: staff take the card for a while."""
    return await _visit_cmd(request, service, principal, visit_id, d.HandCardToStaff())


@visits_router.post("/{visit_id}/card/returned", responses=problems(409))
async def card_returned(visit_id: UUID, request: Request, service: Service, principal: DeskWorker) -> dict:
    """DESK-9: the card is back with the citizen."""
    return await _visit_cmd(request, service, principal, visit_id, d.ReturnCard())


@visits_router.post("/{visit_id}/card/left-behind", status_code=201, responses=problems(409))
async def card_left_behind(visit_id: UUID, request: Request, service: Service, principal: DeskWorker) -> dict:
    """DESK-9: a card left behind: an urgent incident for the manager with the checklist."""
    visit = await _visit_in_scope(request, service, principal, visit_id)
    appended = await service.card_left_behind(visit, principal.actor, correlation_id=correlation_id(request))
    incident = next((a.event for a in appended if isinstance(a.event, ev.IncidentOpened)), None)
    out = result(appended)
    if incident is not None:
        out["incident"] = {
            "incident_no": incident.incident_no,
            "message_ja": incident.message_ja,
            "checklist": [s.model_dump() for s in incident.checklist],
        }
    return out


@visits_router.post("/{visit_id}/end", responses=problems(409))
async def end_visit(
    visit_id: UUID, body: EndVisitBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """End the visit: completed, or not completed with the reason (not while the card is held)."""
    return await _visit_cmd(request, service, principal, visit_id, d.EndVisit(body.outcome, body.reason), body.version)


@visits_router.post("/{visit_id}/corrections", status_code=201, responses=problems(409))
async def correct_visit(
    visit_id: UUID, body: CorrectionBody, request: Request, service: Service, principal: DeskWorker
) -> dict:
    """Correct an ended visit (e.g. the outcome changed later)."""
    cmd = d.CorrectVisit(
        body.outcome,
        body.reason,
        body.gender,
        body.age_band,
        tuple(body.purposes) if body.purposes is not None else None,
        body.support_needed,
        body.support_given,
        body.payment_service,
        body.note,
    )
    return await _visit_cmd(request, service, principal, visit_id, cmd, body.version)


def routers() -> list[APIRouter]:
    return [calendar_router, desks_router, visits_router, notice_router]


first = [queue_router]
