"""One phone line's day, simulated (CALL-1 … CALL-5): seats, calls, overflow, callbacks.

A discrete-event simulation in time order, like the desk's:

* operators sign in to seats before the opening; the first takes a lunch break while the second
  covers it (on a few days the second is away, so the line has no seat for the break: a CALL-1
  breach and its end);
* 10 to 30 calls during hours with a morning peak, and a few out of hours; a call rings at a free
  seat and is answered, or — every seat busy — the caller is offered waiting or a callback (CALL-3):
  waits and is answered, or gives up (abandoned), or leaves a callback (the call counts as missed);
* an answered call is closed with categories of the inquiry tree, a resolution (on the spot, the
  national call centre, a payment provider, a ward desk, or escalated for a callback: CALL-2,
  CALL-4), notes and opinions (PII-screened free text);
* the caller's choice at an offer is recorded (wait, a callback, or call again later); a caller
  who never got through and left no callback may call again later (the same day, or the next
  open day) and quote the reference (受付番号) given on the earlier call: the repeat is linked to
  it (CALL-3), so the unconnected calls are also counted as people;
* callbacks are due by the next business day's morning (the calls service's policy); the line calls
  back during hours, sometimes late (overdue), sometimes without reaching the citizen (attempts, then
  failed for good); an escalation first goes to the city, whose answer comes the next business day.
  The phone number is never in an event; the task's contact is erased when it ends.

Callbacks and repeat calls cross days, so a line keeps a `LineState` from one day to the next; each day's draws come
from a generator seeded by (seed, municipality, line, date).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from uuid import UUID

from madoguchi_shared.calendar import TOKYO, Calendar
from madoguchi_shared.events import SYSTEM, Actor, Event, Role
from madoguchi_shared.events import calls as ev
from madoguchi_shared.events.desk import OpinionKind, ProcedureStep
from madoguchi_shared.municipality import Municipality

from madoguchi_sim import ids, texts
from madoguchi_sim.desk import _Emitter, arrival_times, pick
from madoguchi_sim.profile import Profile

LINE = "main"
SEATS = ("seat-1", "seat-2")
CALLBACK_DUE = time(12, 0)  # the calls service's policy: by the next business day's morning


@dataclass
class CallbackTask:
    callback_id: UUID
    reason: str
    requested_at: datetime
    due_at: datetime
    needs_city: bool
    max_attempts: int
    topic: str | None
    escalated: bool = False
    city_answered: bool = False
    failed_attempts: int = 0
    next_try: datetime | None = None  # when the line plans to call (or ask the city)
    call: CallRecord | None = None  # the call it was opened for (an escalation's record follows the task)


@dataclass
class LineState:
    """What a line carries from one day to the next: its open callback tasks, and the callers who
    will call again on a later day (the reference they were given, when they call)."""

    pending: list[CallbackTask] = field(default_factory=list)
    redials: list[tuple[str, datetime]] = field(default_factory=list)


@dataclass(slots=True)
class CallRecord:
    call_id: UUID
    received_at: datetime
    within_hours: bool
    status: str = "ringing"  # answered | missed | abandoned | out_of_hours
    overflow: str | None = None
    operator: str | None = None
    categories: tuple[str, ...] = ()
    resolution: str | None = None
    provider_category: str | None = None
    ward: str | None = None
    opinions: tuple[tuple[OpinionKind, ProcedureStep | None, str], ...] = ()  # kind, step, text
    notes: bool = False
    missed_reason: str | None = None
    callback: str | None = None  # reason, when a callback task was opened for this call
    choice: str | None = None  # the caller's choice at an offer (calls.offer_choice_recorded)
    repeat_of: str | None = None  # the reference of the earlier call this one repeats
    # a phone escalation followed through its callback, as the report lists it: raised | to_city |
    # city_answered | resolved | failed; the city's answer; the callback's resolution
    escalation: str | None = None
    city_answer: str | None = None
    callback_resolution: str | None = None
    wait_seconds: float = 0.0
    answer_wait_s: int | None = None  # as recorded by calls.call_answered
    duration_s: int | None = None  # as recorded by calls.call_closed


@dataclass
class LineDayResult:
    municipality: str
    line: str
    day: date
    events: list[Event] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    # facts counted on the date they happened (callbacks carry over days): (date, figure) -> n
    facts: Counter = field(default_factory=Counter)
    open: bool = False


def _call_categories(rng: random.Random, p: Profile) -> tuple[str, ...]:
    first = pick(rng, p.call_categories)
    if rng.random() < p.second_category_rate:
        second = pick(rng, p.call_categories)
        if second != first:
            return (first, second)
    return (first,)


def simulate_line_day(
    seed: int | str,
    municipality: Municipality,
    day: date,
    profile: Profile,
    state: LineState,
    calendar: Calendar | None = None,
    line: str = LINE,
) -> LineDayResult:
    """Simulate the line on `day`, updating `state` (callbacks carried to later days)."""
    cal = calendar or municipality.phone_calendar()
    hours = cal.hours(day)
    res = LineDayResult(municipality.code, line, day)
    rng = ids.unit_rng(seed, "line", municipality.code, line, day.isoformat())
    emit = _Emitter(rng, municipality.code, None, None)
    ops = [Actor(id=o, role=Role.operator) for o in ids.OPERATOR_IDS]
    manager = Actor(id=ids.MANAGER_ID, role=Role.manager)
    lineday = {"line": line, "day": day}
    expected = municipality.phone.expected_max_calls_per_day
    marks = []
    for share in municipality.capacity_thresholds:
        percent = round(share * 100)
        count = max(1, -(-expected * percent // 100))
        if all(count != c for c, _ in marks):
            marks.append((count, percent))
    heap: list = []
    counter = itertools.count()

    def at(when: datetime, kind: str, *payload) -> None:
        heapq.heappush(heap, (when, next(counter), kind, payload))

    seats: dict[str, Actor | None] = {s: None for s in SEATS}  # who is signed in
    busy: dict[str, bool] = {s: False for s in SEATS}
    breach = {"since": None}
    waiting: deque[tuple[CallRecord, datetime]] = deque()  # (call, gives up at)
    received = 0
    res.open = hours.open_day
    opens, closes = hours.opens, hours.closes
    day_start = datetime.combine(day, time(0, 0), TOKYO)
    # draws of the offer choices and repeat calls, apart from the day's other draws
    xr = ids.unit_rng(seed, "line-callers", municipality.code, line, day.isoformat())

    def next_open_after(t: datetime) -> datetime:
        nxt = cal.next_open_at(t)
        return nxt if nxt is not None else t + timedelta(days=1)

    def due_for(t: datetime) -> datetime:
        nxt = cal.next_business_day(cal.local_date(t))
        return datetime.combine(nxt, CALLBACK_DUE, TOKYO)

    # --- seats (CALL-1) ----------------------------------------------------------------------
    if opens is not None and closes is not None:  # an open day has both
        second_absent = rng.random() < profile.second_operator_absent_rate
        at(opens - timedelta(minutes=10), "sign_in", "seat-1", ops[0])
        lunch = datetime.combine(day, time(12, 0), TOKYO) + timedelta(seconds=rng.uniform(-300, 300))
        if opens < lunch < closes - timedelta(hours=1):
            at(lunch, "sign_out", "seat-1", ops[0], "break")
            at(lunch + timedelta(minutes=45), "sign_in", "seat-1", ops[0])
        if not second_absent:
            at(max(opens, datetime.combine(day, time(10, 0), TOKYO)), "sign_in", "seat-2", ops[1])
            at(closes + timedelta(minutes=6), "sign_out", "seat-2", ops[1], "end_of_shift")
        at(closes + timedelta(minutes=5), "sign_out", "seat-1", ops[0], "end_of_shift")
        low, high, mode = profile.calls_range
        n_calls = round(rng.triangular(low, high, mode))
        for t in arrival_times(rng, profile, opens, closes, n_calls):
            at(t, "call", True)
    # out of hours: early callers, late callers, weekend callers (CALL-3)
    for _ in range(rng.randint(*profile.out_of_hours_calls) if hours.open_day else rng.randint(0, 1)):
        if opens is not None and rng.random() < 0.4:
            t = opens - timedelta(seconds=rng.uniform(60, 75 * 60))
        elif closes is not None:
            t = closes + timedelta(seconds=rng.uniform(60, 150 * 60))
        else:
            t = day_start + timedelta(hours=rng.uniform(9, 17))
        at(t, "call", False)
    # callbacks carried from earlier days, or opened today, get planned actions
    for task in state.pending:
        _plan_task(task, day, hours, rng, profile, at, cal)
    # callers who said they would call again on a later day
    if opens is not None:
        carried, state.redials = state.redials, []
        for ref, not_before in carried:
            if not_before.date() <= day:
                at(max(opens, not_before) + timedelta(minutes=xr.uniform(1, 150)), "call", True, ref)
            else:
                state.redials.append((ref, not_before))

    def seats_signed_in() -> int:
        return sum(1 for a in seats.values() if a is not None)

    def free_seat() -> str | None:
        return next((s for s in SEATS if seats[s] is not None and not busy[s]), None)

    def answer(call: CallRecord, seat: str, now: datetime) -> None:
        operator = seats[seat]
        assert operator is not None  # a free seat is a signed-in one
        busy[seat] = True
        call.status = "answered"
        call.operator = operator.id
        call.wait_seconds = (now - call.received_at).total_seconds()
        call.answer_wait_s = int(call.wait_seconds)
        emit(
            ev.CallAnswered,
            now,
            operator,
            call.call_id,
            call_id=call.call_id,
            seat=seat,
            operator=operator.id,
            wait_seconds=call.answer_wait_s,
        )
        low, high, mode = profile.call_minutes
        at(now + timedelta(minutes=rng.triangular(low, high, mode)), "close_call", call, seat)

    def open_callback(
        call: CallRecord, reason: str, now: datetime, actor: Actor, needs_city: bool = False, topic: str | None = None
    ) -> None:
        task = CallbackTask(
            callback_id=call.call_id,
            reason=reason,
            requested_at=now,
            due_at=due_for(now),
            needs_city=needs_city,
            max_attempts=profile.callback_max_attempts,
            topic=topic,
            call=call,
        )
        call.callback = reason
        res.facts[(now.date(), "callbacks.opened")] += 1
        emit(
            ev.CallbackRequested,
            now,
            actor,
            call.call_id,
            callback_id=task.callback_id,
            call_id=call.call_id,
            line=line,
            reason=reason,
            due_at=task.due_at,
            max_attempts=task.max_attempts,
            needs_city=needs_city,
            topic=topic,
        )
        state.pending.append(task)
        _plan_task(task, day, hours, rng, profile, at, cal, opened_now=now)

    def choose(call: CallRecord, choice: str, now: datetime) -> None:
        """The caller's choice at the offer, recorded by the phone system a few seconds later."""
        call.choice = choice
        emit(ev.OfferChoiceRecorded, now, SYSTEM, call.call_id, call_id=call.call_id, choice=choice)

    def maybe_redial(call: CallRecord, ended: datetime) -> None:
        """A caller who never got through and left no callback may call again, quoting the
        reference given on this call: later today while the line is open, or on a later day."""
        if xr.random() >= profile.redial_rate:
            return
        ref = ev.call_reference(call.call_id)
        when = ended + timedelta(minutes=xr.uniform(*profile.redial_minutes))
        if opens is not None and closes is not None and when < closes - timedelta(minutes=5):
            at(max(when, opens + timedelta(minutes=xr.uniform(1, 30))), "call", True, ref)
        else:
            state.redials.append((ref, ended + timedelta(hours=8)))

    def take_waiting(seat: str, now: datetime) -> None:
        while waiting and seats[seat] is not None and not busy[seat]:
            call, gives_up = waiting.popleft()
            if call.status != "ringing" or gives_up < now:
                continue
            answer(call, seat, now)

    while heap:
        now, _, kind, payload = heapq.heappop(heap)
        if kind == "sign_in":
            seat, op = payload
            seats[seat] = op
            emit(ev.OperatorSignedIn, now, op, seat=seat, operator=op.id, **lineday)
            if breach["since"] is not None:
                gap = int((now - breach["since"]).total_seconds())
                res.facts[(day, "staffing_gap_s")] += gap
                emit(ev.SeatCoverageRestored, now, op, gap_seconds=gap, **lineday)
                breach["since"] = None
            take_waiting(seat, now)
        elif kind == "sign_out":
            seat, op, reason = payload
            if busy[seat]:  # finish the call first
                at(now + timedelta(minutes=1), "sign_out", seat, op, reason)
                continue
            seats[seat] = None
            emit(ev.OperatorSignedOut, now, op, seat=seat, operator=op.id, reason=reason, **lineday)
            if hours.is_open_at(now) and seats_signed_in() == 0 and breach["since"] is None:
                breach["since"] = now
                res.facts[(day, "staffing_breaches")] += 1
                emit(ev.NoOperatorSeated, now, op, since=now, **lineday)
        elif kind == "call":
            within: bool = payload[0] and hours.is_open_at(now)
            repeat_of: str | None = payload[1] if len(payload) > 1 else None
            call = CallRecord(call_id=ids.uuid7_at(rng, now), received_at=now, within_hours=within)
            res.calls.append(call)
            free = free_seat()
            n_free = sum(1 for s in SEATS if seats[s] is not None and not busy[s])
            cid = {"call_id": call.call_id}
            emit(
                ev.CallReceived,
                now,
                SYSTEM,
                call.call_id,
                line=line,
                within_hours=within,
                seats_signed_in=seats_signed_in(),
                seats_free=n_free,
                **cid,
            )
            if repeat_of is not None:  # the caller quotes the reference of the earlier call
                call.repeat_of = repeat_of
                emit(ev.RepeatCallLinked, now, SYSTEM, call.call_id, earlier_reference=repeat_of, **cid)
            received += 1
            for count, percent in marks:
                if received == count:
                    res.facts[(day, "capacity_alerts")] += 1
                    level = "approaching" if percent < 100 else "reached" if percent == 100 else "exceeded"
                    emit(
                        ev.CapacityThresholdCrossed,
                        now,
                        SYSTEM,
                        level=level,
                        threshold=count,
                        percent=percent,
                        expected_max=expected,
                        count=received,
                        call_id=call.call_id,
                        **lineday,
                    )
            if not within:
                call.status = "out_of_hours"
                call.overflow = "out_of_hours"
                emit(
                    ev.OverflowOffered,
                    now,
                    SYSTEM,
                    call.call_id,
                    reason="out_of_hours",
                    options=("callback", "call_again"),
                    **cid,
                )
                emit(ev.CallOutOfHours, now, SYSTEM, call.call_id, next_opening=next_open_after(now), **cid)
                if rng.random() < profile.out_of_hours_callback_rate:
                    choose(call, "callback", now + timedelta(seconds=xr.uniform(5, 15)))
                    open_callback(call, "out_of_hours", now + timedelta(seconds=rng.uniform(20, 60)), SYSTEM)
                else:
                    if xr.random() < profile.offer_choice_recorded_rate:
                        choose(call, "call_again", now + timedelta(seconds=xr.uniform(5, 15)))
                    maybe_redial(call, now)
                continue
            if free is not None:
                if rng.random() < profile.rang_out_rate:
                    ring = rng.uniform(30, 60)
                    call.status, call.missed_reason = "missed", "no_answer"
                    emit(
                        ev.CallMissed,
                        now + timedelta(seconds=ring),
                        SYSTEM,
                        call.call_id,
                        reason="no_answer",
                        ring_seconds=int(ring),
                        **cid,
                    )
                    maybe_redial(call, now + timedelta(seconds=ring))
                    continue
                busy[free] = True  # reserved while it rings
                at(now + timedelta(seconds=rng.uniform(*profile.ring_seconds)), "pick_up", call, free)
                continue
            call.overflow = "all_seats_busy"
            emit(
                ev.OverflowOffered,
                now,
                SYSTEM,
                call.call_id,
                reason="all_seats_busy",
                options=("wait", "callback"),
                **cid,
            )
            choice = pick(rng, profile.overflow_choice)
            choose(
                call,
                {"wait": "wait", "callback": "callback"}.get(choice, "call_again"),
                now + timedelta(seconds=xr.uniform(3, 8)),
            )
            if choice == "wait":
                gives_up = now + timedelta(minutes=rng.uniform(*profile.patience_minutes))
                waiting.append((call, gives_up))
                at(gives_up, "give_up", call)
            elif choice == "callback":
                chosen = now + timedelta(seconds=rng.uniform(20, 45))
                call.status, call.missed_reason = "missed", "callback_chosen"
                emit(
                    ev.CallMissed,
                    chosen,
                    SYSTEM,
                    call.call_id,
                    reason="callback_chosen",
                    ring_seconds=int((chosen - now).total_seconds()),
                    **cid,
                )
                open_callback(call, "overflow", chosen, SYSTEM)
            else:
                gone = now + timedelta(seconds=rng.uniform(5, 20))
                call.status = "abandoned"
                call.wait_seconds = (gone - now).total_seconds()
                emit(ev.CallAbandoned, gone, SYSTEM, call.call_id, wait_seconds=int(call.wait_seconds), **cid)
                maybe_redial(call, gone)
        elif kind == "pick_up":
            call, seat = payload
            busy[seat] = False
            answer(call, seat, now)
        elif kind == "give_up":
            (call,) = payload
            if call.status == "ringing":
                call.status = "abandoned"
                call.wait_seconds = (now - call.received_at).total_seconds()
                emit(
                    ev.CallAbandoned,
                    now,
                    SYSTEM,
                    call.call_id,
                    call_id=call.call_id,
                    wait_seconds=int(call.wait_seconds),
                )
                maybe_redial(call, now)
        elif kind == "close_call":
            call, seat = payload
            operator = Actor(id=call.operator, role=Role.operator)
            call.categories = _call_categories(rng, profile)
            call.resolution = pick(rng, profile.resolutions)
            if call.resolution == "referred_payment_provider":
                call.provider_category = pick(rng, profile.provider_categories)
            if call.resolution == "guided_to_ward_desk":
                call.ward = rng.choice(municipality.wards).id
            if rng.random() < profile.call_opinion_rate:
                call.opinions = (rng.choice(texts.CALL_OPINIONS),)
            call.notes = rng.random() < profile.call_notes_rate
            call.duration_s = int((now - call.received_at).total_seconds() - call.wait_seconds)
            emit(
                ev.CallClosed,
                now,
                operator,
                call.call_id,
                call_id=call.call_id,
                categories=call.categories,
                resolution=call.resolution,
                provider_category=call.provider_category,
                ward=call.ward,
                duration_seconds=call.duration_s,
                notes=rng.choice(texts.CALL_NOTES) if call.notes else None,
                opinions=tuple(ev.CallOpinion(kind=k, step=st, text=t) for k, st, t in call.opinions),
            )
            busy[seat] = False
            if call.resolution == "escalated_callback":
                call.escalation = "raised"
                open_callback(
                    call,
                    "escalation",
                    now + timedelta(seconds=rng.uniform(30, 90)),
                    operator,
                    needs_city=True,
                    topic=call.categories[0],
                )
            take_waiting(seat, now)
        elif kind == "task":
            task, action = payload
            _run_task(task, action, now, res, emit, rng, profile, ops, manager, at, cal, hours, state)
    emit.events.sort(key=lambda e: e.occurred_at)  # stable: same-instant events keep their causal order
    res.events = emit.events
    return res


# --- callbacks ----------------------------------------------------------------------------------


def _plan_task(
    task: CallbackTask,
    day: date,
    hours,
    rng: random.Random,
    profile: Profile,
    at,
    cal: Calendar,
    opened_now: datetime | None = None,
) -> None:
    """Schedule today's next action of a callback task, if it has one today."""
    if not hours.open_day:
        return
    opens, closes = hours.opens, hours.closes
    if task.needs_city and not task.escalated:
        when = (opened_now or opens) + timedelta(minutes=rng.uniform(10, 40))
        if when < closes + timedelta(hours=1):
            at(when, "task", task, "escalate")
        return
    if task.needs_city and not task.city_answered:
        if opened_now is None and task.requested_at.date() < day:
            at(opens + timedelta(minutes=rng.uniform(60, 300)), "task", task, "city_answer")
        return
    if task.next_try is not None:
        if task.next_try.date() <= day:
            at(max(task.next_try, opens + timedelta(minutes=5)), "task", task, "attempt")
        return
    # a fresh task: the same day within an hour or two when there is time, else the next business day
    base = opened_now or opens
    if opened_now is not None and opened_now >= opens and opened_now < closes - timedelta(hours=2):
        when = opened_now + timedelta(minutes=rng.uniform(30, 100))
    elif opened_now is None or opened_now < opens:
        when = max(base, opens) + timedelta(minutes=rng.uniform(10, 150))
    else:
        return  # opened late in the day or after hours: tomorrow
    if rng.random() < profile.callback_late_rate:
        when = max(when, task.due_at + timedelta(minutes=rng.uniform(20, 60)))
        if when > closes:
            return
    task.next_try = when
    at(when, "task", task, "attempt")


def _run_task(
    task: CallbackTask,
    action: str,
    now: datetime,
    res: LineDayResult,
    emit: _Emitter,
    rng: random.Random,
    profile: Profile,
    ops: list[Actor],
    manager: Actor,
    at,
    cal: Calendar,
    hours,
    state: LineState,
) -> None:
    cb = {"callback_id": task.callback_id}
    corr = task.callback_id
    rec = task.call if task.call is not None and task.call.escalation is not None else None
    if action == "escalate":
        task.escalated = True
        if rec is not None:
            rec.escalation = "to_city"
        res.facts[(now.date(), "callbacks.to_city")] += 1
        emit(
            ev.CallbackEscalatedToCity,
            now,
            manager,
            corr,
            channel="phone",
            question=rng.choice(texts.CITY_QUESTIONS),
            **cb,
        )
        return
    if action == "city_answer":
        task.city_answered = True
        res.facts[(now.date(), "callbacks.city_answered")] += 1
        due = now + timedelta(minutes=120)
        if due > hours.closes:
            due = hours.closes
        task.due_at = due
        answer = rng.choice(texts.CITY_ANSWERS)
        if rec is not None:
            rec.escalation, rec.city_answer = "city_answered", answer
        emit(ev.CityAnswered, now, manager, corr, answer=answer, due_at=due, **cb)
        task.next_try = now + timedelta(minutes=rng.uniform(10, 60))
        if task.next_try < hours.closes:
            at(task.next_try, "task", task, "attempt")
        return
    # an attempt
    operator = rng.choice(ops)
    if now > task.due_at + timedelta(minutes=10):
        noticed = task.due_at + timedelta(minutes=5)  # the calls service's overdue timer
        res.facts[(noticed.date(), "callbacks.overdue")] += 1
        emit(ev.CallbackOverdue, noticed, SYSTEM, corr, due_at=task.due_at, **cb)
    emit(ev.CallbackNumberRead, now, operator, corr, **cb)
    attempt = task.failed_attempts + 1
    if rng.random() < profile.callback_reach_rate:
        minutes = rng.uniform(2, 8)
        done = now + timedelta(minutes=minutes)
        emit(
            ev.CallbackCompleted,
            done,
            operator,
            corr,
            attempt=attempt,
            resolution="answered_on_spot",
            categories=(task.topic,) if task.topic else (),
            duration_seconds=int(minutes * 60),
            notes=rng.choice(texts.CALLBACK_NOTES),
            **cb,
        )
        res.facts[(done.date(), "callbacks.done")] += 1
        if rec is not None:
            rec.escalation, rec.callback_resolution = "resolved", "answered_on_spot"
        emit(ev.CallbackContactErased, done + timedelta(seconds=1), SYSTEM, corr, had_contact=True, **cb)
        state.pending.remove(task)
        return
    failure = rng.choice(("no_answer", "no_answer", "busy", "voicemail"))
    done = now + timedelta(seconds=40)
    if attempt >= task.max_attempts:
        emit(ev.CallbackFailed, done, operator, corr, attempts=attempt, last_reason=failure, **cb)
        res.facts[(done.date(), "callbacks.failed")] += 1
        if rec is not None:
            rec.escalation = "failed"
        emit(ev.CallbackContactErased, done + timedelta(seconds=1), SYSTEM, corr, had_contact=True, **cb)
        state.pending.remove(task)
        return
    nxt = done + timedelta(minutes=60)
    if nxt >= hours.closes:  # 60 minutes of open time: the rest tomorrow
        left = nxt - hours.closes
        nxt_day = cal.next_business_day(cal.local_date(now))
        nxt = cal.hours(nxt_day).opens + left
    task.failed_attempts = attempt
    task.due_at = nxt
    task.next_try = nxt
    res.facts[(done.date(), "callbacks.attempts_failed")] += 1
    emit(ev.CallbackAttemptFailed, done, operator, corr, attempt=attempt, reason=failure, next_due_at=nxt, **cb)
    if nxt < hours.closes:
        at(nxt, "task", task, "attempt")
