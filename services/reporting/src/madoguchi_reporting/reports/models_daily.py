"""The daily reports (see `models`): the figure blocks of a desk (REP-1) and of the phone line
(REP-2), which the period reports sum as well, and the daily reports of a desk, the line and the
whole city."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from madoguchi_reporting.reports.models_base import (
    Counts,
    DeskEscalation,
    DeskOpening,
    DurationStats,
    Frozen,
    LineEscalation,
    MeanOnly,
    Opening,
    Opinion,
    ReportBase,
    Share,
)


class DeskFigures(Frozen):
    """The desk figures (REP-1) by the specification's definitions (仕様書 4(5)オ)."""

    visitors: int
    served: int
    left_unserved: int
    tickets_issued: int
    no_shows: int
    support_needed: int
    support_given: int
    support_needed_ratio: Share
    support_given_ratio: Share
    support_given_of_needed: Share
    completed: int
    not_completed: int
    in_service: int
    details_recorded: int
    by_hour: Counts | None = None
    by_gender: Counts
    by_age_band: Counts
    by_purpose: Counts
    outcomes_by_purpose: dict[str, Counts]
    not_completed_reasons: Counts
    payment_services: Counts
    wait: DurationStats
    service: DurationStats
    escalations: int
    escalations_to_city: int
    escalations_by_category: Counts
    opinions: int
    opinions_by_kind: Counts
    difficulties_by_step: Counts
    pin_failures: int
    pin_locks: int
    pin_lock_warnings: int
    cards_handed: int
    card_incidents: int
    incidents: Counts
    disinfections: int
    disinfection_misses: int
    disinfection_compliance: Share
    masks_checked: int
    masks_missing: int
    staffing_breaches: int
    staffing_breach_s: int
    short_absences: int
    capacity_alerts: int
    recalls: int
    day_stops: int
    visit_corrections: int


class Callbacks(Frozen):
    opened: int
    done: int
    failed: int
    cancelled: int
    overdue: int
    to_city: int
    city_answered: int


class LineFigures(Frozen):
    """The phone line's figures (REP-2)."""

    received: int
    received_in_hours: int
    answered: int
    missed: int
    missed_callback_chosen: int
    abandoned: int
    out_of_hours: int
    never_connected: int
    never_connected_people: int
    never_connected_share: Share
    still_waiting: int  # neither answered nor ended unconnected yet: received = answered + never + this
    answer_rate: Share
    overflow_offered: int
    after_hours_guided: int
    offer_choices: Counts
    repeat_calls: int
    closed: int
    by_hour: Counts | None = None
    by_category: Counts
    by_resolution: Counts
    by_provider: Counts
    guided_ward: Counts
    escalations: int
    opinions: int
    opinions_by_kind: Counts
    difficulties_by_step: Counts
    answer_wait: DurationStats
    duration: DurationStats
    callbacks: Callbacks
    capacity_alerts: int
    staffing_breaches: int
    staffing_gap_s: int


class CityDeskRow(Frozen):
    """A desk's (or the city's) columns of the city-wide daily table."""

    visitors: int
    support_needed: int
    support_needed_ratio: Share
    support_given: int
    support_given_ratio: Share
    completed: int
    not_completed: int
    no_shows: int
    escalations: int
    opinions: int
    wait: MeanOnly
    service: MeanOnly


class CallbacksShort(Frozen):
    opened: int
    done: int


class CityLineRow(Frozen):
    """The phone line's row of the city-wide daily report."""

    received: int
    answered: int
    answer_rate: Share
    never_connected: int
    never_connected_people: int
    still_waiting: int
    out_of_hours: int
    overflow_offered: int
    after_hours_guided: int
    closed: int
    escalations: int
    callbacks: CallbacksShort
    opinions: int


class DeskDaily(ReportBase):
    """REP-1: one desk's daily report."""

    kind: Literal["daily"] = "daily"
    scope: Literal["desk"] = "desk"
    ward: str | None
    ward_name: str | None
    desk: str
    desk_name: str
    date: dt.date
    opening: DeskOpening
    figures: DeskFigures
    escalations: list[DeskEscalation]
    opinions: list[Opinion]


class LineDaily(ReportBase):
    """REP-2: the phone line's daily report."""

    kind: Literal["daily"] = "daily"
    scope: Literal["line"] = "line"
    line: str
    date: dt.date
    opening: Opening
    figures: LineFigures
    escalations: list[LineEscalation]
    opinions: list[Opinion]


class CityDesk(Frozen):
    desk: str
    desk_name: str
    ward: str | None
    ward_name: str
    open: bool
    hours_ja: str


class CityDailyFigures(Frozen):
    desks: dict[str, CityDeskRow]
    total: CityDeskRow
    line: CityLineRow


class CityDaily(ReportBase):
    """Every desk's daily figures in one table, the city's total and the phone line (issue 16)."""

    kind: Literal["daily"] = "daily"
    scope: Literal["city"] = "city"
    date: dt.date
    desks: list[CityDesk]
    line_hours_ja: str
    figures: CityDailyFigures
