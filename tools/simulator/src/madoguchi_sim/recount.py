"""Count report figures from events (REP-5), the way `truth.py` counts them from the generator's
records. Two uses:

* the test that the ground truth equals a recount of the generated events (two computations
  agreeing is the check that the generator says what it did);
* the API mode, whose truth can only come from what the services recorded (their clocks stamp
  the events), so it is counted from the events the API calls returned.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

from madoguchi_shared.figures import Fig, share, stats
from madoguchi_shared.figures import to_ms as ms
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event
from madoguchi_shared.events.report import line_scope_id, report_id


def _day(e: Event) -> date:
    return e.occurred_at.astimezone(TOKYO).date()


def recount(events: Iterable[Event]) -> dict[str, dict[str, dict]]:
    """municipality -> report id -> flat figures (the same shape as `Truth.reports()`)."""
    tickets: dict[tuple[str, str, str, int], Any] = {}
    visits: dict[UUID, dict] = {}
    desk_facts: dict[tuple[str, str, str], Counter] = defaultdict(Counter)  # (municipality, desk, day)
    calls: dict[UUID, dict] = {}
    callback_line: dict[UUID, str] = {}
    line_facts: dict[tuple[str, str, date], Counter] = defaultdict(Counter)
    e: Any  # read by the type tag alone, on purpose: the recount shares nothing with the typed projections
    for e in events:
        t = e.type
        m = e.municipality
        if t.startswith("desk."):
            if hasattr(e, "deskday_id") and t != "desk.visit_started":
                desk, _, day = e.deskday_id.rpartition("_")
                f = desk_facts[(m, desk, day)]
                match t:
                    case "desk.ticket_issued":
                        tickets[(m, desk, day, e.ticket_no)] = e.occurred_at
                        f[Fig.tickets_issued] += 1
                    case "desk.ticket_no_show":
                        f[Fig.no_shows] += 1
                    case "desk.ticket_recalled":
                        f[Fig.recalls] += 1
                    case "desk.devices_disinfected":
                        f[Fig.disinfections] += 1
                    case "desk.visit_started_before_disinfection":
                        f[Fig.disinfection_misses] += 1
                    case "desk.mask_status_recorded":
                        f[Fig.masks_checked] += 1
                        f[Fig.masks_missing] += 0 if e.wearing else 1
                    case "desk.staffing_breach_detected":
                        f[Fig.staffing_breaches] += 1
                    case "desk.staffing_breach_ended":
                        f["_breach_ms"] += ms(e.duration_seconds)
                    case "desk.short_absence_started":
                        f[Fig.short_absences] += 1
                    case "desk.capacity_threshold_reached":
                        f[Fig.capacity_alerts] += 1
                    case "desk.incident_opened":
                        f[f"incidents.{e.kind}"] += 1
                    case "desk.escalation_raised":
                        f[Fig.escalations] += 1
                        f[f"escalations_by_category.{e.category}"] += 1
                    case "desk.escalation_escalated_to_city":
                        f[Fig.escalations_to_city] += 1
                    case "desk.day_cannot_start" | "desk.day_cannot_continue":
                        f[Fig.day_stops] += 1
                continue
            if not hasattr(e, "visit_id"):
                continue
            if t == "desk.visit_started":
                desk, _, day = e.deskday_id.rpartition("_")
                visits[e.visit_id] = {
                    "m": m,
                    "desk": desk,
                    "day": day,
                    "ticket": e.ticket_no,
                    "wait_ms": ms(e.waited_seconds),
                    "started_at": e.occurred_at,
                    "corrections": 0,
                }
                continue
            v = visits.get(e.visit_id)
            if v is None:
                continue
            f = desk_facts[(v["m"], v["desk"], v["day"])]
            match t:
                case "desk.visit_details_recorded":
                    v.update(
                        gender=e.gender,
                        age=e.age_band,
                        purposes=tuple(e.purposes),
                        needed=e.support_needed,
                        given=e.support_given,
                        payment=e.payment_service,
                    )
                case "desk.visit_ended":
                    v.update(outcome=e.outcome, reason=e.reason, service_ms=ms(e.service_seconds))
                case "desk.visit_corrected":
                    v["corrections"] += 1
                    if e.outcome is not None:
                        v.update(outcome=e.outcome, reason=e.reason)
                    for src, dst in (
                        ("gender", "gender"),
                        ("age_band", "age"),
                        ("support_needed", "needed"),
                        ("support_given", "given"),
                        ("payment_service", "payment"),
                        ("purposes", "purposes"),
                    ):
                        if getattr(e, src) is not None:
                            v[dst] = tuple(getattr(e, src)) if src == "purposes" else getattr(e, src)
                case "desk.opinion_recorded":
                    f[Fig.opinions] += 1
                    f[f"opinions_by_kind.{e.kind}"] += 1
                    if e.step:
                        f[f"difficulties_by_step.{e.step}"] += 1
                case "desk.pin_failure_recorded":
                    f[Fig.pin_failures] += 1
                    f[Fig.pin_locks] += 1 if e.locked else 0
                case "desk.pin_lock_warning_issued":
                    f[Fig.pin_lock_warnings] += 1
                case "desk.card_handed_to_staff":
                    f[Fig.cards_handed] += 1
        elif t.startswith("calls."):
            if t in ("calls.capacity_threshold_crossed", "calls.no_operator_seated", "calls.seat_coverage_restored"):
                lf = line_facts[(m, e.line, e.day)]
                if t == "calls.capacity_threshold_crossed":
                    lf[Fig.capacity_alerts] += 1
                elif t == "calls.no_operator_seated":
                    lf[Fig.staffing_breaches] += 1
                else:
                    lf[Fig.staffing_gap_s] += e.gap_seconds
            elif t == "calls.call_received":
                calls[e.call_id] = {
                    "m": m,
                    "line": e.line,
                    "at": e.occurred_at,
                    "in_hours": e.within_hours,
                    "conn": None,
                    "closed": None,
                    "overflow": False,
                }
            elif t == "calls.callback_requested":
                callback_line[e.callback_id] = e.line
                line_facts[(m, e.line, _day(e))]["callbacks.opened"] += 1
            elif hasattr(e, "call_id") and not hasattr(e, "callback_id") and e.call_id in calls:
                c = calls[e.call_id]
                match t:
                    case "calls.call_answered":
                        c.update(conn="answered", wait=e.wait_seconds)
                    case "calls.call_missed":
                        c.update(conn="missed", cb=e.reason == "callback_chosen")
                    case "calls.call_abandoned":
                        c["conn"] = "abandoned"
                    case "calls.call_out_of_hours":
                        c["conn"] = "out_of_hours"
                    case "calls.overflow_offered":
                        c["overflow"] = e.reason
                    case "calls.call_closed":
                        c["closed"] = e
            elif hasattr(e, "callback_id") and e.callback_id in callback_line:
                name = {
                    "calls.callback_completed": "done",
                    "calls.callback_failed": "failed",
                    "calls.callback_cancelled": "cancelled",
                    "calls.callback_overdue": "overdue",
                    "calls.callback_escalated_to_city": "to_city",
                    "calls.city_answered": "city_answered",
                }.get(t)
                if name:
                    line_facts[(m, callback_line[e.callback_id], _day(e))][f"callbacks.{name}"] += 1

    out: dict[str, dict[str, dict]] = defaultdict(dict)
    by_desk_day: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for v in visits.values():
        by_desk_day[(v["m"], v["desk"], v["day"])].append(v)
    for key in set(by_desk_day) | set(desk_facts):
        m, desk, day = key
        out[m][report_id("daily", desk, day)] = _desk(
            by_desk_day.get(key, []), desk_facts.get(key, Counter()), tickets, key
        )
    by_line_day: dict[tuple[str, str, date], list[dict]] = defaultdict(list)
    for c in calls.values():
        by_line_day[(c["m"], c["line"], c["at"].astimezone(TOKYO).date())].append(c)
    for key in set(by_line_day) | set(line_facts):
        m, line, day = key
        out[m][report_id("daily", line_scope_id(line), day)] = _line(
            by_line_day.get(key, []), line_facts.get(key, Counter())
        )
    return {m: dict(sorted(r.items())) for m, r in sorted(out.items())}


def _desk(vs: list[dict], f: Counter, tickets: dict, key: tuple[str, str, str]) -> dict[str, Any]:
    m, desk, day = key
    out: dict[str, Any] = {}
    ended = [v for v in vs if v.get("outcome")]
    detailed = [v for v in vs if v.get("gender")]
    # 仕様書 4(5)オ: 来庁者数 is everyone who came, those who took a ticket and left unserved too
    served_tickets = {v["ticket"] for v in vs}
    gone = [at for (tm, td, tday, no), at in tickets.items() if (tm, td, tday) == key and no not in served_tickets]
    out[Fig.served] = len(vs)
    out[Fig.left_unserved] = len(gone)
    out[Fig.visitors] = len(vs) + len(gone)
    out[Fig.details_recorded] = len(detailed)
    out[Fig.support_needed] = sum(1 for v in detailed if v["needed"])
    out[Fig.support_given] = sum(1 for v in detailed if v["given"])
    out[Fig.support_needed_ratio] = share(out[Fig.support_needed], out[Fig.visitors])
    out[Fig.support_given_ratio] = share(out[Fig.support_given], out[Fig.visitors])
    out[Fig.support_given_of_needed] = share(out[Fig.support_given], out[Fig.support_needed])
    out[Fig.completed] = sum(1 for v in ended if v["outcome"] == "completed")
    out[Fig.not_completed] = sum(1 for v in ended if v["outcome"] == "not_completed")
    out[Fig.in_service] = len(vs) - len(ended)
    counts: Counter = Counter()
    counts["by_gender.unknown"] = counts["by_age_band.unknown"] = len(gone)
    for at in gone:
        counts[f"by_hour.{at.astimezone(TOKYO).hour:02d}"] += 1
    for v in vs:
        issued = tickets.get((m, desk, day, v["ticket"]))
        counts[f"by_hour.{(issued or v['started_at']).astimezone(TOKYO).hour:02d}"] += 1
    for v in detailed:
        counts[f"by_gender.{v['gender']}"] += 1
        counts[f"by_age_band.{v['age']}"] += 1
        for p in v["purposes"]:
            counts[f"by_purpose.{p}"] += 1
        if v.get("payment"):
            counts[f"payment_services.{v['payment']}"] += 1
    for v in ended:
        for p in v.get("purposes") or ():
            counts[f"outcomes_by_purpose.{p}.{v['outcome']}"] += 1
        if v.get("reason"):
            counts[f"not_completed_reasons.{v['reason']}"] += 1
    out.update(counts)
    for k, val in stats([v["wait_ms"] for v in vs]).items():
        out[f"wait.{k}"] = val
    for k, val in stats([v["service_ms"] for v in ended]).items():
        out[f"service.{k}"] = val
    out[Fig.visit_corrections] = sum(v["corrections"] for v in vs)
    for name in (
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
        "escalations",
    ):
        out[name] = f.get(name, 0)
    out[Fig.card_incidents] = f.get("incidents.card_left_behind", 0)
    out[Fig.staffing_breach_s] = (f.get("_breach_ms", 0) + 500) // 1000
    out[Fig.disinfection_compliance] = share(out[Fig.served] - out[Fig.disinfection_misses], out[Fig.served])
    for k, n in f.items():
        if k.split(".")[0] in ("incidents", "escalations_by_category", "opinions_by_kind", "difficulties_by_step"):
            out[k] = n
    return out


def _line(cs: list[dict], f: Counter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out[Fig.received] = len(cs)
    out[Fig.received_in_hours] = sum(1 for c in cs if c["in_hours"])
    for name in ("answered", "missed", "abandoned", "out_of_hours"):
        out[name] = sum(1 for c in cs if c["conn"] == name)
    out[Fig.missed_callback_chosen] = sum(1 for c in cs if c["conn"] == "missed" and c.get("cb"))
    out[Fig.never_connected] = out[Fig.missed] + out[Fig.abandoned] + out[Fig.out_of_hours]
    out[Fig.never_connected_share] = share(out[Fig.never_connected], out[Fig.received])
    out[Fig.answer_rate] = share(out[Fig.answered], out[Fig.received])
    out[Fig.overflow_offered] = sum(1 for c in cs if c["overflow"] == "all_seats_busy")
    out[Fig.after_hours_guided] = sum(1 for c in cs if c["overflow"] == "out_of_hours")
    out[Fig.never_connected_people] = out[Fig.never_connected]  # no repeat links in the simulator's calls
    closed = [c["closed"] for c in cs if c["closed"] is not None]
    out[Fig.closed] = len(closed)
    counts: Counter = Counter()
    for c in cs:
        counts[f"by_hour.{c['at'].astimezone(TOKYO).hour:02d}"] += 1
    for e in closed:
        counts[f"by_resolution.{e.resolution}"] += 1
        for x in e.categories:
            counts[f"by_category.{x}"] += 1
        if e.provider_category:
            counts[f"by_provider.{e.provider_category}"] += 1
        if e.ward:
            counts[f"guided_ward.{e.ward}"] += 1
        for op in e.opinions:
            counts[f"opinions_by_kind.{op.kind}"] += 1
            if op.step:
                counts[f"difficulties_by_step.{op.step}"] += 1
    out.update(counts)
    out[Fig.escalations] = sum(1 for e in closed if e.resolution == "escalated_callback")
    out[Fig.opinions] = sum(len(e.opinions) for e in closed)
    for k, v in stats([c["wait"] * 1000 for c in cs if c["conn"] == "answered"]).items():
        out[f"answer_wait.{k}"] = v
    for k, v in stats([e.duration_seconds * 1000 for e in closed]).items():
        out[f"duration.{k}"] = v
    for name in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered"):
        out[f"callbacks.{name}"] = f.get(f"callbacks.{name}", 0)
    out[Fig.capacity_alerts] = f.get(Fig.capacity_alerts, 0)
    out[Fig.staffing_breaches] = f.get(Fig.staffing_breaches, 0)
    out[Fig.staffing_gap_s] = f.get(Fig.staffing_gap_s, 0)
    return out
