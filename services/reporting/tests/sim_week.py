"""Simulated days for the reporting tests, from the simulator's own generator (tools/simulator):
the events it publishes and, per daily report, the figures its ground truth predicts (the same flat
keys as `queries.flatten`), with the generator's records of each desk-day and line-day: the visits
served and the people who left unserved, the extended hours the city set during a day, the calls
(repeat calls linked by reference) and each phone escalation followed to the city's answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from madoguchi_shared.events import Event
from madoguchi_shared.events.report import line_scope_id, report_id
from madoguchi_shared.municipality import Municipality, load_municipality

from madoguchi_sim.calls import CallRecord, LineDayResult
from madoguchi_sim.desk import DeskDayResult, VisitRecord
from madoguchi_sim.generator import Scenario, iter_events, resize
from madoguchi_sim.profile import DEFAULT
from madoguchi_sim.truth import Truth, desk_day_figures

WEEK_START = dt.date(2021, 3, 29)  # Sapporo's week with the extended days 4/1, 4/2 and the Sunday opening 4/4
SOURCE = "011002"  # Sapporo: the week is drawn under its code, whatever code the test publishes it under


class RecordingTruth(Truth):
    """The generator's truth, keeping each desk-day's and line-day's records as well."""

    def __init__(self) -> None:
        super().__init__()
        self.desk_days: list[DeskDayResult] = []
        self.line_days: list[LineDayResult] = []

    def add_desk_day(self, res: DeskDayResult) -> None:
        super().add_desk_day(res)
        self.desk_days.append(res)

    def add_line_day(self, res: LineDayResult) -> None:
        super().add_line_day(res)
        self.line_days.append(res)


@dataclass
class SimWeek:
    municipality: str
    config: Municipality
    truth: RecordingTruth
    events: list[Event] = field(default_factory=list)
    generated_as: str = SOURCE  # the code the generator drew under (its truth is keyed by it)

    def desk_truth(self, desk: str, day: dt.date) -> dict[str, Any]:
        """The desk's daily figures, counted from the generator's records as they are now (a test
        that corrects a visit changes its record, and the truth follows)."""
        for res in self.truth.desk_days:
            if res.desk == desk and res.day == day and res.opened:
                return desk_day_figures(res)
        return {}

    def line_truth(self, day: dt.date, line: str = "main") -> dict[str, Any]:
        return self.truth.reports().get(self.generated_as, {}).get(report_id("daily", line_scope_id(line), day), {})

    def desk_days(self, desk: str | None = None, day: dt.date | None = None) -> list[DeskDayResult]:
        """The open desk-days (of a desk, on a day)."""
        return [
            res
            for res in self.truth.desk_days
            if res.opened and (desk is None or res.desk == desk) and (day is None or res.day == day)
        ]

    def extended(self) -> list[DeskDayResult]:
        """The desk-days whose hours the city extended during the day (DESK-1)."""
        return [res for res in self.desk_days() if res.extended_to is not None]

    def unserved(self, desk: str | None = None, day: dt.date | None = None) -> list[tuple[DeskDayResult, VisitRecord]]:
        """The people who took a ticket and left before being served (来庁者数 counts them)."""
        return [(res, v) for res in self.desk_days(desk, day) for v in res.visits if v.served_at is None]

    def calls(self, day: dt.date | None = None, line: str = "main") -> list[CallRecord]:
        """The calls received on the line (on a day), in reception order."""
        return self.truth.calls(self.generated_as, line, day)

    def served(self, desk: str | None = None, day: dt.date | None = None) -> list[tuple[DeskDayResult, VisitRecord]]:
        """The visits served (at a desk, on a day), each with its desk-day."""
        return [
            (res, v)
            for res in self.truth.desk_days
            if (desk is None or res.desk == desk) and (day is None or res.day == day)
            for v in res.visits
            if v.served_at is not None
        ]


def simulate(
    municipality: str,
    week_start: dt.date = WEEK_START,
    *,
    seed: int = 7,
    desks: int | None = None,
    days: int = 7,
    visitors: int | None = None,
) -> SimWeek:
    """`days` calendar days from `week_start` at Sapporo's desks (the first `desks` of them) and its
    phone line, published under `municipality`'s code; `visitors`: about that many per desk and day.

    The generator draws each desk-day and line-day from (seed, municipality code, ...): the week is
    drawn under Sapporo's code and its events relabelled, so a seed gives the same week whatever
    (unique) code a test runs under."""
    config = load_municipality(SOURCE)
    if desks is not None:
        config = resize(config, desks)
    calendar = config.calendar()
    dates = [week_start + dt.timedelta(days=i) for i in range(days)]
    opening = sum(1 for d in dates if any(calendar.hours(d, x.id).open_day for x in config.desks))
    profile = DEFAULT
    if visitors is not None:
        profile = replace(DEFAULT, visitors_mean=visitors, visitors_sd=1.0, visitors_min=max(1, visitors - 2))
    scenario = Scenario(
        municipalities=(config,), start=week_start, days=opening, seed=seed, profile=profile, setup=False, devices=False
    )
    truth = RecordingTruth()
    events = [e.model_copy(update={"municipality": municipality}) for e in iter_events(scenario, truth)]
    return SimWeek(municipality, config.model_copy(update={"code": municipality}), truth, events)
