"""Day lifecycle (ORG-3), equipment (DESK-10) and the calendar at the desk (DESK-1), in the domain."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from desk_harness import MANAGER, SAPPORO, SUPPORTER, DeskHarness

from madoguchi_desk import domain as d
from madoguchi_shared.errors import DomainError, Invalid
from madoguchi_shared.calendar import TOKYO, Instruction
from madoguchi_shared.events import desk as ev


def test_org3_manager_confirms_start_and_end_of_day():
    h = DeskHarness()
    h.open_morning()
    assert h.day.status == "started"
    h.at(17, 20).run(d.EndDay(), MANAGER)
    assert h.day.status == "ended"
    with pytest.raises(DomainError) as refused:
        h.run(d.StartDay(), MANAGER)
    assert refused.value.code == "day_ended"


def test_org3_cannot_start_is_reported_to_the_city_and_refuses_tickets():
    h = DeskHarness().at(8, 20)
    reported = datetime(2021, 4, 6, 8, 25, tzinfo=TOKYO)
    [e] = h.run(d.ReportCannotStart("staff_shortage", reported, "体調不良により支援員が不在"), MANAGER)
    assert isinstance(e, ev.DayCannotStart) and e.reported_to_city_at == reported
    with pytest.raises(DomainError) as refused:
        h.at(9).issue()
    assert refused.value.code == "desk_stopped"


def test_org3_cannot_continue_stops_the_desk_and_resume_reopens_it():
    h = DeskHarness()
    h.open_morning()
    h.at(11).run(d.ReportCannotContinue("network_failure", h.now), MANAGER)
    assert h.day.status == "halted"
    with pytest.raises(DomainError):
        h.issue()
    # a halted desk is not "open": no staffing breach even if everyone leaves
    h.run(d.CheckOut(SUPPORTER.id))
    assert not any(isinstance(e, ev.StaffingBreachDetected) for e in h.log)
    h.at(11, 30).run(d.ResumeDay(), MANAGER)
    assert h.day.status == "started"
    assert isinstance(h.log[-1], ev.StaffingBreachDetected)  # open again and nobody on duty


def test_desk5_preparation_and_cleanup_are_flagged_when_inside_opening_hours():
    h = DeskHarness()
    at = lambda hh, mm: datetime.combine(h.day.day, time(hh, mm), TOKYO)  # noqa: E731
    [prep] = h.run(d.RecordPreparation(at(8, 15), at(8, 40)))
    [late] = h.run(d.RecordCleanup(at(17, 0), at(17, 30)))
    assert prep.outside_opening_hours is True
    assert late.outside_opening_hours is False


def test_desk10_equipment_check_with_missing_laptop_opens_an_incident():
    h = DeskHarness().at(8, 30)
    events = h.run(d.CheckEquipment("opening", missing=("laptop", "flyers")))
    check, incident = events
    assert (
        isinstance(check, ev.EquipmentChecked) and check.items_checked == 20 and check.missing == ("flyers", "laptop")
    )
    assert (
        isinstance(incident, ev.IncidentOpened)
        and incident.kind == "equipment_missing"
        and incident.items == ("laptop",)
    )
    assert "ノートパソコン" in incident.message_ja


def test_desk10_missing_card_reader_at_closing_is_an_incident_but_flyers_are_not():
    h = DeskHarness().at(17, 20)
    assert len(h.run(d.CheckEquipment("closing", missing=("flyers",)))) == 1
    events = h.run(d.CheckEquipment("closing", missing=("card_reader",)))
    assert events[1].items == ("card_reader",) and events[1].incident_no == 1


def test_desk10_unknown_equipment_is_refused():
    h = DeskHarness()
    with pytest.raises(Invalid) as refused:
        h.run(d.CheckEquipment("opening", missing=("coffee_machine",)))
    assert refused.value.code == "unknown_item"


def test_desk1_suspended_day_refuses_tickets():
    day = date(2021, 4, 6)
    ins = Instruction(
        "pandemic-1",
        "suspend",
        datetime(2021, 4, 6, 0, 0, tzinfo=TOKYO),
        datetime(2021, 4, 8, 0, 0, tzinfo=TOKYO),
        reason="pandemic",
    )
    h = DeskHarness(day, calendar=SAPPORO.calendar(instructions=(ins,))).at(10)
    with pytest.raises(DomainError) as refused:
        h.issue()
    assert refused.value.code == "suspended" and "市の指示" in refused.value.detail
    with pytest.raises(DomainError):
        h.run(d.StartDay(), MANAGER)


def test_desk1_tickets_only_within_opening_hours():
    h = DeskHarness(date(2021, 4, 3))  # a Saturday
    with pytest.raises(DomainError) as refused:
        h.at(10).issue()
    assert refused.value.code == "closed_day"
    h = DeskHarness(date(2021, 4, 6))
    with pytest.raises(DomainError) as refused:
        h.at(17, 30).issue()
    assert refused.value.code == "outside_hours" and "08:45～17:15" in refused.value.detail
    # before opening only once the manager has confirmed the start (people queue early)
    with pytest.raises(DomainError):
        h.at(8, 40).issue()
    h.run(d.StartDay(), MANAGER)
    assert h.issue() == [1]


def test_desk1_extended_day_takes_tickets_until_1900():
    h = DeskHarness(date(2021, 4, 1))  # extended to 19:00 in Sapporo's configuration
    h.open_morning()
    assert h.at(18, 30).issue() == [1]
