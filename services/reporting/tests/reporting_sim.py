"""A simulated week at the desks and the phone line: events as the desk and calls services write
them, plus the ground truth counted directly while generating (seeded, so every run is the same).

The truth here is the test's own count, made from the generator's records (not from the stream,
not with the projection's or the verifier's code): each desk-day's and line-day's expected
figures under the report's figure keys.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from uuid6 import uuid7

from madoguchi_shared.calendar import TOKYO, SpecialDay
from madoguchi_shared.events import calls as cl
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events.base import Actor, Event, Role
from madoguchi_shared.municipality import Municipality, load_municipality

GENDERS = ["female", "male", "other", "not_stated"]
AGES = ["under_20", "20s", "30s", "40s", "50s", "60s", "70s", "80_and_over"]
PURPOSES = ["mykey_pc", "mykey_smartphone", "mynapoint_application", "health_insurance_registration", "inquiry_only"]
REASONS = ["pin_locked_or_forgotten", "card_not_brought", "card_not_issued", "phone_not_nfc", "other"]
PAYMENTS = ["electronic_money", "qr_code", "credit_card", None]
STEPS = ["pin_entry", "card_reading", "app_install", "mykey_id_setup", "payment_service_choice"]
CATEGORIES = [
    "mykey_id.setup",
    "mynapoint.application",
    "card.issue",
    "pin",
    "payment_services",
    "desk_locations_hours",
]
RESOLUTIONS = ["answered_on_spot"] * 6 + [
    "referred_national_call_centre",
    "referred_payment_provider",
    "guided_to_ward_desk",
    "escalated_callback",
]
LINE = "main"
WEEK_START = dt.date(2021, 3, 29)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    n = len(v)
    return {
        "n": n,
        "mean_s": float((Decimal(sum(v)) / n / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)),
        "p90_s": v[math.ceil(Decimal(9 * n) / 10) - 1] / 1000,
        "max_s": v[-1] / 1000,
    }


def share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


@dataclass
class SimVisit:
    visit_id: Any
    desk: str
    ward: str
    day: dt.date
    issued_at: dt.datetime
    waited: float
    gender: str
    age: str
    purposes: tuple[str, ...]
    needed: bool
    given: bool
    payment: str | None
    outcome: str
    reason: str | None
    service: float
    corrections: int = 0


@dataclass
class SimCall:
    call_id: Any
    day: dt.date
    at: dt.datetime
    in_hours: bool
    conn: str
    wait: int = 0
    closed: cl.CallClosed | None = None
    overflow: str | None = None  # the offer's reason: all_seats_busy | out_of_hours
    cb_chosen: bool = False
    choice: str | None = None  # the caller's choice at the offer
    repeat_of: str | None = None  # the reference of the earlier call this one repeats


@dataclass
class Week:
    municipality: str
    config: Municipality
    days: list[dt.date]
    events: list[Event] = field(default_factory=list)
    visits: list[SimVisit] = field(default_factory=list)
    # people who took a ticket and left before being served: (desk, day, ticket issued at)
    unserved: list[tuple[str, dt.date, dt.datetime]] = field(default_factory=list)
    desk_facts: dict[tuple[str, dt.date], Counter] = field(default_factory=dict)
    calls: list[SimCall] = field(default_factory=list)
    line_facts: dict[dt.date, Counter] = field(default_factory=dict)

    # --- the expected figures, counted from the generator's records ----------------------------

    def desk_truth(self, desk: str, day: dt.date) -> dict[str, Any]:
        vs = [v for v in self.visits if v.desk == desk and v.day == day]
        f = self.desk_facts.get((desk, day), Counter())
        t: dict[str, Any] = Counter()
        gone = [issued for d, dd, issued in self.unserved if d == desk and dd == day]
        # 仕様書 4(5)オ: 来庁者数 is everyone who came, served or not
        t["visitors"] = len(vs) + len(gone)
        t["served"] = len(vs)
        t["left_unserved"] = len(gone)
        t["by_gender.unknown"] = t["by_age_band.unknown"] = len(gone)
        for issued in gone:
            t[f"by_hour.{issued.astimezone(TOKYO).hour:02d}"] += 1
        t["details_recorded"] = len(vs)
        for v in vs:
            t[f"by_hour.{v.issued_at.astimezone(TOKYO).hour:02d}"] += 1
            t[f"by_gender.{v.gender}"] += 1
            t[f"by_age_band.{v.age}"] += 1
            t["support_needed"] += v.needed
            t["support_given"] += v.given
            t[v.outcome] += 1
            if v.reason:
                t[f"not_completed_reasons.{v.reason}"] += 1
            if v.payment:
                t[f"payment_services.{v.payment}"] += 1
            for p in v.purposes:
                t[f"by_purpose.{p}"] += 1
                t[f"outcomes_by_purpose.{p}.{v.outcome}"] += 1
            t["visit_corrections"] += v.corrections
        t = dict(t)
        t["in_service"] = 0
        t["support_needed_ratio"] = share(t.get("support_needed", 0), t["visitors"])
        t["support_given_ratio"] = share(t.get("support_given", 0), t["visitors"])
        t["support_given_of_needed"] = share(t.get("support_given", 0), t.get("support_needed", 0))
        for k, val in stats([ms(v.waited) for v in vs]).items():
            t[f"wait.{k}"] = val
        for k, val in stats([ms(v.service) for v in vs]).items():
            t[f"service.{k}"] = val
        for k, n in f.items():
            if k != "breach_ms":
                t[k] = n
        t["staffing_breach_s"] = (f.get("breach_ms", 0) + 500) // 1000
        t["disinfection_compliance"] = share(len(vs) - f.get("disinfection_misses", 0), len(vs))
        return t

    def line_truth(self, day: dt.date) -> dict[str, Any]:
        cs = [c for c in self.calls if c.day == day]
        f = self.line_facts.get(day, Counter())
        t: dict[str, Any] = Counter()
        t["received"] = len(cs)
        for c in cs:
            t[f"by_hour.{c.at.astimezone(TOKYO).hour:02d}"] += 1
            t["received_in_hours"] += c.in_hours
            t[c.conn] += 1
            t["overflow_offered"] += c.overflow == "all_seats_busy"
            t["after_hours_guided"] += c.overflow == "out_of_hours"
            if c.choice:
                t[f"offer_choices.{c.choice}"] += 1
            t["repeat_calls"] += c.repeat_of is not None
            t["missed_callback_chosen"] += c.cb_chosen
            if c.closed is not None:
                e = c.closed
                t["closed"] += 1
                t[f"by_resolution.{e.resolution}"] += 1
                for cat in e.categories:
                    t[f"by_category.{cat}"] += 1
                if e.provider_category:
                    t[f"by_provider.{e.provider_category}"] += 1
                if e.ward:
                    t[f"guided_ward.{e.ward}"] += 1
                t["escalations"] += e.resolution == "escalated_callback"
                t["opinions"] += len(e.opinions)
                for op in e.opinions:
                    t[f"opinions_by_kind.{op.kind}"] += 1
                    if op.step:
                        t[f"difficulties_by_step.{op.step}"] += 1
        t = dict(t)
        never = t.get("missed", 0) + t.get("abandoned", 0) + t.get("out_of_hours", 0)
        t["never_connected"] = never
        # the people behind the unconnected calls: a repeat call (linked by reference) is the same caller
        first = {cl.call_reference(c.call_id): c.repeat_of for c in self.calls}

        def root(ref: str) -> str:
            while first.get(ref):
                ref = first[ref]
            return ref

        t["never_connected_people"] = len(
            {root(cl.call_reference(c.call_id)) for c in cs if c.conn in ("missed", "abandoned", "out_of_hours")}
        )
        t["never_connected_share"] = share(never, len(cs))
        t["answer_rate"] = share(t.get("answered", 0), len(cs))
        for k, v in stats([c.wait * 1000 for c in cs if c.conn == "answered"]).items():
            t[f"answer_wait.{k}"] = v
        for k, v in stats([c.closed.duration_seconds * 1000 for c in cs if c.closed is not None]).items():
            t[f"duration.{k}"] = v
        for k, n in f.items():
            t[k] = n
        return t


def _at(day: dt.date, t: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, t, TOKYO)


def simulate(
    municipality: str,
    week_start: dt.date = dt.date(2021, 3, 29),
    *,
    seed: int = 7,
    visits_per_day: tuple[int, int] = (45, 75),
    desks: int | None = None,
    days: int = 7,
) -> Week:
    """Generate a week. Default: Sapporo's 10 desks, the week of 2021-03-29 (with the extended
    days 4/1, 4/2 and the Sunday opening 4/4), ~60 visits per desk and day, the phone line."""
    rng = random.Random(seed)
    config = load_municipality("011002", code=municipality)
    # the city extends one desk's hours at run time (DESK-1): the reports must show those hours
    extended = dk.ExtendedHoursScheduled(
        municipality=municipality,
        day=week_start + dt.timedelta(days=1),
        close=dt.time(19, 30),
        desks=("kita-1",),
        occurred_at=_at(week_start, dt.time(8, 0)),
    )
    calendar = config.calendar(
        special_days=(SpecialDay(extended.day, "extended", None, extended.close, frozenset(extended.desks)),)
    )
    phone = config.phone_calendar()
    week = Week(municipality, config, [week_start + dt.timedelta(days=i) for i in range(days)])
    week.events.append(extended)
    for day in week.days:
        for desk in config.desks[:desks]:
            hours = calendar.hours(day, desk.id)
            if hours.open_day:
                _desk_day(rng, week, desk.id, desk.ward, day, hours, visits_per_day)
        if phone.hours(day).open_day:
            _line_day(rng, week, day, phone.hours(day))
    return week


def _desk_day(rng: random.Random, week: Week, desk: str, ward: str, day: dt.date, hours, per_day) -> None:
    m = week.municipality
    supporter = Actor(id=f"S{rng.randint(100, 999)}", role=Role.supporter)
    manager = Actor(id="M001", role=Role.manager)
    did = dk.deskday_id(desk, day)
    env = {"municipality": m, "ward": ward, "desk": desk, "actor": supporter}
    facts: Counter = week.desk_facts.setdefault((desk, day), Counter())
    ev = week.events
    opens, closes = hours.opens, hours.closes
    span = (closes - opens).total_seconds()
    n = int(rng.randint(*per_day) * min(1.0, span / 30600))
    ev.append(dk.DayStarted(deskday_id=did, occurred_at=opens - dt.timedelta(minutes=5), **{**env, "actor": manager}))
    ev.append(dk.StaffCheckedIn(deskday_id=did, staff_id=supporter.id, role="supporter", occurred_at=opens, **env))
    mask_ok = rng.random() > 0.1
    ev.append(dk.MaskStatusRecorded(deskday_id=did, staff_id=supporter.id, wearing=mask_ok, occurred_at=opens, **env))
    facts["masks_checked"] += 1
    facts["masks_missing"] += not mask_ok
    arrivals = sorted(opens + dt.timedelta(seconds=rng.uniform(0, span - 1)) for _ in range(n))
    escalation_no = 0
    incident_no = 0
    for ticket_no, issued in enumerate(arrivals, start=1):
        ev.append(dk.TicketIssued(deskday_id=did, ticket_no=ticket_no, occurred_at=issued, **env))
        facts["tickets_issued"] += 1
        vid = uuid7()
        waited = rng.uniform(0, 2400)
        served = issued + dt.timedelta(seconds=waited)
        ev.append(
            dk.TicketCalled(
                deskday_id=did, ticket_no=ticket_no, staff_id=supporter.id, visit_id=vid, occurred_at=served, **env
            )
        )
        if rng.random() < 0.05:
            ev.append(
                dk.TicketNoShow(
                    deskday_id=did, ticket_no=ticket_no, occurred_at=served + dt.timedelta(minutes=3), **env
                )
            )
            facts["no_shows"] += 1
            week.unserved.append((desk, day, issued))
            continue
        ev.append(
            dk.TicketServed(
                deskday_id=did,
                ticket_no=ticket_no,
                visit_id=vid,
                staff_id=supporter.id,
                waited_seconds=waited,
                occurred_at=served,
                **env,
            )
        )
        venv = {**env, "occurred_at": served}
        if rng.random() < 0.05:
            ev.append(
                dk.VisitStartedBeforeDisinfection(deskday_id=did, visit_id=vid, previous_visit_id=uuid7(), **venv)
            )
            facts["disinfection_misses"] += 1
        ev.append(
            dk.VisitStarted(
                visit_id=vid, deskday_id=did, ticket_no=ticket_no, staff_id=supporter.id, waited_seconds=waited, **venv
            )
        )
        v = SimVisit(
            vid,
            desk,
            ward,
            day,
            issued,
            waited,
            rng.choice(GENDERS),
            rng.choice(AGES),
            tuple(rng.sample(PURPOSES, rng.choice((1, 1, 2)))),
            needed=rng.random() < 0.75,
            given=False,
            payment=rng.choice(PAYMENTS),
            outcome="completed",
            reason=None,
            service=rng.uniform(90, 1800),
        )
        v.given = v.needed and rng.random() < 0.95
        ev.append(
            dk.VisitDetailsRecorded(
                visit_id=vid,
                gender=v.gender,
                age_band=v.age,
                purposes=v.purposes,
                support_needed=v.needed,
                support_given=v.given,
                payment_service=v.payment,
                **venv,
            )
        )
        if rng.random() < 0.06:
            ev.append(dk.PinFailureRecorded(visit_id=vid, pin="user_auth", failures=1, limit=3, locked=False, **venv))
            ev.append(dk.PinFailureRecorded(visit_id=vid, pin="user_auth", failures=2, limit=3, locked=False, **venv))
            ev.append(
                dk.PinLockWarningIssued(
                    visit_id=vid,
                    pin="user_auth",
                    failures=2,
                    remaining=1,
                    message_ja="あと1回でロックされます。",
                    **venv,
                )
            )
            facts["pin_failures"] += 2
            facts["pin_lock_warnings"] += 1
            if rng.random() < 0.3:
                ev.append(
                    dk.PinFailureRecorded(visit_id=vid, pin="user_auth", failures=3, limit=3, locked=True, **venv)
                )
                facts["pin_failures"] += 1
                facts["pin_locks"] += 1
        if rng.random() < 0.1:
            ev.append(dk.CardHandedToStaff(visit_id=vid, **venv))
            ev.append(dk.CardReturned(visit_id=vid, **venv))
            facts["cards_handed"] += 1
        if rng.random() < 0.12:
            step = rng.choice(STEPS + [None])
            kind = rng.choice(["opinion", "request", "topic", "difficulty"])
            ev.append(
                dk.OpinionRecorded(
                    visit_id=vid, kind=kind, step=step, text=f"暗証番号の入力で戸惑われた（番号札{ticket_no}）", **venv
                )
            )
            facts["opinions"] += 1
            facts[f"opinions_by_kind.{kind}"] += 1
            if step:
                facts[f"difficulties_by_step.{step}"] += 1
        if rng.random() < 0.03:
            escalation_no += 1
            cat = rng.choice(["complaint", "procedure", "card", "city_decision"])
            ev.append(
                dk.EscalationRaised(
                    deskday_id=did,
                    escalation_no=escalation_no,
                    category=cat,
                    summary="待ち時間についてのご不満。業務責任者が説明し了承を得た。",
                    visit_id=vid,
                    **venv,
                )
            )
            facts["escalations"] += 1
            facts[f"escalations_by_category.{cat}"] += 1
            if cat == "city_decision":
                ev.append(
                    dk.EscalationEscalatedToCity(
                        deskday_id=did,
                        escalation_no=escalation_no,
                        summary="市の判断を仰ぐ",
                        **{**venv, "actor": manager},
                    )
                )
                facts["escalations_to_city"] += 1
        if rng.random() < 0.15:
            v.outcome, v.reason = "not_completed", rng.choice(REASONS)
        ended = served + dt.timedelta(seconds=v.service)
        if rng.random() < 0.01:
            incident_no += 1
            ev.append(
                dk.IncidentOpened(
                    deskday_id=did,
                    incident_no=incident_no,
                    kind="card_left_behind",
                    urgency="urgent",
                    visit_id=vid,
                    message_ja="カードの置き忘れ",
                    **{**env, "occurred_at": ended},
                )
            )
            ev.append(dk.CardLeftBehind(visit_id=vid, incident_no=incident_no, **{**env, "occurred_at": ended}))
            facts["incidents.card_left_behind"] += 1
            facts["card_incidents"] += 1
        ev.append(
            dk.VisitEnded(
                visit_id=vid,
                outcome=v.outcome,
                reason=v.reason,
                service_seconds=v.service,
                **{**env, "occurred_at": ended},
            )
        )
        if rng.random() < 0.95:
            ev.append(dk.DevicesDisinfected(deskday_id=did, after_visit_id=vid, **{**env, "occurred_at": ended}))
            facts["disinfections"] += 1
        week.visits.append(v)
    if rng.random() < 0.3:
        since = opens + dt.timedelta(hours=2)
        ev.append(
            dk.StaffingBreachDetected(
                deskday_id=did,
                breach_no=1,
                since=since,
                absence_notice_shown=False,
                trigger="timer",
                message_ja="支援員不在",
                **{**env, "occurred_at": since},
            )
        )
        secs = rng.uniform(30, 600)
        ev.append(
            dk.StaffingBreachEnded(
                deskday_id=did,
                breach_no=1,
                duration_seconds=secs,
                ended_by="staff_on_duty",
                **{**env, "occurred_at": since + dt.timedelta(seconds=secs)},
            )
        )
        facts["staffing_breaches"] += 1
        facts["breach_ms"] += ms(secs)
    if n >= 64:
        ev.append(
            dk.CapacityThresholdReached(
                deskday_id=did,
                threshold=0.8,
                visitors=64,
                expected_max=80,
                message_ja="想定の8割に達しました",
                **{**env, "occurred_at": closes},
            )
        )
        facts["capacity_alerts"] += 1
    ev.append(
        dk.DayEnded(deskday_id=did, **{**env, "actor": manager, "occurred_at": closes + dt.timedelta(minutes=10)})
    )


def _line_day(rng: random.Random, week: Week, day: dt.date, hours) -> None:
    m = week.municipality
    op = Actor(id=f"O{rng.randint(10, 99)}", role=Role.operator)
    env = {"municipality": m, "actor": op}
    facts: Counter = week.line_facts.setdefault(day, Counter())
    ev = week.events
    opens, closes = hours.opens, hours.closes
    ev.append(cl.OperatorSignedIn(line=LINE, day=day, seat="seat-1", operator=op.id, occurred_at=opens, **env))
    n = rng.randint(12, 24)
    span = (closes - opens).total_seconds()
    times = sorted(opens + dt.timedelta(seconds=rng.uniform(0, span - 1)) for _ in range(n))
    times += [closes + dt.timedelta(minutes=rng.randint(5, 200)) for _ in range(rng.randint(1, 3))]  # out of hours
    for i, at in enumerate(times, start=1):
        cid = uuid7()
        in_hours = at < closes
        ev.append(
            cl.CallReceived(
                call_id=cid, line=LINE, within_hours=in_hours, seats_signed_in=1, seats_free=1, occurred_at=at, **env
            )
        )
        call = SimCall(cid, day, at, in_hours, "pending")
        xr = random.Random(f"{day}-{i}")  # the offer choices and repeat links draw apart from the rest
        unreached = [
            c
            for c in week.calls
            if c.conn in ("missed", "abandoned", "out_of_hours")
            and not any(o.repeat_of == cl.call_reference(c.call_id) for o in week.calls)
        ]
        week.calls.append(call)
        if unreached and xr.random() < 0.35:  # the caller quotes the reference given on the earlier call
            call.repeat_of = cl.call_reference(unreached[-1].call_id)
            ev.append(cl.RepeatCallLinked(call_id=cid, earlier_reference=call.repeat_of, occurred_at=at, **env))
        if i == 16:
            ev.append(
                cl.CapacityThresholdCrossed(
                    line=LINE,
                    day=day,
                    level="approaching",
                    threshold=16,
                    percent=80,
                    expected_max=20,
                    count=16,
                    call_id=cid,
                    occurred_at=at,
                    **env,
                )
            )
            facts["capacity_alerts"] += 1
        r = rng.random()
        if not in_hours:
            ev.append(
                cl.OverflowOffered(
                    call_id=cid, reason="out_of_hours", options=("callback", "call_again"), occurred_at=at, **env
                )
            )
            ev.append(cl.CallOutOfHours(call_id=cid, occurred_at=at, **env))
            call.conn, call.overflow = "out_of_hours", "out_of_hours"
            if xr.random() < 0.8:
                call.choice = xr.choice(["callback", "call_again"])
                ev.append(cl.OfferChoiceRecorded(call_id=cid, choice=call.choice, occurred_at=at, **env))
            if rng.random() < 0.5:
                _callback(rng, week, call, "out_of_hours", env, facts)
            continue
        if r < 0.1:
            chosen = rng.random() < 0.5
            ev.append(
                cl.CallMissed(
                    call_id=cid,
                    reason="callback_chosen" if chosen else "no_answer",
                    ring_seconds=30,
                    occurred_at=at + dt.timedelta(seconds=30),
                    **env,
                )
            )
            call.conn, call.cb_chosen = "missed", chosen
            if chosen:
                _callback(rng, week, call, "missed", env, facts)
            continue
        if r < 0.18:
            if xr.random() < 0.7:  # every seat busy: offered to wait, a callback or to call again
                call.overflow = "all_seats_busy"
                ev.append(
                    cl.OverflowOffered(
                        call_id=cid, reason="all_seats_busy", options=("wait", "callback"), occurred_at=at, **env
                    )
                )
                call.choice = xr.choice(["wait", "call_again"])
                ev.append(cl.OfferChoiceRecorded(call_id=cid, choice=call.choice, occurred_at=at, **env))
            w = rng.randint(10, 120)
            ev.append(cl.CallAbandoned(call_id=cid, wait_seconds=w, occurred_at=at + dt.timedelta(seconds=w), **env))
            call.conn = "abandoned"
            continue
        call.wait = rng.randint(0, 90)
        answered = at + dt.timedelta(seconds=call.wait)
        ev.append(
            cl.CallAnswered(
                call_id=cid, seat="seat-1", operator=op.id, wait_seconds=call.wait, occurred_at=answered, **env
            )
        )
        call.conn = "answered"
        resolution = rng.choice(RESOLUTIONS)
        opinions = ()
        if rng.random() < 0.15:
            opinions = (
                cl.CallOpinion(
                    kind=rng.choice(["opinion", "request", "topic", "difficulty"]),
                    text="申込み画面の文字が小さいとのご意見",
                    step=rng.choice(STEPS + [None]),
                ),
            )
        closed = cl.CallClosed(
            call_id=cid,
            categories=tuple(rng.sample(CATEGORIES, rng.choice((1, 1, 2)))),
            resolution=resolution,
            provider_category="qr_code" if resolution == "referred_payment_provider" else None,
            ward="chuo" if resolution == "guided_to_ward_desk" else None,
            duration_seconds=rng.randint(60, 900),
            notes="制度の概要を説明した。" if rng.random() < 0.5 else None,
            opinions=opinions,
            occurred_at=answered + dt.timedelta(minutes=5),
            **env,
        )
        ev.append(closed)
        call.closed = closed
        if resolution == "escalated_callback":
            _callback(rng, week, call, "escalation", env, facts, needs_city=True)
    ev.append(cl.OperatorSignedOut(line=LINE, day=day, seat="seat-1", operator=op.id, occurred_at=closes, **env))


def _callback(rng, week: Week, call: SimCall, reason: str, env: dict, facts: Counter, needs_city: bool = False) -> None:
    ev = week.events
    cb = call.call_id
    at = call.at + dt.timedelta(minutes=10)
    ev.append(
        cl.CallbackRequested(
            callback_id=cb,
            call_id=call.call_id,
            line=LINE,
            reason=reason,
            due_at=at + dt.timedelta(hours=2),
            max_attempts=3,
            needs_city=needs_city,
            occurred_at=at,
            **env,
        )
    )
    facts["callbacks.opened"] += 1
    if needs_city:
        ev.append(cl.CallbackEscalatedToCity(callback_id=cb, question="市の判断を確認", occurred_at=at, **env))
        ev.append(
            cl.CityAnswered(callback_id=cb, answer="回答あり", due_at=at + dt.timedelta(hours=3), occurred_at=at, **env)
        )
        facts["callbacks.to_city"] += 1
        facts["callbacks.city_answered"] += 1
    r = rng.random()
    if r < 0.6:
        ev.append(
            cl.CallbackCompleted(
                callback_id=cb,
                attempt=1,
                resolution="answered_on_spot",
                duration_seconds=120,
                occurred_at=at + dt.timedelta(minutes=30),
                **env,
            )
        )
        facts["callbacks.done"] += 1
    elif r < 0.8:
        ev.append(
            cl.CallbackOverdue(
                callback_id=cb, due_at=at + dt.timedelta(hours=2), occurred_at=at + dt.timedelta(minutes=40), **env
            )
        )
        facts["callbacks.overdue"] += 1
