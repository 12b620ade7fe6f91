"""A server-less harness for the desk domain: holds the aggregates, runs commands at a clock."""

from __future__ import annotations

from datetime import date, datetime, time
from uuid import UUID

from madoguchi_desk import domain as d
from madoguchi_shared.calendar import TOKYO, Calendar
from madoguchi_shared.events import Actor, Event, Role, new_id
from madoguchi_shared.events import desk as ev
from madoguchi_shared.municipality import Municipality, load_municipality

SAPPORO = load_municipality("011002")
MANAGER = Actor(id="M1", role=Role.manager)
SUPPORTER = Actor(id="S1", role=Role.supporter)
SUPPORTER2 = Actor(id="S2", role=Role.supporter)


class DeskHarness:
    def __init__(
        self,
        day: date = date(2021, 4, 6),
        desk: str = "chuo-1",
        municipality: Municipality = SAPPORO,
        calendar: Calendar | None = None,
    ):
        self.m = municipality
        self.desk = municipality.desk(desk)
        self.calendar = calendar or municipality.calendar()
        self.day = d.DeskDay.empty(self.desk, day)
        self.visits: dict[UUID, d.Visit] = {}
        self.log: list[Event] = []
        self.now = datetime.combine(day, time(8, 0), TOKYO)

    def at(self, hh: int, mm: int = 0, ss: int = 0) -> DeskHarness:
        self.now = datetime.combine(self.day.day, time(hh, mm, ss), TOKYO)
        return self

    def ctx(self, actor: Actor) -> d.Ctx:
        return d.Ctx(self.m, self.now, actor, self.desk, self.calendar.hours(self.day.day, self.desk.id))

    def _apply(self, events: list[Event]) -> list[Event]:
        for e in events:
            if e.aggregate == "deskday":
                self.day = d.evolve_deskday(self.day, e)
            elif e.aggregate == "visit":
                self.visits[e.visit_id] = d.evolve_visit(self.visits.get(e.visit_id), e)
        self.log.extend(events)
        return events

    def run(self, cmd, actor: Actor = SUPPORTER) -> list[Event]:
        return self._apply(d.decide_deskday(self.day, cmd, self.ctx(actor)))

    def issue(self, n: int = 1) -> list[int]:
        return [self.run(d.IssueTicket())[0].ticket_no for _ in range(n)]

    def call_next(self, actor: Actor = SUPPORTER) -> ev.TicketCalled:
        return self.run(d.CallNext(actor.id, new_id()), actor)[0]

    def start_visit(self, ticket_no: int, actor: Actor = SUPPORTER) -> UUID:
        events = self._apply(d.decide_start_visit(self.day, d.StartVisit(ticket_no, actor.id), self.ctx(actor)))
        return next(e.visit_id for e in events if isinstance(e, ev.VisitStarted))

    def visit(self, visit_id: UUID, cmd, actor: Actor = SUPPORTER) -> list[Event]:
        return self._apply(d.decide_visit(self.visits.get(visit_id), cmd, self.ctx(actor)))

    def card_left_behind(self, visit_id: UUID, actor: Actor = SUPPORTER) -> list[Event]:
        return self._apply(d.decide_card_left_behind(self.day, self.visits[visit_id], self.ctx(actor)))

    def types(self) -> list[str]:
        return [e.type for e in self.log]

    def open_morning(self, *staff: Actor) -> None:
        """Manager confirms the start, opening equipment check, staff check in (before 8:45)."""
        self.at(8, 30)
        self.run(d.StartDay(), MANAGER)
        self.run(d.CheckEquipment("opening"))
        for a in staff or (SUPPORTER,):
            self.run(d.CheckIn(a.id, "supporter"), a)
