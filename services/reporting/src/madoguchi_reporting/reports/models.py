"""The reports the service serves, as frozen pydantic models (REP-1 … REP-4).

Every figure field is named by its key in `madoguchi_shared.figures` (`Fig` / `Family`), so the JSON
a client reads, the flat keys the verifier checks (`flatten`) and the labels the files print are the
same names; `test_reporting_figure_keys` holds the models to that. The JSON shape is the one the
console and the delivered files have always read: `model_dump(mode="json")`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from madoguchi_shared.events.report import FigureChange


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Counts = dict[str, int]  # a family of figures by code ("by_gender": {"female": 3, ...})
Share = float | None  # a fraction to 4 places; None when the base is 0


class DurationStats(Frozen):
    """n, mean (0.1 s), 90th percentile and maximum, in seconds (`figures.duration_stats`)."""

    n: int
    mean_s: float | None = None
    p90_s: float | None = None
    max_s: float | None = None


class MeanOnly(Frozen):
    """The mean of a duration (the city-wide daily table's column)."""

    mean_s: float | None = None


class Period(Frozen):
    start: dt.date
    end: dt.date
    start_wareki: str
    end_wareki: str
    heading: str


class Signature(Frozen):
    """受託者, 提出日 (set when delivered) and the city's approval boxes."""

    contractor: str
    approvals: list[str]
    submitted_on: dt.date | None = None


class Delivered(Frozen):
    revision: int
    submitted_at: str
    submitted_by: str
    sha256: str


class Revision(Frozen):
    """The data revision, the delivered versions and what changed since the last one (REP-5)."""

    data_revision: int
    submitted: list[Delivered] = []
    status: Literal["draft", "revised", "submitted"]
    revision: int | None = None
    based_on: int | None = None
    changes: list[FigureChange] = []
    label_ja: str


class Opening(Frozen):
    kind: str
    closed_reason: str | None = None
    intervals: list[tuple[str, str]]
    hours: list[int]


class DeskOpening(Opening):
    day_started_at: str | None = None
    day_ended_at: str | None = None


class Entry(Frozen):
    """A text entry of a report (an escalation or an opinion); its texts are revealed for the city."""

    scope: str
    date: str
    time: str
    ref: str | None = None
    category: str | None = None
    text: str | None = None


class DeskEscalation(Entry):
    category_ja: str
    status: str | None = None
    status_ja: str
    outcome: str | None = None


class LineEscalation(Entry):
    category_ja: str
    status: str | None = None
    status_ja: str
    city_answer: str | None = None
    callback_resolution: str | None = None
    outcome: str


class Opinion(Entry):
    kind_ja: str
    step: str | None = None
    step_ja: str


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
    out_of_hours: int
    overflow_offered: int
    after_hours_guided: int
    closed: int
    escalations: int
    callbacks: CallbacksShort
    opinions: int


class ReportBase(Frozen):
    report_id: str
    kind: Literal["daily", "weekly", "final"]
    scope: Literal["desk", "line", "city"]
    scope_id: str
    municipality: str
    municipality_name: str
    period: Period
    title: str
    notes: list[tuple[str, str]]
    signature: Signature
    revision: Revision | None = None

    def with_delivery(self, revision: Revision, submitted_on: dt.date) -> Any:
        """The report as delivered: its revision block and 提出日 set."""
        return self.model_copy(
            update={"revision": revision, "signature": self.signature.model_copy(update={"submitted_on": submitted_on})}
        )


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


class WeekDay(Frozen):
    date: dt.date
    label: str
    wareki: str
    open: bool


class WardName(Frozen):
    ward: str
    ward_name: str


class DayTable(Frozen):
    """A row of the weekly table: the figures per day (ISO date) and their total."""

    days: dict[str, Counts]
    total: Counts


class WeeklyFigures(Frozen):
    wards: dict[str, DayTable]
    total: DayTable
    line: DayTable


class Weekly(ReportBase):
    """REP-3: the city-wide weekly table (wards x days, with totals)."""

    kind: Literal["weekly"] = "weekly"
    scope: Literal["city"] = "city"
    week_start: dt.date
    days: list[WeekDay]
    wards: list[WardName]
    figure_names: dict[str, str]
    line_figure_names: dict[str, str]
    figures: WeeklyFigures


class TrendWeek(Frozen):
    visitors: int = 0
    calls: int = 0


class CallRecord(Frozen):
    """CALL-5 / REP-4: one call, without personal data."""

    no: int
    call_id: str
    line: str
    date: dt.date
    time: str
    within_hours: bool | None = None
    connection: str
    connection_ja: str
    wait_s: int | None = None
    categories: list[str]
    categories_ja: str
    resolution: str | None = None
    resolution_ja: str
    provider_category: str | None = None
    guided_ward: str | None = None
    duration_s: int | None = None
    notes: str | None = None
    opinions: list[Any]
    callback: str | None = None
    callback_ja: str


class FinalFigures(Frozen):
    city: DeskFigures
    wards: dict[str, DeskFigures]
    months: dict[str, Counts]
    line: LineFigures
    weekly_trend: dict[str, TrendWeek]
    call_records: int


class Final(ReportBase):
    """REP-4: the contract's totals per ward and month, the distributions, the line, the call records."""

    kind: Literal["final"] = "final"
    scope: Literal["city"] = "city"
    wards: list[WardName]
    months: list[str]
    figures: FinalFigures
    escalations: list[DeskEscalation]
    line_escalations: list[LineEscalation]
    call_records: list[CallRecord]


AnyReport = DeskDaily | LineDaily | CityDaily | Weekly | Final

__all__ = [
    "AnyReport",
    "FigureChange",
    "CallRecord",
    "CityDaily",
    "DeskDaily",
    "DeskFigures",
    "DurationStats",
    "Final",
    "LineDaily",
    "LineFigures",
    "Revision",
    "Weekly",
]
