"""Staffing (DESK-5) and training before duty (ORG-4), in the domain."""

from __future__ import annotations

import pytest
from desk_harness import MANAGER, SUPPORTER, SUPPORTER2, DeskHarness

from madoguchi_desk import domain as d
from madoguchi_shared.errors import Forbidden
from madoguchi_shared.events import desk as ev
from madoguchi_shared.events.admin import (
    TRAINING_ITEMS,
    StaffAccountDisabled,
    TrainingItemCompleted,
    TrainingTestRecorded,
)

M = "011002"


def test_desk5_nobody_on_duty_raises_breach_at_once_and_counts_it():
    h = DeskHarness()
    h.open_morning()
    h.at(10)
    events = h.run(d.CheckOut(SUPPORTER.id))
    assert [e.type for e in events] == ["desk.staff_checked_out", "desk.staffing_breach_detected"]
    breach = events[1]
    assert breach.breach_no == 1 and breach.trigger == "staffing_change" and not breach.absence_notice_shown
    # the timer a minute later sees the same breach: no second event
    assert h.at(10, 1).run(d.CheckStaffing()) == []
    events = h.run(d.CheckIn(SUPPORTER2.id, "supporter"), SUPPORTER2)
    ended = events[-1]
    assert (
        isinstance(ended, ev.StaffingBreachEnded) and ended.duration_seconds == 60 and ended.ended_by == "staff_on_duty"
    )
    assert h.day.breach_count == 1 and h.day.breach_seconds == 60


def test_desk5_timer_detects_a_desk_nobody_opened():
    h = DeskHarness()
    assert h.at(8, 44).run(d.CheckStaffing()) == []  # not open yet
    [breach] = h.at(8, 45).run(d.CheckStaffing())
    assert isinstance(breach, ev.StaffingBreachDetected) and breach.trigger == "timer"
    [ended] = h.at(17, 15).run(d.CheckStaffing())  # closing ends it
    assert ended.ended_by == "desk_closed" and ended.duration_seconds == 8.5 * 3600


def test_desk5_short_absence_is_shown_and_counted_as_a_breach_with_notice():
    h = DeskHarness()
    h.open_morning()
    events = h.at(13).run(d.StartAbsence(SUPPORTER.id, "restroom", 5))
    assert events[-1].type == "desk.staffing_breach_detected" and events[-1].absence_notice_shown
    status = d.desk_status(h.day, h.desk, h.calendar.hours(h.day.day, h.desk.id), h.m, h.now)
    assert any(a["kind"] == "short_absence" and "席を外して" in a["message_ja"] for a in status["alerts"])
    events = h.at(13, 4).run(d.EndAbsence(SUPPORTER.id))
    assert events[0].absent_seconds == 240 and events[1].type == "desk.staffing_breach_ended"


def test_desk5_two_supporters_one_absent_is_not_a_breach():
    h = DeskHarness()
    h.open_morning(SUPPORTER, SUPPORTER2)
    assert [e.type for e in h.at(10).run(d.StartAbsence(SUPPORTER.id, "break", 10))] == ["desk.short_absence_started"]


def test_desk5_no_breach_outside_opening_hours():
    h = DeskHarness()
    h.open_morning()
    assert [e.type for e in h.at(17, 30).run(d.CheckOut(SUPPORTER.id))] == ["desk.staff_checked_out"]


def test_org4_check_in_refused_until_training_complete():
    """ORG-4 and SEC-1: no duty before the training, the information security policy included."""
    h = DeskHarness().at(8, 30)
    staff = [TrainingItemCompleted(municipality=M, staff_id="S9", item=i, hours=1) for i in TRAINING_ITEMS[:-1]]
    missing = d.training_missing(staff)
    assert missing == ("security_policy", "test")
    with pytest.raises(Forbidden) as refused:
        h.run(d.CheckIn("S9", "supporter", missing))
    assert "情報セキュリティ" in refused.value.detail
    staff += [
        TrainingItemCompleted(municipality=M, staff_id="S9", item="security_policy", hours=1),
        TrainingTestRecorded(municipality=M, staff_id="S9", score=40, passed=False),
    ]
    assert d.training_missing(staff) == ("test",)
    staff.append(TrainingTestRecorded(municipality=M, staff_id="S9", score=90, passed=True))
    assert d.training_missing(staff) == ()
    assert h.run(d.CheckIn("S9", "supporter", ()))[0].type == "desk.staff_checked_in"
    assert d.training_missing([*staff, StaffAccountDisabled(municipality=M, staff_id="S9")]) == ("account_disabled",)


def test_desk8_mask_status_shown_at_the_desk():
    h = DeskHarness()
    h.open_morning()
    h.run(d.RecordMask(SUPPORTER.id, False))
    status = d.desk_status(h.day, h.desk, h.calendar.hours(h.day.day, h.desk.id), h.m, h.now)
    assert status["on_duty"][0]["mask"] is False and any(a["kind"] == "mask" for a in status["alerts"])


def test_org3_ending_the_day_ends_an_open_breach():
    h = DeskHarness()
    h.open_morning()
    h.at(16).run(d.CheckOut(SUPPORTER.id))
    events = h.at(16, 30).run(d.EndDay(), MANAGER)
    assert [e.type for e in events] == ["desk.day_ended", "desk.staffing_breach_ended"]
