"""The period reports (see `models`): the city-wide weekly table (REP-3) and the final report with
its call records (REP-4)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from madoguchi_reporting.reports.models_base import Counts, DeskEscalation, Frozen, LineEscalation, ReportBase
from madoguchi_reporting.reports.models_daily import DeskFigures, LineFigures


class WeekDay(Frozen):
    date: dt.date
    label: str
    wareki: str
    open: bool  # the desks open that day: a business day of the calendar within the contract's operations
    # what a day without operations shows instead of figures: 閉庁 (closed that day), 開設前 (before the
    # contract's first day of operations, 仕様書 3: 窓口開設は4月1日から), 契約終了 (after its end); "" when open
    closed_ja: str = ""


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
