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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from madoguchi_shared.events.report import line_scope_id, report_id
from madoguchi_shared.figures import CITY_DESK, CITY_LINE, WEEKLY_DESK, WEEKLY_LINE, Family, Fig, family, whole_seconds
from madoguchi_shared.figures import share as _share
from madoguchi_shared.figures import stats as _stats

from madoguchi_reporting.recount_events import Fold, _jst, caller_roots, fold, read_events

__all__ = ["Check", "Fold", "compare", "differences", "expected", "fold", "read_events", "recount", "summary_table"]


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
    for prefix, values in (
        (Family.wait, [v["wait_ms"] for v in started]),
        (Family.service, [v["service_ms"] for v in ended]),
    ):
        for k, val in _stats(values).items():
            out[f"{prefix}.{k}"] = val
    out[Fig.visit_corrections] = sum(v["corrections"] for v in started)
    simple = (
        Fig.tickets_issued,
        Fig.no_shows,
        Fig.recalls,
        Fig.disinfections,
        Fig.disinfection_misses,
        Fig.masks_checked,
        Fig.masks_missing,
        Fig.staffing_breaches,
        Fig.short_absences,
        Fig.capacity_alerts,
        Fig.escalations_to_city,
        Fig.opinions,
        Fig.pin_failures,
        Fig.pin_locks,
        Fig.pin_lock_warnings,
        Fig.cards_handed,
        Fig.day_stops,
    )
    for name in simple:
        out[name] = facts.get(name, 0)
    out[Fig.escalations] = facts.get("escalations_raised", 0)
    out[Fig.card_incidents] = facts.get("incidents.card_left_behind", 0)
    out[Fig.staffing_breach_s] = whole_seconds(facts.get("breach_ms", 0))
    out[Fig.disinfection_compliance] = _share(out[Fig.served] - out[Fig.disinfection_misses], out[Fig.served])
    for k, n in facts.items():
        if k.split(".")[0] in (
            Family.incidents,
            Family.escalations_by_category,
            Family.opinions_by_kind,
            Family.difficulties_by_step,
        ):
            out[k] = n
    return out


def _line_numbers(
    calls: list[dict], facts: Counter, hours: bool = True, links: dict[str, str | None] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out[Fig.received] = len(calls)
    out[Fig.received_in_hours] = sum(1 for c in calls if c["in_hours"])
    for name in (Fig.answered, Fig.missed, Fig.abandoned, Fig.out_of_hours):
        out[name] = sum(1 for c in calls if c["conn"] == name)
    out[Fig.missed_callback_chosen] = sum(1 for c in calls if c["conn"] == "missed" and c.get("cb_chosen"))
    out[Fig.never_connected] = out[Fig.missed] + out[Fig.abandoned] + out[Fig.out_of_hours]
    out[Fig.never_connected_share] = _share(out[Fig.never_connected], out[Fig.received])
    out[Fig.still_waiting] = out[Fig.received] - out[Fig.answered] - out[Fig.never_connected]
    out[Fig.answer_rate] = _share(out[Fig.answered], out[Fig.received])
    # overflow offers (every seat busy) and out-of-hours guidance are separate figures
    out[Fig.overflow_offered] = sum(1 for c in calls if c["overflow"] == "all_seats_busy")
    out[Fig.after_hours_guided] = sum(1 for c in calls if c["overflow"] == "out_of_hours")
    for choice in ("wait", "callback", "call_again"):
        out[f"offer_choices.{choice}"] = sum(1 for c in calls if c.get("choice") == choice)
    out[Fig.repeat_calls] = sum(1 for c in calls if c.get("repeat_of"))
    # the people who did not get through: a repeat linked by its reference is the same caller, and a caller
    # answered the same day got through
    roots = caller_roots(links if links is not None else {c["ref"]: c.get("repeat_of") for c in calls})
    reached = {roots.get(c["ref"], c["ref"]) for c in calls if c["conn"] == Fig.answered}
    out[Fig.never_connected_people] = len(
        {roots.get(c["ref"], c["ref"]) for c in calls if c["conn"] in ("missed", "abandoned", "out_of_hours")} - reached
    )
    closed = [c["closing"] for c in calls if c["closing"] is not None]
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
    for k, v in _stats([c["wait"] * 1000 for c in calls if c["conn"] == Fig.answered]).items():
        out[f"answer_wait.{k}"] = v
    for k, v in _stats([e.duration_seconds * 1000 for e in closed]).items():
        out[f"duration.{k}"] = v
    for name in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered"):
        out[f"callbacks.{name}"] = facts.get(f"callbacks_{name}", 0)
    out[Fig.capacity_alerts] = facts.get(Fig.capacity_alerts, 0)
    out[Fig.staffing_breaches] = facts.get(Fig.staffing_breaches, 0)
    out[Fig.staffing_gap_s] = facts.get("gap_s", 0)
    return out


# the weekly table's callbacks are the line daily's `callbacks.opened` / `callbacks.done`
IN_LINE_DAILY = {
    Fig.callbacks_opened: family(Family.callbacks, "opened"),
    Fig.callbacks_done: family(Family.callbacks, "done"),
}


def expected(
    f: Fold, start: dt.date, end: dt.date, *, final: tuple[dt.date, dt.date] | None = None, dailies_only: bool = False
) -> dict[str, dict]:
    """report id -> the flat figures it must show, for every report touching [start, end]
    (`dailies_only`: the desks' and lines' daily reports alone)."""
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
    if dailies_only:
        return out
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
                for key in (f"line.days.{day}.{name}", f"line.total.{name}"):
                    nums[key] = nums.get(key, 0) + d.get(IN_LINE_DAILY.get(name, name), 0)
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
        people[k] += f.facts[k].get(Fig.left_unserved, 0)
    for (d, day), n in people.items():
        month = day.strftime("%Y-%m")
        nums[f"months.{month}.{f.desk_ward.get(d, d)}"] = nums.get(f"months.{month}.{f.desk_ward.get(d, d)}", 0) + n
        trend[(day - dt.timedelta(days=day.weekday())).isoformat(), Fig.visitors] += n
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


def recount(events: Iterable[Any]) -> dict[str, dict[str, dict]]:
    """municipality -> daily report id (each desk's and line's) -> its flat figures, recounted from
    events in stream order: what the simulator's ground truth must equal, and the truth of a run
    through the APIs (whose clocks stamp the events)."""
    by_m: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for e in events:
        if e.context in ("desk", "calls"):
            by_m[e.municipality][0 if e.context == "desk" else 1].append(e)
    out: dict[str, dict[str, dict]] = {}
    for m, (desk, calls) in by_m.items():
        f = fold(desk, calls)
        days = [d for _k, d in (*f.facts, *f.line_facts)]
        days += [v["day"] for v in f.visits.values() if v["day"] is not None]
        days += [c["day"] for c in f.calls.values()]
        out[m] = expected(f, min(days), max(days), dailies_only=True) if days else {}
    return out


def differences(ours: dict[str, dict[str, dict]], theirs: dict[str, dict[str, dict]]) -> list[tuple]:
    """(municipality, report id, figure, ours, theirs) wherever two sets of reports disagree (an
    absent figure is a zero)."""
    out = []
    for m in sorted(set(ours) | set(theirs)):
        for check in compare(ours.get(m, {}), theirs.get(m, {})):
            out.extend((m, check.report_id, key, a, b) for key, a, b in check.mismatches)
    return out


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
