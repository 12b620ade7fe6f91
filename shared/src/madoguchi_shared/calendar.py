"""The opening calendar (DESK-1) as pure functions over a `Calendar` value.

Two different notions live here and must not be mixed up:

* **business day** (開庁日・営業日): a ward-office business day. Saturdays and Sundays, Japanese
  public holidays (the `holidays` package, `holidays.Japan()`, substitute holidays included) and
  the year-end closure (Dec 29 – Jan 3) are not business days. Deadlines such as "by the next
  business day" (REP-1, REP-2, CALL-5) count these days. Special openings and city instructions
  do NOT change them: a Sunday special opening is not a business day, a suspended Monday still is.
* **opening hours** of a desk on a date: the regular hours (8:45–17:15) on business days,
  replaced by a special opening (e.g. Sunday 8:45–12:00) or extended (to 19:00) by a special
  day, and cut by city instructions that delay or suspend opening for a period (pandemic, ...).

A `Calendar` is built from configuration (madoguchi_shared.municipality) plus overrides recorded
at run time (the desk service's `calendar` aggregate); it is an immutable value, so the desk,
calls and reporting services can all build one and ask it the same questions.

Times: every datetime is timezone-aware; naive datetimes are read as Asia/Tokyo. Dates are local
(Tokyo) dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "TOKYO",
    "REGULAR_OPEN",
    "REGULAR_CLOSE",
    "Hours",
    "SpecialDay",
    "Instruction",
    "DayHours",
    "Calendar",
    "Interval",
    "holiday_name",
]

TOKYO = ZoneInfo("Asia/Tokyo")
REGULAR_OPEN = time(8, 45)
REGULAR_CLOSE = time(17, 15)

Interval = tuple[datetime, datetime]  # [start, end)
SpecialKind = Literal["special_opening", "extended", "closed"]
InstructionKind = Literal["suspend", "delay"]
DayKind = Literal["regular", "special_opening", "extended", "closed"]


@cache
def _japan(language: str) -> holidays.HolidayBase:
    # One instance per language; it expands to new years on first lookup.
    return holidays.Japan(language=language)


def holiday_name(day: date, language: str = "ja") -> str | None:
    """The Japanese public holiday on `day` (e.g. 憲法記念日), or None."""
    return _japan(language).get(day)


@dataclass(frozen=True)
class Hours:
    open: time = REGULAR_OPEN
    close: time = REGULAR_CLOSE

    def __post_init__(self) -> None:
        if not self.open < self.close:
            raise ValueError(f"opening hours must open before they close: {self.open}–{self.close}")


@dataclass(frozen=True)
class SpecialDay:
    """A date whose hours differ from the regular rule, for every desk or some desks.

    - special_opening: open `open`–`close` (e.g. a Sunday 8:45–12:00), even on a closed day;
    - extended: a day that opens anyway closes later (`close`, e.g. 19:00); ignored on a closed
      day (an extension does not open a holiday);
    - closed: the desk does not open that date.
    """

    day: date
    kind: SpecialKind
    open: time | None = None
    close: time | None = None
    desks: frozenset[str] = frozenset()  # empty = every desk
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind == "special_opening":
            if self.open is None or self.close is None or not self.open < self.close:
                raise ValueError("a special opening needs open < close")
        elif self.kind == "extended":
            if self.close is None:
                raise ValueError("an extended day needs its closing time")

    def applies_to(self, desk: str | None) -> bool:
        return not self.desks or desk is None or desk in self.desks


@dataclass(frozen=True)
class Instruction:
    """A city instruction (委託者の指示, DESK-1): opening delayed or suspended for a period.

    Both close the affected desks for [start, end); `end=None` means until further notice (until
    the instruction is lifted, which ends it). `delay` postpones the opening (開設時期を遅らせる),
    `suspend` pauses it (一時休止); the difference is what the desk and the reports say.
    """

    id: str
    kind: InstructionKind
    start: datetime
    end: datetime | None = None
    desks: frozenset[str] = frozenset()  # empty = every desk
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware(self.start))
        if self.end is not None:
            object.__setattr__(self, "end", _aware(self.end))
            if not self.start < self.end:
                raise ValueError("an instruction must end after it starts")

    def applies_to(self, desk: str | None) -> bool:
        return not self.desks or desk is None or desk in self.desks


@dataclass(frozen=True)
class DayHours:
    """What a date looks like for one desk."""

    day: date
    desk: str | None
    business_day: bool  # ward-office business day (deadlines count these)
    kind: DayKind  # how the scheduled hours came about
    scheduled: Interval | None  # hours before city instructions
    intervals: tuple[Interval, ...]  # open periods after city instructions
    instructions: tuple[Instruction, ...] = ()  # instructions that cut into this day
    closed_reason: str | None = None  # weekend | holiday | year_end | special_closure | suspended | delayed

    @property
    def open_day(self) -> bool:
        return bool(self.intervals)

    @property
    def opens(self) -> datetime | None:
        return self.intervals[0][0] if self.intervals else None

    @property
    def closes(self) -> datetime | None:
        return self.intervals[-1][1] if self.intervals else None

    def is_open_at(self, t: datetime) -> bool:
        t = _aware(t)
        return any(start <= t < end for start, end in self.intervals)

    def open_seconds(self) -> float:
        return sum((end - start).total_seconds() for start, end in self.intervals)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "desk": self.desk,
            "business_day": self.business_day,
            "kind": self.kind if self.intervals else "closed",
            "scheduled": [self.scheduled[0].isoformat(), self.scheduled[1].isoformat()] if self.scheduled else None,
            "intervals": [[s.isoformat(), e.isoformat()] for s, e in self.intervals],
            "closed_reason": self.closed_reason,
            "holiday": holiday_name(self.day),
            "instructions": [{"id": i.id, "kind": i.kind, "reason": i.reason} for i in self.instructions],
        }


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=TOKYO) if t.tzinfo is None else t


def _subtract(intervals: Sequence[Interval], cut: Interval) -> list[Interval]:
    out: list[Interval] = []
    c0, c1 = cut
    for s, e in intervals:
        if c1 <= s or c0 >= e:
            out.append((s, e))
            continue
        if s < c0:
            out.append((s, c0))
        if c1 < e:
            out.append((c1, e))
    return out


@dataclass(frozen=True)
class Calendar:
    """Business days and opening hours; an immutable value built from configuration + overrides."""

    regular: Hours = field(default_factory=Hours)
    special_days: tuple[SpecialDay, ...] = ()
    instructions: tuple[Instruction, ...] = ()
    closed_weekdays: frozenset[int] = frozenset({5, 6})  # Saturday, Sunday
    year_end: tuple[tuple[int, int], tuple[int, int]] | None = ((12, 29), (1, 3))  # 年末年始
    extra_holidays: frozenset[date] = frozenset()  # municipal closures that are not national holidays
    tz: ZoneInfo = TOKYO
    # hours() by (day, desk): the calendar is an immutable value, so are its answers (every desk and
    # calls command asks for the day's hours); a calendar with other overrides is a new value
    _hours_memo: dict[tuple[date, str | None], DayHours] = field(
        default_factory=dict[tuple[date, str | None], DayHours], init=False, repr=False, compare=False, hash=False
    )

    # --- building ---------------------------------------------------------------------------

    def with_special_days(self, days: Iterable[SpecialDay]) -> Calendar:
        return replace(self, special_days=(*self.special_days, *days))

    def with_instructions(self, instructions: Iterable[Instruction]) -> Calendar:
        return replace(self, instructions=(*self.instructions, *instructions))

    # --- business days ----------------------------------------------------------------------

    def is_year_end(self, day: date) -> bool:
        if self.year_end is None:
            return False
        (m0, d0), (m1, d1) = self.year_end
        md = (day.month, day.day)
        return md >= (m0, d0) or md <= (m1, d1)

    def closed_reason(self, day: date) -> str | None:
        """Why `day` is not a business day (weekend | holiday | year_end), or None."""
        if self.is_year_end(day):
            return "year_end"
        if day in self.extra_holidays or holiday_name(day) is not None:
            return "holiday"
        if day.weekday() in self.closed_weekdays:
            return "weekend"
        return None

    def is_business_day(self, day: date) -> bool:
        return self.closed_reason(day) is None

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        return self.add_business_days(day, 1)

    def previous_business_day(self, day: date) -> date:
        return self.add_business_days(day, -1)

    def add_business_days(self, day: date, n: int) -> date:
        """Move n business days from `day` (n > 0 forward, n < 0 back); n = 0 gives `day` itself,
        or the next business day when `day` is not one."""
        step = 1 if n >= 0 else -1
        if n == 0:
            while not self.is_business_day(day):
                day += timedelta(days=1)
            return day
        remaining = abs(n)
        for _ in range(366 * 5):
            day += timedelta(days=step)
            if self.is_business_day(day):
                remaining -= 1
                if remaining == 0:
                    return day
        raise ValueError("no business day within five years")  # only with a pathological configuration

    def business_days(self, start: date, end: date) -> list[date]:
        """Business days in [start, end], both included."""
        out: list[date] = []
        day = start
        while day <= end:
            if self.is_business_day(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def next_business_day_deadline(self, day: date) -> datetime:
        """ "By the next business day" (翌営業日中): the end of the next business day's regular hours."""
        nxt = self.next_business_day(day)
        return datetime.combine(nxt, self.regular.close, self.tz)

    # --- opening hours ----------------------------------------------------------------------

    def _special(self, day: date, desk: str | None) -> SpecialDay | None:
        # A desk-specific special day beats an all-desk one; among equals the later one wins
        # (configuration first, then overrides recorded at run time).
        general = specific = None
        for sd in self.special_days:
            if sd.day != day or not sd.applies_to(desk):
                continue
            if sd.desks and desk is not None:
                specific = sd
            else:
                general = sd
        return specific or general

    def hours(self, day: date, desk: str | None = None) -> DayHours:
        """The opening hours of `desk` (every desk when None) on `day`."""
        key = (day, desk)
        found = self._hours_memo.get(key)
        if found is None:
            if len(self._hours_memo) >= 4096:
                self._hours_memo.clear()
            found = self._hours_memo[key] = self._day_hours(day, desk)
        return found

    def _day_hours(self, day: date, desk: str | None) -> DayHours:
        business = self.is_business_day(day)
        reason = self.closed_reason(day)
        special = self._special(day, desk)
        scheduled: tuple[time, time] | None = None
        kind: DayKind = "closed"
        if special is not None and special.kind == "closed":
            reason = "special_closure"
        elif special is not None and special.kind == "special_opening":
            scheduled, kind = (special.open, special.close), "special_opening"  # type: ignore[assignment]
        elif business:
            scheduled, kind = (self.regular.open, self.regular.close), "regular"
            if (
                special is not None
                and special.kind == "extended"
                and special.close is not None
                and special.close > self.regular.open
            ):
                scheduled, kind = (self.regular.open, special.close), "extended"  # type: ignore[assignment]
        if scheduled is None:
            return DayHours(day, desk, business, "closed", None, (), (), reason)
        span = (datetime.combine(day, scheduled[0], self.tz), datetime.combine(day, scheduled[1], self.tz))
        intervals: list[Interval] = [span]
        cutting: list[Instruction] = []
        for ins in self.instructions:
            if not ins.applies_to(desk):
                continue
            end = ins.end or datetime.max.replace(tzinfo=self.tz)
            if ins.start < span[1] and end > span[0]:
                cutting.append(ins)
                intervals = _subtract(intervals, (ins.start, end))
        closed_reason = None
        if not intervals:
            closed_reason = "delayed" if cutting and all(i.kind == "delay" for i in cutting) else "suspended"
        return DayHours(day, desk, business, kind, span, tuple(intervals), tuple(cutting), closed_reason)

    def local_date(self, t: datetime) -> date:
        return _aware(t).astimezone(self.tz).date()

    def is_open(self, t: datetime, desk: str | None = None) -> bool:
        """Is `desk` open at instant `t`?"""
        return self.hours(self.local_date(t), desk).is_open_at(t)

    def next_open_at(self, t: datetime, desk: str | None = None, horizon_days: int = 400) -> datetime | None:
        """`t` if the desk is open then, else the start of its next open period (None beyond the horizon)."""
        t = _aware(t)
        day = self.local_date(t)
        for _ in range(horizon_days):
            for start, end in self.hours(day, desk).intervals:
                if start <= t < end:
                    return t
                if start > t:
                    return start
            day += timedelta(days=1)
        return None

    def open_days(self, start: date, end: date, desk: str | None = None) -> list[DayHours]:
        """Every date in [start, end] on which the desk opens at all."""
        out: list[DayHours] = []
        day = start
        while day <= end:
            hours = self.hours(day, desk)
            if hours.open_day:
                out.append(hours)
            day += timedelta(days=1)
        return out
