"""The clock tests move by hand: services take it as their clock and read it for every command, so a
test advances time instead of sleeping (issue 20: one instead of one per service's tests)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

from madoguchi_shared.calendar import TOKYO


class FakeClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> FakeClock:
        self.now = now
        return self

    def at(self, hh: int, mm: int = 0, ss: int = 0, tz: tzinfo = TOKYO) -> FakeClock:
        """The same day (as the clock reads it now), at this wall-clock time."""
        self.now = datetime.combine(self.now.date(), time(hh, mm, ss), tz)
        return self

    def advance(self, **kwargs: float) -> FakeClock:
        self.now += timedelta(**kwargs)
        return self
