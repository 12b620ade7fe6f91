"""The ground truth: what the simulator generated, counted as the daily reports count it (REP-1,
REP-2, REP-5).

Counted from the simulator's own records of what happened (who came when, what was decided), not
from the events, so `recount.py` (which counts the events) checks the generator, and the reporting
service's figures can be checked against both.

Figure names and definitions are the reporting service's (services/reporting `recount.py`,
"Definitions both sides follow"), keyed by its report ids (`daily_<desk>_<date>`,
`daily_line-<line>_<date>`), so a report's flat figures compare key by key:

* a visitor is a started visit, dated by its desk-day, in the hour its ticket was issued;
* durations in whole milliseconds; means to 0.1 s rounded half up; the 90th percentile is the
  nearest-rank value; ratios are round(a / b, 4);
* a call is dated by its reception (Tokyo time); callback facts by when they happened.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from typing import Any, TypeVar

from madoguchi_shared.figures import Fig, share, stats, whole_seconds
from madoguchi_shared.figures import to_ms as ms
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events.calls import call_reference
from madoguchi_shared.events.report import line_scope_id, report_id

from madoguchi_sim.calls import CallRecord, LineDayResult
from madoguchi_sim.desk import DeskDayResult


_T = TypeVar("_T")


def _known(value: _T | None) -> _T:
    """A time or duration the generator sets on every served visit and closed call."""
    if value is None:
        raise ValueError("the generator left a served visit's or a closed call's time unset")
    return value


def _inc(out: dict[str, Any], key: str, n: int = 1) -> None:
    out[key] = out.get(key, 0) + n


def desk_day_figures(res: DeskDayResult) -> dict[str, Any]:
    """The daily desk report's flat figures (REP-1 and what a manager asks next)."""
    out: dict[str, Any] = {}
    served = [r for r in res.visits if r.served_at is not None]
    gone = [r for r in res.visits if r.served_at is None]  # took a ticket and left unserved (仕様書 4(5)オ)
    out[Fig.visitors] = len(served) + len(gone)
    out[Fig.served] = len(served)
    out[Fig.left_unserved] = len(gone)
    out[Fig.details_recorded] = len(served)
    out[Fig.support_needed] = sum(1 for r in served if r.visitor.support_needed)
    out[Fig.support_given] = sum(1 for r in served if r.visitor.support_given)
    out[Fig.support_needed_ratio] = share(out[Fig.support_needed], out[Fig.visitors])
    out[Fig.support_given_ratio] = share(out[Fig.support_given], out[Fig.visitors])
    out[Fig.support_given_of_needed] = share(out[Fig.support_given], out[Fig.support_needed])
    out["by_gender.unknown"] = out["by_age_band.unknown"] = len(gone)
    for r in gone:
        _inc(out, f"by_hour.{r.issued_at.astimezone(TOKYO).hour:02d}")
    out[Fig.completed] = sum(1 for r in served if r.outcome == "completed")
    out[Fig.not_completed] = sum(1 for r in served if r.outcome == "not_completed")
    out[Fig.in_service] = 0
    for r in served:
        v = r.visitor
        _inc(out, f"by_hour.{r.issued_at.astimezone(TOKYO).hour:02d}")
        _inc(out, f"by_gender.{v.gender}")
        _inc(out, f"by_age_band.{v.age_band}")
        for p in v.purposes:
            _inc(out, f"by_purpose.{p}")
            _inc(out, f"outcomes_by_purpose.{p}.{r.outcome}")
        if v.payment_service:
            _inc(out, f"payment_services.{v.payment_service}")
        if r.reason:
            _inc(out, f"not_completed_reasons.{r.reason}")
    for k, val in stats([ms((_known(r.served_at) - r.issued_at).total_seconds()) for r in served]).items():
        out[f"wait.{k}"] = val
    for k, val in stats([ms((_known(r.ended_at) - _known(r.served_at)).total_seconds()) for r in served]).items():
        out[f"service.{k}"] = val
    out[Fig.visit_corrections] = sum(1 for r in served if r.visitor.correction)
    no_shows = sum(1 for r in res.visits if r.called_at is not None and r.served_at is None)
    out[Fig.tickets_issued] = len(res.visits)
    out[Fig.no_shows] = no_shows
    out[Fig.recalls] = no_shows  # each no-show was called twice
    out[Fig.disinfections] = res.disinfections
    out[Fig.disinfection_misses] = sum(1 for r in served if r.flagged)
    out[Fig.masks_checked] = res.masks_checked
    out[Fig.masks_missing] = 0
    out[Fig.staffing_breaches] = res.breaches
    out[Fig.short_absences] = res.short_absences
    out[Fig.capacity_alerts] = len(res.capacity_alerts)
    escalated = [r.visitor.escalation for r in served if r.visitor.escalation]
    out[Fig.escalations_to_city] = sum(1 for _, _, to_city in escalated if to_city)
    opinions = [r.visitor.opinion for r in served if r.visitor.opinion]
    out[Fig.opinions] = len(opinions)
    out[Fig.pin_failures] = sum(r.visitor.pin_failures for r in served)
    out[Fig.pin_locks] = sum(1 for r in served if r.pin_locked)
    out[Fig.pin_lock_warnings] = sum(r.pin_warnings for r in served)
    out[Fig.cards_handed] = sum(1 for r in served if r.visitor.card_held)
    out[Fig.day_stops] = 0
    out[Fig.escalations] = len(escalated)
    out[Fig.card_incidents] = res.incidents.count("card_left_behind")
    out[Fig.staffing_breach_s] = whole_seconds(sum(ms(d) for d in res.breach_durations))
    out[Fig.disinfection_compliance] = share(out[Fig.served] - out[Fig.disinfection_misses], out[Fig.served])
    for kind in res.incidents:
        _inc(out, f"incidents.{kind}")
    for category, _, _ in escalated:
        _inc(out, f"escalations_by_category.{category}")
    for kind, step, _text in opinions:
        _inc(out, f"opinions_by_kind.{kind}")
        if step:
            _inc(out, f"difficulties_by_step.{step}")
    return out


def desk_day_notes(res: DeskDayResult) -> dict[str, list]:
    """Escalation summaries and opinion texts of the day (REP-1 lists them, not only counts)."""
    served = [r for r in res.visits if r.served_at is not None]
    return {
        Fig.escalations: [
            {
                "no": r.escalation_no,
                "category": r.visitor.escalation[0],
                "summary": r.visitor.escalation[1],
                "to_city": r.visitor.escalation[2],
            }
            for r in served
            if r.visitor.escalation
        ],
        Fig.opinions: [
            {"kind": k, "step": s, "text": t} for k, s, t in (r.visitor.opinion for r in served if r.visitor.opinion)
        ],
    }


def caller_roots(calls: list[CallRecord]) -> dict[str, str]:
    """call reference -> the reference of the caller's first call, following the repeat links."""
    links = {call_reference(c.call_id): c.repeat_of for c in calls}
    out: dict[str, str] = {}
    for ref in links:
        cur = ref
        while (nxt := links.get(cur)) is not None:
            cur = nxt
        out[ref] = cur
    return out


def line_day_figures(calls: list[CallRecord], facts: Counter, roots: dict[str, str] | None = None) -> dict[str, Any]:
    """The daily phone report's flat figures (REP-2); `roots`: every call of the line (any day)
    by reference -> the caller's first call (`caller_roots`), so repeat callers count once."""
    out: dict[str, Any] = {}
    out[Fig.received] = len(calls)
    out[Fig.received_in_hours] = sum(1 for c in calls if c.within_hours)
    for status in (Fig.answered, Fig.missed, Fig.abandoned, Fig.out_of_hours):
        out[status] = sum(1 for c in calls if c.status == status)
    out[Fig.missed_callback_chosen] = sum(
        1 for c in calls if c.status == "missed" and c.missed_reason == "callback_chosen"
    )
    out[Fig.never_connected] = out[Fig.missed] + out[Fig.abandoned] + out[Fig.out_of_hours]
    out[Fig.never_connected_share] = share(out[Fig.never_connected], out[Fig.received])
    out[Fig.still_waiting] = out[Fig.received] - out[Fig.answered] - out[Fig.never_connected]
    out[Fig.answer_rate] = share(out[Fig.answered], out[Fig.received])
    out[Fig.overflow_offered] = sum(1 for c in calls if c.overflow == "all_seats_busy")
    out[Fig.after_hours_guided] = sum(1 for c in calls if c.overflow == "out_of_hours")
    for choice in ("wait", "callback", "call_again"):
        out[f"offer_choices.{choice}"] = sum(1 for c in calls if c.choice == choice)
    out[Fig.repeat_calls] = sum(1 for c in calls if c.repeat_of is not None)
    # the people who did not get through: a repeat linked by its reference is the same caller, and a caller
    # answered the same day got through
    roots = roots if roots is not None else caller_roots(calls)
    unconnected = [call_reference(c.call_id) for c in calls if c.status in ("missed", "abandoned", "out_of_hours")]
    reached = {roots.get(ref, ref) for ref in (call_reference(c.call_id) for c in calls if c.status == Fig.answered)}
    out[Fig.never_connected_people] = len({roots.get(ref, ref) for ref in unconnected} - reached)
    closed = [c for c in calls if c.resolution is not None]
    out[Fig.closed] = len(closed)
    for c in calls:
        _inc(out, f"by_hour.{c.received_at.astimezone(TOKYO).hour:02d}")
    for c in closed:
        _inc(out, f"by_resolution.{c.resolution}")
        for category in c.categories:
            _inc(out, f"by_category.{category}")
        if c.provider_category:
            _inc(out, f"by_provider.{c.provider_category}")
        if c.ward:
            _inc(out, f"guided_ward.{c.ward}")
        for kind, step, _text in c.opinions:
            _inc(out, f"opinions_by_kind.{kind}")
            if step:
                _inc(out, f"difficulties_by_step.{step}")
    out[Fig.escalations] = sum(1 for c in closed if c.resolution == "escalated_callback")
    out[Fig.opinions] = sum(len(c.opinions) for c in closed)
    for k, v in stats([c.answer_wait_s * 1000 for c in calls if c.answer_wait_s is not None]).items():
        out[f"answer_wait.{k}"] = v
    for k, v in stats([_known(c.duration_s) * 1000 for c in closed]).items():
        out[f"duration.{k}"] = v
    for name in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered"):
        out[f"callbacks.{name}"] = facts.get(f"callbacks.{name}", 0)
    out[Fig.capacity_alerts] = facts.get(Fig.capacity_alerts, 0)
    out[Fig.staffing_breaches] = facts.get(Fig.staffing_breaches, 0)
    out[Fig.staffing_gap_s] = facts.get(Fig.staffing_gap_s, 0)
    return out


class Truth:
    """Accumulates the ground truth of a run, desk-day by desk-day and line-day by line-day."""

    def __init__(self, keep_notes: bool = True):
        self.desk: dict[str, dict[str, dict]] = defaultdict(dict)  # municipality -> report id -> figures
        self.notes: dict[str, dict[str, dict]] = defaultdict(dict)
        self.wards: dict[str, dict[str, str]] = defaultdict(dict)
        self._calls: dict[tuple[str, str, date], list[CallRecord]] = defaultdict(list)
        self._facts: dict[tuple[str, str, date], Counter] = defaultdict(Counter)
        self.keep_notes = keep_notes
        self.event_types: Counter = Counter()

    def add_desk_day(self, res: DeskDayResult) -> None:
        if not res.opened:
            return
        rid = report_id("daily", res.desk, res.day)
        self.desk[res.municipality][rid] = desk_day_figures(res)
        self.wards[res.municipality][res.desk] = res.ward
        if self.keep_notes:
            self.notes[res.municipality][rid] = desk_day_notes(res)

    def add_line_day(self, res: LineDayResult) -> None:
        for call in res.calls:
            self._calls[(res.municipality, res.line, call.received_at.astimezone(TOKYO).date())].append(call)
        for (day, figure), n in res.facts.items():
            self._facts[(res.municipality, res.line, day)][figure] += n
        for call in res.calls:
            if call.opinions and self.keep_notes:
                rid = report_id("daily", line_scope_id(res.line), call.received_at.astimezone(TOKYO).date())
                notes = self.notes[res.municipality].setdefault(rid, {Fig.escalations: [], Fig.opinions: []})
                notes[Fig.opinions].extend({"kind": k, "step": s, "text": t} for k, s, t in call.opinions)

    def calls(self, municipality: str, line: str = "main", day: date | None = None) -> list[CallRecord]:
        """The calls simulated on a line (on a day, by reception in Tokyo), in reception order."""
        return [
            c
            for (m, ln, d), calls in sorted(self._calls.items())
            if m == municipality and ln == line and (day is None or d == day)
            for c in calls
        ]

    def add_events(self, types: Counter) -> None:
        self.event_types.update(types)

    def reports(self) -> dict[str, dict[str, dict]]:
        """municipality -> report id -> flat figures, for every desk-day and line-day simulated."""
        out: dict[str, dict[str, dict]] = {m: dict(reports) for m, reports in self.desk.items()}
        keys = set(self._calls) | set(self._facts)
        roots: dict[tuple[str, str], dict[str, str]] = {}
        for municipality, line, day in sorted(keys):
            rid = report_id("daily", line_scope_id(line), day)
            if (municipality, line) not in roots:
                roots[(municipality, line)] = caller_roots(self.calls(municipality, line))
            out.setdefault(municipality, {})[rid] = line_day_figures(
                self._calls.get((municipality, line, day), []),
                self._facts.get((municipality, line, day), Counter()),
                roots[(municipality, line)],
            )
        return {m: dict(sorted(r.items())) for m, r in sorted(out.items())}

    def as_json(self, **meta: Any) -> dict[str, Any]:
        return {
            **meta,
            "definitions": "figure names and definitions of services/reporting recount.py; report ids "
            "daily_<desk>_<date> and daily_line-<line>_<date>",
            "events": {"total": sum(self.event_types.values()), "by_type": dict(sorted(self.event_types.items()))},
            "wards": {m: dict(sorted(w.items())) for m, w in sorted(self.wards.items())},
            "reports": self.reports(),
            "notes": {m: dict(sorted(n.items())) for m, n in sorted(self.notes.items())} if self.keep_notes else {},
        }
