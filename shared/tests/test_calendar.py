"""DESK-1: the opening calendar as pure functions (business days, hours, specials, instructions)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madoguchi_shared.calendar import TOKYO, Calendar, Hours, Instruction, SpecialDay, holiday_name


def t(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=TOKYO)


CAL = Calendar(
    special_days=(
        SpecialDay(date(2021, 4, 4), "special_opening", time(8, 45), time(12, 0)),
        SpecialDay(date(2021, 4, 1), "extended", close=time(19, 0)),
    )
)


def test_desk1_weekends_holidays_and_year_end_are_not_business_days():
    assert CAL.is_business_day(date(2021, 4, 6))  # Tuesday
    assert CAL.closed_reason(date(2021, 4, 3)) == "weekend"
    assert CAL.closed_reason(date(2021, 4, 29)) == "holiday" and holiday_name(date(2021, 4, 29)) == "昭和の日"
    assert CAL.closed_reason(date(2021, 8, 9)) == "holiday"  # substitute holiday (振替休日)
    for d in (date(2021, 12, 29), date(2021, 12, 30), date(2021, 12, 31), date(2022, 1, 3)):
        assert CAL.closed_reason(d) == "year_end"
    assert CAL.is_business_day(date(2021, 12, 28)) and CAL.is_business_day(date(2022, 1, 4))


def test_desk1_next_business_day_skips_golden_week_and_year_end():
    assert CAL.next_business_day(date(2021, 4, 28)) == date(2021, 4, 30)
    assert CAL.next_business_day(date(2021, 4, 30)) == date(2021, 5, 6)
    assert CAL.next_business_day(date(2021, 12, 28)) == date(2022, 1, 4)
    assert CAL.next_business_day(date(2021, 4, 3)) == date(2021, 4, 5)  # from a Saturday
    assert CAL.previous_business_day(date(2021, 5, 6)) == date(2021, 4, 30)
    assert CAL.next_business_day_deadline(date(2021, 4, 30)) == t(2021, 5, 6, 17, 15)


def test_desk1_add_business_days_and_range():
    assert CAL.add_business_days(date(2021, 4, 30), 3) == date(2021, 5, 10)
    assert CAL.add_business_days(date(2021, 5, 10), -3) == date(2021, 4, 30)
    assert CAL.add_business_days(date(2021, 5, 3), 0) == date(2021, 5, 6)
    days = CAL.business_days(date(2021, 4, 26), date(2021, 5, 9))
    assert days == [
        date(2021, 4, 26),
        date(2021, 4, 27),
        date(2021, 4, 28),
        date(2021, 4, 30),
        date(2021, 5, 6),
        date(2021, 5, 7),
    ]


def test_desk1_regular_special_and_extended_hours():
    regular = CAL.hours(date(2021, 4, 6))
    assert regular.kind == "regular" and (regular.opens, regular.closes) == (
        t(2021, 4, 6, 8, 45),
        t(2021, 4, 6, 17, 15),
    )
    sunday = CAL.hours(date(2021, 4, 4))
    assert sunday.kind == "special_opening" and sunday.closes == t(2021, 4, 4, 12) and not sunday.business_day
    assert CAL.hours(date(2021, 4, 1)).closes == t(2021, 4, 1, 19)
    assert CAL.is_open(t(2021, 4, 1, 18, 59)) and not CAL.is_open(t(2021, 4, 1, 19, 0))
    assert (
        CAL.is_open(t(2021, 4, 6, 8, 45))
        and not CAL.is_open(t(2021, 4, 6, 8, 44))
        and not CAL.is_open(t(2021, 4, 6, 17, 15))
    )
    assert not CAL.hours(date(2021, 4, 3)).open_day
    # an extension does not open a closed day
    assert (
        not CAL.with_special_days([SpecialDay(date(2021, 4, 3), "extended", close=time(19))])
        .hours(date(2021, 4, 3))
        .open_day
    )


def test_desk1_special_days_per_desk_beat_general_ones():
    cal = CAL.with_special_days([SpecialDay(date(2021, 4, 6), "closed", desks=frozenset({"kita-1"}))])
    assert cal.hours(date(2021, 4, 6), "chuo-1").open_day
    assert cal.hours(date(2021, 4, 6), "kita-1").closed_reason == "special_closure"


def test_desk1_city_suspension_and_delay_cut_the_hours():
    cal = CAL.with_instructions(
        [
            Instruction("s1", "suspend", t(2021, 4, 6, 12), t(2021, 4, 6, 13), reason="pandemic"),
            Instruction("d1", "delay", t(2021, 4, 7), t(2021, 4, 9), frozenset({"chuo-1"}), reason="pandemic"),
            Instruction("s2", "suspend", t(2021, 4, 12), None, frozenset({"kita-1"})),
        ]
    )
    lunch = cal.hours(date(2021, 4, 6), "chuo-1")
    assert lunch.intervals == ((t(2021, 4, 6, 8, 45), t(2021, 4, 6, 12)), (t(2021, 4, 6, 13), t(2021, 4, 6, 17, 15)))
    assert not cal.is_open(t(2021, 4, 6, 12, 30), "chuo-1") and cal.is_open(t(2021, 4, 6, 13), "chuo-1")
    delayed = cal.hours(date(2021, 4, 7), "chuo-1")
    assert not delayed.open_day and delayed.closed_reason == "delayed" and delayed.business_day
    assert cal.hours(date(2021, 4, 7), "kita-1").open_day
    assert cal.next_open_at(t(2021, 4, 7, 10), "chuo-1") == t(2021, 4, 9, 8, 45)
    assert cal.hours(date(2021, 6, 1), "kita-1").closed_reason == "suspended"  # until further notice
    assert cal.next_open_at(t(2021, 4, 6, 10), "chuo-1") == t(2021, 4, 6, 10)
    # business days (deadlines) do not change with city instructions
    assert cal.next_business_day(date(2021, 4, 6)) == date(2021, 4, 7)


def test_desk1_other_configurations():
    cal = Calendar(
        regular=Hours(time(9), time(17)),
        closed_weekdays=frozenset({6}),
        year_end=None,
        extra_holidays=frozenset({date(2021, 4, 6)}),
    )
    assert cal.is_business_day(date(2021, 4, 3))  # Saturday open here
    assert not cal.is_business_day(date(2021, 4, 6)) and cal.is_business_day(date(2021, 12, 30))
    with pytest.raises(ValueError):
        Hours(time(17), time(9))
    with pytest.raises(ValueError):
        SpecialDay(date(2021, 4, 4), "special_opening", time(12), time(8))


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)), st.integers(min_value=0, max_value=40))
def test_desk1_add_business_days_counts_business_days(start, n):
    end = CAL.add_business_days(start, n)
    assert CAL.is_business_day(end)
    if n > 0:
        assert len(CAL.business_days(start + timedelta(days=1), end)) == n  # exactly n business days in (start, end]
        if CAL.is_business_day(start):
            assert CAL.add_business_days(end, -n) == start


def test_desk1_city_calendar_fold_is_one_for_desk_and_reporting():
    """The city's run-time changes, as events in stream order, folded by the one fold the desk
    service and reporting share (madoguchi_shared.city_calendar)."""
    from madoguchi_shared.city_calendar import fold_calendar
    from madoguchi_shared.events import desk as dk
    from madoguchi_shared.events import dump_event, parse_event
    from madoguchi_shared.municipality import load_municipality

    m = load_municipality("011002")
    events = [
        dk.OpeningSuspended(
            municipality=m.code,
            instruction_id="storm",
            start=t(2021, 4, 6, 8, 45),
            end=t(2021, 4, 6, 17, 15),
            reason="disaster",
        ),
        dk.CityInstructionLifted(municipality=m.code, instruction_id="storm", at=t(2021, 4, 6, 13, 0)),
        dk.OpeningDelayed(
            municipality=m.code,
            instruction_id="late",
            start=t(2021, 4, 7, 8, 45),
            until=t(2021, 4, 7, 10, 0),
            reason="facility",
        ),
        dk.CityInstructionLifted(municipality=m.code, instruction_id="late", at=t(2021, 4, 7, 8, 0)),
        dk.ExtendedHoursScheduled(municipality=m.code, day=date(2021, 4, 8), close=time(19, 0)),
    ]
    # reporting folds the stored JSON (calendar_override), the desk its typed events: the same fold
    city = fold_calendar([parse_event(dump_event(e)) for e in events])
    assert [i.id for i in city.instructions] == ["storm"] and city.instruction("storm").end == t(2021, 4, 6, 13, 0)
    cal = city.calendar(m)
    assert cal.is_open(t(2021, 4, 6, 14, 0)) and not cal.is_open(t(2021, 4, 6, 10, 0))  # lifted at 13:00
    assert cal.is_open(t(2021, 4, 7, 9, 0))  # the delay was lifted before it began: as if never given
    assert cal.is_open(t(2021, 4, 8, 18, 30)) and not cal.is_open(t(2021, 4, 9, 18, 30))  # extended to 19:00
