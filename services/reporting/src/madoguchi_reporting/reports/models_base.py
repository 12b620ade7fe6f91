"""The parts every report model shares (see `models`): the frozen base, periods, signatures,
revisions, opening hours, text entries (escalations, opinions) and the report's common fields."""

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
