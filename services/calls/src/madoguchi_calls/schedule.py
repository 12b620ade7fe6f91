"""Due times of callbacks, always inside the phone line's business hours (CALL-3, CALL-4).

Pure functions over the shared opening calendar (madoguchi_shared.calendar; the line's own
calendar comes from `Municipality.phone_calendar()`): the calls service never keeps a calendar
of its own.

Policy (configurable, `CallbackPolicy`):
* a new callback is due by the end of the next business day's morning (12:00 by default) —
  or, when the citizen named a time window, by the end of that window if the line is open
  then (clamped into the open hours);
* after a failed attempt the next one is due `retry_after_minutes` of open time later;
* after the city's answer (CALL-4) the call back is due `after_city_answer_minutes` of open
  time later;
* at most `max_attempts` attempts, then the task fails for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from madoguchi_shared.calendar import Calendar, Interval


@dataclass(frozen=True)
class CallbackPolicy:
    due_time: time = time(12, 0)  # "by the end of the next business day's morning"
    due_business_days: int = 1  # counted from the day of the request
    retry_after_minutes: int = 60
    after_city_answer_minutes: int = 120
    max_attempts: int = 3


def _intervals(cal: Calendar, day: date) -> tuple[Interval, ...]:
    return cal.hours(day).intervals


def is_open(cal: Calendar, at: datetime) -> bool:
    return cal.is_open(at)


def opening_of(cal: Calendar, day: date) -> datetime | None:
    iv = _intervals(cal, day)
    return iv[0][0] if iv else None


def next_opening(cal: Calendar, at: datetime) -> datetime | None:
    """The next moment the line opens strictly after `at` when closed now (or `at` if open)."""
    return cal.next_open_at(at)


def add_open_time(cal: Calendar, start: datetime, minutes: int) -> datetime:
    """`start` plus `minutes` of the line's open time (closed time does not count)."""
    remaining = timedelta(minutes=minutes)
    day = cal.local_date(start)
    for _ in range(400):
        for s, e in _intervals(cal, day):
            if e <= start:
                continue
            s = max(s, start)
            if s + remaining <= e:
                return s + remaining
            remaining -= e - s
        day += timedelta(days=1)
    raise ValueError("the line does not open within 400 days")


def clamp_into_hours(cal: Calendar, at: datetime, not_before: datetime) -> datetime | None:
    """The latest open instant at or before `at` and after `not_before` (None if there is none)."""
    day = cal.local_date(at)
    stop = cal.local_date(not_before)
    while day >= stop:
        for s, e in reversed(_intervals(cal, day)):
            if s >= at or e <= not_before:
                continue
            return min(at, e)
        day -= timedelta(days=1)
    return None


def first_due(
    cal: Calendar,
    policy: CallbackPolicy,
    requested_at: datetime,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> datetime:
    """When a new callback task is due (CALL-3)."""
    if window_end is not None:
        due = clamp_into_hours(cal, window_end, max(requested_at, window_start or requested_at))
        if due is not None:
            return due
    day = cal.local_date(requested_at)
    target = cal.add_business_days(day, policy.due_business_days)
    iv = _intervals(cal, target)
    while not iv:  # a business day the line does not open (e.g. city instruction): the next one
        target = cal.next_business_day(target)
        iv = _intervals(cal, target)
    due = datetime.combine(target, policy.due_time, cal.tz)
    first, last = iv[0][0], iv[-1][1]
    return min(max(due, first), last)


def next_attempt_due(cal: Calendar, policy: CallbackPolicy, now: datetime) -> datetime:
    return add_open_time(cal, now, policy.retry_after_minutes)


def after_city_answer_due(cal: Calendar, policy: CallbackPolicy, now: datetime) -> datetime:
    return add_open_time(cal, now, policy.after_city_answer_minutes)
