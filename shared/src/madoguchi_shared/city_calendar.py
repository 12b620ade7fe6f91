"""The city's run-time calendar (DESK-1): one fold of the desk calendar events, shared by the desk
service (which decides on it) and reporting (which lays reports out by it).

`evolve_calendar` folds `desk.opening_suspended`, `desk.opening_delayed`,
`desk.city_instruction_lifted`, `desk.special_opening_scheduled` and
`desk.extended_hours_scheduled`, in stream order, into the instructions and special days that
`Municipality.calendar` lays over the configured calendar.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from madoguchi_shared.calendar import Calendar, Instruction, SpecialDay
from madoguchi_shared.events import Event
from madoguchi_shared.events import desk as dk

if TYPE_CHECKING:
    from madoguchi_shared.municipality import Municipality


@dataclass(frozen=True)
class CityCalendar:
    instructions: tuple[Instruction, ...] = ()
    special_days: tuple[SpecialDay, ...] = ()

    def calendar(self, municipality: Municipality) -> Calendar:
        return municipality.calendar(self.special_days, self.instructions)

    def instruction(self, instruction_id: str) -> Instruction | None:
        return next((i for i in self.instructions if i.id == instruction_id), None)


def evolve_calendar(state: CityCalendar | None, event: Event) -> CityCalendar:
    state = state or CityCalendar()
    match event:
        case dk.OpeningSuspended():
            ins = Instruction(
                event.instruction_id, "suspend", event.start, event.end, frozenset(event.desks), event.reason
            )
            return replace(state, instructions=(*state.instructions, ins))
        case dk.OpeningDelayed():
            ins = Instruction(
                event.instruction_id, "delay", event.start, event.until, frozenset(event.desks), event.reason
            )
            return replace(state, instructions=(*state.instructions, ins))
        case dk.CityInstructionLifted():
            kept: list[Instruction] = []
            for ins in state.instructions:
                if ins.id == event.instruction_id:
                    if event.at <= ins.start:
                        continue  # lifted before it began: as if never given
                    if ins.end is None or event.at < ins.end:
                        ins = replace(ins, end=event.at)
                kept.append(ins)
            return replace(state, instructions=tuple(kept))
        case dk.SpecialOpeningScheduled():
            sd = SpecialDay(
                event.day, "special_opening", event.open, event.close, frozenset(event.desks), event.note or ""
            )
            return replace(state, special_days=(*state.special_days, sd))
        case dk.ExtendedHoursScheduled():
            sd = SpecialDay(event.day, "extended", None, event.close, frozenset(event.desks), event.note or "")
            return replace(state, special_days=(*state.special_days, sd))
        case _:  # no other event changes the calendar
            pass
    return state


def fold_calendar(events: list[Event]) -> CityCalendar:
    """The city calendar after `events` (in stream order)."""
    state = CityCalendar()
    for e in events:
        state = evolve_calendar(state, e)
    return state


__all__ = ["CityCalendar", "evolve_calendar", "fold_calendar"]
