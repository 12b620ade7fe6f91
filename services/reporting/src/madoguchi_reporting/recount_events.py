"""The independent verifier's first half (REP-5): every desk and calls event of a municipality read
from the streams of record (the shared reader's ordered, ack-less replay) and folded into plain final
states: one dict per visit, per call, per callback; one counter of facts per desk-day and line-day.
`recount` counts the reports from them."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from madoguchi_shared.figures import Fig, Stored
from madoguchi_shared.figures import to_ms as _ms
from madoguchi_shared import subjects
from madoguchi_shared.reader import read_all
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.calls import call_reference

JST = ZoneInfo("Asia/Tokyo")


def _jst(t: dt.datetime) -> dt.datetime:
    return t.astimezone(JST)


# --- reading -------------------------------------------------------------------------------------


async def read_events(
    nc, municipality: str, dead: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset()
) -> tuple[list, list]:
    """Every valid desk and calls event of the municipality, in stream order. Invalid ones are
    skipped (the projection dead-letters them), and so are the `dead` (stream, seq) the
    projections dead-lettered and nobody has replayed yet: they are counted nowhere. An event id seen
    before (an outbox re-send after the stream's duplicate window) is the same event: counted once."""
    out: dict[str, list] = {"desk": [], "calls": []}
    for context in out:
        seen: set = set()
        async for m in read_all(
            nc, subjects.context_filter(context, municipality), 1, stream=subjects.stream_of(context)
        ):
            try:
                event = parse_event(m.data)
            except Exception:  # noqa: BLE001 - a malformed message is not counted anywhere
                continue
            first = event.event_id not in seen
            seen.add(event.event_id)  # a dead-lettered event's copy is left out like the event itself
            if first and (m.stream, m.seq) not in dead:
                out[context].append(event)
    return out["desk"], out["calls"]


# --- folding ---------------------------------------------------------------------------------------


@dataclass
class Fold:
    visits: dict[Any, dict] = field(default_factory=dict)
    visit_order: list = field(default_factory=list)
    facts: dict[tuple[str, dt.date], Counter] = field(default_factory=lambda: defaultdict(Counter))  # desk-day facts
    desk_ward: dict[str, str] = field(default_factory=dict)
    escalations: dict[tuple[str, dt.date], set] = field(default_factory=lambda: defaultdict(set))
    calls: dict[Any, dict] = field(default_factory=dict)
    line_facts: dict[tuple[str, dt.date], Counter] = field(default_factory=lambda: defaultdict(Counter))
    links: dict[str, str | None] = field(default_factory=dict)  # call reference -> the earlier call's it repeats


def caller_roots(links: dict[str, str | None]) -> dict[str, str]:
    """reference -> the first call of its caller's chain of repeat calls."""
    roots: dict[str, str] = {}
    for ref in links:
        chain, cur = {ref}, ref
        while (nxt := links.get(cur)) and nxt not in chain:
            cur = nxt
            chain.add(cur)
        roots[ref] = cur
    return roots


def _desk_day_of(deskday_id: str) -> tuple[str, dt.date] | None:
    desk, _, day_s = deskday_id.rpartition("_")
    try:
        return desk, dt.date.fromisoformat(day_s)
    except ValueError:
        return None  # not a desk-day id: counted nowhere


def fold(desk_events: list, call_events: list) -> Fold:
    f = Fold()
    tickets: dict[tuple[str, dt.date, int], dt.datetime] = {}
    for e in desk_events:
        t = e.type
        if e.desk and e.ward and e.desk not in f.desk_ward:
            f.desk_ward[e.desk] = e.ward
        if hasattr(e, "deskday_id") and t != "desk.visit_started":
            if (where := _desk_day_of(e.deskday_id)) is None:
                continue
            desk, day = where
            facts = f.facts[(desk, day)]
            if t == "desk.ticket_issued":
                tickets[(desk, day, e.ticket_no)] = e.occurred_at  # the latest issue before a visit counts
                facts[Fig.tickets_issued] += 1
            elif t == "desk.ticket_no_show":
                facts[Fig.no_shows] += 1
            elif t == "desk.ticket_recalled":
                facts[Fig.recalls] += 1
            elif t == "desk.devices_disinfected":
                facts[Fig.disinfections] += 1
            elif t == "desk.visit_started_before_disinfection":
                facts[Fig.disinfection_misses] += 1
            elif t == "desk.mask_status_recorded":
                facts[Fig.masks_checked] += 1
                facts[Fig.masks_missing] += 0 if e.wearing else 1
            elif t == "desk.staffing_breach_detected":
                facts[Fig.staffing_breaches] += 1
            elif t == "desk.staffing_breach_ended":
                facts["breach_ms"] += _ms(e.duration_seconds)
            elif t == "desk.short_absence_started":
                facts[Fig.short_absences] += 1
            elif t == "desk.capacity_threshold_reached":
                facts[Fig.capacity_alerts] += 1
            elif t == "desk.incident_opened":
                facts[f"incidents.{e.kind}"] += 1
            elif t == "desk.escalation_raised":
                f.escalations[(desk, day)].add(e.escalation_no)
                facts["escalations_raised"] += 1
                facts[f"escalations_by_category.{e.category}"] += 1
            elif t == "desk.escalation_escalated_to_city":
                facts[Fig.escalations_to_city] += 1
            elif t in ("desk.day_cannot_start", "desk.day_cannot_continue"):
                facts[Fig.day_stops] += 1
            continue
        if not hasattr(e, "visit_id") or (t == "desk.visit_started" and _desk_day_of(e.deskday_id) is None):
            continue
        v = f.visits.get(e.visit_id)
        if v is None:
            v = f.visits[e.visit_id] = {"desk": e.desk, "ward": e.ward, "day": None, "corrections": 0}
            f.visit_order.append(e.visit_id)
        if t == "desk.visit_started":
            desk_day = _desk_day_of(e.deskday_id)
            if desk_day is None:
                continue  # not a desk-day id: counted nowhere
            desk, day = desk_day
            issued = tickets.get((desk, day, e.ticket_no))
            arrived = issued if issued is not None else e.occurred_at - dt.timedelta(seconds=e.waited_seconds)
            v.update(
                desk=desk,
                ward=e.ward,
                day=day,
                hour=_jst(arrived).hour,
                wait_ms=_ms(e.waited_seconds),
                ticket=e.ticket_no,
            )
        elif t == "desk.visit_details_recorded":
            v.update(
                gender=e.gender,
                age=e.age_band,
                purposes=tuple(e.purposes),
                needed=e.support_needed,
                given=e.support_given,
                payment=e.payment_service,
            )
        elif t == "desk.visit_ended":
            v.update(outcome=e.outcome, reason=e.reason, service_ms=_ms(e.service_seconds))
        elif t == "desk.visit_corrected":
            if e.outcome is not None:
                v.update(outcome=e.outcome, reason=e.reason)
            for src, dst in (
                ("gender", "gender"),
                ("age_band", "age"),
                ("support_needed", "needed"),
                ("support_given", "given"),
                ("payment_service", "payment"),
            ):
                if getattr(e, src) is not None:
                    v[dst] = getattr(e, src)
            if e.purposes is not None:
                v["purposes"] = tuple(e.purposes)
            v["corrections"] += 1
        else:
            day = v["day"] if v["day"] is not None else _jst(e.occurred_at).date()
            facts = f.facts[(v["desk"], day)]
            if t == "desk.opinion_recorded":
                facts[Fig.opinions] += 1
                facts[f"opinions_by_kind.{e.kind}"] += 1
                if e.step:
                    facts[f"difficulties_by_step.{e.step}"] += 1
            elif t == "desk.pin_failure_recorded":
                facts[Fig.pin_failures] += 1
                facts[Fig.pin_locks] += 1 if e.locked else 0
            elif t == "desk.pin_lock_warning_issued":
                facts[Fig.pin_lock_warnings] += 1
            elif t == "desk.card_handed_to_staff":
                facts[Fig.cards_handed] += 1

    # 来庁者数 counts those who took a ticket and left unserved: tickets no visit started with
    served = {(v["desk"], v["day"], v.get("ticket")) for v in f.visits.values() if v["day"] is not None}
    for (desk, day, no), issued in tickets.items():
        if (desk, day, no) not in served:
            f.facts[(desk, day)][Fig.left_unserved] += 1
            f.facts[(desk, day)][f"unserved_hour.{_jst(issued).hour:02d}"] += 1

    callbacks: dict[Any, dict] = {}
    for e in call_events:
        t = e.type
        if t in ("calls.capacity_threshold_crossed", "calls.no_operator_seated", "calls.seat_coverage_restored"):
            lf = f.line_facts[(e.line, e.day)]
            if t == "calls.capacity_threshold_crossed":
                lf[Fig.capacity_alerts] += 1
            elif t == "calls.no_operator_seated":
                lf[Fig.staffing_breaches] += 1
            else:
                lf["gap_s"] += e.gap_seconds
        elif t == "calls.call_received":
            f.calls[e.call_id] = {
                "line": e.line,
                "at": e.occurred_at,
                "day": _jst(e.occurred_at).date(),
                "in_hours": e.within_hours,
                "conn": None,
                "closing": None,
                "overflow": None,
                "ref": call_reference(e.call_id),
                "repeat_of": None,
                "choice": None,
            }
            f.links[f.calls[e.call_id]["ref"]] = None
        elif t in ("calls.offer_choice_recorded", "calls.repeat_call_linked"):
            c = f.calls.get(e.call_id)
            if c is None:
                continue
            if t == "calls.offer_choice_recorded":
                c["choice"] = e.choice
            else:
                c["repeat_of"] = f.links[c["ref"]] = e.earlier_reference
        elif t.startswith("calls.call_") or t == "calls.overflow_offered":
            c = f.calls.get(e.call_id)
            if c is None:
                continue
            if t == "calls.call_answered":
                c.update(conn=Fig.answered, wait=e.wait_seconds)
            elif t == "calls.call_missed":
                c.update(conn=Fig.missed, cb_chosen=e.reason == "callback_chosen")
            elif t == "calls.call_abandoned":
                c.update(conn=Fig.abandoned)
            elif t == "calls.call_out_of_hours":
                c.update(conn=Fig.out_of_hours)
            elif t == "calls.overflow_offered":
                c["overflow"] = e.reason
            elif t == "calls.call_closed":
                c["closing"] = e
        elif t == "calls.callback_requested":
            callbacks[e.callback_id] = {"line": e.line}
            f.line_facts[(e.line, _jst(e.occurred_at).date())][Fig.callbacks_opened] += 1
        elif hasattr(e, "callback_id") and e.callback_id in callbacks:
            name = {
                "calls.callback_completed": Fig.callbacks_done,
                "calls.callback_failed": Stored.callbacks_failed,
                "calls.callback_cancelled": Stored.callbacks_cancelled,
                "calls.callback_overdue": Stored.callbacks_overdue,
                "calls.callback_escalated_to_city": Stored.callbacks_to_city,
                "calls.city_answered": Stored.callbacks_city_answered,
            }.get(t)
            if name:
                f.line_facts[(callbacks[e.callback_id]["line"], _jst(e.occurred_at).date())][name] += 1
    return f
