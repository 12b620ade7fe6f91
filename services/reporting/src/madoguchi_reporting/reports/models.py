"""The reports the service serves, as frozen pydantic models (REP-1 … REP-4).

Every figure field is named by its key in `madoguchi_shared.figures` (`Fig` / `Family`), so the JSON
a client reads, the flat keys the verifier checks (`flatten`) and the labels the files print are the
same names; `test_reporting_figure_keys` holds the models to that. The JSON shape is the one the
console and the delivered files have always read: `model_dump(mode="json")`.

The models live by what they hold: `models_base` (what every report shares: periods, signatures,
revisions, opening hours, text entries), `models_daily` (the desk's and the line's figure blocks and
the daily reports) and `models_period` (the weekly table, the final report, call records). This
module gathers them under one name (`from madoguchi_reporting.reports import models as md`).
"""

from __future__ import annotations

from madoguchi_shared.events.report import FigureChange

from madoguchi_reporting.reports.models_base import (
    Frozen,
    DurationStats,
    MeanOnly,
    Period,
    Signature,
    Delivered,
    Revision,
    Opening,
    DeskOpening,
    Entry,
    DeskEscalation,
    LineEscalation,
    Opinion,
    ReportBase,
    Counts,
    Share,
)
from madoguchi_reporting.reports.models_daily import (
    DeskFigures,
    Callbacks,
    LineFigures,
    CityDeskRow,
    CallbacksShort,
    CityLineRow,
    DeskDaily,
    LineDaily,
    CityDesk,
    CityDailyFigures,
    CityDaily,
)
from madoguchi_reporting.reports.models_period import (
    WeekDay,
    WardName,
    DayTable,
    WeeklyFigures,
    Weekly,
    TrendWeek,
    CallRecord,
    FinalFigures,
    Final,
)

AnyReport = DeskDaily | LineDaily | CityDaily | Weekly | Final

__all__ = [
    "AnyReport",
    "CallRecord",
    "Callbacks",
    "CallbacksShort",
    "CityDaily",
    "CityDailyFigures",
    "CityDesk",
    "CityDeskRow",
    "CityLineRow",
    "Counts",
    "DayTable",
    "Delivered",
    "DeskDaily",
    "DeskEscalation",
    "DeskFigures",
    "DeskOpening",
    "DurationStats",
    "Entry",
    "FigureChange",
    "Final",
    "FinalFigures",
    "Frozen",
    "LineDaily",
    "LineEscalation",
    "LineFigures",
    "MeanOnly",
    "Opening",
    "Opinion",
    "Period",
    "ReportBase",
    "Revision",
    "Share",
    "Signature",
    "TrendWeek",
    "WardName",
    "WeekDay",
    "Weekly",
    "WeeklyFigures",
]
