"""API mode: the simulated day played through the services' public REST APIs, as clients would.

The generator's events are the script. Each event a person causes becomes the HTTP call that
person would make, at its simulated time, with that person's bearer token: the supporter issues
tickets, calls the next one, records the visit; the manager starts and ends the day and handles
escalations; operators sign in to seats, answer and close calls and call citizens back; the phone
system (a service token) records incoming calls. Events the services derive themselves (capacity
alerts, staffing breaches, the DESK-8 flag, PIN-lock warnings, incidents opened, overflow offers,
callback contacts erased, ...) are not sent: the services make their own. The desk PCs' agents
do not use REST: their events go straight onto the bus, as the agents' outboxes drain them.

Ids the services allocate (visits, calls, ticket, escalation and incident numbers) are mapped from
the script's to the real ones as the responses come back.

Time: each desk and the phone line run as concurrent tasks that sleep until their next action on
a `SimClock`. The services must read the same clock (in tests the apps get it injected; a running
system needs it in its settings, see clock.py), otherwise their opening-hours checks and stamps
disagree with the script: `run_api` checks the desk service's clock first and says so.

The ground truth of an API run can only be what the services recorded, so it is recounted from
the desk and calls streams of the municipality, from the sequences they had when the run began.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from madoguchi_reporting.recount import recount
from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.auth import issue_token, token_for
from madoguchi_shared.events import Event, Role, new_id, parse_event
from madoguchi_shared.events import calls as cev
from madoguchi_shared.events import desk as dev
from madoguchi_shared.events.base import SYSTEM
from madoguchi_shared.logging import get_logger
from madoguchi_shared.settings import Settings

from madoguchi_sim import ids
from madoguchi_sim.clock import SimClock
from madoguchi_sim.generator import Scenario, iter_events

log = get_logger(__name__)

PHONE_SYSTEM = "phone-system"
LINE_TIMEOUT = 30.0


@dataclass
class ApiTargets:
    desk_url: str
    calls_url: str
    desk_transport: httpx.AsyncBaseTransport | None = None  # tests: httpx.ASGITransport(app=...)
    calls_transport: httpx.AsyncBaseTransport | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiTargets:
        return cls(f"http://{settings.host}:{settings.desk_port}", f"http://{settings.host}:{settings.calls_port}")


@dataclass
class TruthView:
    """The API run's ground truth: report figures recounted from what the services recorded."""

    reports_by_municipality: dict[str, dict[str, dict]]
    event_types: Counter

    def reports(self) -> dict[str, dict[str, dict]]:
        return self.reports_by_municipality

    def as_json(self, **meta: Any) -> dict[str, Any]:
        return {
            **meta,
            "definitions": "recounted from the desk and calls streams after the API run",
            "events": {"total": sum(self.event_types.values()), "by_type": dict(sorted(self.event_types.items()))},
            "reports": self.reports_by_municipality,
        }


LAG_WARNING_S = 120.0


@dataclass
class ApiOutcome:
    commands: Counter = field(default_factory=Counter)  # route -> ok count
    errors: Counter = field(default_factory=Counter)  # (route, status) -> count
    error_samples: list[str] = field(default_factory=list)
    device_events: int = 0
    seconds: float = 0.0
    truth: TruthView | None = None
    max_lag_s: float = 0.0  # how far (simulated seconds) the commands fell behind the simulated clock

    def ok(self) -> int:
        return sum(self.commands.values())

    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "commands_ok": self.ok(),
            "commands_failed": self.failed(),
            "device_events": self.device_events,
            "seconds": round(self.seconds, 1),
            "max_lag_simulated_s": round(self.max_lag_s, 1),
            "by_route": dict(sorted(self.commands.items())),
            "errors": {f"{r} {s}": n for (r, s), n in sorted(self.errors.items())},
            "error_samples": self.error_samples[:20],
        }

    def summary(self) -> str:
        lines = [
            f"API run: {self.ok():,} commands ok, {self.failed():,} refused or failed, "
            f"{self.device_events:,} agent events on the bus, {self.seconds:.0f} s"
        ]
        for (route, status), n in sorted(self.errors.items()):
            lines.append(f"  {status} x{n}  {route}")
        lines.extend(f"  e.g. {s}" for s in self.error_samples[:5])
        if self.max_lag_s > LAG_WARNING_S:
            lines.append(
                f"warning: the commands fell up to {self.max_lag_s / 60:,.0f} simulated minutes behind the clock "
                "(the APIs could not keep up at this speed), so some came after closing time and were "
                "refused; run at a lower --speed"
            )
        if self.truth is not None:
            total = sum(self.truth.event_types.values())
            lines.append(f"recorded by the services: {total:,} desk and calls events")
        return "\n".join(lines)


class ClockMismatch(RuntimeError):
    pass


class _Session:
    """Tokens per staff member, HTTP clients, id maps, the outcome tally."""

    def __init__(
        self,
        settings: Settings,
        municipality: str,
        targets: ApiTargets,
        passwords: dict[str, str] | None,
        outcome: ApiOutcome,
        js,
    ):
        self.settings = settings
        self.municipality = municipality
        self.targets = targets
        self.passwords = passwords or {}
        self.outcome = outcome
        self.js = js
        self.tokens: dict[str, str] = {}
        self.desk = httpx.AsyncClient(base_url=targets.desk_url, transport=targets.desk_transport, timeout=LINE_TIMEOUT)
        self.calls = httpx.AsyncClient(
            base_url=targets.calls_url, transport=targets.calls_transport, timeout=LINE_TIMEOUT
        )
        self.visit: dict[UUID, str] = {}  # script visit id -> real
        self.ticket: dict[tuple[str, int], int] = {}  # (deskday, script ticket) -> real
        self.escalation: dict[tuple[str, int], int] = {}
        self.incident: dict[tuple[str, int], int] = {}
        self.last_incident: dict[str, int] = {}  # deskday -> the real number the last response opened
        self.visit_day: dict[UUID, str] = {}  # script visit id -> its deskday id
        self.call: dict[UUID, str] = {}
        self.call_by_ref: dict[str, UUID] = {}  # the script's call reference -> the script's call id
        self.reference: dict[UUID, str] = {}  # the script's call id -> the reference the service gave
        self.options: dict[UUID, list[str]] = {}  # the script's call id -> what the service offered
        self.roles: dict[str, tuple[Role, list[str]]] = {}

    async def close(self) -> None:
        await self.desk.aclose()
        await self.calls.aclose()

    async def token(self, staff_id: str) -> str:
        if staff_id in self.tokens:
            return self.tokens[staff_id]
        role, wards = self.roles.get(staff_id, (Role.supporter, []))
        if staff_id in self.passwords:
            r = await self.desk.post(
                "/v1/auth/token",
                json={"username": staff_id, "password": self.passwords[staff_id], "municipality": self.municipality},
            )
            r.raise_for_status()
            token = r.json()["access_token"]
        else:
            if role == Role.service:
                token = issue_token(
                    self.settings,
                    staff_id=staff_id,
                    roles=[role],
                    wards=wards,
                    municipality=self.municipality,
                    kind="service",
                )
            else:  # a staff token is accepted only for an existing account of its version
                token = await token_for(
                    self.js, self.settings, staff_id=staff_id, roles=[role], wards=wards, municipality=self.municipality
                )
        self.tokens[staff_id] = token
        return token

    async def send(
        self, client: httpx.AsyncClient, method: str, route: str, path: str, staff_id: str, body: dict | None = None
    ) -> dict | None:
        headers = {"Authorization": f"Bearer {await self.token(staff_id)}"}
        try:
            r = await client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.outcome.errors[(route, type(exc).__name__)] += 1
            return None
        if r.status_code >= 400:
            self.outcome.errors[(route, str(r.status_code))] += 1
            if len(self.outcome.error_samples) < 50:
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                self.outcome.error_samples.append(f"{method} {path} ({staff_id}): {r.status_code} {str(detail)[:200]}")
            return None
        self.outcome.commands[route] += 1
        return r.json()


def _body_time(t: datetime) -> str:
    return t.isoformat()


def _real_no(events: list[dict], kind: str, field_name: str) -> int | None:
    for e in events or ():
        if e.get("type") == kind:
            return e.get(field_name)
    return None


async def _play(s: _Session, clock: SimClock, script: list[Event], action) -> None:
    """Play events in time order on the simulated clock, each through `action(e)`, noting how far
    the commands fall behind the clock."""
    for e in script:
        await clock.sleep_until(e.occurred_at)
        s.outcome.max_lag_s = max(s.outcome.max_lag_s, (clock() - e.occurred_at).total_seconds())
        try:
            await action(e)
        except Exception as exc:  # noqa: BLE001 - one failed action must not stop the day
            s.outcome.errors[(e.type, type(exc).__name__)] += 1
            if len(s.outcome.error_samples) < 50:
                s.outcome.error_samples.append(f"{e.type}: {exc!r}"[:300])


async def _desk_script(s: _Session, clock: SimClock, desk: str, script: list[Event]) -> None:
    """Play one desk's events (desk-days, visits, agent) in time order."""
    await _play(s, clock, script, lambda e: _desk_action(s, desk, e))


async def _desk_action(s: _Session, desk: str, e: Event) -> None:
    who = e.actor.id
    base = f"/v1/desks/{desk}"
    if e.context == "device":
        await _agent_event(s, e)
        return
    dd: str = getattr(e, "deskday_id", None) or ""  # "" for the events of no desk-day
    match e:
        case dev.ExtendedHoursScheduled():  # the city extends the day's hours (DESK-1)
            body = {"date": e.day.isoformat(), "close": e.close.isoformat(), "desks": list(e.desks), "note": e.note}
            await s.send(s.desk, "POST", "calendar/extended-hours", "/v1/calendar/extended-hours", who, body)
        case dev.DayStarted():
            await s.send(s.desk, "POST", "day/start", f"{base}/day/start", who)
        case dev.DayEnded():
            await s.send(s.desk, "POST", "day/end", f"{base}/day/end", who)
        case dev.StaffCheckedIn():
            await s.send(s.desk, "POST", "staff/check-in", f"{base}/staff/check-in", e.staff_id, {})
        case dev.StaffCheckedOut():
            await s.send(s.desk, "POST", "staff/check-out", f"{base}/staff/check-out", e.staff_id, {})
        case dev.MaskStatusRecorded():
            await s.send(s.desk, "POST", "staff/mask", f"{base}/staff/mask", e.staff_id, {"wearing": e.wearing})
        case dev.ShortAbsenceStarted():
            await s.send(
                s.desk,
                "POST",
                "staff/absence/start",
                f"{base}/staff/absence/start",
                e.staff_id,
                {"reason": e.reason, "expected_minutes": e.expected_minutes},
            )
        case dev.ShortAbsenceEnded():
            await s.send(s.desk, "POST", "staff/absence/end", f"{base}/staff/absence/end", e.staff_id, {})
        case dev.EquipmentChecked():
            out = await s.send(
                s.desk,
                "POST",
                "equipment-checks",
                f"{base}/equipment-checks",
                who,
                {"phase": e.phase, "missing": list(e.missing), "damaged": list(e.damaged)},
            )
            no = _real_no(out["events"] if out else [], "desk.incident_opened", "incident_no")
            if no is not None:
                s.last_incident[dd] = no  # the script's IncidentOpened comes next and takes it
        case dev.PreparationRecorded() | dev.CleanupRecorded():
            kind = "preparation" if isinstance(e, dev.PreparationRecorded) else "cleanup"
            await s.send(
                s.desk,
                "POST",
                f"day/{kind}",
                f"{base}/day/{kind}",
                who,
                {"start": _body_time(e.start), "end": _body_time(e.end)},
            )
        case dev.IncidentStepDone():
            no = s.incident.get((dd, e.incident_no), e.incident_no)
            await s.send(s.desk, "POST", "incidents/steps", f"{base}/incidents/{no}/steps", who, {"step": e.step})
        case dev.IncidentClosed():
            no = s.incident.get((dd, e.incident_no), e.incident_no)
            await s.send(s.desk, "POST", "incidents/close", f"{base}/incidents/{no}/close", who, {"note": e.note})
        case dev.TicketIssued():
            out = await s.send(s.desk, "POST", "tickets", f"{base}/tickets", who)
            if out:
                s.ticket[(dd, e.ticket_no)] = out["ticket_no"]
        case dev.TicketCalled():
            out = await s.send(s.desk, "POST", "tickets/call-next", f"{base}/tickets/call-next", who, {})
            s.visit_day[e.visit_id] = dd
            if out:
                s.ticket[(dd, e.ticket_no)] = out["ticket_no"]
                s.visit[e.visit_id] = out["visit_id"]
        case dev.TicketRecalled():
            no = s.ticket.get((dd, e.ticket_no), e.ticket_no)
            await s.send(s.desk, "POST", "tickets/recall", f"{base}/tickets/{no}/recall", who, {})
        case dev.TicketNoShow():
            no = s.ticket.get((dd, e.ticket_no), e.ticket_no)
            await s.send(s.desk, "POST", "tickets/no-show", f"{base}/tickets/{no}/no-show", who, {})
        case dev.TicketServed():
            no = s.ticket.get((dd, e.ticket_no), e.ticket_no)
            out = await s.send(s.desk, "POST", "tickets/visit", f"{base}/tickets/{no}/visit", who)
            if out:
                s.visit[e.visit_id] = out["visit_id"]
        case dev.DevicesDisinfected():
            real = s.visit.get(e.after_visit_id) if e.after_visit_id else None
            await s.send(
                s.desk, "POST", "disinfections", f"{base}/disinfections", who, {"after_visit_id": real} if real else {}
            )
        case dev.EscalationRaised():
            body = {"category": e.category, "summary": e.summary}
            if e.visit_id and e.visit_id in s.visit:
                body["visit_id"] = s.visit[e.visit_id]
            out = await s.send(s.desk, "POST", "escalations", f"{base}/escalations", who, body)
            if out:
                s.escalation[(dd, e.escalation_no)] = out["escalation_no"]
        case dev.EscalationAcknowledged():
            no = s.escalation.get((dd, e.escalation_no), e.escalation_no)
            await s.send(s.desk, "POST", "escalations/acknowledge", f"{base}/escalations/{no}/acknowledge", who)
        case dev.EscalationEscalatedToCity():
            no = s.escalation.get((dd, e.escalation_no), e.escalation_no)
            await s.send(
                s.desk,
                "POST",
                "escalations/escalate-to-city",
                f"{base}/escalations/{no}/escalate-to-city",
                who,
                {"summary": e.summary},
            )
        case dev.EscalationResolved():
            no = s.escalation.get((dd, e.escalation_no), e.escalation_no)
            await s.send(
                s.desk, "POST", "escalations/resolve", f"{base}/escalations/{no}/resolve", who, {"outcome": e.outcome}
            )
        case dev.IncidentOpened():
            if e.kind != "card_left_behind" and dd in s.last_incident:  # opened by the equipment check just sent
                s.incident[(dd, e.incident_no)] = s.last_incident.pop(dd)
        case (
            dev.VisitStarted()
            | dev.VisitStartedBeforeDisinfection()
            | dev.PinLockWarningIssued()
            | dev.CapacityThresholdReached()
            | dev.StaffingBreachDetected()
            | dev.StaffingBreachEnded()
        ):
            return  # the desk service derives these itself
        case _ if isinstance(e, dev._VisitEvent):
            await _visit_action(s, e)
        case _:
            s.outcome.errors[(e.type, "not scripted")] += 1


async def _visit_action(s: _Session, e: dev._VisitEvent) -> None:
    real = s.visit.get(e.visit_id)
    if real is None:
        s.outcome.errors[(e.type, "visit unknown")] += 1
        return
    who = e.actor.id
    path = f"/v1/visits/{real}"
    match e:
        case dev.VisitDetailsRecorded():
            await s.send(
                s.desk,
                "POST",
                "visits/details",
                f"{path}/details",
                who,
                {
                    "gender": e.gender,
                    "age_band": e.age_band,
                    "purposes": list(e.purposes),
                    "support_needed": e.support_needed,
                    "support_given": e.support_given,
                    "payment_service": e.payment_service,
                },
            )
        case dev.OpinionRecorded():
            await s.send(
                s.desk,
                "POST",
                "visits/opinions",
                f"{path}/opinions",
                who,
                {"kind": e.kind, "step": e.step, "text": e.text},
            )
        case dev.PinFailureRecorded():
            await s.send(s.desk, "POST", "visits/pin-failures", f"{path}/pin-failures", who, {"pin": e.pin})
        case dev.CardHandedToStaff():
            await s.send(s.desk, "POST", "visits/card/handed", f"{path}/card/handed", who)
        case dev.CardReturned():
            await s.send(s.desk, "POST", "visits/card/returned", f"{path}/card/returned", who)
        case dev.CardLeftBehind():
            out = await s.send(s.desk, "POST", "visits/card/left-behind", f"{path}/card/left-behind", who)
            if out and out.get("incident"):
                s.incident[(s.visit_day.get(e.visit_id, ""), e.incident_no)] = out["incident"]["incident_no"]
        case dev.VisitEnded():
            await s.send(s.desk, "POST", "visits/end", f"{path}/end", who, {"outcome": e.outcome, "reason": e.reason})
        case dev.VisitCorrected():
            body = {
                k: getattr(e, k)
                for k in (
                    "outcome",
                    "reason",
                    "gender",
                    "age_band",
                    "support_needed",
                    "support_given",
                    "payment_service",
                    "note",
                )
                if getattr(e, k) is not None
            }
            if e.purposes is not None:
                body["purposes"] = list(e.purposes)
            await s.send(s.desk, "POST", "visits/corrections", f"{path}/corrections", who, body)
        case _:
            s.outcome.errors[(e.type, "not scripted")] += 1


async def _agent_event(s: _Session, e: Event) -> None:
    """The agent's outbox drains straight to JetStream: a fresh event id, the real visit id."""
    update: dict[str, Any] = {"event_id": new_id()}
    if visit_id := getattr(e, "visit_id", None):
        real = s.visit.get(UUID(visit_id))
        update["visit_id"] = real
    if e.correlation_id is not None:
        real = s.visit.get(e.correlation_id)
        update["correlation_id"] = UUID(real) if real else None
    event = type(e).model_validate({**e.model_dump(), **update})
    _t = time.perf_counter()
    await bus.append(s.js, event)
    s.outcome.device_events += 1


async def _line_script(s: _Session, clock: SimClock, script: list[Event]) -> None:
    await _play(s, clock, script, lambda e: _line_action(s, e))


def _phone(call_id: UUID) -> str:
    return f"090-0000-{call_id.int % 10000:04d}"  # a made-up number; only the phone store ever sees it


async def _line_action(s: _Session, e: Event) -> None:
    who = e.actor.id if e.actor != SYSTEM else PHONE_SYSTEM
    match e:
        case cev.OperatorSignedIn():
            await s.send(s.calls, "POST", "seats/sign-in", f"/v1/lines/{e.line}/seats/{e.seat}/sign-in", e.operator)
        case cev.OperatorSignedOut():
            await s.send(
                s.calls,
                "POST",
                "seats/sign-out",
                f"/v1/lines/{e.line}/seats/{e.seat}/sign-out",
                e.operator,
                {"reason": e.reason},
            )
        case cev.CallReceived():
            s.call_by_ref[cev.call_reference(e.call_id)] = e.call_id
            out = await s.send(s.calls, "POST", "calls", "/v1/calls", PHONE_SYSTEM, {"line": e.line})
            if out:
                s.call[e.call_id] = out["call_id"]
                s.reference[e.call_id] = out["reference"]
                s.options[e.call_id] = out["options"]
        case cev.OfferChoiceRecorded():
            # the caller chooses among what the service offered (a run behind the simulated clock
            # may reach the service when the offer differs from the script's: no choice then)
            if (real := s.call.get(e.call_id)) is not None and e.choice in s.options.get(e.call_id, ()):
                await s.send(
                    s.calls, "POST", "calls/offer-choice", f"/v1/calls/{real}/offer-choice", who, {"choice": e.choice}
                )
        case cev.RepeatCallLinked():
            # the caller quotes the reference the service gave on the earlier call
            earlier = s.reference.get(s.call_by_ref.get(e.earlier_reference) or UUID(int=0))
            if (real := s.call.get(e.call_id)) is not None and earlier is not None:
                body = {"reference": earlier}
                await s.send(s.calls, "POST", "calls/repeat-of", f"/v1/calls/{real}/repeat-of", who, body)
        case cev.CallAnswered():
            if (real := s.call.get(e.call_id)) is not None:
                await s.send(s.calls, "POST", "calls/answer", f"/v1/calls/{real}/answer", e.operator, {"seat": e.seat})
        case cev.CallMissed() if e.reason == "no_answer":
            if (real := s.call.get(e.call_id)) is not None:
                await s.send(s.calls, "POST", "calls/missed", f"/v1/calls/{real}/missed", PHONE_SYSTEM)
        case cev.CallAbandoned():
            if (real := s.call.get(e.call_id)) is not None:
                await s.send(s.calls, "POST", "calls/abandoned", f"/v1/calls/{real}/abandoned", PHONE_SYSTEM)
        case cev.CallClosed():
            if (real := s.call.get(e.call_id)) is not None:
                await s.send(
                    s.calls,
                    "POST",
                    "calls/close",
                    f"/v1/calls/{real}/close",
                    who,
                    {
                        "categories": list(e.categories),
                        "resolution": e.resolution,
                        "provider_category": e.provider_category,
                        "ward": e.ward,
                        "duration_seconds": e.duration_seconds,
                        "notes": e.notes,
                        "opinions": [{"kind": o.kind, "step": o.step, "text": o.text} for o in e.opinions],
                    },
                )
        case cev.CallbackRequested():
            if (real := s.call.get(e.call_id)) is not None:
                body: dict[str, Any] = {"phone": _phone(e.call_id)}
                if e.topic:
                    body["topic"] = e.topic
                await s.send(s.calls, "POST", "calls/callback", f"/v1/calls/{real}/callback", who, body)
        case cev.CallbackEscalatedToCity():
            if (real := s.call.get(e.callback_id)) is not None:
                await s.send(
                    s.calls,
                    "POST",
                    "callbacks/escalate",
                    f"/v1/callbacks/{real}/escalate",
                    who,
                    {"question": e.question, "channel": e.channel},
                )
        case cev.CityAnswered():
            if (real := s.call.get(e.callback_id)) is not None:
                await s.send(
                    s.calls,
                    "POST",
                    "callbacks/city-answer",
                    f"/v1/callbacks/{real}/city-answer",
                    who,
                    {"answer": e.answer},
                )
        case cev.CallbackNumberRead():
            if (real := s.call.get(e.callback_id)) is not None:
                await s.send(s.calls, "GET", "callbacks/phone", f"/v1/callbacks/{real}/phone", who)
        case cev.CallbackAttemptFailed() | cev.CallbackFailed():
            if (real := s.call.get(e.callback_id)) is not None:
                failure = e.reason if isinstance(e, cev.CallbackAttemptFailed) else e.last_reason
                await s.send(
                    s.calls,
                    "POST",
                    "callbacks/attempts",
                    f"/v1/callbacks/{real}/attempts",
                    who,
                    {"reached": False, "failure": failure},
                )
        case cev.CallbackCompleted():
            if (real := s.call.get(e.callback_id)) is not None:
                await s.send(
                    s.calls,
                    "POST",
                    "callbacks/attempts",
                    f"/v1/callbacks/{real}/attempts",
                    who,
                    {
                        "reached": True,
                        "resolution": e.resolution,
                        "categories": list(e.categories),
                        "duration_seconds": e.duration_seconds,
                        "notes": e.notes,
                    },
                )
        case _:
            return  # derived by the calls service: overflow offers, out of hours, thresholds, breaches, erasure


def scripts(events: Iterable[Event]) -> tuple[dict[str, list[Event]], list[Event]]:
    """Split the generated stream: per desk (desk-day, visit and agent events), and the phone line."""
    desks: dict[str, list[Event]] = defaultdict(list)
    line: list[Event] = []
    for e in events:
        if e.context == "calls":
            line.append(e)
        elif e.context in ("desk", "device") and e.desk:
            desks[e.desk].append(e)
        elif isinstance(e, dev.ExtendedHoursScheduled) and e.desks:
            desks[e.desks[0]].append(e)  # played by the first desk it extends
    for script in desks.values():
        script.sort(key=lambda e: e.occurred_at)
    line.sort(key=lambda e: e.occurred_at)
    return dict(desks), line


def staff_roles(scenario: Scenario) -> dict[str, tuple[Role, list[str]]]:
    """Who acts in the script, with the role and ward scope their token needs."""
    m = scenario.municipalities[0]
    roles: dict[str, tuple[Role, list[str]]] = {
        ids.MANAGER_ID: (Role.manager, []),
        ids.ROUNDER_ID: (Role.rounder, []),
        PHONE_SYSTEM: (Role.service, []),
    }
    for op in ids.OPERATOR_IDS:
        roles[op] = (Role.operator, [])
    for desk in m.desks:
        for staff in ids.staff_ids(desk.id, scenario.profile.supporters_per_desk + 1):
            roles[staff] = (Role.supporter, [desk.ward])
    return roles


async def check_clock(
    client: httpx.AsyncClient, token: str, desk: str, clock: SimClock, tolerance_s: float = 120.0
) -> None:
    """Refuse to run when the desk service's clock is not the simulation's (see clock.py)."""
    r = await client.get(f"/v1/desks/{desk}/open", headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    theirs = datetime.fromisoformat(r.json()["at"])
    ours = clock()
    if abs((theirs - ours).total_seconds()) > tolerance_s * max(1.0, clock.speed / 10):
        raise ClockMismatch(
            f"the desk service's clock reads {theirs.isoformat()}, the simulation's {ours.isoformat()}. "
            "The desk and calls services must read the simulation's clock: let the simulator serve them "
            "(--serve; start the rest with `madoguchi run --only reporting --only audit --only console`), or start "
            f"them with MADOGUCHI_EXTRA='{{\"clock\": \"{clock.spec()}\"}}' once they read settings.extra['clock']."
        )


async def run_api(
    settings: Settings,
    scenario: Scenario,
    targets: ApiTargets,
    *,
    speed: float = 1.0,
    clock: SimClock | None = None,
    progress: bool = False,
    passwords: dict[str, str] | None = None,
    nats_client=None,
    settle_seconds: float = 1.0,
    check: bool = True,
    until: datetime | None = None,
) -> ApiOutcome:
    """Play `scenario` (its first municipality) through the APIs, up to `until` if given; returns
    the tally and the truth."""
    from dataclasses import replace

    m = scenario.municipalities[0]
    scenario = replace(scenario, municipalities=(m,), setup=False, group_desks=10**9)
    events = [e for e in iter_events(scenario) if until is None or e.occurred_at <= until]
    desk_scripts, line_script = scripts(events)
    if clock is None:
        clock = SimClock.from_settings(settings)
    if clock is None:
        first = min(e.occurred_at for e in events) - timedelta(seconds=5)
        clock = SimClock.starting_now(first, speed)
    own_nc = nats_client is None
    nc = nats_client or await bus.connect_tool(settings.nats_url, name="madoguchi-simulate-api")
    js = nc.jetstream()
    outcome = ApiOutcome()
    session = _Session(settings, m.code, targets, passwords, outcome, js)
    session.roles = staff_roles(scenario)
    started = time.perf_counter()
    try:
        start_seqs = {name: (await js.stream_info(name)).state.last_seq for name in ("MG_DESK", "MG_CALLS")}
        if check and desk_scripts:
            await check_clock(session.desk, await session.token(ids.MANAGER_ID), next(iter(desk_scripts)), clock)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=round((max(e.occurred_at for e in events) - clock()).total_seconds() / 60),
                unit="min",
                desc=f"simulated day (x{clock.speed:g})",
            )

        async def ticker():
            last = clock()
            while True:
                await asyncio.sleep(1.0)
                now = clock()
                if bar is not None:
                    bar.update(max(0, round((now - last).total_seconds() / 60)))
                    last = last + timedelta(minutes=round((now - last).total_seconds() / 60))

        tick = asyncio.create_task(ticker())
        try:
            tasks = [
                asyncio.create_task(_desk_script(session, clock, desk, script)) for desk, script in desk_scripts.items()
            ]
            tasks.append(asyncio.create_task(_line_script(session, clock, line_script)))
            await asyncio.gather(*tasks)
        finally:
            tick.cancel()
            if bar is not None:
                bar.close()
        await asyncio.sleep(settle_seconds)
        outcome.seconds = time.perf_counter() - started
        outcome.truth = await recount_stream(js, m.code, start_seqs)
    finally:
        await session.close()
        if own_nc:
            await nc.drain()
    return outcome


async def recount_stream(js, municipality: str, start_seqs: dict[str, int]) -> TruthView:
    """Recount the reports from what the desk and calls streams recorded since `start_seqs`."""
    events: list[Event] = []
    for stream, context in (("MG_DESK", "desk"), ("MG_CALLS", "calls")):
        async for _seq, _subject, data, _headers in bus.load_filter(
            js, subjects.context_filter(context, municipality), start_seqs.get(stream, 0) + 1
        ):
            try:
                events.append(parse_event(data))
            except ValueError:
                continue
    return TruthView(recount(events), Counter(e.type for e in events))
