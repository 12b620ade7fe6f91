"""Desk events (context "desk"): calendar, day lifecycle, equipment, staffing, queue, visits,
card custody, disinfection, escalations, incidents, capacity (DESK-1 … DESK-10, ORG-3, ORG-4).

Aggregates and subjects (one subject per aggregate, so JetStream's expected-last-subject-sequence
check is the concurrency check):

* ``calendar`` — ``mg.desk.<municipality>.calendar.city``: what the city instructs at run time
  (opening suspended or delayed for a period, lifted; special openings and extended hours added
  to the configured ones). Small; every service folds it into a `madoguchi_shared.calendar.Calendar`.
* ``deskday`` — ``mg.desk.<municipality>.deskday.<desk>_<YYYY-MM-DD>`` (e.g. ``chuo-1_2021-04-01``):
  one desk's day. Day lifecycle (ORG-3), preparation and clean-up, equipment checks (DESK-10),
  staffing and breaches (DESK-5), masks and disinfection (DESK-8), the reception queue with gap-free
  ticket numbers (DESK-3), capacity alerts (DESK-2), escalations (DESK-6, numbered per day) and
  incidents (missing equipment, a card left behind; numbered per day). Everything that must be
  ordered or numbered per desk and day is here, so two supporters racing for "call next" conflict.
* ``visit`` — ``mg.desk.<municipality>.visit.<visit_id>`` (UUIDv7, allocated when the ticket is
  called): one citizen's visit (DESK-4, DESK-7, DESK-9, the PIN-lock guard). A visit records only
  a ticket number, gender, age band, purposes, support, outcome, payment-service category and
  free-text opinions screened by the PII guard: never a name, a card number or a PIN.

Every desk-day and visit event carries `ward` and `desk` in the envelope (validated here).
Free text uses `FreeText` (madoguchi_shared.pii): a My Number, a 12-digit run, a phone number or
an e-mail address makes the event invalid, so it can never be stored. What a person writes about a
case (escalation summaries and outcomes, opinions) is `ErasableText` (madoguchi_shared.sealed): the
service publishes it sealed, with a key of its own outside the event log, so it can be erased.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from madoguchi_shared.events.base import Event, Frozen, Ident, WallClockTime
from madoguchi_shared.pii import FreeText
from madoguchi_shared.sealed import ErasableText


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time must carry its UTC offset (e.g. +09:00)")
    return value


# A timezone-aware instant (like pydantic's AwareDatetime, spelled as Annotated[datetime, ...]).
Instant = Annotated[datetime, AfterValidator(_aware)]

# --- vocabularies (stable codes; labels in Japanese live with the UI and reports) -----------------

Gender = Literal["female", "male", "other", "not_stated"]
AgeBand = Literal["under_20", "20s", "30s", "40s", "50s", "60s", "70s", "80_and_over"]
Purpose = Literal[
    "mykey_pc",  # マイキーID設定（窓口PC）
    "mykey_smartphone",  # マイキーID設定（市民のスマートフォン）
    "mynapoint_application",  # マイナポイント申込み
    "health_insurance_registration",  # 健康保険証利用の初回登録
    "inquiry_only",  # 問合せのみ
    "flyer",  # チラシ配布
]
Outcome = Literal["completed", "not_completed"]
NotCompletedReason = Literal[
    "pin_locked_or_forgotten",  # 暗証番号ロック・失念
    "card_not_brought",  # カード不持参
    "card_not_issued",  # カード未交付
    "phone_not_nfc",  # スマートフォンがNFC非対応
    "certificate_expired",  # 電子証明書の有効期限切れ
    "others_payment_service",  # 第三者の決済サービスで申込み済み
    "other",
]
PaymentServiceCategory = Literal[
    "electronic_money",
    "qr_code",
    "credit_card",
    "debit_card",
    "prepaid_card",
    "other",
    "not_chosen",
]
OpinionKind = Literal["opinion", "request", "topic", "difficulty"]
ProcedureStep = Literal[
    "understanding_scheme",
    "pin_entry",
    "card_reading",
    "app_install",
    "mykey_id_setup",
    "payment_service_choice",
    "health_insurance_registration",
    "other",
]
# Kinds of card PINs (never the PIN itself): the 4-digit user-authentication PIN (3 tries),
# the 4-digit card-information PIN (3 tries), the 6-16 character signature password (5 tries).
PinKind = Literal["user_auth", "card_info", "signature"]
PIN_LIMITS: dict[str, int] = {"user_auth": 3, "card_info": 3, "signature": 5}
StopReason = Literal[
    "staff_shortage",
    "equipment_failure",
    "network_failure",
    "facility",
    "pandemic",
    "weather",
    "city_instruction",
    "other",
]
InstructionReason = Literal["pandemic", "disaster", "facility", "city_decision", "other"]
EscalationCategory = Literal[
    "complaint",
    "procedure",
    "system_trouble",
    "card",
    "payment_service",
    "city_decision",
    "other",
]
IncidentKind = Literal["card_left_behind", "equipment_missing", "equipment_damaged", "other"]
AbsenceReason = Literal["restroom", "break", "helping_elsewhere", "fetching_supplies", "other"]
CheckPhase = Literal["opening", "closing"]
DeskRole = Literal["supporter", "rounder", "manager"]
StaffingTrigger = Literal["staffing_change", "timer"]
EdgeMarkRule = Literal["during_suspension", "after_day_end"]


def deskday_id(desk: str, day: date) -> str:
    """The desk-day aggregate id: ``<desk>_<YYYY-MM-DD>``."""
    return f"{desk}_{day.isoformat()}"


def parse_deskday_id(value: str) -> tuple[str, date]:
    desk, _, day = value.rpartition("_")
    return desk, date.fromisoformat(day)


class _DeskEvent(Event):
    context: ClassVar[str] = "desk"


class _AtDesk(_DeskEvent):
    """Events of a desk (desk-day, visit): the envelope must name the ward and the desk."""

    # pydantic fields are keyword-only, so a subclass may make an optional envelope field required;
    # pyright applies the positional-dataclass rule that forbids it
    ward: Ident  # pyright: ignore[reportGeneralTypeIssues]
    desk: Ident  # pyright: ignore[reportGeneralTypeIssues]


# --- calendar (DESK-1): mg.desk.<m>.calendar.city ------------------------------------------------


class _CalendarEvent(_DeskEvent):
    aggregate: ClassVar[str] = "calendar"
    aggregate_field: ClassVar[str] = "calendar_id"
    calendar_id: Ident = "city"


class OpeningSuspended(_CalendarEvent):
    """The city instructs to suspend opening (一時休止) for a period; `end=None` = until lifted."""

    type: Literal["desk.opening_suspended"] = "desk.opening_suspended"
    instruction_id: Ident
    start: Instant
    end: Instant | None = None
    desks: tuple[Ident, ...] = Field(default=(), max_length=200)  # empty = every desk
    reason: InstructionReason
    note: FreeText | None = None


class OpeningDelayed(_CalendarEvent):
    """The city instructs to delay opening (開設時期を遅らせる) until `until`."""

    type: Literal["desk.opening_delayed"] = "desk.opening_delayed"
    instruction_id: Ident
    start: Instant
    until: Instant
    desks: tuple[Ident, ...] = Field(default=(), max_length=200)
    reason: InstructionReason
    note: FreeText | None = None


class CityInstructionLifted(_CalendarEvent):
    """A suspension or delay ends at `at` (the desks may open again)."""

    type: Literal["desk.city_instruction_lifted"] = "desk.city_instruction_lifted"
    instruction_id: Ident
    at: Instant


class SpecialOpeningScheduled(_CalendarEvent):
    """A special opening (休日開庁), e.g. a Sunday 8:45–12:00, added at run time."""

    type: Literal["desk.special_opening_scheduled"] = "desk.special_opening_scheduled"
    day: date
    open: WallClockTime
    close: WallClockTime
    desks: tuple[Ident, ...] = Field(default=(), max_length=200)
    note: FreeText | None = None


class ExtendedHoursScheduled(_CalendarEvent):
    """Extended hours (時間延長), e.g. to 19:00, added at run time."""

    type: Literal["desk.extended_hours_scheduled"] = "desk.extended_hours_scheduled"
    day: date
    close: WallClockTime
    desks: tuple[Ident, ...] = Field(default=(), max_length=200)
    note: FreeText | None = None


# --- desk-day: mg.desk.<m>.deskday.<desk>_<date> -------------------------------------------------


class _DayEvent(_AtDesk):
    aggregate: ClassVar[str] = "deskday"
    aggregate_field: ClassVar[str] = "deskday_id"
    deskday_id: Ident


# day lifecycle (ORG-3, DESK-5)


class DayStarted(_DayEvent):
    """The manager confirms the start of the desk's day (業務開始の確認)."""

    type: Literal["desk.day_started"] = "desk.day_started"


class DayEnded(_DayEvent):
    """The manager confirms the end of the desk's day (業務終了の確認)."""

    type: Literal["desk.day_ended"] = "desk.day_ended"


class DayCannotStart(_DayEvent):
    """The desk cannot start today; the manager reported it to the city (ORG-3)."""

    type: Literal["desk.day_cannot_start"] = "desk.day_cannot_start"
    reason: StopReason
    note: FreeText | None = None
    reported_to_city_at: Instant


class DayCannotContinue(_DayEvent):
    """The desk cannot continue today; the manager reported it to the city (ORG-3)."""

    type: Literal["desk.day_cannot_continue"] = "desk.day_cannot_continue"
    reason: StopReason
    note: FreeText | None = None
    reported_to_city_at: Instant


class DayResumed(_DayEvent):
    """Work resumes after a stop that was reported to the city."""

    type: Literal["desk.day_resumed"] = "desk.day_resumed"


class PreparationRecorded(_DayEvent):
    """Preparation (準備) done from `start` to `end`; it belongs outside opening hours (DESK-5)."""

    type: Literal["desk.preparation_recorded"] = "desk.preparation_recorded"
    start: Instant
    end: Instant
    outside_opening_hours: bool


class CleanupRecorded(_DayEvent):
    """Clean-up (片付け) done from `start` to `end`; it belongs outside opening hours (DESK-5)."""

    type: Literal["desk.cleanup_recorded"] = "desk.cleanup_recorded"
    start: Instant
    end: Instant
    outside_opening_hours: bool


# equipment (DESK-10)


class EquipmentChecked(_DayEvent):
    """The equipment check at opening or closing against the desk's inventory."""

    type: Literal["desk.equipment_checked"] = "desk.equipment_checked"
    phase: CheckPhase
    items_checked: int = Field(ge=0, le=10_000)
    missing: tuple[Ident, ...] = Field(default=(), max_length=100)
    damaged: tuple[Ident, ...] = Field(default=(), max_length=100)
    note: FreeText | None = None


class ChecklistStep(Frozen):
    key: Ident
    text_ja: str = Field(max_length=200)


class IncidentOpened(_DayEvent):
    """An incident at the desk: missing equipment (DESK-10) or a card left behind (DESK-9, urgent)."""

    type: Literal["desk.incident_opened"] = "desk.incident_opened"
    incident_no: int = Field(ge=1, le=9_999)
    kind: IncidentKind
    urgency: Literal["urgent", "high", "normal"]
    items: tuple[Ident, ...] = Field(default=(), max_length=100)  # equipment keys, for equipment incidents
    visit_id: UUID | None = None
    checklist: tuple[ChecklistStep, ...] = Field(default=(), max_length=50)
    message_ja: str = Field(max_length=500)


class IncidentStepDone(_DayEvent):
    type: Literal["desk.incident_step_done"] = "desk.incident_step_done"
    incident_no: int = Field(ge=1, le=9_999)
    step: Ident


class IncidentClosed(_DayEvent):
    type: Literal["desk.incident_closed"] = "desk.incident_closed"
    incident_no: int = Field(ge=1, le=9_999)
    note: FreeText | None = None


# staffing (DESK-5, ORG-4)


class StaffCheckedIn(_DayEvent):
    """A trained supporter (or rounder) goes on duty at the desk."""

    type: Literal["desk.staff_checked_in"] = "desk.staff_checked_in"
    staff_id: Ident
    role: DeskRole


class StaffCheckedOut(_DayEvent):
    type: Literal["desk.staff_checked_out"] = "desk.staff_checked_out"
    staff_id: Ident


class ShortAbsenceStarted(_DayEvent):
    """A short unavoidable absence (短時間不在), shown at the desk (DESK-5)."""

    type: Literal["desk.short_absence_started"] = "desk.short_absence_started"
    staff_id: Ident
    reason: AbsenceReason
    expected_minutes: int = Field(ge=1, le=60)


class ShortAbsenceEnded(_DayEvent):
    type: Literal["desk.short_absence_ended"] = "desk.short_absence_ended"
    staff_id: Ident
    absent_seconds: float = Field(ge=0, le=86_400)


class StaffingBreachDetected(_DayEvent):
    """DESK-5: the desk is open and no supporter is on duty. Raised at once, counted per day."""

    type: Literal["desk.staffing_breach_detected"] = "desk.staffing_breach_detected"
    breach_no: int = Field(ge=1, le=9_999)
    since: Instant
    absence_notice_shown: bool  # someone is on a short absence and the notice is displayed
    trigger: StaffingTrigger
    message_ja: str = Field(max_length=300)


class StaffingBreachEnded(_DayEvent):
    type: Literal["desk.staffing_breach_ended"] = "desk.staffing_breach_ended"
    breach_no: int = Field(ge=1, le=9_999)
    duration_seconds: float = Field(ge=0, le=86_400)
    ended_by: Literal["staff_on_duty", "desk_closed"]


class MaskStatusRecorded(_DayEvent):
    """DESK-8: whether a staff member wears a mask (shown at the desk)."""

    type: Literal["desk.mask_status_recorded"] = "desk.mask_status_recorded"
    staff_id: Ident
    wearing: bool


# queue (DESK-3) and capacity (DESK-2)


class TicketIssued(_DayEvent):
    """A queue ticket (受付番号札); numbers run 1, 2, 3, ... per desk and day, without gaps."""

    type: Literal["desk.ticket_issued"] = "desk.ticket_issued"
    ticket_no: int = Field(ge=1, le=9_999)


class TicketCalled(_DayEvent):
    """The next waiting ticket is called to a supporter; its visit id is allocated here."""

    type: Literal["desk.ticket_called"] = "desk.ticket_called"
    ticket_no: int = Field(ge=1, le=9_999)
    staff_id: Ident
    visit_id: UUID


class TicketRecalled(_DayEvent):
    type: Literal["desk.ticket_recalled"] = "desk.ticket_recalled"
    ticket_no: int = Field(ge=1, le=9_999)
    call_count: int = Field(ge=2, le=1_000)


class TicketNoShow(_DayEvent):
    type: Literal["desk.ticket_no_show"] = "desk.ticket_no_show"
    ticket_no: int = Field(ge=1, le=9_999)


class TicketTransferred(_DayEvent):
    type: Literal["desk.ticket_transferred"] = "desk.ticket_transferred"
    ticket_no: int = Field(ge=1, le=9_999)
    from_staff: Ident
    to_staff: Ident


class TicketServed(_DayEvent):
    """The called visitor came to the desk and service began (the visit started)."""

    type: Literal["desk.ticket_served"] = "desk.ticket_served"
    ticket_no: int = Field(ge=1, le=9_999)
    visit_id: UUID
    staff_id: Ident
    waited_seconds: float = Field(ge=0, le=86_400)  # issued -> served


class CapacityThresholdReached(_DayEvent):
    """DESK-2: visitors reached a share of the expected maximum; the manager consults the city."""

    type: Literal["desk.capacity_threshold_reached"] = "desk.capacity_threshold_reached"
    threshold: float = Field(gt=0, le=100.0)
    visitors: int = Field(ge=0, le=1_000_000)
    expected_max: int = Field(ge=1, le=1_000_000)
    message_ja: str = Field(max_length=300)


# disinfection (DESK-8)


class DevicesDisinfected(_DayEvent):
    """The devices were disinfected after a visit (アルコール除菌)."""

    type: Literal["desk.devices_disinfected"] = "desk.devices_disinfected"
    after_visit_id: UUID | None = None


class VisitStartedBeforeDisinfection(_DayEvent):
    """DESK-8: a visit started before the devices were disinfected after the previous one."""

    type: Literal["desk.visit_started_before_disinfection"] = "desk.visit_started_before_disinfection"
    visit_id: UUID
    previous_visit_id: UUID


# escalations (DESK-6)


class EscalationRaised(_DayEvent):
    """A case raised to the manager with a summary (PII-screened)."""

    type: Literal["desk.escalation_raised"] = "desk.escalation_raised"
    escalation_no: int = Field(ge=1, le=9_999)
    category: EscalationCategory
    summary: ErasableText = Field(min_length=1)
    visit_id: UUID | None = None


class EscalationAcknowledged(_DayEvent):
    type: Literal["desk.escalation_acknowledged"] = "desk.escalation_acknowledged"
    escalation_no: int = Field(ge=1, le=9_999)


class EscalationEscalatedToCity(_DayEvent):
    """The manager takes the case to the city (委託者へ連絡の上指示を仰ぐ)."""

    type: Literal["desk.escalation_escalated_to_city"] = "desk.escalation_escalated_to_city"
    escalation_no: int = Field(ge=1, le=9_999)
    summary: ErasableText = Field(min_length=1)


class EscalationResolved(_DayEvent):
    type: Literal["desk.escalation_resolved"] = "desk.escalation_resolved"
    escalation_no: int = Field(ge=1, le=9_999)
    outcome: ErasableText = Field(min_length=1)
    resolved_by: Literal["manager", "city"]


# the desk edge on the laptop (issue 21; services/desk/EDGE.md)


class EdgeAttached(_DayEvent):
    """The desk's laptop (its desk edge) decides the desk-day's own work from now on, online or
    offline: HQ refuses those commands for this desk-day and leaves its DESK-5 timer to the edge."""

    type: Literal["desk.edge_attached"] = "desk.edge_attached"
    device_id: Ident


class EdgeRecordsMarked(_DayEvent):
    """Records the edge made while offline after HQ had decided otherwise (a city suspension, the
    manager's day-end confirmation): kept, and marked here (EDGE.md, merge rules). Never an edit."""

    type: Literal["desk.edge_records_marked"] = "desk.edge_records_marked"
    device_id: Ident
    rule: EdgeMarkRule
    instruction_id: Ident | None = None
    decided_at: Instant  # when HQ's decision took effect (the suspension's start, the day-end confirmation)
    learned_at: Instant  # when the desk learned of it (the rule applies from then on)
    tickets: tuple[Annotated[int, Field(ge=1, le=9_999)], ...] = Field(default=(), max_length=10_000)
    visit_ids: tuple[UUID, ...] = Field(default=(), max_length=10_000)


# --- visit: mg.desk.<m>.visit.<uuid7> ------------------------------------------------------------


class _VisitEvent(_AtDesk):
    aggregate: ClassVar[str] = "visit"
    aggregate_field: ClassVar[str] = "visit_id"
    visit_id: UUID


class VisitStarted(_VisitEvent):
    type: Literal["desk.visit_started"] = "desk.visit_started"
    deskday_id: Ident
    ticket_no: int = Field(ge=1, le=9_999)
    staff_id: Ident
    waited_seconds: float = Field(ge=0, le=86_400)
    disinfection_pending: bool = False  # DESK-8 flag: previous visit's devices not yet disinfected


class VisitDetailsRecorded(_VisitEvent):
    """The visit's statistics (DESK-4, REP-1): the whole record each time, the latest wins."""

    type: Literal["desk.visit_details_recorded"] = "desk.visit_details_recorded"
    gender: Gender
    age_band: AgeBand
    purposes: tuple[Purpose, ...] = Field(min_length=1, max_length=20)
    support_needed: bool
    support_given: bool
    payment_service: PaymentServiceCategory | None = None


class OpinionRecorded(_VisitEvent):
    """DESK-7: an opinion, request or topic; where in the procedure the citizen struggled."""

    type: Literal["desk.opinion_recorded"] = "desk.opinion_recorded"
    kind: OpinionKind
    step: ProcedureStep | None = None
    text: ErasableText = Field(min_length=1)


class PinFailureRecorded(_VisitEvent):
    """A failed PIN attempt during the visit: which PIN and how many failures, never the PIN."""

    type: Literal["desk.pin_failure_recorded"] = "desk.pin_failure_recorded"
    pin: PinKind
    failures: int = Field(ge=1, le=100)
    limit: int = Field(ge=1, le=100)
    locked: bool


class PinLockWarningIssued(_VisitEvent):
    """One more failure locks the card: the desk is warned and shown the reset procedure."""

    type: Literal["desk.pin_lock_warning_issued"] = "desk.pin_lock_warning_issued"
    pin: PinKind
    failures: int = Field(ge=1, le=100)
    remaining: int = Field(ge=0, le=100)
    message_ja: str = Field(max_length=500)


class CardHandedToStaff(_VisitEvent):
    """DESK-9: the citizen hands the My Number card to staff for a while."""

    type: Literal["desk.card_handed_to_staff"] = "desk.card_handed_to_staff"


class CardReturned(_VisitEvent):
    type: Literal["desk.card_returned"] = "desk.card_returned"


class CardLeftBehind(_VisitEvent):
    """DESK-9: a card left behind; desk-day incident `incident_no` alerts the manager at once."""

    type: Literal["desk.card_left_behind"] = "desk.card_left_behind"
    incident_no: int = Field(ge=1, le=9_999)


class VisitEnded(_VisitEvent):
    """The visit ends: completed, or not completed with the reason."""

    type: Literal["desk.visit_ended"] = "desk.visit_ended"
    outcome: Outcome
    reason: NotCompletedReason | None = None
    service_seconds: float = Field(ge=0, le=86_400)

    @model_validator(mode="after")
    def _reason_iff_not_completed(self):
        if (self.outcome == "not_completed") != (self.reason is not None):
            raise ValueError("a reason is given exactly when the outcome is not_completed")
        return self


class VisitCorrected(_VisitEvent):
    """A later correction of an ended visit (the reports recount from it). Fields left None keep
    their value."""

    type: Literal["desk.visit_corrected"] = "desk.visit_corrected"
    outcome: Outcome | None = None
    reason: NotCompletedReason | None = None
    gender: Gender | None = None
    age_band: AgeBand | None = None
    purposes: tuple[Purpose, ...] | None = Field(default=None, max_length=20)
    support_needed: bool | None = None
    support_given: bool | None = None
    payment_service: PaymentServiceCategory | None = None
    note: FreeText | None = None

    @model_validator(mode="after")
    def _consistent_outcome(self):
        if self.outcome == "not_completed" and self.reason is None:
            raise ValueError("a not_completed outcome needs its reason")
        if self.outcome == "completed" and self.reason is not None:
            raise ValueError("a completed outcome has no reason")
        if self.reason is not None and self.outcome is None:
            raise ValueError("correct the reason together with the outcome")
        return self
