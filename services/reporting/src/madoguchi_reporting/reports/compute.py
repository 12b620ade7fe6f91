"""The figures of a report from the day counters (REP-1, REP-2), and `flatten`: a report's figures
as the flat keys ("by_hour.09", "wait.p90_s") that the verifier checks and a revision lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel

from madoguchi_shared.events import calls as cl
from madoguchi_shared.events import desk as dk
from madoguchi_shared.figures import Family, Fig, Stored, family, whole_seconds
from madoguchi_shared.figures import share as ratio

from madoguchi_reporting.reports import models as md

UNKNOWN = "unknown"  # gender / age band of a person who left before being served (不明)
GENDERS = get_args(dk.Gender)
AGE_BANDS = get_args(dk.AgeBand)
PURPOSES = get_args(dk.Purpose)
OUTCOMES = get_args(dk.Outcome)
REASONS = get_args(dk.NotCompletedReason)
PAYMENT = get_args(dk.PaymentServiceCategory)
OPINION_KINDS = get_args(dk.OpinionKind)
STEPS = get_args(dk.ProcedureStep)
ESC_CATEGORIES = get_args(dk.EscalationCategory)
INCIDENTS = get_args(dk.IncidentKind)
RESOLUTIONS = get_args(cl.Resolution)
PROVIDERS = get_args(cl.ProviderCategory)
OVERFLOW_OPTIONS = get_args(cl.OverflowOption)
NEVER_CONNECTED: tuple[str, ...] = ("missed", "abandoned", "out_of_hours")  # connection values

Counts = Mapping[str, int]


def flatten(report_or_figures: BaseModel | Mapping[str, Any]) -> dict[str, int | float]:
    """A report's (or a figures block's) numbers under their dotted keys; None and lists are no figures."""
    if isinstance(report_or_figures, md.ReportBase):
        data: Any = report_or_figures.figures.model_dump(mode="json")  # pyright: ignore[reportAttributeAccessIssue]
    elif isinstance(report_or_figures, BaseModel):
        data = report_or_figures.model_dump(mode="json")
    else:
        data = report_or_figures.get("figures", report_or_figures)
    out: dict[str, int | float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool):
            out[prefix] = int(value)
        elif isinstance(value, int | float):
            out[prefix] = value

    walk("", data)
    return out


def diff_figures(old: Mapping[str, int | float], new: Mapping[str, int | float]) -> list[md.FigureChange]:
    """Figures that differ (a missing figure counts as absent, a zero as zero)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if (a or 0) != (b or 0):
            out.append(md.FigureChange(key=key, old=a, new=b))
    return out


def _zero_fill(codes: Iterable[str], counts: Counts, prefix: str) -> dict[str, int]:
    out = {c: counts.get(family(prefix, c), 0) for c in codes}
    p = prefix + "."
    for k, n in counts.items():  # codes outside the known list (configuration, new versions)
        code = k[len(p) :]
        if k.startswith(p) and code not in out and "." not in code:
            out[code] = n
    return out


def _present(counts: Counts, prefix: str) -> dict[str, int]:
    p = prefix + "."
    return {k[len(p) :]: n for k, n in sorted(counts.items()) if k.startswith(p) and n}


def _hours(counts: Counts, opening: list[int]) -> dict[str, int]:
    p = Family.by_hour + "."
    hours = set(opening) | {int(k[len(p) :]) for k in counts if k.startswith(p)}
    return {f"{h:02d}": counts.get(family(Family.by_hour, f"{h:02d}"), 0) for h in sorted(hours)}


def opening_hours(hours: Any) -> list[int]:
    """Every clock hour the desk (or line) is open in: 8:45–17:15 -> 8..17; to 19:00 -> 8..18."""
    out: set[int] = set()
    for start, end in hours.intervals:
        last = (end - dt.timedelta(microseconds=1)).hour
        out.update(range(start.hour, last + 1))
    return sorted(out)


def desk_figures(
    c: Counts, wait: md.DurationStats, service: md.DurationStats, opening: list[int] | None
) -> md.DeskFigures:
    """The desk figures (仕様書 4(5)オ): 来庁者数 is every person who came, the visits served and
    those who took a ticket and left before being served (`left_unserved`, gender and age band
    不明); the shares of people needing and given support are of 来庁者数, given / needed beside."""
    served = c.get(Fig.visitors, 0)  # the counter counts served visits; the unserved are added by the query
    unserved = c.get(Fig.left_unserved, 0)
    visitors = served + unserved
    needed, given = c.get(Fig.support_needed, 0), c.get(Fig.support_given, 0)
    completed, not_completed = c.get(Fig.completed, 0), c.get(Fig.not_completed, 0)
    misses = c.get(Fig.disinfection_misses, 0)
    plain = {
        f: c.get(f, 0)
        for f in (
            Fig.tickets_issued,
            Fig.no_shows,
            Fig.escalations,
            Fig.escalations_to_city,
            Fig.opinions,
            Fig.pin_failures,
            Fig.pin_locks,
            Fig.pin_lock_warnings,
            Fig.cards_handed,
            Fig.card_incidents,
            Fig.disinfections,
            Fig.masks_checked,
            Fig.masks_missing,
            Fig.staffing_breaches,
            Fig.short_absences,
            Fig.capacity_alerts,
            Fig.recalls,
            Fig.day_stops,
            Fig.visit_corrections,
        )
    }
    return md.DeskFigures(
        **plain,
        visitors=visitors,
        served=served,
        left_unserved=unserved,
        support_needed=needed,
        support_given=given,
        support_needed_ratio=ratio(needed, visitors),
        support_given_ratio=ratio(given, visitors),
        support_given_of_needed=ratio(given, needed),
        completed=completed,
        not_completed=not_completed,
        in_service=served - completed - not_completed,
        details_recorded=c.get(Stored.details_n, 0),
        by_hour=_hours(c, opening) if opening is not None else None,
        by_gender={**_zero_fill(GENDERS, c, Family.by_gender), UNKNOWN: unserved},
        by_age_band={**_zero_fill(AGE_BANDS, c, Family.by_age_band), UNKNOWN: unserved},
        by_purpose=_zero_fill(PURPOSES, c, Family.by_purpose),
        outcomes_by_purpose={
            p: {o: c.get(family(Stored.outcome_by_purpose, p, o), 0) for o in OUTCOMES} for p in PURPOSES
        },
        not_completed_reasons=_zero_fill(REASONS, c, Stored.not_completed_reason),
        payment_services=_zero_fill(PAYMENT, c, Stored.payment_service),
        wait=wait,
        service=service,
        escalations_by_category=_zero_fill(ESC_CATEGORIES, c, Family.escalations_by_category),
        opinions_by_kind=_zero_fill(OPINION_KINDS, c, Family.opinions_by_kind),
        difficulties_by_step=_zero_fill(STEPS, c, Family.difficulties_by_step),
        incidents=_zero_fill(INCIDENTS, c, Family.incidents),
        disinfection_misses=misses,
        disinfection_compliance=ratio(served - misses, served),
        staffing_breach_s=whole_seconds(c.get(Stored.staffing_breach_ms, 0)),
    )


def line_figures(
    c: Counts,
    wait: md.DurationStats,
    duration: md.DurationStats,
    opening: list[int] | None,
    people: int | None = None,
) -> md.LineFigures:
    """The line figures (REP-2). `people`: the callers behind the unconnected calls, a repeat call
    linked by its reference counted with the caller's earlier call (None: not counted)."""
    received = c.get(Fig.received, 0)
    never = sum(c.get(k, 0) for k in (Fig.missed, Fig.abandoned, Fig.out_of_hours))
    plain = {
        f: c.get(f, 0)
        for f in (
            Fig.received_in_hours,
            Fig.answered,
            Fig.missed,
            Fig.missed_callback_chosen,
            Fig.abandoned,
            Fig.out_of_hours,
            Fig.overflow_offered,
            Fig.after_hours_guided,
            Fig.repeat_calls,
            Fig.closed,
            Fig.escalations,
            Fig.opinions,
            Fig.capacity_alerts,
            Fig.staffing_breaches,
        )
    }
    return md.LineFigures(
        **plain,
        received=received,
        never_connected=never,
        never_connected_people=never if people is None else people,
        never_connected_share=ratio(never, received),
        still_waiting=received - c.get(Fig.answered, 0) - never,
        answer_rate=ratio(c.get(Fig.answered, 0), received),
        offer_choices={k: c.get(family(Family.offer_choices, k), 0) for k in OVERFLOW_OPTIONS},
        by_hour=_hours(c, opening) if opening is not None else None,
        by_category=_present(c, Family.by_category),
        by_resolution=_zero_fill(RESOLUTIONS, c, Family.by_resolution),
        by_provider=_zero_fill(PROVIDERS, c, Family.by_provider),
        guided_ward=_present(c, Family.guided_ward),
        opinions_by_kind=_zero_fill(OPINION_KINDS, c, Family.opinions_by_kind),
        difficulties_by_step=_zero_fill(STEPS, c, Family.difficulties_by_step),
        answer_wait=wait,
        duration=duration,
        callbacks=md.Callbacks(
            opened=c.get(Fig.callbacks_opened, 0),
            done=c.get(Fig.callbacks_done, 0),
            failed=c.get(Stored.callbacks_failed, 0),
            cancelled=c.get(Stored.callbacks_cancelled, 0),
            overdue=c.get(Stored.callbacks_overdue, 0),
            to_city=c.get(Stored.callbacks_to_city, 0),
            city_answered=c.get(Stored.callbacks_city_answered, 0),
        ),
        staffing_gap_s=c.get(Stored.staffing_gap_s_sum, 0),
    )


def city_desk_row(f: md.DeskFigures) -> md.CityDeskRow:
    """A desk's columns of the city-wide daily table."""
    return md.CityDeskRow(
        **f.model_dump(include=set(md.CityDeskRow.model_fields) - {Family.wait, Family.service}),
        wait=md.MeanOnly(mean_s=f.wait.mean_s),
        service=md.MeanOnly(mean_s=f.service.mean_s),
    )


def city_line_row(f: md.LineFigures) -> md.CityLineRow:
    """The phone line's row of the city-wide daily report."""
    return md.CityLineRow(
        **f.model_dump(include=set(md.CityLineRow.model_fields) - {Family.callbacks}),
        callbacks=md.CallbacksShort(opened=f.callbacks.opened, done=f.callbacks.done),
    )


def counts_sum(parts: Iterable[Counts]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for k, n in part.items():
            out[k] = out.get(k, 0) + n
    return out
