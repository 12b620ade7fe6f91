"""One desk's day, simulated: the events the desk service and the desk PC's agent would record.

A small discrete-event simulation in time order (a heap of timed actions), so every decision sees
the state of the desk at that moment, as the real service would:

* on a few regular days the city extends the desk's hours at run time (DESK-1): the manager
  records the extension during the day (`desk.extended_hours_scheduled`, for this desk) and the
  desk serves until the new closing time;
* before opening: the agent starts on the desk PC, the manager confirms the start of the day,
  supporters check in (masks recorded, the monitoring notice shown), preparation, equipment check;
* visitors arrive with a morning peak (a few queue before the doors open) and take numbered
  tickets; capacity alerts fire at the configured shares of the expected maximum (DESK-2);
* one service station per desk (the specification's one laptop, one card reader, two chairs), so
  visits follow one another and the DESK-8 rule "the previous visit's devices are disinfected
  before the next visit starts" is the desk service's rule exactly; supporters take turns, take
  short absences while the other is on duty, and on a few days are both away at once (DESK-5);
* each visit: details (a few re-recorded), card handed to staff, PIN failures and the lock warning,
  card reader use seen by the agent, opinions, escalations to the manager and the city, the
  outcome; rarely a card left behind (DESK-9: urgent incident with its checklist);
* after closing: the last visitors are served, clean-up, equipment check, check-out, end of day.

Everything is drawn from one `random.Random` seeded by (seed, municipality, desk, date): the day
is the same whatever else is simulated. The function returns the events (sorted by time, so each
aggregate's events are in order) and the visit records the ground truth is counted from.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from uuid import UUID

from madoguchi_shared.calendar import TOKYO, Calendar, SpecialDay
from madoguchi_shared.events import Actor, Event, Role
from madoguchi_shared.events import desk as ev
from madoguchi_shared.events import device as dv
from madoguchi_shared.events.admin import (
    TRAINING_ITEMS,
    StaffAccountCreated,
    TrainingItemCompleted,
    TrainingTestRecorded,
)
from madoguchi_shared.municipality import Desk, Municipality

from madoguchi_sim import ids, texts
from madoguchi_sim.profile import Profile

PC_PURPOSES = frozenset({"mykey_pc", "mynapoint_application", "health_insurance_registration"})
PROCEDURES = PC_PURPOSES | {"mykey_smartphone"}
AGENT_VERSION = "0.1.0"
POLICY_VERSION = 1
POLICY_SHA = hashlib.sha256(b"madoguchi-sim desk policy v1").hexdigest()
NOTICE_SHA = hashlib.sha256("監視ソフトウェアに関するお知らせ".encode()).hexdigest()
READER = "SONY FeliCa RC-S300/P 00 00"
CARD_ATR = "3B8A800180318065B0850300EF120FFF82"  # a contact-less card answering as type B (no holder data)


T = TypeVar("T")


def pick(rng: random.Random, weighted: tuple[tuple[T, float], ...]) -> T:
    """One item of (item, weight) pairs."""
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for item, w in weighted:
        x -= w
        if x < 0:
            return item
    return weighted[-1][0]


def _minutes(rng: random.Random, low: float, high: float) -> float:
    return rng.uniform(low, high) * 60.0


# --- the visitor (what the desk records: never a name, a card number or a PIN) ----------------


@dataclass(slots=True)
class Visitor:
    gender: str
    age_band: str
    purposes: tuple[str, ...]
    support_needed: bool
    support_given: bool
    outcome: str
    reason: str | None
    payment_service: str | None
    has_card: bool
    uses_reader: bool
    pin_failures: int  # failures of the user-authentication PIN recorded during the visit
    card_held: bool
    card_left_behind: bool
    opinion: tuple[str, str | None, str] | None  # kind, step, text
    escalation: tuple[str, str, bool] | None  # category, summary, to the city
    first_details: tuple[str, ...] | None  # purposes first recorded, before the record was redone
    correction: bool  # outcome corrected after the visit (VisitCorrected)
    no_show: bool
    service_seconds: float


def draw_visitor(rng: random.Random, p: Profile) -> Visitor:
    gender = pick(rng, p.genders)
    age = pick(rng, p.age_bands)
    younger = age in ("under_20", "20s", "30s", "40s")
    sets = tuple(
        (
            s,
            w
            * (
                2.5
                if younger and "mykey_smartphone" in s
                else 0.2
                if age == "80_and_over" and "mykey_smartphone" in s
                else 1.0
            ),
        )
        for s, w in p.purpose_sets
    )
    purposes: tuple[str, ...] = pick(rng, sets)
    procedure = bool(PROCEDURES.intersection(purposes))
    smartphone = "mykey_smartphone" in purposes
    if procedure:
        needed = rng.random() < p.support_needed_procedure
    else:
        needed = "inquiry_only" in purposes and rng.random() < p.support_needed_inquiry
    given = needed and rng.random() < p.support_given_when_needed
    outcome, reason = "completed", None
    if procedure:
        rate = p.not_completed_rate_older if age in ("70s", "80_and_over") else p.not_completed_rate
        if rng.random() < rate:
            outcome = "not_completed"
            reasons = tuple((r, w) for r, w in p.not_completed_reasons if smartphone or r != "phone_not_nfc")
            reason = pick(rng, reasons)
    has_card = reason not in ("card_not_brought", "card_not_issued") and procedure
    uses_reader = has_card and not smartphone and reason != "phone_not_nfc"
    pin_failures = 0
    if reason == "pin_locked_or_forgotten":
        pin_failures = 3 if rng.random() < p.locked_after_attempts else rng.choice((0, 1))
    elif outcome == "completed" and has_card:
        x = rng.random()
        pin_failures = 1 if x < p.pin_slip_rate else 2 if x < p.pin_slip_rate + p.pin_double_slip_rate else 0
    payment = None
    if "mynapoint_application" in purposes and outcome == "completed":
        payment = pick(rng, p.payment_services)
    opinion = None
    if rng.random() < p.opinion_rate:
        kind = pick(rng, p.opinion_kinds)
        steps = texts.OPINIONS[kind]
        step = rng.choice(sorted(steps))
        if kind == "difficulty" and reason == "pin_locked_or_forgotten":
            step = "pin_entry"
        elif kind == "difficulty" and reason == "phone_not_nfc":
            step = "card_reading"
        opinion = (kind, None if step == "other" and kind != "difficulty" else step, rng.choice(steps[step]))
    escalation = None
    if rng.random() < p.escalation_rate:
        category = pick(rng, p.escalation_categories)
        escalation = (category, rng.choice(texts.ESCALATIONS[category]), rng.random() < p.escalation_to_city_rate)
    first = None
    if rng.random() < p.details_rerecorded_rate:
        first = ("inquiry_only",) if purposes != ("inquiry_only",) else ("flyer",)
    correction = outcome == "not_completed" and reason == "other" and rng.random() < 0.3
    # service time, minutes by purpose: one station serves up to 80 a day (DESK-2), so about six
    # minutes a visitor with the changeover
    minutes = 0.0
    for purpose in purposes:
        minutes += {
            "mykey_pc": rng.uniform(3, 6.5),
            "mynapoint_application": rng.uniform(1.5, 4),
            "health_insurance_registration": rng.uniform(1, 2.5),
            "mykey_smartphone": rng.uniform(5, 10),
            "inquiry_only": rng.uniform(1, 3.5),
            "flyer": rng.uniform(0.3, 1),
        }[purpose]
    if outcome == "not_completed":
        minutes = max(1.5, minutes * rng.uniform(0.35, 0.7))
    if age == "80_and_over":
        minutes *= 1.2
    return Visitor(
        gender=gender,
        age_band=age,
        purposes=purposes,
        support_needed=needed,
        support_given=given,
        outcome=outcome,
        reason=reason,
        payment_service=payment,
        has_card=has_card,
        uses_reader=uses_reader,
        pin_failures=pin_failures,
        card_held=uses_reader and rng.random() < p.card_held_by_staff_rate,
        card_left_behind=uses_reader and rng.random() < p.card_left_behind_rate,
        opinion=opinion,
        escalation=escalation,
        first_details=first,
        correction=correction,
        no_show=rng.random() < p.no_show_rate,
        service_seconds=minutes * 60.0,
    )


# --- records for the ground truth ----------------------------------------------------------


@dataclass(slots=True)
class VisitRecord:
    ticket_no: int
    issued_at: datetime
    visitor: Visitor
    staff_id: str | None = None
    visit_id: UUID | None = None
    called_at: datetime | None = None
    served_at: datetime | None = None
    ended_at: datetime | None = None
    disinfected: bool = False
    flagged: bool = False  # started before the previous visit's devices were disinfected
    outcome: str | None = None  # after any correction
    reason: str | None = None
    pin_warnings: int = 0
    pin_locked: bool = False
    escalation_no: int | None = None
    balked: bool = False


@dataclass
class DeskDayResult:
    municipality: str
    ward: str
    desk: str
    day: date
    events: list[Event] = field(default_factory=list)
    visits: list[VisitRecord] = field(default_factory=list)
    capacity_alerts: list[float] = field(default_factory=list)
    short_absences: int = 0
    breaches: int = 0
    breach_durations: list[float] = field(default_factory=list)  # seconds, as recorded
    masks_checked: int = 0
    incidents: list[str] = field(default_factory=list)  # kinds, in number order
    equipment_missing: list[str] = field(default_factory=list)
    disinfections: int = 0
    opened: bool = False
    extended_to: time | None = None  # the closing time the city set during the day (DESK-1)


class _Emitter:
    """Builds events with the desk's envelope and deterministic ids."""

    def __init__(self, rng: random.Random, municipality: str, ward: str | None, desk: str | None):
        self.rng = rng
        self.base = {"municipality": municipality, "ward": ward, "desk": desk}
        self.events: list[Event] = []

    def __call__(
        self, cls: type[Event], at: datetime, actor: Actor, correlation: UUID | None = None, **fields
    ) -> Event:
        event = cls(
            event_id=ids.uuid7_at(self.rng, at),
            occurred_at=at,
            recorded_at=at,
            actor=actor,
            correlation_id=correlation,
            **{**self.base, **fields},
        )
        self.events.append(event)
        return event


@dataclass
class _Supporter:
    id: str
    actor: Actor
    present: bool = True
    serving: bool = False
    last_served: float = 0.0
    due: deque = field(default_factory=deque)  # absences due: (reason, seconds, overlap_ok)


def arrival_times(rng: random.Random, p: Profile, opens: datetime, closes: datetime, n: int) -> list[datetime]:
    """`n` arrival instants in [opens, closes) with the profile's hourly intensity (morning peak)."""
    weights = dict(p.hourly_weights)
    pieces: list[tuple[datetime, datetime, float]] = []
    t = opens
    while t < closes:
        nxt = min(closes, (t + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0))
        pieces.append((t, nxt, weights.get(t.hour, 0.4) * (nxt - t).total_seconds()))
        t = nxt
    total = sum(w for _, _, w in pieces)
    out = []
    for _ in range(n):
        x = rng.random() * total
        for start, end, w in pieces:
            if x < w or (start, end, w) == pieces[-1]:
                out.append(start + timedelta(seconds=rng.random() * (end - start).total_seconds()))
                break
            x -= w
    out.sort()
    return out


def _extension(
    seed: int | str, municipality: Municipality, desk: Desk, day: date, p: Profile
) -> ev.ExtendedHoursScheduled | None:
    """On a few regular days the city extends this desk's hours (DESK-1), decided during the day:
    the manager records it late in the morning or early in the afternoon. Drawn apart from the
    day's other draws, so a day without an extension is the same as before."""
    xr = ids.unit_rng(seed, "extended-hours", municipality.code, desk.id, day.isoformat())
    if not p.extended_closes or xr.random() >= p.extended_hours_day_rate:
        return None
    close = time.fromisoformat(xr.choice(p.extended_closes))
    if close <= municipality.regular_hours.close:
        return None
    decided = datetime.combine(day, time(11, 0), TOKYO) + timedelta(minutes=xr.uniform(0, 240))
    return ev.ExtendedHoursScheduled(
        event_id=ids.uuid7_at(xr, decided),
        occurred_at=decided,
        recorded_at=decided,
        actor=Actor(id=ids.MANAGER_ID, role=Role.manager),
        municipality=municipality.code,
        day=day,
        close=close,
        desks=(desk.id,),
        note=texts.EXTENDED_HOURS_NOTE,
    )


def visitors_for_day(rng: random.Random, p: Profile, day: date, open_seconds: float, regular_seconds: float) -> int:
    n = rng.gauss(p.visitors_mean, p.visitors_sd) * p.weekday_factor[day.weekday()]
    n *= min(1.25, open_seconds / regular_seconds)
    return max(p.visitors_min if open_seconds >= regular_seconds else 5, min(p.visitors_max, round(n)))


def _pin_failures(
    emit: _Emitter, rec: VisitRecord, actor: Actor, vid: UUID | None, start: datetime, failures: int
) -> None:
    """Wrong user-auth PINs 20 s apart from ``start``: each recorded, a warning when one try is left."""
    limit = ev.PIN_LIMITS["user_auth"]
    for k in range(1, failures + 1):
        failed_at = start + timedelta(seconds=20 * k)
        locked = k >= limit
        emit(
            ev.PinFailureRecorded,
            failed_at,
            actor,
            vid,
            visit_id=vid,
            pin="user_auth",
            failures=k,
            limit=limit,
            locked=locked,
        )
        rec.pin_locked = rec.pin_locked or locked
        if limit - k == 1:
            rec.pin_warnings += 1
            emit(
                ev.PinLockWarningIssued,
                failed_at,
                actor,
                vid,
                visit_id=vid,
                pin="user_auth",
                failures=k,
                remaining=1,
                message_ja=texts.PIN_WARNING,
            )


def simulate_desk_day(
    seed: int | str,
    municipality: Municipality,
    desk: Desk,
    day: date,
    profile: Profile,
    calendar: Calendar | None = None,
) -> DeskDayResult:
    """Simulate one desk's day (see the module docstring). A closed day yields no events."""
    cal = calendar or municipality.calendar()
    hours = cal.hours(day, desk.id)
    res = DeskDayResult(municipality.code, desk.ward, desk.id, day)
    opens, closes = hours.opens, hours.closes
    if opens is None or closes is None:  # not an open day
        return res
    res.opened = True
    city_events: list[Event] = []
    if hours.kind == "regular":
        extension = _extension(seed, municipality, desk, day, profile)
        if extension is not None:
            cal = cal.with_special_days(
                (SpecialDay(day, "extended", None, extension.close, frozenset(extension.desks), extension.note or ""),)
            )
            hours = cal.hours(day, desk.id)
            opens, closes = hours.opens, hours.closes
            if opens is None or closes is None:  # an extension keeps an open day open
                raise ValueError(f"the extension of {desk.id} on {day} closed the day")
            res.extended_to = extension.close
            city_events.append(extension)
    rng = ids.unit_rng(seed, "desk", municipality.code, desk.id, day.isoformat())
    emit = _Emitter(rng, municipality.code, desk.ward, desk.id)
    dd = ev.deskday_id(desk.id, day)
    regular = datetime.combine(day, municipality.regular_hours.close) - datetime.combine(
        day, municipality.regular_hours.open
    )
    n_visitors = visitors_for_day(rng, profile, day, hours.open_seconds(), regular.total_seconds())
    manager = Actor(id=ids.MANAGER_ID, role=Role.manager)
    n_sup = profile.supporters_per_desk + (1 if n_visitors > profile.extra_supporter_above else 0)
    supporters = [_Supporter(s, Actor(id=s, role=Role.supporter)) for s in ids.staff_ids(desk.id, n_sup)]
    device = ids.device_id(desk.id)
    dev_actor = Actor(id=device, role=Role.device)
    dev_emit = _Emitter(rng, municipality.code, desk.ward, desk.id)
    reader_windows: list[tuple[datetime, datetime]] = []

    # --- before opening --------------------------------------------------------------------
    boot = opens - timedelta(minutes=52) + timedelta(seconds=rng.uniform(-120, 120))
    dev_emit(
        dv.AgentStarted,
        boot,
        dev_actor,
        agent_version=AGENT_VERSION,
        policy_version=POLICY_VERSION,
        previous_run="unclean" if rng.random() < profile.unclean_start_rate else "clean",
        outbox_depth=0,
        device_id=device,
    )
    dev_emit(
        dv.PolicyApplied,
        boot + timedelta(seconds=1),
        dev_actor,
        policy_version=POLICY_VERSION,
        sha256=POLICY_SHA,
        source="bus",
        device_id=device,
    )
    dev_emit(
        dv.UsbDeviceAttached,
        boot + timedelta(seconds=2),
        dev_actor,
        device_id=device,
        port="1-1",
        vendor_id="054c",
        product_id="0dc9",
        device_class="00",
        interface_classes=("0b",),
        manufacturer="Sony",
        product="RC-S300/P",
        present_at_start=True,
        allowed=True,
    )
    dev_emit(dv.ReaderAttached, boot + timedelta(seconds=3), dev_actor, device_id=device, reader=READER)
    started = opens - timedelta(minutes=45) + timedelta(seconds=rng.uniform(-90, 90))
    emit(ev.DayStarted, started, manager, deskday_id=dd)
    t = started + timedelta(minutes=4)
    for i, s in enumerate(supporters):
        checked_in = t + timedelta(seconds=40 * i)
        emit(ev.StaffCheckedIn, checked_in, s.actor, deskday_id=dd, staff_id=s.id, role="supporter")
        emit(
            ev.MaskStatusRecorded,
            checked_in + timedelta(seconds=5),
            s.actor,
            deskday_id=dd,
            staff_id=s.id,
            wearing=True,
        )
        res.masks_checked += 1
        dev_emit(
            dv.MonitoringNoticeShown,
            checked_in + timedelta(seconds=20),
            dev_actor,
            device_id=device,
            staff_id=s.id,
            notice_sha256=NOTICE_SHA,
        )
        dev_emit(
            dv.MonitoringNoticeAcknowledged,
            checked_in + timedelta(seconds=35),
            dev_actor,
            device_id=device,
            staff_id=s.id,
            notice_sha256=NOTICE_SHA,
        )
    prep_start = t + timedelta(minutes=2)
    prep_end = opens - timedelta(minutes=8)
    missing: tuple[str, ...] = ()
    keys = [e.key for e in municipality.equipment]
    if keys and rng.random() < profile.laptop_missing_day_rate and "laptop" in keys:
        missing = ("laptop",)
    elif keys and rng.random() < profile.equipment_missing_day_rate:
        plain = [e.key for e in municipality.equipment if not e.incident_if_missing]
        missing = (rng.choice(plain),) if plain else ()
    check_at = opens - timedelta(minutes=15)
    first = supporters[0].actor
    emit(ev.EquipmentChecked, check_at, first, deskday_id=dd, phase="opening", items_checked=len(keys), missing=missing)
    res.equipment_missing.extend(missing)
    incidents: list[str] = []
    critical = [k for k in missing if municipality.equipment_item(k).incident_if_missing]
    if critical:
        incidents.append("equipment_missing")
        no = len(incidents)
        emit(
            ev.IncidentOpened,
            check_at,
            first,
            deskday_id=dd,
            incident_no=no,
            kind="equipment_missing",
            urgency="high",
            items=tuple(critical),
            checklist=tuple(ev.ChecklistStep(key=k, text_ja=x) for k, x in texts.EQUIPMENT_CHECKLIST),
            message_ja=texts.INCIDENT_MESSAGE_EQUIPMENT,
        )
        for j, (key, _) in enumerate(texts.EQUIPMENT_CHECKLIST):
            emit(
                ev.IncidentStepDone,
                check_at + timedelta(minutes=3 + 4 * j),
                manager,
                deskday_id=dd,
                incident_no=no,
                step=key,
            )
        emit(
            ev.IncidentClosed,
            check_at + timedelta(minutes=30),
            manager,
            deskday_id=dd,
            incident_no=no,
            note=texts.INCIDENT_CLOSED_NOTE,
        )
    emit(
        ev.PreparationRecorded,
        prep_end,
        first,
        deskday_id=dd,
        start=prep_start,
        end=prep_end,
        outside_opening_hours=True,
    )

    # --- the day: a discrete-event simulation ------------------------------------------------
    # the last ticket a minute before closing: a visitor arriving at the door at 17:15 is told to come back
    arrivals = arrival_times(rng, profile, opens, closes - timedelta(minutes=1), n_visitors)
    early = rng.choice((0, 0, 1, 2, 3))  # people queueing before the doors open (tickets issued early)
    for k in range(min(early, len(arrivals))):
        arrivals[k] = opens - timedelta(seconds=rng.uniform(60, 600))
    arrivals.sort()
    records = [VisitRecord(ticket_no=0, issued_at=a, visitor=draw_visitor(rng, profile)) for a in arrivals]

    heap: list = []
    counter = itertools.count()

    def at(when: datetime, kind: str, *payload) -> None:
        heapq.heappush(heap, (when, next(counter), kind, payload))

    for rec in records:
        at(rec.issued_at, "arrive", rec)
    at(opens, "open")
    # absences: a lunch break each (staggered) on long days, and a few short ones (DESK-5)
    long_day = (closes - opens) >= timedelta(hours=6)
    for i, s in enumerate(supporters):
        if long_day:
            at(
                datetime.combine(day, time(11, 15), TOKYO) + timedelta(minutes=55 * i),
                "absence_due",
                s,
                ("break", 45 * 60.0, False),
            )
        for _ in range(rng.randint(*profile.restroom_absences)):
            when = opens + timedelta(seconds=rng.uniform(0.1, 0.92) * (closes - opens).total_seconds())
            at(when, "absence_due", s, ("restroom", _minutes(rng, 4, 11), False))
    if len(supporters) >= 2 and rng.random() < profile.breach_day_rate:
        when = opens + timedelta(seconds=rng.uniform(0.55, 0.8) * (closes - opens).total_seconds())
        at(when, "absence_due", supporters[0], ("restroom", _minutes(rng, 6, 10), True))
        for s in supporters[1:]:
            at(when + timedelta(minutes=1), "absence_due", s, ("fetching_supplies", _minutes(rng, 5, 8), True))

    queue: deque[VisitRecord] = deque()
    station = {"busy": False, "open": False, "pending": None}  # pending: last served visit not disinfected
    breach = {"no": 0, "since": None}
    issued = 0
    marks = municipality.capacity_marks(desk.id)
    escalations = 0

    def present() -> list[_Supporter]:
        return [s for s in supporters if s.present]

    def within_hours(when: datetime) -> bool:
        return hours.is_open_at(when)

    def try_absence(s: _Supporter, now: datetime) -> None:
        if not s.due or not s.present or s.serving:
            return
        if now >= closes - timedelta(minutes=10):
            s.due.clear()  # too late in the day: nobody leaves now
            return
        reason, seconds, overlap_ok = s.due[0]
        others = [o for o in present() if o is not s]
        if not others and not overlap_ok:
            return
        s.due.popleft()
        s.present = False
        res.short_absences += 1
        emit(
            ev.ShortAbsenceStarted,
            now,
            s.actor,
            deskday_id=dd,
            staff_id=s.id,
            reason=reason,
            expected_minutes=max(1, min(60, round(seconds / 60))),
        )
        if not present() and within_hours(now) and breach["since"] is None:
            breach["no"] += 1
            breach["since"] = now
            emit(
                ev.StaffingBreachDetected,
                now,
                s.actor,
                deskday_id=dd,
                breach_no=breach["no"],
                since=now,
                absence_notice_shown=True,
                trigger="staffing_change",
                message_ja=texts.BREACH_MESSAGE,
            )
        at(now + timedelta(seconds=seconds), "absence_end", s, seconds)

    def choose() -> _Supporter | None:
        free = [s for s in present() if not s.serving]
        if not free:
            return None
        free.sort(key=lambda s: (bool(s.due), s.last_served))  # not about to leave, longest since serving
        return free[0]

    def try_call(now: datetime) -> None:
        if station["busy"] or not station["open"] or not queue:
            return
        s = choose()
        if s is None:
            return
        rec = queue.popleft()
        station["busy"] = True
        s.serving = True
        rec.staff_id = s.id
        rec.called_at = now
        rec.visit_id = ids.uuid7_at(rng, now)
        emit(
            ev.TicketCalled,
            now,
            s.actor,
            rec.visit_id,
            deskday_id=dd,
            ticket_no=rec.ticket_no,
            staff_id=s.id,
            visit_id=rec.visit_id,
        )
        waited_long = (now - rec.issued_at).total_seconds() > 3600
        if rec.visitor.no_show or (waited_long and rng.random() < profile.no_show_after_long_wait):
            recall = now + timedelta(seconds=rng.uniform(60, 120))
            gone = recall + timedelta(seconds=rng.uniform(60, 150))
            emit(ev.TicketRecalled, recall, s.actor, rec.visit_id, deskday_id=dd, ticket_no=rec.ticket_no, call_count=2)
            emit(ev.TicketNoShow, gone, s.actor, rec.visit_id, deskday_id=dd, ticket_no=rec.ticket_no)
            at(gone + timedelta(seconds=5), "station_free", s)
        else:
            at(now + timedelta(seconds=rng.uniform(10, 40)), "serve", s, rec)

    def serve(s: _Supporter, rec: VisitRecord, now: datetime) -> None:
        nonlocal escalations
        v = rec.visitor
        vid = rec.visit_id
        waited = (now - rec.issued_at).total_seconds()
        rec.served_at = now
        s.last_served = now.timestamp()
        pending = station["pending"]
        emit(
            ev.TicketServed,
            now,
            s.actor,
            vid,
            deskday_id=dd,
            ticket_no=rec.ticket_no,
            visit_id=vid,
            staff_id=s.id,
            waited_seconds=waited,
        )
        if pending is not None:
            rec.flagged = True
            emit(
                ev.VisitStartedBeforeDisinfection,
                now,
                s.actor,
                vid,
                deskday_id=dd,
                visit_id=vid,
                previous_visit_id=pending,
            )
        station["pending"] = vid
        emit(
            ev.VisitStarted,
            now,
            s.actor,
            vid,
            visit_id=vid,
            deskday_id=dd,
            ticket_no=rec.ticket_no,
            staff_id=s.id,
            waited_seconds=waited,
            disinfection_pending=pending is not None,
        )
        d = v.service_seconds
        step = lambda frac: now + timedelta(seconds=d * frac)  # noqa: E731 - an instant inside the visit
        if v.first_details:
            emit(
                ev.VisitDetailsRecorded,
                step(0.05),
                s.actor,
                vid,
                visit_id=vid,
                gender=v.gender,
                age_band=v.age_band,
                purposes=v.first_details,
                support_needed=False,
                support_given=False,
            )
        emit(
            ev.VisitDetailsRecorded,
            step(0.1),
            s.actor,
            vid,
            visit_id=vid,
            gender=v.gender,
            age_band=v.age_band,
            purposes=v.purposes,
            support_needed=v.support_needed,
            support_given=v.support_given,
            payment_service=v.payment_service,
        )
        if v.uses_reader:
            start_read = step(0.2)
            if reader_windows and reader_windows[-1][1] > start_read:
                start_read = reader_windows[-1][1] + timedelta(seconds=5)
            removed = max(start_read + timedelta(seconds=20 * v.pin_failures + 40), step(0.65))
            reader_windows.append((start_read, removed))
            if v.card_held:
                emit(
                    ev.CardHandedToStaff,
                    max(now + timedelta(seconds=1), start_read - timedelta(seconds=10)),
                    s.actor,
                    vid,
                    visit_id=vid,
                )
            dev_emit(
                dv.CardInserted,
                start_read,
                dev_actor,
                vid,
                device_id=device,
                reader=READER,
                atr=CARD_ATR,
                visit_id=str(vid),
            )
            _pin_failures(emit, rec, s.actor, vid, start_read, v.pin_failures)
            if not v.card_left_behind:
                dev_emit(
                    dv.CardRemoved,
                    removed,
                    dev_actor,
                    vid,
                    device_id=device,
                    reader=READER,
                    atr=CARD_ATR,
                    dwell_s=(removed - start_read).total_seconds(),
                )
            if v.card_held:
                emit(ev.CardReturned, removed + timedelta(seconds=10), s.actor, vid, visit_id=vid)
            end = max(now + timedelta(seconds=d), removed + timedelta(seconds=30))
        else:
            # on the citizen's smartphone
            _pin_failures(emit, rec, s.actor, vid, step(0.3), v.pin_failures)
            end = max(now + timedelta(seconds=d), step(0.3) + timedelta(seconds=20 * v.pin_failures + 30))
        if v.opinion:
            kind, opinion_step, text = v.opinion
            emit(
                ev.OpinionRecorded,
                now + (end - now) * 0.85,
                s.actor,
                vid,
                visit_id=vid,
                kind=kind,
                step=opinion_step,
                text=text,
            )
        if v.escalation:
            category, summary, to_city = v.escalation
            raised = now + (end - now) * 0.5
            escalations += 1
            rec.escalation_no = escalations
            esc = {"deskday_id": dd, "escalation_no": escalations}
            emit(ev.EscalationRaised, raised, s.actor, vid, category=category, summary=summary, visit_id=vid, **esc)
            ack = raised + timedelta(seconds=rng.uniform(120, 480))
            emit(ev.EscalationAcknowledged, ack, manager, vid, **esc)
            if to_city:
                asked = ack + timedelta(seconds=rng.uniform(300, 900))
                emit(
                    ev.EscalationEscalatedToCity,
                    asked,
                    manager,
                    vid,
                    summary=rng.choice(texts.ESCALATION_TO_CITY),
                    **esc,
                )
                emit(
                    ev.EscalationResolved,
                    asked + timedelta(seconds=rng.uniform(1200, 5400)),
                    manager,
                    vid,
                    outcome=rng.choice(texts.ESCALATION_OUTCOMES["city"]),
                    resolved_by="city",
                    **esc,
                )
            else:
                emit(
                    ev.EscalationResolved,
                    ack + timedelta(seconds=rng.uniform(300, 1800)),
                    manager,
                    vid,
                    outcome=rng.choice(texts.ESCALATION_OUTCOMES["manager"]),
                    resolved_by="manager",
                    **esc,
                )
        emit(
            ev.VisitEnded,
            end,
            s.actor,
            vid,
            visit_id=vid,
            outcome=v.outcome,
            reason=v.reason,
            service_seconds=(end - now).total_seconds(),
        )
        rec.ended_at = end
        rec.outcome, rec.reason = v.outcome, v.reason
        if v.card_left_behind:
            inserted, _ = reader_windows[-1]
            noticed = end + timedelta(seconds=30)
            dev_emit(
                dv.CardLeftInReader,
                noticed,
                dev_actor,
                vid,
                device_id=device,
                reader=READER,
                atr=CARD_ATR,
                inserted_at=inserted,
                reason="visit_ended",
                visit_id=str(vid),
                seconds_in_reader=(noticed - inserted).total_seconds(),
            )
            incidents.append("card_left_behind")
            no = len(incidents)
            found = end + timedelta(seconds=60)
            reader_windows[-1] = (inserted, found + timedelta(seconds=20))  # the card stays in the reader until found
            emit(
                ev.IncidentOpened,
                found,
                s.actor,
                vid,
                deskday_id=dd,
                incident_no=no,
                kind="card_left_behind",
                urgency="urgent",
                visit_id=vid,
                message_ja=texts.INCIDENT_MESSAGE_CARD,
                checklist=tuple(ev.ChecklistStep(key=k, text_ja=x) for k, x in texts.CARD_CHECKLIST),
            )
            emit(ev.CardLeftBehind, found, s.actor, vid, visit_id=vid, incident_no=no)
            dev_emit(
                dv.CardRemoved,
                found + timedelta(seconds=20),
                dev_actor,
                vid,
                device_id=device,
                reader=READER,
                atr=CARD_ATR,
                dwell_s=(found + timedelta(seconds=20) - inserted).total_seconds(),
            )
            for j, (key, _) in enumerate(texts.CARD_CHECKLIST):
                emit(
                    ev.IncidentStepDone,
                    found + timedelta(minutes=2 + 10 * j),
                    manager,
                    vid,
                    deskday_id=dd,
                    incident_no=no,
                    step=key,
                )
            emit(
                ev.IncidentClosed,
                found + timedelta(minutes=40),
                manager,
                vid,
                deskday_id=dd,
                incident_no=no,
                note=texts.INCIDENT_CLOSED_NOTE,
            )
        at(end, "visit_end", s, rec)

    while heap:
        now, _, kind, payload = heapq.heappop(heap)
        if kind == "arrive":
            (rec,) = payload
            ahead = len(queue) + (1 if station["busy"] else 0)
            if ahead * profile.minutes_per_visitor > profile.balk_minutes and rng.random() < profile.balk_rate:
                rec.balked = True  # told the wait and went home without a ticket
                continue
            issued += 1
            rec.ticket_no = issued
            issuer = next((s for s in supporters if s.present), supporters[0])
            emit(ev.TicketIssued, now, issuer.actor, deskday_id=dd, ticket_no=issued)
            for threshold, mark in marks:
                if issued == mark:
                    res.capacity_alerts.append(threshold)
                    emit(
                        ev.CapacityThresholdReached,
                        now,
                        issuer.actor,
                        deskday_id=dd,
                        threshold=threshold,
                        visitors=issued,
                        expected_max=desk.expected_max_visitors,
                        message_ja=texts.CAPACITY_MESSAGE,
                    )
            queue.append(rec)
            try_call(now)
        elif kind == "open":
            station["open"] = True
            try_call(now)
        elif kind == "absence_due":
            s, absence = payload
            s.due.append(absence)
            try_absence(s, now)
        elif kind == "absence_end":
            s, seconds = payload
            s.present = True
            emit(ev.ShortAbsenceEnded, now, s.actor, deskday_id=dd, staff_id=s.id, absent_seconds=seconds)
            if breach["since"] is not None:
                duration = (now - breach["since"]).total_seconds()
                res.breach_durations.append(duration)
                emit(
                    ev.StaffingBreachEnded,
                    now,
                    s.actor,
                    deskday_id=dd,
                    breach_no=breach["no"],
                    duration_seconds=duration,
                    ended_by="staff_on_duty",
                )
                breach["since"] = None
            for o in supporters:
                try_absence(o, now)
            try_call(now)
        elif kind == "serve":
            s, rec = payload
            serve(s, rec, now)
        elif kind == "visit_end":
            s, rec = payload
            if rng.random() < profile.disinfection_miss_rate:
                at(now + timedelta(seconds=8), "station_free", s)  # DESK-8 missed: the next start is flagged
            else:
                done = now + timedelta(seconds=rng.uniform(15, 40))
                rec.disinfected = True
                res.disinfections += 1
                emit(ev.DevicesDisinfected, done, s.actor, rec.visit_id, deskday_id=dd, after_visit_id=rec.visit_id)
                at(done + timedelta(seconds=3), "station_free", s, rec.visit_id)
        elif kind == "station_free":
            s = payload[0]
            if len(payload) > 1 and station["pending"] == payload[1]:
                station["pending"] = None
            station["busy"] = False
            s.serving = False
            for o in [s, *supporters]:
                try_absence(o, now)
            try_call(now)
    res.breaches = breach["no"]
    assert not queue, "every ticket is served or marked a no-show"

    # --- after closing ---------------------------------------------------------------------
    last = max([closes] + [e.occurred_at for e in emit.events])
    manager_done = max(e.occurred_at for e in emit.events)
    corrected_at = max(closes, last) + timedelta(minutes=3)
    for rec in records:
        if rec.served_at is not None and rec.visitor.correction:
            corrected_at += timedelta(seconds=30)
            emit(
                ev.VisitCorrected,
                corrected_at,
                Actor(id=rec.staff_id or supporters[0].id, role=Role.supporter),
                rec.visit_id,
                visit_id=rec.visit_id,
                outcome="completed",
                note=None,
            )
            rec.outcome, rec.reason = "completed", None
    cleanup_start = max(last, corrected_at) + timedelta(minutes=2)
    cleanup_end = cleanup_start + timedelta(minutes=rng.uniform(12, 20))
    emit(
        ev.CleanupRecorded,
        cleanup_end,
        first,
        deskday_id=dd,
        start=cleanup_start,
        end=cleanup_end,
        outside_opening_hours=True,
    )
    emit(
        ev.EquipmentChecked,
        cleanup_end + timedelta(seconds=30),
        first,
        deskday_id=dd,
        phase="closing",
        items_checked=len(keys),
        missing=(),
    )
    for i, s in enumerate(supporters):
        emit(
            ev.StaffCheckedOut,
            cleanup_end + timedelta(minutes=1, seconds=20 * i),
            s.actor,
            deskday_id=dd,
            staff_id=s.id,
        )
    day_end = max(cleanup_end + timedelta(minutes=5), manager_done + timedelta(minutes=1))
    emit(ev.DayEnded, day_end, manager, deskday_id=dd)
    res.incidents = incidents

    # --- the agent: violations, heartbeats, shutdown (SEC-2) ------------------------------------
    shutdown = cleanup_end + timedelta(minutes=3)
    if rng.random() < profile.process_violation_day_rate:
        when = opens + timedelta(seconds=rng.uniform(0.1, 0.9) * (closes - opens).total_seconds())
        dev_emit(
            dv.ProcessViolation,
            when,
            dev_actor,
            device_id=device,
            pid=rng.randint(2000, 60000),
            name="transmission-gtk",
            path="/usr/bin/transmission-gtk",
            parent_name="gnome-shell",
            os_uid=1000,
            enforce=True,
            enforced=True,
        )
    if rng.random() < profile.usb_violation_day_rate:
        when = opens + timedelta(seconds=rng.uniform(0.1, 0.9) * (closes - opens).total_seconds())
        usb = {
            "port": "1-2",
            "vendor_id": "0781",
            "product_id": "5567",
            "device_class": "00",
            "interface_classes": ("08",),
            "manufacturer": "SanDisk",
            "product": "Cruzer Blade",
        }
        dev_emit(
            dv.UsbViolation,
            when,
            dev_actor,
            device_id=device,
            kind="mass_storage",
            block_attempted=True,
            blocked=True,
            **usb,
        )
        dev_emit(dv.UsbDeviceRemoved, when + timedelta(minutes=2), dev_actor, device_id=device, **usb)
    step = timedelta(minutes=profile.heartbeat_minutes)
    hb = boot + step
    windows = iter(sorted(reader_windows))
    window = next(windows, None)
    while hb < shutdown:
        while window is not None and window[1] <= hb:
            window = next(windows, None)
        present_card = window is not None and window[0] <= hb < window[1]
        dev_emit(
            dv.Heartbeat,
            hb,
            dev_actor,
            device_id=device,
            agent_version=AGENT_VERSION,
            policy_version=POLICY_VERSION,
            outbox_depth=1,
            outbox_bytes=520,
            link_up=True,
            uptime_s=int((hb - boot).total_seconds()),
            card_present=present_card,
        )
        hb += step
    dev_emit(
        dv.AgentStopped,
        shutdown,
        dev_actor,
        device_id=device,
        reason="signal",
        uptime_s=int((shutdown - boot).total_seconds()),
    )

    events = city_events + emit.events + dev_emit.events
    events.sort(key=lambda e: e.occurred_at)  # stable: same-instant events keep their causal order
    res.events = events
    res.visits = [r for r in records if not r.balked]
    return res


def staff_setup_events(
    seed: int | str, municipality: Municipality, desks: list[Desk], at: datetime, supporters_per_desk: int
) -> list[Event]:
    """Staff accounts and their completed training (ORG-4) for the simulated staff, so the desk
    service would let them check in. Recorded once, before the first simulated day."""
    rng = ids.unit_rng(seed, "setup", municipality.code)
    emit = _Emitter(rng, municipality.code, None, None)
    trainer = Actor(id=ids.MANAGER_ID, role=Role.manager)
    staff: list[tuple[str, tuple[Role, ...], tuple[str, ...]]] = [
        (ids.MANAGER_ID, (Role.manager,), ()),
        (ids.ROUNDER_ID, (Role.rounder,), ()),
        *((op, (Role.operator,), ()) for op in ids.OPERATOR_IDS),
    ]
    for desk in desks:
        for s in ids.staff_ids(desk.id, supporters_per_desk + 1):
            staff.append((s, (Role.supporter,), (desk.ward,)))
    t = at
    for staff_id, roles, wards in staff:
        emit(StaffAccountCreated, t, trainer, staff_id=staff_id, roles=roles, wards=wards)
        for item in TRAINING_ITEMS:
            t += timedelta(seconds=1)
            emit(TrainingItemCompleted, t, trainer, staff_id=staff_id, item=item, hours=2.0)
        t += timedelta(seconds=1)
        emit(TrainingTestRecorded, t, trainer, staff_id=staff_id, score=rng.randint(80, 100), passed=True)
        t += timedelta(seconds=1)
    return emit.events
