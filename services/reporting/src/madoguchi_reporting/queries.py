"""The reports, built from the statistics tables (REP-1 … REP-4): the one entry point the API,
the CLI, the deliverables and the bench call. Each report is a frozen model
(`madoguchi_reporting.reports.models`) built by the module of its kind (`reports.daily`,
`reports.period`); `flatten(report)` gives its figures under the flat keys the verifier checks."""

from __future__ import annotations

from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES, revision_info
from madoguchi_reporting.reports.compute import desk_figures, diff_figures, flatten, line_figures, opening_hours
from madoguchi_reporting.reports.daily import city_daily, desk_daily, line_daily
from madoguchi_reporting.reports.models import AnyReport
from madoguchi_reporting.reports.period import call_records, final, weekly
from madoguchi_shared.figures import WEEKLY_DESK, WEEKLY_LINE
from madoguchi_reporting.reports.tables import caller_roots, desk_wards, known_lines

__all__ = [
    "AnyReport",
    "CITY_NOTES",
    "DESK_NOTES",
    "LINE_NOTES",
    "WEEKLY_DESK",
    "WEEKLY_LINE",
    "call_records",
    "caller_roots",
    "city_daily",
    "desk_daily",
    "desk_figures",
    "desk_wards",
    "diff_figures",
    "final",
    "flatten",
    "known_lines",
    "line_daily",
    "line_figures",
    "opening_hours",
    "revision_info",
    "weekly",
]
