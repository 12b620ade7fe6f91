"""The desk domain as pure functions: `decide_*(state, command, ctx) -> [events]` and
`evolve_*(state, event) -> state`. No I/O: the service shell (service.py) loads, decides, appends.

Aggregates (see madoguchi_shared.events.desk for the subjects):
- `CityCalendar`  the city's run-time calendar instructions (DESK-1);
- `DeskDay`       one desk's day: lifecycle (ORG-3), staffing (DESK-5), queue (DESK-3), capacity
                  (DESK-2), disinfection and masks (DESK-8), escalations (DESK-6), incidents;
- `Visit`         one visit (DESK-4, DESK-7, DESK-9, PIN-lock guard).

A refusal is one of the shared refusals (madoguchi_shared.errors: Refused, Invalid, Forbidden, NotFound) with a
Japanese message and a machine-readable `code`; the web layer gives each its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, overload
from uuid import UUID

from madoguchi_shared.calendar import DayHours
from madoguchi_shared.city_calendar import CityCalendar
from madoguchi_shared.city_calendar import evolve_calendar as evolve_calendar  # re-exported: the desk's calendar fold
from madoguchi_shared.events import Actor, Envelope, Event
from madoguchi_shared.frozen import replace
from madoguchi_shared.events import desk as ev
from madoguchi_shared import training
from madoguchi_shared.municipality import Desk, Municipality, TrainingPlan
from madoguchi_shared.errors import DomainError, Forbidden, Invalid, NotFound, Refused

DEFAULT_SERVICE_MINUTES = 10.0  # estimate before the day has served enough visitors


class DeskEnvelope(Envelope):
    """The envelope of a desk's events (a desk-day's, a visit's): they name their ward and desk."""

    ward: str
    desk: str


@dataclass(frozen=True)
class Ctx:
    """What the shell hands to a decision: configuration, the time, who acts, the day's hours."""

    municipality: Municipality
    now: datetime
    actor: Actor
    desk: Desk | None = None
    hours: DayHours | None = None
    correlation_id: UUID | None = None
    on_edge: bool = False  # decided by the desk edge on the laptop (EDGE.md), not by HQ

    def day_hours(self) -> DayHours:
        """The day's hours, which the shell always hands to a desk-day decision."""
        if self.hours is None:
            raise RuntimeError("a desk-day decision needs the day's hours")
        return self.hours

    @overload
    def envelope(self) -> Envelope: ...
    @overload
    def envelope(self, ward: str, desk: str) -> DeskEnvelope: ...
    def envelope(self, ward: str | None = None, desk: str | None = None) -> Envelope | DeskEnvelope:
        """The envelope of the events a decision returns: the city's (no ward, no desk) or one desk's."""
        env: Envelope = {
            "municipality": self.municipality.code,
            "actor": self.actor,
            "occurred_at": self.now,
            "correlation_id": self.correlation_id,
        }
        if ward is None or desk is None:
            return env
        return {**env, "ward": ward, "desk": desk}


class _DayEnvelope(DeskEnvelope):
    deskday_id: str


class _VisitEnvelope(DeskEnvelope):
    visit_id: UUID


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M")


# =====================================================================================
# City calendar (DESK-1)
# =====================================================================================


@dataclass(frozen=True)
class SuspendOpening:
    instruction_id: str
    start: datetime
    end: datetime | None
    reason: ev.InstructionReason
    desks: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class DelayOpening:
    instruction_id: str
    start: datetime
    until: datetime
    reason: ev.InstructionReason
    desks: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class LiftInstruction:
    instruction_id: str
    at: datetime


@dataclass(frozen=True)
class ScheduleSpecialOpening:
    day: date
    open: time
    close: time
    desks: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class ScheduleExtendedHours:
    day: date
    close: time
    desks: tuple[str, ...] = ()
    note: str | None = None


def _known_desks(ctx: Ctx, desks: Iterable[str]) -> None:
    known = {d.id for d in ctx.municipality.desks}
    unknown = sorted(set(desks) - known)
    if unknown:
        raise Invalid(f"窓口 {', '.join(unknown)} は設定にありません。", code="unknown_desk")


def decide_calendar(state: CityCalendar | None, cmd: Any, ctx: Ctx) -> list[Event]:
    state = state or CityCalendar()
    env = ctx.envelope()
    match cmd:
        case SuspendOpening() | DelayOpening():
            if state.instruction(cmd.instruction_id):
                raise Refused(f"指示 {cmd.instruction_id} はすでに登録されています。", code="duplicate")
            _known_desks(ctx, cmd.desks)
            end = cmd.end if isinstance(cmd, SuspendOpening) else cmd.until
            if end is not None and end <= cmd.start:
                raise Invalid("終了日時は開始日時より後にしてください。", code="period")
            if isinstance(cmd, SuspendOpening):
                return [
                    ev.OpeningSuspended(
                        instruction_id=cmd.instruction_id,
                        start=cmd.start,
                        end=cmd.end,
                        desks=cmd.desks,
                        reason=cmd.reason,
                        note=cmd.note,
                        **env,
                    )
                ]
            return [
                ev.OpeningDelayed(
                    instruction_id=cmd.instruction_id,
                    start=cmd.start,
                    until=cmd.until,
                    desks=cmd.desks,
                    reason=cmd.reason,
                    note=cmd.note,
                    **env,
                )
            ]
        case LiftInstruction():
            ins = state.instruction(cmd.instruction_id)
            if ins is None:
                raise NotFound(f"指示 {cmd.instruction_id} は見つかりません。", code="not_found")
            if ins.end is not None and ins.end <= cmd.at:
                raise Refused(f"指示 {cmd.instruction_id} はすでに終了しています。", code="already_ended")
            return [ev.CityInstructionLifted(instruction_id=cmd.instruction_id, at=cmd.at, **env)]
        case ScheduleSpecialOpening():
            _known_desks(ctx, cmd.desks)
            if not cmd.open < cmd.close:
                raise Invalid("開設時刻は終了時刻より前にしてください。", code="hours")
            return [
                ev.SpecialOpeningScheduled(
                    day=cmd.day, open=cmd.open, close=cmd.close, desks=cmd.desks, note=cmd.note, **env
                )
            ]
        case ScheduleExtendedHours():
            _known_desks(ctx, cmd.desks)
            if cmd.close <= ctx.municipality.regular_hours.close:
                raise Invalid("延長後の終了時刻は通常の終了時刻より後にしてください。", code="hours")
            return [ev.ExtendedHoursScheduled(day=cmd.day, close=cmd.close, desks=cmd.desks, note=cmd.note, **env)]
        case _:
            pass
    raise TypeError(f"not a calendar command: {cmd!r}")


# =====================================================================================
# Training (ORG-4)
# =====================================================================================


def training_missing(staff_events: Iterable[Event], plan: TrainingPlan | None = None) -> tuple[str, ...]:
    """What keeps a staff member from desk duty: plan items not completed, the test not passed,
    or a disabled account. Empty = may check in (ORG-4). The plan is the municipality's."""
    return training.status(plan or TrainingPlan(), staff_events).missing("desk")


TRAINING_LABELS_JA = {
    "compliance": "コンプライアンス",
    "scheme_overview": "制度概要",
    "work_flow": "業務フロー",
    "customer_service": "対面対応",
    "talk_script_faq": "トークスクリプト・よくある質問",
    "role_play": "ロールプレイング",
    "system": "システム理解",
    "escalation": "エスカレーション対応",
    "complaints": "苦情対応",
    "security_policy": "情報セキュリティ",
    "test": "理解度テスト（合格）",
    "account_disabled": "アカウント無効",
}


# =====================================================================================
# Desk-day
# =====================================================================================


@dataclass(frozen=True)
class Ticket:
    no: int
    issued_at: datetime
    status: str = "waiting"  # waiting | called | served | no_show
    staff_id: str | None = None
    visit_id: UUID | None = None
    called_at: datetime | None = None
    call_count: int = 0
    served_at: datetime | None = None
    waited_seconds: float | None = None


@dataclass(frozen=True)
class Presence:
    staff_id: str
    role: str
    since: datetime
    absent_since: datetime | None = None
    absence_reason: str | None = None
    absence_expected_minutes: int | None = None
    mask: bool | None = None


@dataclass(frozen=True)
class Breach:
    no: int
    since: datetime
    absence_notice_shown: bool


@dataclass(frozen=True)
class Escalation:
    no: int
    category: str
    summary: str
    raised_at: datetime
    raised_by: str
    visit_id: UUID | None = None
    status: str = "raised"  # raised | acknowledged | escalated_to_city | resolved
    acknowledged_at: datetime | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    outcome: str | None = None
    resolved_by: str | None = None


@dataclass(frozen=True)
class Incident:
    no: int
    kind: str
    urgency: str
    opened_at: datetime
    message_ja: str
    checklist: tuple[ev.ChecklistStep, ...] = ()
    items: tuple[str, ...] = ()
    visit_id: UUID | None = None
    steps_done: tuple[str, ...] = ()
    closed_at: datetime | None = None


@dataclass(frozen=True)
class DeskDay:
    id: str
    desk: str
    ward: str
    day: date
    status: str = "not_started"  # not_started | started | halted | cannot_start | ended
    started_at: datetime | None = None
    ended_at: datetime | None = None
    stop_reason: str | None = None
    preparations: tuple[tuple[datetime, datetime, bool], ...] = ()
    cleanups: tuple[tuple[datetime, datetime, bool], ...] = ()
    equipment_checks: tuple[ev.EquipmentChecked, ...] = ()
    staff: dict[str, Presence] = field(default_factory=dict[str, Presence])
    breach: Breach | None = None
    breach_count: int = 0
    breach_seconds: float = 0.0
    tickets: dict[int, Ticket] = field(default_factory=dict[int, Ticket])
    thresholds_reached: tuple[float, ...] = ()
    served_visits: tuple[UUID, ...] = ()  # in the order service began
    disinfected: frozenset[UUID] = frozenset()
    disinfections: int = 0
    flagged_visits: tuple[UUID, ...] = ()  # DESK-8: started before the previous visit's disinfection
    flag_previous: tuple[tuple[UUID, UUID], ...] = ()  # (flagged visit, the visit whose disinfection was missing)
    escalations: dict[int, Escalation] = field(default_factory=dict[int, Escalation])
    incidents: dict[int, Incident] = field(default_factory=dict[int, Incident])
    edge: str | None = None  # the laptop deciding this desk-day's own work (EDGE.md)
    marked: tuple[ev.EdgeRecordsMarked, ...] = ()
    events: int = 0

    @classmethod
    def empty(cls, desk: Desk, day: date) -> DeskDay:
        return cls(id=ev.deskday_id(desk.id, day), desk=desk.id, ward=desk.ward, day=day)

    # --- derived views --------------------------------------------------------------------
    @property
    def last_ticket(self) -> int:
        return max(self.tickets, default=0)

    @property
    def visitors(self) -> int:
        """Visitors for capacity (DESK-2): every ticket issued today."""
        return len(self.tickets)

    def waiting(self) -> list[Ticket]:
        return [t for _, t in sorted(self.tickets.items()) if t.status == "waiting"]

    def called(self) -> list[Ticket]:
        return [t for _, t in sorted(self.tickets.items()) if t.status == "called"]

    def on_duty(self) -> list[Presence]:
        return [p for p in self.staff.values() if p.absent_since is None]

    def absent(self) -> list[Presence]:
        return [p for p in self.staff.values() if p.absent_since is not None]

    def ticket_of_visit(self, visit_id: UUID) -> Ticket | None:
        return next((t for t in self.tickets.values() if t.visit_id == visit_id), None)

    def pending_disinfection(self) -> UUID | None:
        """The most recent visit whose devices have not been disinfected yet (DESK-8)."""
        if self.served_visits and self.served_visits[-1] not in self.disinfected:
            return self.served_visits[-1]
        return None


def evolve_deskday(state: DeskDay, event: Event) -> DeskDay:
    s = replace(state, events=state.events + 1)
    at = event.occurred_at
    match event:
        case ev.DayStarted():
            return replace(s, status="started", started_at=at, stop_reason=None)
        case ev.DayEnded():
            return replace(s, status="ended", ended_at=at)
        case ev.DayCannotStart():
            return replace(s, status="cannot_start", stop_reason=event.reason)
        case ev.DayCannotContinue():
            return replace(s, status="halted", stop_reason=event.reason)
        case ev.DayResumed():
            return replace(s, status="started", stop_reason=None)
        case ev.PreparationRecorded():
            return replace(s, preparations=(*s.preparations, (event.start, event.end, event.outside_opening_hours)))
        case ev.CleanupRecorded():
            return replace(s, cleanups=(*s.cleanups, (event.start, event.end, event.outside_opening_hours)))
        case ev.EquipmentChecked():
            return replace(s, equipment_checks=(*s.equipment_checks, event))
        case ev.IncidentOpened():
            inc = Incident(
                event.incident_no,
                event.kind,
                event.urgency,
                at,
                event.message_ja,
                event.checklist,
                event.items,
                event.visit_id,
            )
            return replace(s, incidents={**s.incidents, event.incident_no: inc})
        case ev.IncidentStepDone():
            inc = s.incidents[event.incident_no]
            inc = replace(inc, steps_done=(*inc.steps_done, event.step))
            return replace(s, incidents={**s.incidents, inc.no: inc})
        case ev.IncidentClosed():
            inc = replace(s.incidents[event.incident_no], closed_at=at)
            return replace(s, incidents={**s.incidents, inc.no: inc})
        case ev.StaffCheckedIn():
            return replace(s, staff={**s.staff, event.staff_id: Presence(event.staff_id, event.role, at)})
        case ev.StaffCheckedOut():
            staff = dict(s.staff)
            staff.pop(event.staff_id, None)
            return replace(s, staff=staff)
        case ev.ShortAbsenceStarted():
            p = replace(
                s.staff[event.staff_id],
                absent_since=at,
                absence_reason=event.reason,
                absence_expected_minutes=event.expected_minutes,
            )
            return replace(s, staff={**s.staff, p.staff_id: p})
        case ev.ShortAbsenceEnded():
            p = replace(s.staff[event.staff_id], absent_since=None, absence_reason=None, absence_expected_minutes=None)
            return replace(s, staff={**s.staff, p.staff_id: p})
        case ev.MaskStatusRecorded():
            if event.staff_id not in s.staff:
                return s
            p = replace(s.staff[event.staff_id], mask=event.wearing)
            return replace(s, staff={**s.staff, p.staff_id: p})
        case ev.StaffingBreachDetected():
            return replace(
                s,
                breach=Breach(event.breach_no, event.since, event.absence_notice_shown),
                breach_count=s.breach_count + 1,
            )
        case ev.StaffingBreachEnded():
            return replace(s, breach=None, breach_seconds=s.breach_seconds + event.duration_seconds)
        case ev.TicketIssued():
            return replace(s, tickets={**s.tickets, event.ticket_no: Ticket(event.ticket_no, at)})
        case ev.TicketCalled():
            t = replace(
                s.tickets[event.ticket_no],
                status="called",
                staff_id=event.staff_id,
                visit_id=event.visit_id,
                called_at=at,
                call_count=1,
            )
            return replace(s, tickets={**s.tickets, t.no: t})
        case ev.TicketRecalled():
            t = replace(s.tickets[event.ticket_no], call_count=event.call_count, called_at=at)
            return replace(s, tickets={**s.tickets, t.no: t})
        case ev.TicketNoShow():
            t = replace(s.tickets[event.ticket_no], status="no_show")
            return replace(s, tickets={**s.tickets, t.no: t})
        case ev.TicketTransferred():
            t = replace(s.tickets[event.ticket_no], staff_id=event.to_staff)
            return replace(s, tickets={**s.tickets, t.no: t})
        case ev.TicketServed():
            t = replace(
                s.tickets[event.ticket_no],
                status="served",
                served_at=at,
                waited_seconds=event.waited_seconds,
                staff_id=event.staff_id,
            )
            return replace(s, tickets={**s.tickets, t.no: t}, served_visits=(*s.served_visits, event.visit_id))
        case ev.CapacityThresholdReached():
            return replace(s, thresholds_reached=(*s.thresholds_reached, event.threshold))
        case ev.DevicesDisinfected():
            done = s.disinfected | {event.after_visit_id} if event.after_visit_id else s.disinfected
            return replace(s, disinfected=frozenset(done), disinfections=s.disinfections + 1)
        case ev.VisitStartedBeforeDisinfection():
            return replace(
                s,
                flagged_visits=(*s.flagged_visits, event.visit_id),
                flag_previous=(*s.flag_previous, (event.visit_id, event.previous_visit_id)),
            )
        case ev.EscalationRaised():
            esc = Escalation(event.escalation_no, event.category, event.summary, at, event.actor.id, event.visit_id)
            return replace(s, escalations={**s.escalations, esc.no: esc})
        case ev.EscalationAcknowledged():
            esc = replace(s.escalations[event.escalation_no], status="acknowledged", acknowledged_at=at)
            return replace(s, escalations={**s.escalations, esc.no: esc})
        case ev.EscalationEscalatedToCity():
            esc = replace(s.escalations[event.escalation_no], status="escalated_to_city", escalated_at=at)
            return replace(s, escalations={**s.escalations, esc.no: esc})
        case ev.EscalationResolved():
            esc = replace(
                s.escalations[event.escalation_no],
                status="resolved",
                resolved_at=at,
                outcome=event.outcome,
                resolved_by=event.resolved_by,
            )
            return replace(s, escalations={**s.escalations, esc.no: esc})
        case ev.EdgeAttached():
            return replace(s, edge=event.device_id)
        case ev.EdgeRecordsMarked():
            return replace(s, marked=(*s.marked, event))
        case _:
            pass
    return s


# --- desk-day commands ---------------------------------------------------------------


@dataclass(frozen=True)
class StartDay:
    pass


@dataclass(frozen=True)
class EndDay:
    pass


@dataclass(frozen=True)
class ReportCannotStart:
    reason: ev.StopReason
    reported_to_city_at: datetime
    note: str | None = None


@dataclass(frozen=True)
class ReportCannotContinue:
    reason: ev.StopReason
    reported_to_city_at: datetime
    note: str | None = None


@dataclass(frozen=True)
class ResumeDay:
    pass


@dataclass(frozen=True)
class RecordPreparation:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RecordCleanup:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CheckEquipment:
    phase: ev.CheckPhase
    missing: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class CheckIn:
    staff_id: str
    role: ev.DeskRole
    training_missing: tuple[str, ...] = ()
    notice_declined: bool = False  # declined the desk PC's monitoring notice today (SEC-2)


@dataclass(frozen=True)
class CheckOut:
    staff_id: str


@dataclass(frozen=True)
class StartAbsence:
    staff_id: str
    reason: ev.AbsenceReason
    expected_minutes: int = 5


@dataclass(frozen=True)
class EndAbsence:
    staff_id: str


@dataclass(frozen=True)
class RecordMask:
    staff_id: str
    wearing: bool


@dataclass(frozen=True)
class AttachEdge:
    """The desk's laptop takes over the desk-day's own work (EDGE.md)."""

    device_id: str


@dataclass(frozen=True)
class MarkEdgeRecords:
    """Keep and mark what the edge recorded offline after HQ decided otherwise (EDGE.md merge rules)."""

    device_id: str
    rule: ev.EdgeMarkRule
    decided_at: datetime
    learned_at: datetime
    tickets: tuple[int, ...] = ()
    visit_ids: tuple[UUID, ...] = ()
    instruction_id: str | None = None


@dataclass(frozen=True)
class CheckStaffing:
    """The periodic DESK-5 evaluation (the service's timer)."""


@dataclass(frozen=True)
class IssueTicket:
    pass


@dataclass(frozen=True)
class CallNext:
    staff_id: str
    visit_id: UUID  # allocated by the shell (a UUIDv7), so the decision stays pure
    expected_ticket: int | None = None


@dataclass(frozen=True)
class Recall:
    ticket_no: int


@dataclass(frozen=True)
class NoShow:
    ticket_no: int


@dataclass(frozen=True)
class Transfer:
    ticket_no: int
    to_staff: str


@dataclass(frozen=True)
class MarkDisinfected:
    after_visit_id: UUID | None = None


@dataclass(frozen=True)
class RaiseEscalation:
    category: ev.EscalationCategory
    summary: str
    visit_id: UUID | None = None


# The desk's own work, decided by its edge once attached (EDGE.md); the manager's day lifecycle,
# escalation handling and incident steps stay HQ's decisions and are merged.
EDGE_OWNED: tuple[type, ...] = (
    IssueTicket,
    CallNext,
    Recall,
    NoShow,
    Transfer,
    MarkDisinfected,
    RaiseEscalation,
    CheckIn,
    CheckOut,
    StartAbsence,
    EndAbsence,
    RecordMask,
    CheckEquipment,
)


@dataclass(frozen=True)
class AcknowledgeEscalation:
    escalation_no: int


@dataclass(frozen=True)
class EscalateToCity:
    escalation_no: int
    summary: str


@dataclass(frozen=True)
class ResolveEscalation:
    escalation_no: int
    outcome: str


@dataclass(frozen=True)
class CompleteIncidentStep:
    incident_no: int
    step: str


@dataclass(frozen=True)
class CloseIncident:
    incident_no: int
    note: str | None = None


CARD_LEFT_BEHIND_CHECKLIST = (
    ev.ChecklistStep(key="phone_city", text_ja="委託者（市）へ電話で速やかに報告する"),
    ev.ChecklistStep(key="keep_card_safe", text_ja="カードを施錠できる場所で安全に保管する（複数人で確認）"),
    ev.ChecklistStep(key="record_handover", text_ja="カードの引渡し（市職員への受け渡し）を記録する"),
)
EQUIPMENT_MISSING_CHECKLIST = (
    ev.ChecklistStep(key="search_site", text_ja="窓口周辺と保管場所を確認する"),
    ev.ChecklistStep(key="report_city", text_ja="盗難・紛失の可能性を委託者（市）へ報告する"),
    ev.ChecklistStep(key="arrange_replacement", text_ja="代替機器を手配する"),
)


def _day_refusal(day: DeskDay) -> DomainError | None:
    if day.status in ("cannot_start", "halted"):
        return Refused("本日はこの窓口の業務を停止しています（市へ報告済み）。", code="desk_stopped")
    if day.status == "ended":
        return Refused("本日の窓口業務は終了しました。", code="day_ended")
    return None


def _hours_refusal(day: DeskDay, hours: DayHours, now: datetime) -> DomainError | None:
    """Why a new visitor cannot be received now (None = can be). Tickets may be issued before the
    opening once the manager has confirmed the start of the day (people queue at 8:40)."""
    if hours.is_open_at(now):
        return None
    if hours.opens is not None and now < hours.opens and day.status == "started":
        return None
    for ins in hours.instructions:
        end = ins.end or datetime.max.replace(tzinfo=now.tzinfo)
        if ins.start <= now < end:
            word = "開設を延期" if ins.kind == "delay" else "開設を休止"
            return Refused(f"市の指示により、この窓口は{word}しています。番号札は発行できません。", code="suspended")
    if hours.scheduled is None:
        return Refused("本日はこの窓口の開設日ではありません。", code="closed_day")
    if not hours.open_day:
        return Refused("市の指示により、本日この窓口は開設しません。番号札は発行できません。", code="suspended")
    spans = "、".join(f"{_hm(s)}～{_hm(e)}" for s, e in hours.intervals)
    return Refused(f"受付時間外です（本日の開設時間 {spans}）。", code="outside_hours")


def desk_open_now(day: DeskDay, hours: DayHours, now: datetime) -> bool:
    """Open for DESK-5 purposes: within opening hours and not stopped or ended."""
    return hours.is_open_at(now) and day.status not in ("cannot_start", "halted", "ended")


def staffing_events(day: DeskDay, ctx: Ctx, trigger: ev.StaffingTrigger) -> list[Event]:
    """DESK-5: during opening hours at least one supporter is on duty. A breach starts at once
    and ends when someone is on duty again or the desk closes."""
    env = ctx.envelope(day.ward, day.desk)
    open_now = desk_open_now(day, ctx.day_hours(), ctx.now)
    on_duty = day.on_duty()
    if day.breach is None and open_now and not on_duty:
        notice = bool(day.absent())
        msg = f"{day.desk}: 開設時間中に従事中の支援員がいません（{_hm(ctx.now)}）。" + (
            "短時間不在の表示中です。" if notice else "至急、支援員を配置してください。"
        )
        return [
            ev.StaffingBreachDetected(
                deskday_id=day.id,
                breach_no=day.breach_count + 1,
                since=ctx.now,
                absence_notice_shown=notice,
                trigger=trigger,
                message_ja=msg,
                **env,
            )
        ]
    if day.breach is not None and (on_duty or not open_now):
        duration = max(0.0, (ctx.now - day.breach.since).total_seconds())
        return [
            ev.StaffingBreachEnded(
                deskday_id=day.id,
                breach_no=day.breach.no,
                duration_seconds=duration,
                ended_by="staff_on_duty" if on_duty else "desk_closed",
                **env,
            )
        ]
    return []


def _fold(day: DeskDay, events: list[Event]) -> DeskDay:
    for e in events:
        day = evolve_deskday(day, e)
    return day


def _with_staffing(day: DeskDay, events: list[Event], ctx: Ctx) -> list[Event]:
    return events + staffing_events(_fold(day, events), ctx, "staffing_change")


def _overlaps_hours(hours: DayHours, start: datetime, end: datetime) -> bool:
    return any(start < e and end > s for s, e in hours.intervals)


def _edge_refusal(day: DeskDay, ctx: Ctx) -> DomainError | None:
    """One writer per desk-day (EDGE.md): once the laptop's edge holds the day, HQ does not decide
    the desk's own work (its numbering and order live on the laptop, also while offline)."""
    if day.edge is not None and not ctx.on_edge:
        return Refused(
            f"この窓口はノートPC（{day.edge}）で受付中です。窓口の画面から操作してください。", code="edge_holds_desk"
        )
    return None


def decide_deskday(day: DeskDay, cmd: Any, ctx: Ctx) -> list[Event]:
    env = ctx.envelope(day.ward, day.desk)
    d: _DayEnvelope = {"deskday_id": day.id, **env}
    if isinstance(cmd, EDGE_OWNED) and (refusal := _edge_refusal(day, ctx)):
        raise refusal
    match cmd:
        case AttachEdge():
            if not ctx.on_edge:
                raise Forbidden("ノートPCの窓口エッジだけが接続できます。", code="not_edge")
            if day.edge == cmd.device_id:
                return []
            return [ev.EdgeAttached(device_id=cmd.device_id, **d)]
        case MarkEdgeRecords():
            if not ctx.on_edge:
                raise Forbidden("ノートPCの窓口エッジだけが記録できます。", code="not_edge")
            return [
                ev.EdgeRecordsMarked(
                    device_id=cmd.device_id,
                    rule=cmd.rule,
                    instruction_id=cmd.instruction_id,
                    decided_at=cmd.decided_at,
                    learned_at=cmd.learned_at,
                    tickets=cmd.tickets,
                    visit_ids=cmd.visit_ids,
                    **d,
                )
            ]
        # --- day lifecycle (ORG-3) ---
        case StartDay():
            if day.status in ("started", "halted"):
                raise Refused("本日の業務開始はすでに確認済みです。", code="already_started")
            if day.status == "ended":
                raise Refused("本日の業務はすでに終了しています。", code="day_ended")
            if not ctx.day_hours().open_day:
                raise Refused("本日はこの窓口の開設日ではありません（休止中を含む）。", code="closed_day")
            return _with_staffing(day, [ev.DayStarted(**d)], ctx)
        case EndDay():
            if day.status == "ended":
                raise Refused("本日の業務はすでに終了しています。", code="day_ended")
            left = len(day.waiting()) + len(day.called())
            if left:
                raise Refused(
                    f"まだ {left} 名の番号札が残っています。対応または不在の記録をしてから終了してください。",
                    code="queue_not_empty",
                )
            return _with_staffing(day, [ev.DayEnded(**d)], ctx)
        case ReportCannotStart():
            if day.status not in ("not_started",):
                raise Refused("業務開始前の窓口だけが「開始できない」と報告できます。", code="wrong_state")
            return _with_staffing(
                day,
                [ev.DayCannotStart(reason=cmd.reason, note=cmd.note, reported_to_city_at=cmd.reported_to_city_at, **d)],
                ctx,
            )
        case ReportCannotContinue():
            if day.status not in ("started", "not_started"):
                raise Refused("業務中の窓口だけが「継続できない」と報告できます。", code="wrong_state")
            return _with_staffing(
                day,
                [
                    ev.DayCannotContinue(
                        reason=cmd.reason, note=cmd.note, reported_to_city_at=cmd.reported_to_city_at, **d
                    )
                ],
                ctx,
            )
        case ResumeDay():
            if day.status != "halted":
                raise Refused("停止中の窓口ではありません。", code="wrong_state")
            return _with_staffing(day, [ev.DayResumed(**d)], ctx)
        case RecordPreparation() | RecordCleanup():
            if not cmd.start < cmd.end:
                raise Invalid("終了時刻は開始時刻より後にしてください。", code="period")
            outside = not _overlaps_hours(ctx.day_hours(), cmd.start, cmd.end)
            cls = ev.PreparationRecorded if isinstance(cmd, RecordPreparation) else ev.CleanupRecorded
            return [cls(start=cmd.start, end=cmd.end, outside_opening_hours=outside, **d)]
        # --- equipment (DESK-10) ---
        case CheckEquipment():
            keys = {e.key for e in ctx.municipality.equipment}
            unknown = sorted((set(cmd.missing) | set(cmd.damaged)) - keys)
            if unknown:
                raise Invalid(f"備品一覧にない項目です: {', '.join(unknown)}", code="unknown_item")
            out: list[Event] = [
                ev.EquipmentChecked(
                    phase=cmd.phase,
                    items_checked=len(keys),
                    missing=tuple(sorted(set(cmd.missing))),
                    damaged=tuple(sorted(set(cmd.damaged))),
                    note=cmd.note,
                    **d,
                )
            ]
            critical = [k for k in sorted(set(cmd.missing)) if ctx.municipality.equipment_item(k).incident_if_missing]
            if critical:
                names = "、".join(ctx.municipality.equipment_item(k).name_ja for k in critical)
                out.append(
                    ev.IncidentOpened(
                        incident_no=len(day.incidents) + 1,
                        kind="equipment_missing",
                        urgency="high",
                        items=tuple(critical),
                        checklist=EQUIPMENT_MISSING_CHECKLIST,
                        message_ja=f"{day.desk}: {'開設時' if cmd.phase == 'opening' else '終了時'}の備品確認で{names}が見つかりません。"
                        "業務責任者は状況を確認し、委託者へ報告してください。",
                        **d,
                    )
                )
            return out
        # --- staffing (DESK-5, ORG-4) ---
        case CheckIn():
            if cmd.training_missing:
                labels = "、".join(TRAINING_LABELS_JA.get(m, m) for m in cmd.training_missing)
                raise Forbidden(
                    f"研修が完了していないため従事できません（未了: {labels}）。", code="training_incomplete"
                )
            if cmd.notice_declined:
                raise Forbidden(
                    "本日、窓口端末の監視についてのお知らせに同意していないため従事できません。"
                    "業務責任者に連絡してください。",
                    code="monitoring_notice_declined",
                )
            if cmd.staff_id in day.staff:
                raise Refused(f"{cmd.staff_id} はすでに従事中です。", code="already_on_duty")
            return _with_staffing(day, [ev.StaffCheckedIn(staff_id=cmd.staff_id, role=cmd.role, **d)], ctx)
        case CheckOut():
            if cmd.staff_id not in day.staff:
                raise Refused(f"{cmd.staff_id} は従事中ではありません。", code="not_on_duty")
            return _with_staffing(day, [ev.StaffCheckedOut(staff_id=cmd.staff_id, **d)], ctx)
        case StartAbsence():
            p = day.staff.get(cmd.staff_id)
            if p is None:
                raise Refused(f"{cmd.staff_id} は従事中ではありません。", code="not_on_duty")
            if p.absent_since is not None:
                raise Refused("すでに不在中です。", code="already_absent")
            return _with_staffing(
                day,
                [
                    ev.ShortAbsenceStarted(
                        staff_id=cmd.staff_id, reason=cmd.reason, expected_minutes=cmd.expected_minutes, **d
                    )
                ],
                ctx,
            )
        case EndAbsence():
            p = day.staff.get(cmd.staff_id)
            if p is None or p.absent_since is None:
                raise Refused("不在中ではありません。", code="not_absent")
            secs = max(0.0, (ctx.now - p.absent_since).total_seconds())
            return _with_staffing(day, [ev.ShortAbsenceEnded(staff_id=cmd.staff_id, absent_seconds=secs, **d)], ctx)
        case RecordMask():
            if cmd.staff_id not in day.staff:
                raise Refused(f"{cmd.staff_id} は従事中ではありません。", code="not_on_duty")
            return [ev.MaskStatusRecorded(staff_id=cmd.staff_id, wearing=cmd.wearing, **d)]
        case CheckStaffing():
            if day.edge is not None and not ctx.on_edge:
                return []  # the edge's own timer evaluates DESK-5 for its desk: never detected twice
            return staffing_events(day, ctx, "timer")
        # --- queue (DESK-3) and capacity (DESK-2) ---
        case IssueTicket():
            refusal = _day_refusal(day) or _hours_refusal(day, ctx.day_hours(), ctx.now)
            if refusal:
                raise refusal
            n = day.last_ticket + 1
            out = [ev.TicketIssued(ticket_no=n, **d)]
            cap = ctx.municipality.desk(day.desk).expected_max_visitors
            for threshold, mark in ctx.municipality.capacity_marks(day.desk):
                if n >= mark and threshold not in day.thresholds_reached:
                    pct = round(threshold * 100)
                    out.append(
                        ev.CapacityThresholdReached(
                            threshold=threshold,
                            visitors=n,
                            expected_max=cap,
                            message_ja=f"{day.desk}: 本日の来訪者が想定（{cap}人）の{pct}%（{n}人）に達しました。"
                            + ("委託者と協議してください。" if threshold >= 1 else "混雑に備えてください。"),
                            **d,
                        )
                    )
            return out
        case CallNext():
            if refusal := _day_refusal(day):
                raise refusal
            if cmd.staff_id not in {p.staff_id for p in day.on_duty()}:
                raise Refused(
                    "呼び出すには窓口で従事中（チェックイン済み・不在でない）である必要があります。", code="not_on_duty"
                )
            waiting = day.waiting()
            if not waiting:
                raise Refused("お待ちの方はいません。", code="queue_empty")
            nxt = waiting[0]
            if cmd.expected_ticket is not None and cmd.expected_ticket != nxt.no:
                raise Refused(
                    f"番号札 {cmd.expected_ticket} はすでに呼び出されています（次は {nxt.no} 番）。", code="stale_queue"
                )
            return [ev.TicketCalled(ticket_no=nxt.no, staff_id=cmd.staff_id, visit_id=cmd.visit_id, **d)]
        case Recall():
            t = _ticket(day, cmd.ticket_no)
            if t.status != "called":
                raise Refused(f"番号札 {t.no} は呼び出し中ではありません。", code="not_called")
            return [ev.TicketRecalled(ticket_no=t.no, call_count=t.call_count + 1, **d)]
        case NoShow():
            t = _ticket(day, cmd.ticket_no)
            if t.status != "called":
                raise Refused(f"番号札 {t.no} は呼び出し中ではありません。", code="not_called")
            return [ev.TicketNoShow(ticket_no=t.no, **d)]
        case Transfer():
            t = _ticket(day, cmd.ticket_no)
            if t.status != "called":
                raise Refused(f"番号札 {t.no} は呼び出し中ではありません。", code="not_called")
            if cmd.to_staff not in {p.staff_id for p in day.on_duty()}:
                raise Refused(f"{cmd.to_staff} は従事中ではありません。", code="not_on_duty")
            if cmd.to_staff == t.staff_id:
                raise Refused("同じ支援員には引き継げません。", code="same_staff")
            return [ev.TicketTransferred(ticket_no=t.no, from_staff=t.staff_id or "-", to_staff=cmd.to_staff, **d)]
        # --- disinfection (DESK-8) ---
        case MarkDisinfected():
            target = cmd.after_visit_id
            if target is not None and target not in day.served_visits:
                raise NotFound("本日この窓口で対応した来訪ではありません。", code="unknown_visit")
            if target is None:
                target = day.pending_disinfection()
            return [ev.DevicesDisinfected(after_visit_id=target, **d)]
        # --- escalations (DESK-6) ---
        case RaiseEscalation():
            return [
                ev.EscalationRaised(
                    escalation_no=len(day.escalations) + 1,
                    category=cmd.category,
                    summary=cmd.summary,
                    visit_id=cmd.visit_id,
                    **d,
                )
            ]
        case AcknowledgeEscalation():
            esc = _escalation(day, cmd.escalation_no)
            if esc.status != "raised":
                raise Refused(f"エスカレーション {esc.no} はすでに受け付けられています。", code="wrong_state")
            return [ev.EscalationAcknowledged(escalation_no=esc.no, **d)]
        case EscalateToCity():
            esc = _escalation(day, cmd.escalation_no)
            if esc.status not in ("raised", "acknowledged"):
                raise Refused(f"エスカレーション {esc.no} は市へ報告できる状態ではありません。", code="wrong_state")
            return [ev.EscalationEscalatedToCity(escalation_no=esc.no, summary=cmd.summary, **d)]
        case ResolveEscalation():
            esc = _escalation(day, cmd.escalation_no)
            if esc.status == "resolved":
                raise Refused(f"エスカレーション {esc.no} はすでに解決済みです。", code="wrong_state")
            by = "city" if esc.status == "escalated_to_city" else "manager"
            return [ev.EscalationResolved(escalation_no=esc.no, outcome=cmd.outcome, resolved_by=by, **d)]
        # --- incidents ---
        case CompleteIncidentStep():
            inc = _incident(day, cmd.incident_no)
            if inc.closed_at is not None:
                raise Refused("この事案は終了しています。", code="closed")
            if cmd.step not in {s.key for s in inc.checklist}:
                raise Invalid(f"チェックリストにない項目です: {cmd.step}", code="unknown_step")
            if cmd.step in inc.steps_done:
                raise Refused("この項目は完了済みです。", code="already_done")
            return [ev.IncidentStepDone(incident_no=inc.no, step=cmd.step, **d)]
        case CloseIncident():
            inc = _incident(day, cmd.incident_no)
            if inc.closed_at is not None:
                raise Refused("この事案はすでに終了しています。", code="closed")
            open_steps = [s.text_ja for s in inc.checklist if s.key not in inc.steps_done]
            if open_steps:
                raise Refused("チェックリストが完了していません: " + "／".join(open_steps), code="checklist_open")
            return [ev.IncidentClosed(incident_no=inc.no, note=cmd.note, **d)]
        case _:
            pass
    raise TypeError(f"not a desk-day command: {cmd!r}")


def _ticket(day: DeskDay, no: int) -> Ticket:
    t = day.tickets.get(no)
    if t is None:
        raise NotFound(f"番号札 {no} は本日発行されていません。", code="unknown_ticket")
    return t


def _escalation(day: DeskDay, no: int) -> Escalation:
    esc = day.escalations.get(no)
    if esc is None:
        raise NotFound(f"エスカレーション {no} は見つかりません。", code="unknown_escalation")
    return esc


def _incident(day: DeskDay, no: int) -> Incident:
    inc = day.incidents.get(no)
    if inc is None:
        raise NotFound(f"事案 {no} は見つかりません。", code="unknown_incident")
    return inc


# =====================================================================================
# Visit
# =====================================================================================


@dataclass(frozen=True)
class Visit:
    id: UUID
    deskday_id: str
    desk: str
    ward: str
    ticket_no: int
    staff_id: str
    started_at: datetime
    waited_seconds: float
    disinfection_pending: bool = False
    details: ev.VisitDetailsRecorded | None = None
    opinions: int = 0
    pin_failures: dict[str, int] = field(default_factory=dict[str, int])
    card_held: bool = False
    card_left_behind: bool = False
    ended_at: datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    service_seconds: float | None = None
    corrections: int = 0

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


def evolve_visit(state: Visit | None, event: Event) -> Visit:
    if isinstance(event, ev.VisitStarted):
        return Visit(
            event.visit_id,
            event.deskday_id,
            event.desk or "",
            event.ward or "",
            event.ticket_no,
            event.staff_id,
            event.occurred_at,
            event.waited_seconds,
            event.disinfection_pending,
        )
    if state is None:
        raise ValueError(f"visit event {event.type} before visit_started")
    match event:
        case ev.VisitDetailsRecorded():
            return replace(state, details=event)
        case ev.OpinionRecorded():
            return replace(state, opinions=state.opinions + 1)
        case ev.PinFailureRecorded():
            return replace(state, pin_failures={**state.pin_failures, event.pin: event.failures})
        case ev.CardHandedToStaff():
            return replace(state, card_held=True)
        case ev.CardReturned():
            return replace(state, card_held=False)
        case ev.CardLeftBehind():
            return replace(state, card_held=False, card_left_behind=True)
        case ev.VisitEnded():
            return replace(
                state,
                ended_at=event.occurred_at,
                outcome=event.outcome,
                reason=event.reason,
                service_seconds=event.service_seconds,
            )
        case ev.VisitCorrected():
            s = replace(state, corrections=state.corrections + 1)
            if event.outcome is not None:
                s = replace(s, outcome=event.outcome, reason=event.reason)
            if s.details is not None:
                changes = {
                    k: getattr(event, k)
                    for k in ("gender", "age_band", "purposes", "support_needed", "support_given", "payment_service")
                    if getattr(event, k) is not None
                }
                if changes:
                    s = replace(s, details=s.details.model_copy(update=changes))
            return s
        case _:
            pass
    return state


@dataclass(frozen=True)
class StartVisit:
    ticket_no: int
    staff_id: str
    may_take_over: bool = False  # managers and rounders may start a visit called to someone else


@dataclass(frozen=True)
class RecordDetails:
    gender: ev.Gender
    age_band: ev.AgeBand
    purposes: tuple[ev.Purpose, ...]
    support_needed: bool
    support_given: bool
    payment_service: ev.PaymentServiceCategory | None = None


@dataclass(frozen=True)
class RecordOpinion:
    kind: ev.OpinionKind
    text: str
    step: ev.ProcedureStep | None = None


@dataclass(frozen=True)
class RecordPinFailure:
    pin: ev.PinKind = "user_auth"


@dataclass(frozen=True)
class HandCardToStaff:
    pass


@dataclass(frozen=True)
class ReturnCard:
    pass


@dataclass(frozen=True)
class ReportCardLeftBehind:
    pass


@dataclass(frozen=True)
class EndVisit:
    outcome: ev.Outcome
    reason: ev.NotCompletedReason | None = None


@dataclass(frozen=True)
class CorrectVisit:
    outcome: str | None = None
    reason: str | None = None
    gender: str | None = None
    age_band: str | None = None
    purposes: tuple[str, ...] | None = None
    support_needed: bool | None = None
    support_given: bool | None = None
    payment_service: str | None = None
    note: str | None = None


PIN_RESET_PROCEDURE_JA = (
    "ロックされた場合は、ご本人がマイナンバーカードを持参し、住所地の区役所（戸籍住民課）で"
    "暗証番号の初期化・再設定の手続きを行う必要があります。"
)
PIN_LABELS_JA = {
    "user_auth": "利用者証明用電子証明書の暗証番号（数字4桁）",
    "card_info": "券面事項入力補助用の暗証番号（数字4桁）",
    "signature": "署名用電子証明書の暗証番号（英数字6～16桁）",
}


def decide_start_visit(day: DeskDay, cmd: StartVisit, ctx: Ctx) -> list[Event]:
    """The called visitor arrives: the ticket is served (desk-day) and the visit begins (visit).
    DESK-8: flagged when the previous visit's devices were not disinfected yet."""
    if refusal := _edge_refusal(day, ctx):
        raise refusal
    t = _ticket(day, cmd.ticket_no)
    if t.status != "called":
        raise Refused(f"番号札 {t.no} は呼び出し中ではありません。", code="not_called")
    if t.staff_id != cmd.staff_id and not cmd.may_take_over:
        raise Refused(f"番号札 {t.no} は別の支援員（{t.staff_id}）に呼び出されています。", code="other_staff")
    assert t.visit_id is not None
    env = ctx.envelope(day.ward, day.desk)
    waited = max(0.0, (ctx.now - t.issued_at).total_seconds())
    pending = day.pending_disinfection()
    out: list[Event] = [
        ev.TicketServed(
            deskday_id=day.id, ticket_no=t.no, visit_id=t.visit_id, staff_id=cmd.staff_id, waited_seconds=waited, **env
        )
    ]
    if pending is not None:
        out.append(
            ev.VisitStartedBeforeDisinfection(deskday_id=day.id, visit_id=t.visit_id, previous_visit_id=pending, **env)
        )
    out.append(
        ev.VisitStarted(
            visit_id=t.visit_id,
            deskday_id=day.id,
            ticket_no=t.no,
            staff_id=cmd.staff_id,
            waited_seconds=waited,
            disinfection_pending=pending is not None,
            **env,
        )
    )
    return out


def decide_card_left_behind(day: DeskDay, visit: Visit, ctx: Ctx) -> list[Event]:
    """DESK-9: an urgent incident (desk-day) with the checklist, then the visit's record."""
    if visit.card_left_behind:
        raise Refused("置き忘れはすでに記録されています。", code="already_recorded")
    env = ctx.envelope(day.ward, day.desk)
    existing = next(
        (i for i in day.incidents.values() if i.kind == "card_left_behind" and i.visit_id == visit.id), None
    )
    out: list[Event] = []
    if existing is None:
        no = len(day.incidents) + 1
        out.append(
            ev.IncidentOpened(
                deskday_id=day.id,
                incident_no=no,
                kind="card_left_behind",
                urgency="urgent",
                visit_id=visit.id,
                checklist=CARD_LEFT_BEHIND_CHECKLIST,
                message_ja=f"【至急】{day.desk}: マイナンバーカードの置き忘れ（番号札 {visit.ticket_no}）。"
                "業務責任者は直ちに委託者（市）へ電話で報告してください。",
                **env,
            )
        )
    else:
        no = existing.no
    out.append(ev.CardLeftBehind(visit_id=visit.id, incident_no=no, **env))
    return out


def decide_visit(visit: Visit | None, cmd: Any, ctx: Ctx) -> list[Event]:
    if visit is None:
        raise NotFound("来訪記録が見つかりません。", code="unknown_visit")
    env = ctx.envelope(visit.ward, visit.desk)
    v: _VisitEnvelope = {"visit_id": visit.id, **env}
    match cmd:
        case RecordDetails():
            if visit.ended:
                raise Refused("対応完了後の変更は「訂正」として記録してください。", code="visit_ended")
            return [
                ev.VisitDetailsRecorded(
                    gender=cmd.gender,
                    age_band=cmd.age_band,
                    purposes=tuple(dict.fromkeys(cmd.purposes)),
                    support_needed=cmd.support_needed,
                    support_given=cmd.support_given,
                    payment_service=cmd.payment_service,
                    **v,
                )
            ]
        case RecordOpinion():
            return [ev.OpinionRecorded(kind=cmd.kind, step=cmd.step, text=cmd.text, **v)]
        case RecordPinFailure():
            if visit.ended:
                raise Refused("対応は完了しています。", code="visit_ended")
            limit = ev.PIN_LIMITS[cmd.pin]
            failures = visit.pin_failures.get(cmd.pin, 0) + 1
            if failures > limit:
                raise Refused("この暗証番号はすでにロックされています。" + PIN_RESET_PROCEDURE_JA, code="pin_locked")
            out: list[Event] = [
                ev.PinFailureRecorded(pin=cmd.pin, failures=failures, limit=limit, locked=failures >= limit, **v)
            ]
            if limit - failures == 1:
                out.append(
                    ev.PinLockWarningIssued(
                        pin=cmd.pin,
                        failures=failures,
                        remaining=1,
                        message_ja=f"{PIN_LABELS_JA[cmd.pin]}を{failures}回間違えています。あと1回間違えるとロックされます。"
                        "入力の前に、暗証番号がわからない場合は無理に入力しないようご案内ください。"
                        + PIN_RESET_PROCEDURE_JA,
                        **v,
                    )
                )
            return out
        case HandCardToStaff():
            if visit.ended:
                raise Refused("対応は完了しています。", code="visit_ended")
            if visit.card_held:
                raise Refused("カードはすでにお預かりしています。", code="card_held")
            return [ev.CardHandedToStaff(**v)]
        case ReturnCard():
            if not visit.card_held:
                raise Refused("カードをお預かりしていません。", code="card_not_held")
            return [ev.CardReturned(**v)]
        case EndVisit():
            if visit.ended:
                raise Refused("対応はすでに完了しています。", code="visit_ended")
            if visit.card_held:
                raise Refused(
                    "マイナンバーカードをお預かりしたままです。カードを返却してから対応を完了してください。",
                    code="card_held",
                )
            if (cmd.outcome == "not_completed") != (cmd.reason is not None):
                raise Invalid("未完了の場合は理由を、完了の場合は理由なしで記録してください。", code="reason")
            secs = max(0.0, (ctx.now - visit.started_at).total_seconds())
            return [ev.VisitEnded(outcome=cmd.outcome, reason=cmd.reason, service_seconds=secs, **v)]
        case CorrectVisit():
            if not visit.ended:
                raise Refused("訂正は対応完了後に行います。完了前は通常の記録を更新してください。", code="visit_open")
            changes = {
                k: getattr(cmd, k)
                for k in (
                    "outcome",
                    "reason",
                    "gender",
                    "age_band",
                    "purposes",
                    "support_needed",
                    "support_given",
                    "payment_service",
                )
                if getattr(cmd, k) is not None
            }
            if not changes:
                raise Invalid("訂正する項目がありません。", code="nothing_to_correct")
            if "reason" in changes and "outcome" not in changes:
                raise Invalid("理由は結果（outcome）と一緒に訂正してください。", code="reason")
            if changes.get("outcome") == "not_completed" and "reason" not in changes:
                raise Invalid("未完了に訂正する場合は理由を記録してください。", code="reason")
            if changes.get("outcome") == "completed" and "reason" in changes:
                raise Invalid("完了に訂正する場合は理由は不要です。", code="reason")
            if visit.details is None and set(changes) - {"outcome", "reason"}:
                raise Refused("来訪者情報が未記録のため訂正できません。", code="no_details")
            same_outcome = "outcome" not in changes or (
                changes["outcome"] == visit.outcome and changes.get("reason") == visit.reason
            )
            same_details = all(
                getattr(visit.details, k) == v_ for k, v_ in changes.items() if k not in ("outcome", "reason")
            )
            if same_outcome and same_details:
                raise Refused("訂正内容が現在の記録と同じです。", code="no_change")
            return [ev.VisitCorrected(note=cmd.note, **changes, **v)]
        case _:
            pass
    raise TypeError(f"not a visit command: {cmd!r}")


# =====================================================================================
# Read views
# =====================================================================================


def estimated_wait_minutes(day: DeskDay, now: datetime) -> float:
    """Rough wait for someone taking a ticket now: the people ahead times the recent interval
    between service starts (the desk's throughput), or DEFAULT_SERVICE_MINUTES early in the day."""
    ahead = len(day.waiting())
    served = sorted(t.served_at for t in day.tickets.values() if t.served_at is not None)
    per = DEFAULT_SERVICE_MINUTES
    if len(served) >= 3:
        recent = served[-6:]
        gaps = [(b - a).total_seconds() / 60 for a, b in zip(recent, recent[1:], strict=False)]
        per = max(1.0, sum(gaps) / len(gaps))
    return round(ahead * per, 1)


def alerts(day: DeskDay, hours: DayHours | None, now: datetime) -> list[dict[str, Any]]:
    """What the desk and the console must show now (DESK-2, -5, -6, -8, -9, -10)."""
    out: list[dict[str, Any]] = []
    for inc in sorted(day.incidents.values(), key=lambda i: (i.urgency != "urgent", i.no)):
        if inc.closed_at is None:
            out.append(
                {
                    "kind": f"incident.{inc.kind}",
                    "level": inc.urgency,
                    "message_ja": inc.message_ja,
                    "since": inc.opened_at.isoformat(),
                    "incident_no": inc.no,
                    "checklist": [
                        {"key": s.key, "text_ja": s.text_ja, "done": s.key in inc.steps_done} for s in inc.checklist
                    ],
                }
            )
    if day.breach is not None:
        out.append(
            {
                "kind": "staffing_breach",
                "level": "urgent",
                "since": day.breach.since.isoformat(),
                "message_ja": "開設時間中に従事中の支援員がいません。"
                + ("（短時間不在の表示中）" if day.breach.absence_notice_shown else ""),
            }
        )
    for p in day.absent():
        out.append(
            {
                "kind": "short_absence",
                "level": "info",
                "since": p.absent_since.isoformat() if p.absent_since else None,
                "message_ja": f"ただいま担当者が席を外しています（{p.absence_expected_minutes}分程度）。しばらくお待ちください。",
            }
        )
    for th in day.thresholds_reached:
        out.append(
            {
                "kind": "capacity",
                "level": "high" if th >= 1 else "info",
                "threshold": th,
                "message_ja": f"来訪者が想定の{round(th * 100)}%に達しました。"
                + ("委託者と協議してください。" if th >= 1 else ""),
            }
        )
    for esc in day.escalations.values():
        if esc.status != "resolved":
            out.append(
                {
                    "kind": "escalation",
                    "level": "high",
                    "escalation_no": esc.no,
                    "status": esc.status,
                    "since": esc.raised_at.isoformat(),
                    "message_ja": f"エスカレーション {esc.no}（{esc.status}）",
                }
            )
    if day.pending_disinfection() is not None and len(day.called()) > 0:
        out.append(
            {"kind": "disinfection_due", "level": "info", "message_ja": "次の方の対応前に機器を消毒してください。"}
        )
    for p in day.staff.values():
        if p.mask is False:
            out.append({"kind": "mask", "level": "info", "message_ja": f"{p.staff_id} のマスク着用が確認できません。"})
    if hours is not None:
        for ins in hours.instructions:
            end = ins.end or datetime.max.replace(tzinfo=now.tzinfo)
            if ins.start <= now < end:
                out.append(
                    {
                        "kind": "city_instruction",
                        "level": "high",
                        "instruction_id": ins.id,
                        "message_ja": "市の指示により窓口の開設を"
                        + ("延期" if ins.kind == "delay" else "休止")
                        + "しています。",
                    }
                )
    return out


def desk_status(day: DeskDay, desk: Desk, hours: DayHours, municipality: Municipality, now: datetime) -> dict[str, Any]:
    """The desk at a glance: open now, hours, queue, on duty, visitors vs capacity, wait, alerts."""
    cap = desk.expected_max_visitors
    served = len(day.served_visits)
    return {
        "desk": desk.id,
        "ward": desk.ward,
        "name_ja": desk.name_ja,
        "date": day.day.isoformat(),
        "at": now.isoformat(),
        "open_now": desk_open_now(day, hours, now),
        "hours": hours.as_dict(),
        "day_status": day.status,
        "stop_reason": day.stop_reason,
        "queue": {
            "waiting": [t.no for t in day.waiting()],
            "called": [{"ticket_no": t.no, "staff_id": t.staff_id, "call_count": t.call_count} for t in day.called()],
            "next_ticket": day.waiting()[0].no if day.waiting() else None,
            # the calling display's 「先にお呼びした番号」: the latest calls, newest first, whatever became of them
            "recent_calls": [
                t.no
                for t in sorted(
                    (t for t in day.tickets.values() if t.called_at is not None),
                    key=lambda t: (t.called_at, t.no),
                    reverse=True,
                )[:6]
            ],
            "last_issued": day.last_ticket,
            "served": served,
            "no_show": sum(1 for t in day.tickets.values() if t.status == "no_show"),
        },
        "on_duty": [
            {"staff_id": p.staff_id, "role": p.role, "since": p.since.isoformat(), "mask": p.mask}
            for p in day.on_duty()
        ],
        "absent": [
            {
                "staff_id": p.staff_id,
                "since": p.absent_since.isoformat() if p.absent_since else None,
                "expected_minutes": p.absence_expected_minutes,
            }
            for p in day.absent()
        ],
        "visitors": day.visitors,
        "expected_max": cap,
        "capacity_ratio": round(day.visitors / cap, 3),
        "estimated_wait_minutes": estimated_wait_minutes(day, now),
        "longest_wait_minutes": round(max(0.0, (now - day.waiting()[0].issued_at).total_seconds()) / 60, 1)
        if day.waiting()
        else 0,
        "staffing": {
            "breach_open": day.breach is not None,
            "breaches": day.breach_count,
            "breach_seconds": round(
                day.breach_seconds + ((now - day.breach.since).total_seconds() if day.breach else 0), 1
            ),
        },
        "disinfection": {
            "visits": served,
            "disinfected": len(day.disinfected),
            "flagged": len(day.flagged_visits),
            "compliance": round(1 - len(day.flagged_visits) / served, 3) if served else None,
            "pending_visit": str(day.pending_disinfection()) if day.pending_disinfection() else None,
            "flags": [_flag_view(day, visit_id, previous) for visit_id, previous in day.flag_previous],
        },
        "escalations": [
            {
                "escalation_no": e.no,
                "category": e.category,
                "status": e.status,
                "summary": e.summary,
                "raised_at": e.raised_at.isoformat(),
                "resolved_by": e.resolved_by,
                "outcome": e.outcome,
            }
            for e in day.escalations.values()
        ],
        "alerts": alerts(day, hours, now),
        "edge": day.edge,
        "marked": [
            {
                "rule": m.rule,
                "instruction_id": m.instruction_id,
                "decided_at": m.decided_at.isoformat(),
                "learned_at": m.learned_at.isoformat(),
                "tickets": list(m.tickets),
            }
            for m in day.marked
        ],
    }


def _flag_view(day: DeskDay, visit_id: UUID, previous: UUID) -> dict[str, Any]:
    """A visit started before the previous visit's disinfection, naming that visit and its supporter."""
    prev = day.ticket_of_visit(previous)
    return {
        "visit_id": str(visit_id),
        "previous_visit_id": str(previous),
        "previous_ticket": prev.no if prev else None,
        "previous_staff": prev.staff_id if prev else None,
    }


def visit_view(visit: Visit) -> dict[str, Any]:
    d = visit.details
    return {
        "visit_id": str(visit.id),
        "deskday_id": visit.deskday_id,
        "desk": visit.desk,
        "ward": visit.ward,
        "ticket_no": visit.ticket_no,
        "staff_id": visit.staff_id,
        "started_at": visit.started_at.isoformat(),
        "waited_seconds": visit.waited_seconds,
        "disinfection_pending": visit.disinfection_pending,
        "details": d.model_dump(
            include={"gender", "age_band", "purposes", "support_needed", "support_given", "payment_service"},
            mode="json",
        )
        if d
        else None,
        "opinions": visit.opinions,
        "pin_failures": visit.pin_failures,
        "card_held": visit.card_held,
        "card_left_behind": visit.card_left_behind,
        "ended_at": visit.ended_at.isoformat() if visit.ended_at else None,
        "outcome": visit.outcome,
        "reason": visit.reason,
        "service_seconds": visit.service_seconds,
        "corrections": visit.corrections,
    }
