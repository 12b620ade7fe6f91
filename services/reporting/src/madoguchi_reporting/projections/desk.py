"""The reporting-desk projection (REP-1): MG_DESK (mg.desk.>) into visits, tickets, desk-days,
notes, calendar overrides and the desk-day counters.

A batch is applied in three steps (`apply_desk`): load what it needs from earlier batches (visit
rows, ticket issue times), fold its events into those rows in stream order (one handler per event
type, `DAY_HANDLERS` / `VISIT_HANDLERS`), then write. Each touched visit contributes the
difference between its figures after and before the batch, so a late correction moves a visit
from one counter to another (REP-5) without any special case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from madoguchi_shared import db

from madoguchi_shared.figures import Family, Fig, family
from madoguchi_shared.figures import Stored as Kept
from madoguchi_shared.bus import Stored
from madoguchi_shared.events import REGISTRY
from madoguchi_shared.events import desk as dk
from madoguchi_shared.read_events import as_model, keyed

from madoguchi_reporting.projections.outbox import Notifier, notify_affected
from madoguchi_reporting.projections.store import Acc, DayKey, NoteKey, Writes, live_batch_guard, local, note, to_ms
from madoguchi_reporting.projections.visits import VISIT_COLUMNS, VISIT_TYPES, VisitRow, load_visits, visit_figures

_DESKDAYS: dict[str, tuple[str, dt.date] | None] = {}


def deskday(deskday_id: str) -> tuple[str, dt.date] | None:
    """(desk, day) of a desk-day id; None for an id without a date (such an event is not counted,
    the verifier skips it too; a batch must never fail on it)."""
    if deskday_id not in _DESKDAYS:
        if len(_DESKDAYS) > 100_000:
            _DESKDAYS.clear()
        try:
            _DESKDAYS[deskday_id] = dk.parse_deskday_id(deskday_id)
        except ValueError:
            _DESKDAYS[deskday_id] = None
    return _DESKDAYS[deskday_id]


def arrival_hour(issued_at: dt.datetime | None, started_at: dt.datetime, waited_seconds: float) -> int:
    """The hour (local) the visitor arrived: when the ticket was issued; without the ticket's
    record, the start of service minus the wait."""
    if issued_at is not None:
        return local(issued_at).hour
    return local(started_at - dt.timedelta(seconds=waited_seconds)).hour


# --- one batch's state -----------------------------------------------------------------------------


@dataclass
class DeskDay:
    ward: str | None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    stops: int = 0


@dataclass
class DeskBatch:
    """What a batch folds its events into before anything is written."""

    visits: dict[tuple[str, UUID], VisitRow]
    issued: dict[tuple[str, str, dt.date, int], dt.datetime]  # ticket -> latest issue before, in stream order
    acc: Acc = field(default_factory=Acc)
    new_tickets: dict[tuple[str, str, dt.date, int], dt.datetime] = field(default_factory=dict)
    desk_days: dict[tuple[str, str, dt.date], DeskDay] = field(default_factory=dict)
    notes: dict[NoteKey, dict] = field(default_factory=dict)
    note_updates: list[tuple[NoteKey, dict]] = field(default_factory=list)
    calendar_rows: list[tuple] = field(default_factory=list)

    def desk_day(self, e: dk._AtDesk, desk: str, day: dt.date) -> DeskDay:
        k = (e.municipality, desk, day)
        if k not in self.desk_days:
            self.desk_days[k] = DeskDay(e.ward)
        return self.desk_days[k]


# --- desk-day events: (batch, the day's key, its desk-day row, the event) ----------------------------

DAY_COUNTERS: dict[type, Fig] = keyed(
    {
        dk.TicketNoShow: Fig.no_shows,
        dk.TicketRecalled: Fig.recalls,
        dk.DevicesDisinfected: Fig.disinfections,
        dk.VisitStartedBeforeDisinfection: Fig.disinfection_misses,
        dk.StaffingBreachDetected: Fig.staffing_breaches,
        dk.ShortAbsenceStarted: Fig.short_absences,
        dk.CapacityThresholdReached: Fig.capacity_alerts,
    }
)


def on_ticket_issued(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.TicketIssued) -> None:
    m, _ch, desk, day = key
    b.issued[(m, desk, day, e.ticket_no)] = e.occurred_at
    b.new_tickets[(m, desk, day, e.ticket_no)] = e.occurred_at
    b.acc.add(key, Fig.tickets_issued)


def on_mask_status(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.MaskStatusRecorded) -> None:
    b.acc.add(key, Fig.masks_checked)
    if not e.wearing:
        b.acc.add(key, Fig.masks_missing)


def on_breach_ended(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.StaffingBreachEnded) -> None:
    b.acc.add(key, Kept.staffing_breach_ms, to_ms(e.duration_seconds))


def on_incident(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.IncidentOpened) -> None:
    b.acc.add(key, family(Family.incidents, e.kind))
    if e.kind == "card_left_behind":
        b.acc.add(key, Fig.card_incidents)


def escalation_key(
    key: DayKey,
    e: dk.EscalationRaised | dk.EscalationAcknowledged | dk.EscalationEscalatedToCity | dk.EscalationResolved,
) -> NoteKey:
    return (*key, "escalation", str(e.escalation_no))


def on_escalation_raised(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.EscalationRaised) -> None:
    b.acc.add(key, Fig.escalations)
    b.acc.add(key, family(Family.escalations_by_category, e.category))
    b.notes[escalation_key(key, e)] = note(e.occurred_at, e.category, e.summary, status="raised")


def on_escalation_acknowledged(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.EscalationAcknowledged) -> None:
    b.acc.touch(key, e.ward)
    b.note_updates.append((escalation_key(key, e), {"status": "acknowledged"}))


def on_escalation_to_city(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.EscalationEscalatedToCity) -> None:
    b.acc.add(key, Fig.escalations_to_city, ward=e.ward)
    b.note_updates.append((escalation_key(key, e), {"status": "to_city"}))


def on_escalation_resolved(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.EscalationResolved) -> None:
    b.acc.touch(key, e.ward)
    b.note_updates.append((escalation_key(key, e), {"status": "resolved", "detail": e.outcome}))


def on_day_started(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.DayStarted) -> None:
    b.acc.touch(key, e.ward)
    row.started_at = min(filter(None, (row.started_at, e.occurred_at)))


def on_day_ended(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.DayEnded) -> None:
    b.acc.touch(key, e.ward)
    row.ended_at = max(filter(None, (row.ended_at, e.occurred_at)))


def on_day_stopped(b: DeskBatch, key: DayKey, row: DeskDay, e: dk.DayCannotStart | dk.DayCannotContinue) -> None:
    row.stops += 1
    b.acc.add(key, Fig.day_stops)


DAY_HANDLERS: dict[type, Callable[[DeskBatch, DayKey, DeskDay, Any], None]] = keyed(
    {
        dk.TicketIssued: on_ticket_issued,
        dk.MaskStatusRecorded: on_mask_status,
        dk.StaffingBreachEnded: on_breach_ended,
        dk.IncidentOpened: on_incident,
        dk.EscalationRaised: on_escalation_raised,
        dk.EscalationAcknowledged: on_escalation_acknowledged,
        dk.EscalationEscalatedToCity: on_escalation_to_city,
        dk.EscalationResolved: on_escalation_resolved,
        dk.DayStarted: on_day_started,
        dk.DayEnded: on_day_ended,
        dk.DayCannotStart: on_day_stopped,
        dk.DayCannotContinue: on_day_stopped,
    }
)


def fold_day_event(b: DeskBatch, s: Stored) -> None:
    e: dk._DayEvent = s.event  # pyright: ignore[reportAssignmentType] - FOLDS sends only day events here
    if (dd := deskday(e.deskday_id)) is None:
        return
    desk, day = dd
    key: DayKey = (e.municipality, "desk", desk, day)
    if (row := b.desk_days.get((e.municipality, desk, day))) is None:
        row = b.desk_days[(e.municipality, desk, day)] = DeskDay(e.ward)
    if (figure := DAY_COUNTERS.get(type(e))) is not None:
        b.acc.add(key, figure)
    elif (handler := DAY_HANDLERS.get(type(e))) is not None:
        handler(b, key, row, e)


# --- visit events: (batch, the visit's row, the event) ------------------------------------------------


def on_visit_started(b: DeskBatch, v: VisitRow, e: dk.VisitStarted) -> None:
    if (dd := deskday(e.deskday_id)) is None:  # (checked by fold_visit_event)
        return
    desk, day = dd
    v.desk, v.ward, v.day, v.ticket_no = desk, e.ward, day, e.ticket_no
    v.started_at = e.occurred_at
    v.waited_ms = to_ms(e.waited_seconds)
    v.arrival_hour = arrival_hour(
        b.issued.get((e.municipality, desk, day, e.ticket_no)), e.occurred_at, e.waited_seconds
    )
    b.desk_day(e, desk, day)


def on_visit_details(b: DeskBatch, v: VisitRow, e: dk.VisitDetailsRecorded) -> None:
    v.gender, v.age_band, v.purposes = e.gender, e.age_band, list(e.purposes)
    v.support_needed, v.support_given, v.payment_service = e.support_needed, e.support_given, e.payment_service


def on_visit_ended(b: DeskBatch, v: VisitRow, e: dk.VisitEnded) -> None:
    v.outcome, v.reason, v.service_ms, v.ended_at = e.outcome, e.reason, to_ms(e.service_seconds), e.occurred_at


def on_visit_corrected(b: DeskBatch, v: VisitRow, e: dk.VisitCorrected) -> None:
    if e.outcome is not None:
        v.outcome, v.reason = e.outcome, e.reason
    if e.gender is not None:
        v.gender = e.gender
    if e.age_band is not None:
        v.age_band = e.age_band
    if e.support_needed is not None:
        v.support_needed = e.support_needed
    if e.support_given is not None:
        v.support_given = e.support_given
    if e.payment_service is not None:
        v.payment_service = e.payment_service
    if e.purposes is not None:
        v.purposes = list(e.purposes)
    v.corrections += 1


def visit_day_key(v: VisitRow, e: dk._VisitEvent) -> DayKey:
    """The desk-day an event during a visit counts on: the visit's, else the event's local date."""
    return (v.municipality, "desk", v.desk, v.day if v.day is not None else local(e.occurred_at).date())


def on_opinion(b: DeskBatch, v: VisitRow, e: dk.OpinionRecorded) -> None:
    key = visit_day_key(v, e)
    b.acc.add(key, Fig.opinions, ward=v.ward)
    b.acc.add(key, family(Family.opinions_by_kind, e.kind))
    if e.step:
        b.acc.add(key, family(Family.difficulties_by_step, e.step))
    b.notes[(*key, "opinion", str(e.event_id))] = note(e.occurred_at, e.kind, e.text, step=e.step)


def on_pin_failure(b: DeskBatch, v: VisitRow, e: dk.PinFailureRecorded) -> None:
    key = visit_day_key(v, e)
    b.acc.add(key, Fig.pin_failures, ward=v.ward)
    if e.locked:
        b.acc.add(key, Fig.pin_locks)


def on_pin_lock_warning(b: DeskBatch, v: VisitRow, e: dk.PinLockWarningIssued) -> None:
    b.acc.add(visit_day_key(v, e), Fig.pin_lock_warnings, ward=v.ward)


def on_card_handed(b: DeskBatch, v: VisitRow, e: dk.CardHandedToStaff) -> None:
    b.acc.add(visit_day_key(v, e), Fig.cards_handed, ward=v.ward)


VISIT_HANDLERS: dict[type, Callable[[DeskBatch, VisitRow, Any], None]] = keyed(
    {
        dk.VisitStarted: on_visit_started,
        dk.VisitDetailsRecorded: on_visit_details,
        dk.VisitEnded: on_visit_ended,
        dk.VisitCorrected: on_visit_corrected,
        dk.OpinionRecorded: on_opinion,
        dk.PinFailureRecorded: on_pin_failure,
        dk.PinLockWarningIssued: on_pin_lock_warning,
        dk.CardHandedToStaff: on_card_handed,
    }
)


def fold_visit_event(b: DeskBatch, s: Stored) -> None:
    e: dk._VisitEvent = s.event  # pyright: ignore[reportAssignmentType] - FOLDS sends only visit events here
    handler = VISIT_HANDLERS.get(type(e))
    if handler is on_visit_started and deskday(e.deskday_id) is None:  # pyright: ignore[reportAttributeAccessIssue]
        return
    vk = (e.municipality, e.visit_id)
    v = b.visits.get(vk)
    if v is None:
        v = b.visits[vk] = VisitRow(municipality=e.municipality, visit_id=e.visit_id, desk=e.desk, ward=e.ward)
    if handler is not None:
        handler(b, v, e)


def fold_calendar_event(b: DeskBatch, s: Stored) -> None:
    e = s.event
    b.calendar_rows.append((e.municipality, e.event_id, s.seq, as_model(e).model_dump_json()))


# --- the batch -------------------------------------------------------------------------------------

# every desk event type -> how a batch folds it (by model and by read-side Struct class: `type(e)`)
FOLDS: dict[type, Callable[[DeskBatch, Stored], None]] = keyed(
    {
        cls: fold_calendar_event
        if issubclass(cls, dk._CalendarEvent)
        else fold_day_event
        if issubclass(cls, dk._DayEvent)
        else fold_visit_event
        for cls in REGISTRY.values()
        if issubclass(cls, dk._CalendarEvent | dk._DayEvent | dk._VisitEvent)
    }
)


def write_batch(b: DeskBatch) -> Writes:
    w = Writes()
    w.upsert(
        "ticket",
        [
            ("municipality", "text"),
            ("desk", "text"),
            ("day", "date"),
            ("ticket_no", "int4"),
            ("issued_at", "timestamptz"),
        ],
        [(*k, t) for k, t in b.new_tickets.items()],
        "municipality, desk, day, ticket_no",
        "UPDATE SET issued_at = EXCLUDED.issued_at",
    )
    w.rows("visit", VISIT_COLUMNS, VISIT_TYPES, [v.as_row() for v in b.visits.values()], "municipality, visit_id")
    w.upsert(
        "desk_day",
        [
            ("municipality", "text"),
            ("desk", "text"),
            ("day", "date"),
            ("ward", "text"),
            ("started_at", "timestamptz"),
            ("ended_at", "timestamptz"),
            ("stops", "int4"),
        ],
        [(m, desk, day, r.ward, r.started_at, r.ended_at, r.stops) for (m, desk, day), r in b.desk_days.items()],
        "municipality, desk, day",
        """UPDATE SET started_at = LEAST(desk_day.started_at, EXCLUDED.started_at),
                  ended_at = GREATEST(desk_day.ended_at, EXCLUDED.ended_at), stops = desk_day.stops + EXCLUDED.stops""",
    )
    w.notes(b.notes, b.note_updates)
    w.upsert(
        "calendar_override",
        [("municipality", "text"), ("event_id", "uuid"), ("seq", "int8"), ("event", "text")],
        b.calendar_rows,
        "municipality, event_id",
        "NOTHING",
        {"event": "u.event::jsonb"},
    )
    w.counts(b.acc)
    return w


async def apply_desk(conn: db.Connection, batch: Sequence[Stored], notifier: Notifier) -> None:
    """Apply one batch of desk events (in stream order) inside the projection's transaction: load
    what it needs from earlier batches, fold its events, write.

    The load: visit rows, ticket issue times. A ticket number can be issued twice on one desk-day
    (the day restarted): a visit's ticket is the LATEST issue of its number before it in stream
    order. So the issue times of earlier batches are loaded for every visit (even when the batch
    issues the number again later), and the batch's own issues override them in stream order; the
    table keeps the latest. The result never depends on where batches begin and end (issue 12,
    deterministic rebuilds).
    """
    await live_batch_guard(conn, notifier.enabled)
    visit_keys: set[tuple[str, UUID]] = set()
    ticket_keys: set[tuple[str, str, dt.date, int]] = set()
    for s in batch:
        if FOLDS.get(type(e := s.event)) is fold_visit_event:
            visit_keys.add((e.municipality, e.visit_id))  # pyright: ignore[reportAttributeAccessIssue]
            if VISIT_HANDLERS.get(type(e)) is on_visit_started and (dd := deskday(e.deskday_id)):  # pyright: ignore[reportAttributeAccessIssue]
                ticket_keys.add((e.municipality, *dd, e.ticket_no))  # pyright: ignore[reportAttributeAccessIssue]
    b = DeskBatch(*await load_visits(conn, visit_keys, ticket_keys))
    before = {k: visit_figures(v) for k, v in b.visits.items()}
    for s in batch:
        if (fold := FOLDS.get(type(s.event))) is not None:
            fold(b, s)
    # each touched visit contributes (after - before); a visit never changes its day, and
    # contributes nothing before its day is known
    for vk, v in b.visits.items():
        if v.day is not None:
            b.acc.add_change((v.municipality, "desk", v.desk, v.day), before.get(vk, {}), visit_figures(v), v.ward)
    await write_batch(b).run(conn)
    for (m, ch, desk, day), ward in b.acc.affected.items():
        if ward is None and (m, desk, day) in b.desk_days:
            b.acc.affected[(m, ch, desk, day)] = b.desk_days[(m, desk, day)].ward
    await notify_affected(conn, b.acc.affected, notifier)
