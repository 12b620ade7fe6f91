"""The reporting-calls projection (REP-2): MG_CALLS (mg.calls.>) into call records, callbacks,
notes and the line-day counters.

Like the desk projection: load the batch's call and callback rows, fold its events into them in
stream order (one handler per event type), write; each touched call contributes the difference
between its figures after and before the batch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from madoguchi_shared import db
from madoguchi_shared.bus import Stored
from madoguchi_shared.events import calls as cl
from madoguchi_shared.figures import Fig
from madoguchi_shared.figures import Stored as Kept
from madoguchi_shared.read_events import as_model, is_a, model

from madoguchi_reporting.projections.call_rows import (
    CALL_COLUMNS,
    CALL_TYPES,
    CALLBACK_COLUMNS,
    CALLBACK_TYPES,
    CallRow,
    call_figures,
    load_callbacks,
    load_calls,
)
from madoguchi_reporting.projections.outbox import Notifier, notify_affected
from madoguchi_reporting.projections.store import (
    Acc,
    DayKey,
    NoteKey,
    Writes,
    live_batch_guard,
    local,
    note,
)


@dataclass
class CallsBatch:
    """What a batch folds its events into before anything is written."""

    calls: dict[tuple[str, UUID], CallRow]
    callbacks: dict[tuple[str, UUID], dict]
    acc: Acc = field(default_factory=Acc)
    callbacks_changed: set[tuple[str, UUID]] = field(default_factory=set)
    notes: dict[NoteKey, dict] = field(default_factory=dict)
    # a phone escalation followed through its callback: (municipality, call id) -> note changes, in order
    escalation_updates: list[tuple[str, str, dict]] = field(default_factory=list)
    call_with_callback: dict[tuple[str, UUID], str] = field(default_factory=dict)  # call -> callback status


# --- line-day events ---------------------------------------------------------------------------------

LINE_DAY_COUNTERS: dict[type[cl._LineDayEvent], Fig] = {
    cl.CapacityThresholdCrossed: Fig.capacity_alerts,
    cl.NoOperatorSeated: Fig.staffing_breaches,
}


def fold_line_day_event(b: CallsBatch, e: cl._LineDayEvent) -> None:
    key: DayKey = (e.municipality, "line", e.line, e.day)
    if (figure := LINE_DAY_COUNTERS.get(model(e))) is not None:
        b.acc.add(key, figure)
    elif is_a(e, cl.SeatCoverageRestored):
        b.acc.add(key, Kept.staffing_gap_s_sum, e.gap_seconds)


# --- call events: (batch, the call's row, the event) --------------------------------------------------


def on_answered(b: CallsBatch, c: CallRow, e: cl.CallAnswered) -> None:
    c.connection, c.wait_s = Fig.answered.value, e.wait_seconds


def on_missed(b: CallsBatch, c: CallRow, e: cl.CallMissed) -> None:
    c.connection, c.missed_reason = Fig.missed.value, e.reason


def on_abandoned(b: CallsBatch, c: CallRow, e: cl.CallAbandoned) -> None:
    c.connection, c.wait_s = Fig.abandoned.value, e.wait_seconds


def on_out_of_hours(b: CallsBatch, c: CallRow, e: cl.CallOutOfHours) -> None:
    c.connection = Fig.out_of_hours.value


def on_overflow(b: CallsBatch, c: CallRow, e: cl.OverflowOffered) -> None:
    c.overflow = e.reason


def on_closed(b: CallsBatch, c: CallRow, e: cl.CallClosed) -> None:
    c.categories, c.resolution = list(e.categories), e.resolution
    c.provider_category, c.guided_ward, c.duration_s = e.provider_category, e.ward, e.duration_seconds
    c.notes = e.notes
    c.opinions = json.dumps([as_model(op).model_dump(mode="json") for op in e.opinions], ensure_ascii=False)
    day: DayKey = (c.municipality, "line", c.line, c.day)
    for i, op in enumerate(e.opinions):
        b.notes[(*day, "opinion", f"{e.call_id}:{i}")] = note(e.occurred_at, op.kind, op.text, step=op.step)
    if e.resolution == "escalated_callback":
        b.notes[(*day, "escalation", str(e.call_id))] = note(
            e.occurred_at, ",".join(e.categories), e.notes or "", status="raised"
        )


def on_offer_choice(b: CallsBatch, c: CallRow, e: cl.OfferChoiceRecorded) -> None:
    c.offer_choice = e.choice


def on_repeat_linked(b: CallsBatch, c: CallRow, e: cl.RepeatCallLinked) -> None:
    c.repeat_of = e.earlier_reference


CALL_HANDLERS: dict[type[cl._CallEvent], Callable[[CallsBatch, CallRow, Any], None]] = {
    cl.CallAnswered: on_answered,
    cl.CallMissed: on_missed,
    cl.CallAbandoned: on_abandoned,
    cl.CallOutOfHours: on_out_of_hours,
    cl.OverflowOffered: on_overflow,
    cl.CallClosed: on_closed,
    cl.OfferChoiceRecorded: on_offer_choice,
    cl.RepeatCallLinked: on_repeat_linked,
}


def fold_call_event(b: CallsBatch, e: cl._CallEvent) -> None:
    ck = (e.municipality, e.call_id)
    if is_a(e, cl.CallReceived):
        b.calls[ck] = CallRow(
            e.municipality,
            e.call_id,
            e.line,
            local(e.occurred_at).date(),
            e.occurred_at,
            e.within_hours,
            reference=cl.call_reference(e.call_id),
        )
        return
    c = b.calls.get(ck)
    if c is None:
        return  # a call whose reception was never recorded cannot be dated; the verifier skips it too
    if (handler := CALL_HANDLERS.get(model(e))) is not None:
        handler(b, c, e)


# --- callback events ---------------------------------------------------------------------------------

# callback event -> (the counter it adds to on the day it happened, the callback's status after it)
CALLBACK_OUTCOMES: dict[type[cl._CallbackEvent], tuple[Fig | Kept, str | None]] = {
    cl.CallbackCompleted: (Fig.callbacks_done, "done"),
    cl.CallbackFailed: (Kept.callbacks_failed, "failed"),
    cl.CallbackCancelled: (Kept.callbacks_cancelled, "cancelled"),
    cl.CallbackOverdue: (Kept.callbacks_overdue, None),
    cl.CallbackEscalatedToCity: (Kept.callbacks_to_city, None),
    cl.CityAnswered: (Kept.callbacks_city_answered, None),
}


def on_callback_requested(b: CallsBatch, e: cl.CallbackRequested) -> None:
    m, day = e.municipality, local(e.occurred_at).date()
    bk = (m, e.callback_id)
    b.callbacks[bk] = {
        "municipality": m,
        "callback_id": e.callback_id,
        "call_id": e.call_id,
        "line": e.line,
        "opened_day": day,
        "reason": e.reason,
        "needs_city": e.needs_city,
        "status": "open",
    }
    b.callbacks_changed.add(bk)
    b.acc.add((m, "line", e.line, day), Fig.callbacks_opened)
    b.call_with_callback[(m, e.call_id)] = "open"


# how a phone escalation's note follows its callback (the task of an escalation closed as
# escalated_callback): status, the city's answer (detail) and the callback's resolution (step)
def escalation_change(e: cl._CallbackEvent) -> dict | None:
    if is_a(e, cl.CallbackEscalatedToCity):
        return {"status": "to_city"}
    if is_a(e, cl.CityAnswered):
        return {"status": "city_answered", "detail": e.answer}
    if is_a(e, cl.CallbackCompleted):
        return {"status": "resolved", "step": e.resolution}
    if is_a(e, cl.CallbackFailed):
        return {"status": "failed"}
    if is_a(e, cl.CallbackCancelled):
        return {"status": "cancelled"}
    return None


def fold_callback_event(b: CallsBatch, e: cl._CallbackEvent) -> None:
    if is_a(e, cl.CallbackRequested):
        on_callback_requested(b, e)
        return
    bk = (e.municipality, e.callback_id)
    cb = b.callbacks.get(bk)
    if cb is not None and cb["reason"] == "escalation" and (change := escalation_change(e)) is not None:
        b.escalation_updates.append((e.municipality, str(cb["call_id"]), change))
    if cb is None or (outcome := CALLBACK_OUTCOMES.get(model(e))) is None:
        return
    figure, status = outcome
    b.acc.add((e.municipality, "line", cb["line"], local(e.occurred_at).date()), figure)
    if status:
        cb["status"] = status
        b.callbacks_changed.add(bk)
        b.call_with_callback[(e.municipality, cb["call_id"])] = status


# --- the batch -------------------------------------------------------------------------------------


async def load_batch(conn: db.Connection, batch: Sequence[Stored]) -> CallsBatch:
    call_keys: set[tuple[str, UUID]] = set()
    callback_keys: set[tuple[str, UUID]] = set()
    for s in batch:
        e = s.event
        if is_a(e, cl._CallEvent) and not is_a(e, cl.CallReceived):
            call_keys.add((e.municipality, e.call_id))
        elif is_a(e, cl._CallbackEvent):
            callback_keys.add((e.municipality, e.callback_id))
            if is_a(e, cl.CallbackRequested):
                call_keys.add((e.municipality, e.call_id))
    return CallsBatch(await load_calls(conn, call_keys), await load_callbacks(conn, callback_keys))


async def apply_calls(conn: db.Connection, batch: Sequence[Stored], notifier: Notifier) -> None:
    """Apply one batch of calls events (in stream order) inside the projection's transaction."""
    await live_batch_guard(conn, notifier.enabled)
    b = await load_batch(conn, batch)
    before = {k: call_figures(c) for k, c in b.calls.items()}
    for s in batch:
        e = s.event
        if is_a(e, cl._LineDayEvent):
            fold_line_day_event(b, e)
        elif is_a(e, cl._CallEvent):
            fold_call_event(b, e)
        elif is_a(e, cl._CallbackEvent):
            fold_callback_event(b, e)
    # the callback status shown on the call record (the final report lists it)
    for ck, status in b.call_with_callback.items():
        if ck not in b.calls:
            loaded = await load_calls(conn, {ck})
            b.calls.update(loaded)
            before.update({k: call_figures(c) for k, c in loaded.items()})
        if ck in b.calls:
            b.calls[ck].callback_status = status
    for ck, c in b.calls.items():
        b.acc.add_change((c.municipality, "line", c.line, c.day), before.get(ck, Counter()), call_figures(c), c.line)
    w = Writes()
    w.rows("call_record", CALL_COLUMNS, CALL_TYPES, [c.as_row() for c in b.calls.values()], "municipality, call_id")
    w.upsert(
        "callback",
        list(zip(CALLBACK_COLUMNS, CALLBACK_TYPES, strict=True)),
        [tuple(b.callbacks[k][c] for c in CALLBACK_COLUMNS) for k in b.callbacks_changed],
        "municipality, callback_id",
        "UPDATE SET status = EXCLUDED.status",
    )
    follow_escalations(b, w)
    w.notes(b.notes)
    w.counts(b.acc)
    await w.run(conn)
    await notify_affected(conn, b.acc.affected, notifier)


def follow_escalations(b: CallsBatch, w: Writes) -> None:
    """Apply the callback workflow's steps to the phone escalations' notes (the call is closed as
    escalated_callback before its callback task opens): to this batch's notes, or as changes to
    notes of earlier batches (merged in order, one per note)."""
    here = {(k[0], k[5]): k for k in b.notes if k[1] == "line" and k[4] == "escalation"}
    earlier: dict[tuple[str, str, str, str], dict] = {}
    for m, ref, change in b.escalation_updates:
        if (key := here.get((m, ref))) is not None:
            b.notes[key].update(change)
        else:
            earlier.setdefault((m, "line", "escalation", ref), {}).update(change)
    w.note_changes(("municipality", "channel", "kind", "ref"), list(earlier.items()))
