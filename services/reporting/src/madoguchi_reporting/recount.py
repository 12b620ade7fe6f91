"""The independent verifier (REP-5): recount every figure straight from the stream and compare.

This module deliberately shares no code with the projections package: it reads every desk and calls event
of a municipality (the shared reader's ordered, ack-less replay), folds them into plain final
states (one dict per visit, per call, per callback; one list of facts per desk-day and line-day),
then counts, the simple way, what each report must show. The projection instead applies deltas
batch by batch to PostgreSQL; two different computations agreeing is the evidence that the
statistics are exact.

Definitions both sides follow (they are the meaning of the figures, not shared code):
* a visitor is a started visit, dated by its desk-day, in the hour its ticket was issued;
* durations in whole milliseconds (round(seconds * 1000)); means to 0.1 s rounded half up;
  the 90th percentile is the nearest-rank value (the ceil(0.9 n)-th smallest);
* ratios are round(a / b, 4); a call is dated by its reception (Tokyo time);
* callback events are dated by when they happened, on the line of their request.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from madoguchi_shared.figures import Fig, whole_seconds
from madoguchi_shared.figures import share as _share
from madoguchi_shared.figures import stats as _stats
from madoguchi_shared.figures import to_ms as _ms
from madoguchi_shared import subjects
from madoguchi_shared.reader import read_all
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.calls import call_reference
from madoguchi_shared.events.report import line_scope_id, report_id

JST = ZoneInfo("Asia/Tokyo")


def _jst(t: dt.datetime) -> dt.datetime:
    return t.astimezone(JST)


# --- reading -------------------------------------------------------------------------------------


async def read_events(nc, municipality: str, dead: set[tuple[str, int]] = frozenset()) -> tuple[list, list]:
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
        while links.get(cur) and links[cur] not in chain:
            cur = links[cur]
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
            desk, day = _desk_day_of(e.deskday_id)
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
            f.facts[(desk, day)]["left_unserved"] += 1
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
                "closed": None,
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
                c.update(conn="answered", wait=e.wait_seconds)
            elif t == "calls.call_missed":
                c.update(conn="missed", cb_chosen=e.reason == "callback_chosen")
            elif t == "calls.call_abandoned":
                c.update(conn="abandoned")
            elif t == "calls.call_out_of_hours":
                c.update(conn="out_of_hours")
            elif t == "calls.overflow_offered":
                c["overflow"] = e.reason
            elif t == "calls.call_closed":
                c["closed"] = e
        elif t == "calls.callback_requested":
            callbacks[e.callback_id] = {"line": e.line}
            f.line_facts[(e.line, _jst(e.occurred_at).date())]["callbacks_opened"] += 1
        elif hasattr(e, "callback_id") and e.callback_id in callbacks:
            name = {
                "calls.callback_completed": "callbacks_done",
                "calls.callback_failed": "callbacks_failed",
                "calls.callback_cancelled": "callbacks_cancelled",
                "calls.callback_overdue": "callbacks_overdue",
                "calls.callback_escalated_to_city": "callbacks_to_city",
                "calls.city_answered": "callbacks_city_answered",
            }.get(t)
            if name:
                f.line_facts[(callbacks[e.callback_id]["line"], _jst(e.occurred_at).date())][name] += 1
    return f


# --- counting what each report must show ------------------------------------------------------------


def _desk_numbers(visits: list[dict], facts: Counter, hours: bool = True) -> dict[str, Any]:
    """The flat figures of desk visits and facts (one desk-day, a ward's period, the city's)."""
    out: dict[str, Any] = {}
    started = [v for v in visits if v["day"] is not None]
    ended = [v for v in started if v.get("outcome")]
    detailed = [v for v in started if v.get("gender")]
    unserved = facts.get(Fig.left_unserved, 0)
    out[Fig.served] = len(started)
    out[Fig.left_unserved] = unserved
    out[Fig.visitors] = len(started) + unserved  # 仕様書 4(5)オ: every person who came
    out[Fig.details_recorded] = len(detailed)
    out[Fig.support_needed] = sum(1 for v in detailed if v["needed"])
    out[Fig.support_given] = sum(1 for v in detailed if v["given"])
    out[Fig.support_needed_ratio] = _share(out[Fig.support_needed], out[Fig.visitors])
    out[Fig.support_given_ratio] = _share(out[Fig.support_given], out[Fig.visitors])
    out[Fig.support_given_of_needed] = _share(out[Fig.support_given], out[Fig.support_needed])
    out[Fig.completed] = sum(1 for v in ended if v["outcome"] == "completed")
    out[Fig.not_completed] = sum(1 for v in ended if v["outcome"] == "not_completed")
    out[Fig.in_service] = len(started) - len(ended)
    out["by_gender.unknown"] = out["by_age_band.unknown"] = unserved
    if hours:
        for v in started:
            key = f"by_hour.{v['hour']:02d}"
            out[key] = out.get(key, 0) + 1
        for k, n in facts.items():
            if k.startswith("unserved_hour."):
                key = f"by_hour.{k.split('.', 1)[1]}"
                out[key] = out.get(key, 0) + n
    for v in detailed:
        for key in (f"by_gender.{v['gender']}", f"by_age_band.{v['age']}", *(f"by_purpose.{p}" for p in v["purposes"])):
            out[key] = out.get(key, 0) + 1
        if v.get("payment"):
            out[f"payment_services.{v['payment']}"] = out.get(f"payment_services.{v['payment']}", 0) + 1
    for v in ended:
        for p in v.get("purposes") or ():
            key = f"outcomes_by_purpose.{p}.{v['outcome']}"
            out[key] = out.get(key, 0) + 1
        if v.get("reason"):
            key = f"not_completed_reasons.{v['reason']}"
            out[key] = out.get(key, 0) + 1
    for prefix, values in (("wait", [v["wait_ms"] for v in started]), ("service", [v["service_ms"] for v in ended])):
        for k, val in _stats(values).items():
            out[f"{prefix}.{k}"] = val
    out[Fig.visit_corrections] = sum(v["corrections"] for v in started)
    simple = (
        "tickets_issued",
        "no_shows",
        "recalls",
        "disinfections",
        "disinfection_misses",
        "masks_checked",
        "masks_missing",
        "staffing_breaches",
        "short_absences",
        "capacity_alerts",
        "escalations_to_city",
        "opinions",
        "pin_failures",
        "pin_locks",
        "pin_lock_warnings",
        "cards_handed",
        "day_stops",
    )
    for name in simple:
        out[name] = facts.get(name, 0)
    out[Fig.escalations] = facts.get("escalations_raised", 0)
    out[Fig.card_incidents] = facts.get("incidents.card_left_behind", 0)
    out[Fig.staffing_breach_s] = whole_seconds(facts.get("breach_ms", 0))
    out[Fig.disinfection_compliance] = _share(out[Fig.served] - out[Fig.disinfection_misses], out[Fig.served])
    for k, n in facts.items():
        if k.split(".")[0] in ("incidents", "escalations_by_category", "opinions_by_kind", "difficulties_by_step"):
            out[k] = n
    return out


def _line_numbers(
    calls: list[dict], facts: Counter, hours: bool = True, links: dict[str, str | None] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out[Fig.received] = len(calls)
    out[Fig.received_in_hours] = sum(1 for c in calls if c["in_hours"])
    for name in ("answered", "missed", "abandoned", "out_of_hours"):
        out[name] = sum(1 for c in calls if c["conn"] == name)
    out[Fig.missed_callback_chosen] = sum(1 for c in calls if c["conn"] == "missed" and c.get("cb_chosen"))
    out[Fig.never_connected] = out[Fig.missed] + out[Fig.abandoned] + out[Fig.out_of_hours]
    out[Fig.never_connected_share] = _share(out[Fig.never_connected], out[Fig.received])
    out[Fig.answer_rate] = _share(out[Fig.answered], out[Fig.received])
    # overflow offers (every seat busy) and out-of-hours guidance are separate figures
    out[Fig.overflow_offered] = sum(1 for c in calls if c["overflow"] == "all_seats_busy")
    out[Fig.after_hours_guided] = sum(1 for c in calls if c["overflow"] == "out_of_hours")
    for choice in ("wait", "callback", "call_again"):
        out[f"offer_choices.{choice}"] = sum(1 for c in calls if c.get("choice") == choice)
    out[Fig.repeat_calls] = sum(1 for c in calls if c.get("repeat_of"))
    # the people behind the unconnected calls: a repeat linked by its reference is the same caller
    roots = caller_roots(links if links is not None else {c["ref"]: c.get("repeat_of") for c in calls})
    out[Fig.never_connected_people] = len(
        {roots.get(c["ref"], c["ref"]) for c in calls if c["conn"] in ("missed", "abandoned", "out_of_hours")}
    )
    closed = [c["closed"] for c in calls if c["closed"] is not None]
    out[Fig.closed] = len(closed)
    if hours:
        for c in calls:
            key = f"by_hour.{_jst(c['at']).hour:02d}"
            out[key] = out.get(key, 0) + 1
    for e in closed:
        keys = [f"by_resolution.{e.resolution}", *(f"by_category.{x}" for x in e.categories)]
        if e.provider_category:
            keys.append(f"by_provider.{e.provider_category}")
        if e.ward:
            keys.append(f"guided_ward.{e.ward}")
        keys += [f"opinions_by_kind.{op.kind}" for op in e.opinions]
        keys += [f"difficulties_by_step.{op.step}" for op in e.opinions if op.step]
        for k in keys:
            out[k] = out.get(k, 0) + 1
    out[Fig.escalations] = sum(1 for e in closed if e.resolution == "escalated_callback")
    out[Fig.opinions] = sum(len(e.opinions) for e in closed)
    for k, v in _stats([c["wait"] * 1000 for c in calls if c["conn"] == "answered"]).items():
        out[f"answer_wait.{k}"] = v
    for k, v in _stats([e.duration_seconds * 1000 for e in closed]).items():
        out[f"duration.{k}"] = v
    for name in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered"):
        out[f"callbacks.{name}"] = facts.get(f"callbacks_{name}", 0)
    out[Fig.capacity_alerts] = facts.get(Fig.capacity_alerts, 0)
    out[Fig.staffing_breaches] = facts.get(Fig.staffing_breaches, 0)
    out[Fig.staffing_gap_s] = facts.get("gap_s", 0)
    return out


WEEKLY_DESK = (
    "visitors",
    "support_needed",
    "support_given",
    "completed",
    "not_completed",
    "no_shows",
    "escalations",
    "opinions",
)
WEEKLY_LINE = (
    "received",
    "answered",
    "missed",
    "abandoned",
    "out_of_hours",
    "escalations",
    "callbacks.opened",
    "callbacks.done",
    "opinions",
)
# the city-wide daily report's columns per desk and its phone-line figures
CITY_DESK = (
    "visitors",
    "support_needed",
    "support_needed_ratio",
    "support_given",
    "support_given_ratio",
    "completed",
    "not_completed",
    "no_shows",
    "escalations",
    "opinions",
    "wait.mean_s",
    "service.mean_s",
)
CITY_LINE = (
    "received",
    "answered",
    "answer_rate",
    "never_connected",
    "never_connected_people",
    "out_of_hours",
    "overflow_offered",
    "after_hours_guided",
    "closed",
    "escalations",
    "callbacks.opened",
    "callbacks.done",
    "opinions",
)


def expected(f: Fold, start: dt.date, end: dt.date, *, final: tuple[dt.date, dt.date] | None = None) -> dict[str, dict]:
    """report id -> the flat figures it must show, for every report touching [start, end]."""
    visits_by_day: dict[tuple[str, dt.date], list] = defaultdict(list)
    for vid in f.visit_order:
        v = f.visits[vid]
        if v["day"] is not None:
            visits_by_day[(v["desk"], v["day"])].append(v)
    calls_by_day: dict[tuple[str, dt.date], list] = defaultdict(list)
    for c in f.calls.values():
        calls_by_day[(c["line"], c["day"])].append(c)
    out: dict[str, dict] = {}
    desk_days = {k for k in (*visits_by_day, *f.facts) if start <= k[1] <= end}
    daily: dict[tuple[str, dt.date], dict] = {}
    for desk, day in sorted(desk_days):
        nums = _desk_numbers(visits_by_day.get((desk, day), []), f.facts.get((desk, day), Counter()))
        daily[(desk, day)] = nums
        out[report_id("daily", desk, day)] = nums
    line_days = {k for k in (*calls_by_day, *f.line_facts) if start <= k[1] <= end}
    line_daily: dict[tuple[str, dt.date], dict] = {}
    for line, day in sorted(line_days):
        nums = _line_numbers(calls_by_day.get((line, day), []), f.line_facts.get((line, day), Counter()), links=f.links)
        line_daily[(line, day)] = nums
        out[report_id("daily", line_scope_id(line), day)] = nums
    # the city-wide daily report: each desk's columns, the day's total over every desk, the line
    for day in sorted({d for _k, d in desk_days} | {d for _k, d in line_days}):
        nums = {}
        all_visits: list = []
        all_facts: Counter = Counter()
        for desk, d in desk_days:
            if d == day:
                nums.update({f"desks.{desk}.{k}": daily[(desk, d)].get(k) for k in CITY_DESK})
                all_visits += visits_by_day.get((desk, d), [])
                all_facts.update(f.facts.get((desk, d), Counter()))
        total = _desk_numbers(all_visits, all_facts, hours=False)
        nums.update({f"total.{k}": total.get(k) for k in CITY_DESK})
        calls = [c for (_line, d), cs in calls_by_day.items() if d == day for c in cs]
        lf: Counter = Counter()
        for (_line, d), facts in f.line_facts.items():
            if d == day:
                lf.update(facts)
        line = _line_numbers(calls, lf, hours=False, links=f.links)
        nums.update({f"line.{k}": line.get(k) for k in CITY_LINE})
        out[report_id("daily", "city", day)] = nums
    # weekly (REP-3): every week touching the range, counted over its whole week
    first = start - dt.timedelta(days=start.weekday())
    ws = first
    while ws <= end:
        week = [ws + dt.timedelta(days=i) for i in range(7)]
        nums: dict[str, Any] = {}
        for desk, day in {k for k in (*visits_by_day, *f.facts) if ws <= k[1] <= week[-1]}:
            ward = f.desk_ward.get(desk, desk)
            d = _desk_numbers(visits_by_day.get((desk, day), []), f.facts.get((desk, day), Counter()), hours=False)
            for name in WEEKLY_DESK:
                for key in (
                    f"wards.{ward}.days.{day}.{name}",
                    f"wards.{ward}.total.{name}",
                    f"total.days.{day}.{name}",
                    f"total.total.{name}",
                ):
                    nums[key] = nums.get(key, 0) + d.get(name, 0)
        for line, day in {k for k in (*calls_by_day, *f.line_facts) if ws <= k[1] <= week[-1]}:
            d = _line_numbers(calls_by_day.get((line, day), []), f.line_facts.get((line, day), Counter()), hours=False)
            for name in WEEKLY_LINE:
                short = name.replace(".", "_")
                for key in (f"line.days.{day}.{short}", f"line.total.{short}"):
                    nums[key] = nums.get(key, 0) + d.get(name, 0)
        out[report_id("weekly", "city", ws)] = nums
        ws += dt.timedelta(days=7)
    if final:
        out[report_id("final", "city", final[0])] = _final(f, visits_by_day, calls_by_day, *final)
    return out


def _final(f: Fold, visits_by_day, calls_by_day, start: dt.date, end: dt.date) -> dict[str, Any]:
    nums: dict[str, Any] = {}
    in_range = [(k, v) for k, v in visits_by_day.items() if start <= k[1] <= end]
    fact_keys = [k for k in f.facts if start <= k[1] <= end]
    all_visits = [v for _k, vs in in_range for v in vs]
    all_facts: Counter = Counter()
    for k in fact_keys:
        all_facts.update(f.facts[k])
    for k, v in _desk_numbers(all_visits, all_facts).items():
        nums[f"city.{k}"] = v
    wards = {f.desk_ward.get(d, d) for d, _ in (*[k for k, _ in in_range], *fact_keys)}
    for ward in wards:
        wv = [v for (d, _day), vs in in_range if f.desk_ward.get(d, d) == ward for v in vs]
        wf: Counter = Counter()
        for k in fact_keys:
            if f.desk_ward.get(k[0], k[0]) == ward:
                wf.update(f.facts[k])
        for k, v in _desk_numbers(wv, wf, hours=False).items():
            nums[f"wards.{ward}.{k}"] = v
    trend: Counter = Counter()
    people = Counter({k: len(vs) for k, vs in in_range})
    for k in fact_keys:
        people[k] += f.facts[k].get("left_unserved", 0)
    for (d, day), n in people.items():
        month = day.strftime("%Y-%m")
        nums[f"months.{month}.{f.desk_ward.get(d, d)}"] = nums.get(f"months.{month}.{f.desk_ward.get(d, d)}", 0) + n
        trend[(day - dt.timedelta(days=day.weekday())).isoformat(), "visitors"] += n
    calls = [c for k, cs in calls_by_day.items() if start <= k[1] <= end for c in cs]
    lf: Counter = Counter()
    for k, facts in f.line_facts.items():
        if start <= k[1] <= end:
            lf.update(facts)
    for k, v in _line_numbers(calls, lf, hours=False, links=f.links).items():
        nums[f"line.{k}"] = v
    for c in calls:
        trend[(c["day"] - dt.timedelta(days=c["day"].weekday())).isoformat(), "calls"] += 1
    for (week, what), n in trend.items():
        nums[f"weekly_trend.{week}.{what}"] = n
    nums["call_records"] = len(calls)
    return nums


# --- comparing ----------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    a = 0 if a is None else a
    b = 0 if b is None else b
    return a == b


@dataclass
class Check:
    report_id: str
    kind: str
    checked: int
    mismatches: list[tuple[str, Any, Any]]


def compare(expected_flat: dict[str, dict], actual_flat: dict[str, dict]) -> list[Check]:
    checks = []
    for rid in sorted(set(expected_flat) | set(actual_flat)):
        exp, act = expected_flat.get(rid, {}), actual_flat.get(rid, {})
        keys = sorted(set(exp) | set(act))
        bad = [(k, exp.get(k), act.get(k)) for k in keys if not _same(exp.get(k), act.get(k))]
        kind = rid.split("_", 1)[0]
        if kind == "daily" and rid.split("_", 1)[1].startswith("line-"):
            kind = "daily (line)"
        elif kind == "daily" and rid.split("_", 1)[1].startswith("city_"):
            kind = "daily (city)"
        checks.append(Check(rid, kind, len(keys), bad))
    return checks


def summary_table(checks: list[Check]) -> str:
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in checks:
        r = rows[c.kind]
        r[0] += 1
        r[1] += c.checked
        r[2] += len(c.mismatches)
    lines = [f"{'report':<14} {'reports':>8} {'figures checked':>16} {'mismatches':>11}", "-" * 52]
    total = [0, 0, 0]
    for kind in sorted(rows):
        r = rows[kind]
        lines.append(f"{kind:<14} {r[0]:>8} {r[1]:>16} {r[2]:>11}")
        total = [a + b for a, b in zip(total, r, strict=True)]
    lines.append("-" * 52)
    lines.append(f"{'total':<14} {total[0]:>8} {total[1]:>16} {total[2]:>11}")
    bad = [c for c in checks if c.mismatches]
    for c in bad[:20]:
        for key, exp, act in c.mismatches[:10]:
            lines.append(f"MISMATCH {c.report_id} {key}: stream {exp!r} != report {act!r}")
    return "\n".join(lines)
