"""Reception queue (DESK-3), capacity (DESK-2) and disinfection (DESK-8), in the domain."""

from __future__ import annotations

import pytest
from desk_harness import SAPPORO, SUPPORTER, SUPPORTER2, DeskHarness

from madoguchi_desk import domain as d
from madoguchi_shared.errors import DomainError
from madoguchi_shared.events import desk as ev
from madoguchi_shared.events import new_id


def test_desk3_tickets_numbered_in_order_and_called_in_order():
    h = DeskHarness()
    h.open_morning()
    h.at(9)
    assert h.issue(3) == [1, 2, 3]
    assert h.call_next().ticket_no == 1
    assert h.call_next().ticket_no == 2
    assert [t.no for t in h.day.waiting()] == [3]


def test_desk3_recall_no_show_and_transfer():
    h = DeskHarness()
    h.open_morning(SUPPORTER, SUPPORTER2)
    h.at(9)
    h.issue(2)
    h.call_next()
    [recall] = h.run(d.Recall(1))
    assert recall.call_count == 2
    h.run(d.NoShow(1))
    assert h.day.tickets[1].status == "no_show"
    with pytest.raises(DomainError):
        h.run(d.NoShow(1))
    h.call_next()
    [tr] = h.run(d.Transfer(2, SUPPORTER2.id))
    assert tr.from_staff == SUPPORTER.id and tr.to_staff == SUPPORTER2.id
    with pytest.raises(DomainError) as refused:
        h.start_visit(2, SUPPORTER)  # now called to S2
    assert refused.value.code == "other_staff"
    h.start_visit(2, SUPPORTER2)
    assert h.day.tickets[2].status == "served"


def test_desk3_call_next_with_a_stale_view_is_refused():
    h = DeskHarness()
    h.open_morning(SUPPORTER, SUPPORTER2)
    h.at(9)
    h.issue(2)
    h.run(d.CallNext(SUPPORTER.id, new_id(), expected_ticket=1))
    with pytest.raises(DomainError) as refused:
        h.run(d.CallNext(SUPPORTER2.id, new_id(), expected_ticket=1), SUPPORTER2)
    assert refused.value.code == "stale_queue"


def test_desk3_empty_queue_and_off_duty_caller_refused():
    h = DeskHarness()
    h.open_morning()
    with pytest.raises(DomainError) as refused:
        h.at(9).call_next()
    assert refused.value.code == "queue_empty"
    h.issue()
    with pytest.raises(DomainError) as refused:
        h.call_next(SUPPORTER2)  # not checked in
    assert refused.value.code == "not_on_duty"


def test_desk3_waiting_time_and_estimated_wait():
    h = DeskHarness()
    h.open_morning()
    h.at(9)
    h.issue(5)
    for i, minute in enumerate((10, 20, 30), start=1):
        h.at(9, minute)
        h.call_next()
        h.start_visit(i)
    assert h.day.tickets[1].waited_seconds == 600
    assert d.estimated_wait_minutes(h.day, h.now) == 20.0  # 2 waiting x 10 minutes between services


def test_desk3_day_cannot_end_with_people_waiting():
    h = DeskHarness()
    h.open_morning()
    h.at(9).issue()
    with pytest.raises(DomainError) as refused:
        h.at(17, 20).run(d.EndDay())
    assert refused.value.code == "queue_not_empty"


def test_desk2_capacity_thresholds_alert_once_each():
    small = SAPPORO.model_copy(
        update={
            "wards": tuple(
                w.model_copy(
                    update={"desks": tuple(dk.model_copy(update={"expected_max_visitors": 4}) for dk in w.desks)}
                )
                for w in SAPPORO.wards
            )
        }
    )
    h = DeskHarness(municipality=small)
    h.open_morning()
    h.at(9)
    reached = []
    for _ in range(6):
        reached += [e for e in h.run(d.IssueTicket()) if isinstance(e, ev.CapacityThresholdReached)]
    assert [(e.threshold, e.visitors) for e in reached] == [(0.8, 4), (1.0, 4), (1.25, 5)]
    assert "委託者と協議" in reached[1].message_ja
    assert SAPPORO.capacity_marks("chuo-1") == [(0.8, 64), (1.0, 80), (1.25, 100)]


def test_desk8_visit_started_before_disinfection_is_flagged():
    h = DeskHarness()
    h.open_morning()
    h.at(9)
    h.issue(3)
    h.call_next()
    v1 = h.start_visit(1)
    h.visit(v1, d.EndVisit("completed"))
    h.run(d.MarkDisinfected())
    h.call_next()
    v2 = h.start_visit(2)
    assert h.visits[v2].disinfection_pending is False
    h.visit(v2, d.EndVisit("completed"))
    h.call_next()
    v3 = h.start_visit(3)  # no disinfection after visit 2
    flag = [e for e in h.log if isinstance(e, ev.VisitStartedBeforeDisinfection)]
    assert len(flag) == 1 and flag[0].visit_id == v3 and flag[0].previous_visit_id == v2
    assert h.visits[v3].disinfection_pending is True
    status = d.desk_status(h.day, h.desk, h.calendar.hours(h.day.day, h.desk.id), h.m, h.now)
    flags = status["disinfection"].pop("flags")
    assert status["disinfection"] == {
        "visits": 3,
        "disinfected": 1,
        "flagged": 1,
        "compliance": 0.667,
        "pending_visit": str(v3),
    }
    # The flagged visit names the visit (ticket) and the supporter that left the disinfection undone.
    assert flags == [
        {
            "visit_id": str(v3),
            "previous_visit_id": str(h.day.tickets[2].visit_id),
            "previous_ticket": 2,
            "previous_staff": h.day.tickets[2].staff_id,
        }
    ]
