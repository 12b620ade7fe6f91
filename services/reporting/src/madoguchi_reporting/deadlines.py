"""Deliverables and their due dates (REP-6, 仕様書 5 納入成果物), as pure functions.

    (1) 業務計画書   business plan   契約締結後2週間以内   contract date + 14 days
    (2) 研修計画書   training plan   契約締結後2週間以内   contract date + 14 days
    (3) 日次報告書   daily report    翌営業日中            the next business day after the day reported
    (4) 週次報告書   weekly report   翌週中                the last business day of the following week
    (5) 最終報告書   final report    契約期間の末日まで     the contract's last day

A deliverable is due by the end of its due day (local time). The manager marks it submitted; one
not submitted by then is overdue, and `decide_overdue` raises that once.

The business-day calendar is passed in as a function (`is_business_day(date) -> bool`), taken from
the municipality's opening calendar by the service shell, so these functions need no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from madoguchi_shared.events.base import Actor
from madoguchi_shared.events.report import (
    DeliverableDefined,
    DeliverableKind,
    DeliverableOverdue,
    DeliverableSubmitted,
    deliverable_id,
)
from madoguchi_shared.wareki import to_wareki

IsBusinessDay = Callable[[dt.date], bool]

PLAN_DAYS = 14  # 契約締結後2週間以内

TITLES: dict[str, str] = {
    "business_plan": "業務計画書",
    "training_plan": "研修計画書",
    "daily_report": "日次報告書",
    "weekly_report": "週次報告書",
    "final_report": "最終報告書",
}


@dataclass(frozen=True)
class Deliverable:
    """A deliverable as planned from the contract and the calendar."""

    id: str
    kind: DeliverableKind
    period_start: dt.date
    period_end: dt.date
    due: dt.date

    @property
    def title(self) -> str:
        return deliverable_title(self.kind, self.period_start, self.period_end)


def deliverable_title(kind: str, start: dt.date, end: dt.date) -> str:
    base = TITLES[kind]
    if kind == "daily_report":
        return f"{base}（{to_wareki(start, weekday=True)}分）"
    if kind == "weekly_report":
        return f"{base}（{to_wareki(start)}～{to_wareki(end)}）"
    return base


def next_business_day(day: dt.date, is_business_day: IsBusinessDay, limit: int = 60) -> dt.date:
    """The first business day after `day`."""
    d = day
    for _ in range(limit):
        d += dt.timedelta(days=1)
        if is_business_day(d):
            return d
    raise ValueError(f"no business day within {limit} days after {day}")


def week_start(day: dt.date) -> dt.date:
    """The Monday of the week holding `day` (weeks run Monday to Sunday)."""
    return day - dt.timedelta(days=day.weekday())


def weekly_due(start: dt.date, is_business_day: IsBusinessDay) -> dt.date:
    """翌週中: the last business day of the week after the week starting `start`.

    A following week without any business day (e.g. the year-end closure) moves it to the first
    business day after that week.
    """
    nxt = start + dt.timedelta(days=7)
    days = [nxt + dt.timedelta(days=i) for i in range(7)]
    business = [d for d in days if is_business_day(d)]
    return business[-1] if business else next_business_day(days[-1], is_business_day)


def plan(
    contract_start: dt.date,
    contract_end: dt.date,
    report_days: Iterable[dt.date],
    is_business_day: IsBusinessDay,
) -> list[Deliverable]:
    """Every deliverable of a contract, in due-date order.

    `report_days` are the days with operations (a desk open or the line staffed): each gets a
    daily report; each week with such a day gets a weekly report.
    """
    out: list[Deliverable] = []
    plan_due = contract_start + dt.timedelta(days=PLAN_DAYS)
    for kind in ("business_plan", "training_plan"):
        out.append(Deliverable(deliverable_id(kind, contract_start), kind, contract_start, contract_end, plan_due))
    days = sorted({d for d in report_days if contract_start <= d <= contract_end})
    for d in days:
        due = min(next_business_day(d, is_business_day), contract_end) if d < contract_end else contract_end
        out.append(Deliverable(deliverable_id("daily_report", d), "daily_report", d, d, due))
    for ws in sorted({week_start(d) for d in days}):
        we = ws + dt.timedelta(days=6)
        due = min(weekly_due(ws, is_business_day), contract_end)
        out.append(
            Deliverable(
                deliverable_id("weekly_report", ws),
                "weekly_report",
                max(ws, contract_start),
                min(we, contract_end),
                due,
            )
        )
    out.append(
        Deliverable(
            deliverable_id("final_report", contract_start), "final_report", contract_start, contract_end, contract_end
        )
    )
    return sorted(out, key=lambda x: (x.due, x.kind, x.period_start))


# --- the deliverable aggregate: evolve / decide -------------------------------------------------


@dataclass(frozen=True)
class DeliverableState:
    id: str
    kind: DeliverableKind
    period_start: dt.date
    period_end: dt.date
    due: dt.date
    submitted_on: dt.date | None = None
    revision: int = 0
    overdue_raised: bool = False
    late: bool = False


def evolve(state: DeliverableState | None, event) -> DeliverableState | None:
    if isinstance(event, DeliverableDefined):
        return DeliverableState(event.deliverable_id, event.kind, event.period_start, event.period_end, event.due)
    if state is None:
        return None
    if isinstance(event, DeliverableSubmitted):
        return replace(state, submitted_on=event.submitted_on, revision=event.revision, late=event.late)
    if isinstance(event, DeliverableOverdue):
        return replace(state, overdue_raised=True)
    return state


def decide_define(
    state: DeliverableState | None,
    planned: Deliverable,
    *,
    municipality: str,
    contract_start: dt.date,
    contract_end: dt.date,
) -> list[DeliverableDefined]:
    """Define a planned deliverable once (a re-plan with the same due date changes nothing)."""
    if state is not None and state.due == planned.due:
        return []
    return [
        DeliverableDefined(
            municipality=municipality,
            deliverable_id=planned.id,
            kind=planned.kind,
            period_start=planned.period_start,
            period_end=planned.period_end,
            due=planned.due,
            contract_start=contract_start,
            contract_end=contract_end,
        )
    ]


class CannotSubmit(ValueError):
    """A refusal with a Japanese message for the user."""


def decide_submit(
    state: DeliverableState | None,
    *,
    today: dt.date,
    municipality: str,
    actor: Actor,
    report_ids: tuple[str, ...] = (),
    sha256: str | None = None,
) -> list[DeliverableSubmitted]:
    """The manager marks a deliverable delivered; a second submission is a new revision."""
    if state is None:
        raise CannotSubmit("この成果物は定義されていません。")
    if state.kind in ("daily_report", "weekly_report") and today < state.period_end:
        raise CannotSubmit("対象期間が終わる前の報告書は提出できません。")
    return [
        DeliverableSubmitted(
            municipality=municipality,
            deliverable_id=state.id,
            kind=state.kind,
            submitted_on=today,
            revision=state.revision + 1,
            late=(state.submitted_on or today) > state.due,
            report_ids=report_ids,
            sha256=sha256,
            actor=actor,
        )
    ]


def decide_overdue(state: DeliverableState | None, *, today: dt.date, municipality: str) -> list[DeliverableOverdue]:
    """Overdue once: past its due day, never submitted, not yet raised."""
    if state is None or state.submitted_on is not None or state.overdue_raised or today <= state.due:
        return []
    return [
        DeliverableOverdue(
            municipality=municipality, deliverable_id=state.id, kind=state.kind, due=state.due, detected_on=today
        )
    ]
