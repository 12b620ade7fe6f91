"""ORG-4: who is cleared for which duty, from a person's admin events and the municipality's plan.

Pure: `status(plan, events)` folds the events of one staff subject (mg.admin.<m>.staff.<id>).
The desk (check-in) and the phone line (taking a seat) refuse duty while `missing(duty)` is not
empty; the staff screens show the same record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from madoguchi_shared.events import Event
from madoguchi_shared.events.admin import (
    StaffAccountDisabled,
    StaffAccountEnabled,
    TrainingItemCompleted,
    TrainingTestRecorded,
)
from madoguchi_shared.municipality import DUTIES, TrainingPlan


@dataclass(frozen=True)
class ItemRecord:
    on: date | None
    trainer: str | None
    hours: float
    recorded_by: str | None


@dataclass(frozen=True)
class TestRecord:
    score: int
    passed: bool
    on: date | None
    trainer: str | None


@dataclass
class TrainingStatus:
    plan: TrainingPlan
    items: dict[str, ItemRecord] = field(default_factory=dict[str, ItemRecord])
    test: TestRecord | None = None
    disabled: bool = False

    def missing(self, duty: str) -> tuple[str, ...]:
        """Item keys not completed for `duty`, then "test" if not passed, then "account_disabled"."""
        out = [i.key for i in self.plan.items_for(duty) if i.key not in self.items]
        if self.test is None or not self.test.passed:
            out.append("test")
        if self.disabled:
            out.append("account_disabled")
        return tuple(out)

    def cleared(self, duty: str) -> bool:
        return not self.missing(duty)

    def missing_labels(self, duty: str) -> tuple[str, ...]:
        return tuple("アカウント無効" if k == "account_disabled" else self.plan.label(k) for k in self.missing(duty))

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "key": i.key,
                    "name_ja": i.name_ja,
                    "hours": i.hours,
                    "duties": list(i.duties),
                    "done": i.key in self.items,
                    **(
                        {
                            "completed_on": _iso(self.items[i.key].on),
                            "trainer": self.items[i.key].trainer,
                            "recorded_by": self.items[i.key].recorded_by,
                        }
                        if i.key in self.items
                        else {}
                    ),
                }
                for i in self.plan.items
            ],
            "test": None
            if self.test is None
            else {
                "score": self.test.score,
                "passed": self.test.passed,
                "tested_on": _iso(self.test.on),
                "trainer": self.test.trainer,
            },
            "pass_score": self.plan.pass_score,
            "cleared": {duty: self.cleared(duty) for duty in DUTIES},
            "missing": {duty: list(self.missing(duty)) for duty in DUTIES},
        }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def status(plan: TrainingPlan, events: Iterable[Event]) -> TrainingStatus:
    st = TrainingStatus(plan=plan)
    for event in events:
        if isinstance(event, TrainingItemCompleted):
            st.items[event.item] = ItemRecord(
                event.completed_on or event.occurred_at.date(),
                event.trainer,
                event.hours,
                event.actor.id if event.actor else None,
            )
        elif isinstance(event, TrainingTestRecorded):
            st.test = TestRecord(event.score, event.passed, event.tested_on or event.occurred_at.date(), event.trainer)
        elif isinstance(event, StaffAccountDisabled):
            st.disabled = True
        elif isinstance(event, StaffAccountEnabled):
            st.disabled = False
    return st


DUTY_LABELS = {"desk": "窓口（支援員）", "phone": "電話（オペレーター）"}
