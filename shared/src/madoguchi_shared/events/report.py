"""Reporting events (context "report"): reports changing, submitted and revised; deliverables (REP-*).

Two aggregates live on the MG_REPORT stream:

``report`` — one report of one scope and period, id ``<kind>_<scope_id>_<period_start>``
    (see `report_id`), e.g.
        daily_chuo-1_2021-04-01     the daily report of desk chuo-1 (REP-1)
        daily_line-main_2021-04-01  the daily figures of phone line "main" (REP-2)
        weekly_city_2021-04-05      the city-wide weekly table of the week starting Monday 5 April (REP-3)
        final_city_2021-03-01       the final report of the contract starting 1 March (REP-4)
    Its events: `ReportUpdated` (the statistics changed: a small notice for downstream consumers,
    published at most once per report per projection batch), `ReportSubmitted` (the manager
    delivered it: revision n, sha256 of the files), `ReportRevisionMade` (figures of a submitted
    report changed afterwards, e.g. a late correction: the new revision and what changed).
    Two revision counters, deliberately distinct:
      * `data_revision`: how many projection batches have changed this report's figures (1, 2, ...),
        carried by ReportUpdated; it only says "newer than what you saw";
      * `revision`: the delivered version (1 = first submission; 2 = the first corrected version, ...),
        carried by ReportSubmitted and ReportRevisionMade.

``deliverable`` — one 納入成果物 of the contract (REP-6), id ``<kind>_<period>`` (see
    `deliverable_id`), e.g. ``business_plan_2021-03-01``, ``training_plan_2021-03-01``,
    ``daily_report_2021-04-01``, ``weekly_report_2021-04-05``, ``final_report_2021-03-01``.
    Events: `DeliverableDefined` (with its due date), `DeliverableSubmitted` (the manager marks it
    delivered), `DeliverableOverdue` (the due date passed without a submission: an alert).

No personal data: figures are counts and durations; a figure key names a statistic, never a person.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from madoguchi_shared.events.base import MAX_SAFE_INT, Event, Frozen, Ident

# a report figure: a count or a share / mean, bounded like every number of the contract
FigureValue = (
    Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    | Annotated[float, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT, allow_inf_nan=False)]
)

__all__ = [
    "ReportKind",
    "ReportScope",
    "DeliverableKind",
    "report_id",
    "line_scope_id",
    "deliverable_id",
    "SubmittedFile",
    "FigureChange",
    "ReportUpdated",
    "ReportSubmitted",
    "ReportRevisionMade",
    "DeliverableDefined",
    "DeliverableSubmitted",
    "DeliverableOverdue",
]

ReportKind = Literal["daily", "weekly", "final"]
# desk: one desk's daily report; line: the phone line; city: every ward together (weekly, final)
ReportScope = Literal["desk", "line", "city"]
DeliverableKind = Literal["business_plan", "training_plan", "daily_report", "weekly_report", "final_report"]
FileFormat = Literal["json", "xlsx", "pdf", "csv", "other"]

# A figure key names one statistic of a report: "visitors", "by_hour.09", "by_gender.female",
# "desks.chuo-1.2021-04-05.visitors", ... (letters, digits and . _ : - only).
FigureKey = str
_FIGURE_KEY = r"^[A-Za-z0-9_.:\-]{1,200}$"


# A report's id and scope id are built from a desk or line id (an Ident, up to 64 characters):
# "line-" + 64 and "final_line-<64>_2021-04-01" must fit (a generated event with the longest line id was dead-lettered).
ReportIdent = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,96}$")]


def report_id(kind: str, scope_id: str, period_start: dt.date | str) -> str:
    """The report aggregate id: ``<kind>_<scope_id>_<period_start ISO>``.

    scope_id is the desk id for a desk's daily report, ``line-<line id>`` for a phone line (see
    `line_scope_id`), ``city`` for the weekly and final reports.
    """
    start = period_start.isoformat() if isinstance(period_start, dt.date) else period_start
    return f"{kind}_{scope_id}_{start}"


def line_scope_id(line: str) -> str:
    """The scope id of a phone line's reports: ``line-<line id>`` (never mistaken for a desk id)."""
    return f"line-{line}"


def deliverable_id(kind: str, period_start: dt.date | str) -> str:
    """The deliverable aggregate id: ``<kind>_<period_start ISO>`` (plans use the contract date)."""
    start = period_start.isoformat() if isinstance(period_start, dt.date) else period_start
    return f"{kind}_{start}"


class SubmittedFile(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,120}$")  # e.g. daily_chuo-1_2021-04-01.xlsx
    format: FileFormat
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, le=1_099_511_627_776)


class FigureChange(Frozen):
    """One figure that differs from the submitted version (None = absent on that side)."""

    key: FigureKey = Field(pattern=_FIGURE_KEY)
    old: FigureValue | None = None
    new: FigureValue | None = None


class _ReportEvent(Event):
    context: ClassVar[str] = "report"
    aggregate: ClassVar[str] = "report"
    aggregate_field: ClassVar[str] = "report_id"
    report_id: ReportIdent
    kind: ReportKind
    scope: ReportScope
    scope_id: ReportIdent  # desk id, "line-<line id>" or "city"
    date: dt.date  # the first day of the period (the day itself for a daily report)
    period_end: dt.date


class ReportUpdated(_ReportEvent):
    """REP-1/2/3: the figures of a report changed (a small notice, once per report per batch).

    The envelope's ward and desk name the desk for a desk report; `line` names the phone line.
    """

    type: Literal["report.report_updated"] = "report.report_updated"
    line: Ident | None = None
    data_revision: int = Field(ge=1, le=1_000_000_000)
    # The delivered version the change applies to: None before the first submission, else the
    # revision the next submission will get (last submitted + 1).
    revision: int | None = Field(default=None, ge=1, le=1_000_000)


class ReportSubmitted(_ReportEvent):
    """REP-6: a report was delivered to the city; the submitted JSON and files are kept unchanged."""

    type: Literal["report.report_submitted"] = "report.report_submitted"
    revision: int = Field(ge=1, le=1_000_000)  # 1 = first submission, 2.. = corrected versions
    data_revision: int = Field(ge=0, le=1_000_000_000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # over the file set (see files), in name order
    files: tuple[SubmittedFile, ...] = Field(default=(), max_length=20)
    deliverable_id: Ident | None = None


class ReportRevisionMade(_ReportEvent):
    """REP-5: figures of a submitted report changed after its submission (a late correction).

    `revision` is the version the corrected report will carry; `based_on` the submitted one;
    `changes` every figure that differs from the submitted version (old = submitted value).
    """

    type: Literal["report.report_revision_made"] = "report.report_revision_made"
    revision: int = Field(ge=2, le=1_000_000)
    based_on: int = Field(ge=1, le=1_000_000)
    changes: tuple[FigureChange, ...] = Field(min_length=1, max_length=2000)
    changes_truncated: bool = False


class _DeliverableEvent(Event):
    context: ClassVar[str] = "report"
    aggregate: ClassVar[str] = "deliverable"
    aggregate_field: ClassVar[str] = "deliverable_id"
    deliverable_id: Ident
    kind: DeliverableKind


class DeliverableDefined(_DeliverableEvent):
    """REP-6: a deliverable of the contract and its due date (due by the end of that day, local time)."""

    type: Literal["report.deliverable_defined"] = "report.deliverable_defined"
    period_start: dt.date
    period_end: dt.date
    due: dt.date
    contract_start: dt.date
    contract_end: dt.date


class DeliverableSubmitted(_DeliverableEvent):
    """REP-6: the manager marks a deliverable delivered (a re-submission increments revision)."""

    type: Literal["report.deliverable_submitted"] = "report.deliverable_submitted"
    submitted_on: dt.date  # local date of delivery
    revision: int = Field(ge=1, le=1_000_000)
    late: bool = False
    report_ids: tuple[ReportIdent, ...] = Field(default=(), max_length=200)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # of the delivered file set


class DeliverableOverdue(_DeliverableEvent):
    """REP-6: the due date passed without a submission (an alert for the manager; raised once)."""

    type: Literal["report.deliverable_overdue"] = "report.deliverable_overdue"
    due: dt.date
    detected_on: dt.date
