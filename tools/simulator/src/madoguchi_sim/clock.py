"""A simulated clock shared by the simulator and the services it drives.

A day in ten minutes only works through the APIs if the services read the same clock as the
simulator: they stamp events, check opening hours and number desk-days by their own clock. The
desk and calls apps take an injectable clock (`create_app(settings, clock=...)`); this module
gives one that can be described in a string and so passed to every process through settings:

    spec  = "<start ISO 8601>@<speed>@<anchor epoch seconds>"
    e.g.    "2021-04-06T07:40:00+09:00@51@1764057600.0"

At wall time `anchor` the clock reads `start`; it then runs `speed` times faster than real time.
Every process computing it from the same spec reads the same instant (wall clocks of one machine).
`madoguchi simulate clock` prints a spec for today; see the simulator's README note in cli.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta

from madoguchi_shared.calendar import TOKYO

SETTINGS_KEY = "clock"  # settings.extra["clock"], i.e. MADOGUCHI_EXTRA='{"clock": "<spec>"}'


@dataclass(frozen=True)
class SimClock:
    start: datetime
    speed: float = 1.0
    anchor: float = 0.0  # wall-clock epoch seconds at which the clock reads `start`

    @classmethod
    def starting_now(cls, start: datetime, speed: float) -> SimClock:
        return cls(start, speed, time.time())

    @classmethod
    def for_day(cls, day: date, speed: float, at: dtime = dtime(7, 40)) -> SimClock:
        """A clock that reads `day` at 7:40 (before the agents and the manager start) now."""
        return cls.starting_now(datetime.combine(day, at, TOKYO), speed)

    @classmethod
    def parse(cls, spec: str) -> SimClock:
        parts = spec.split("@")
        if len(parts) != 3:
            raise ValueError("clock spec is <start ISO>@<speed>@<anchor epoch seconds>")
        start = datetime.fromisoformat(parts[0])
        if start.tzinfo is None:
            start = start.replace(tzinfo=TOKYO)
        speed = float(parts[1])
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        return cls(start, speed, float(parts[2]))

    @classmethod
    def from_settings(cls, settings) -> SimClock | None:
        spec = (settings.extra or {}).get(SETTINGS_KEY)
        return cls.parse(spec) if spec else None

    def spec(self) -> str:
        return f"{self.start.isoformat()}@{self.speed:g}@{self.anchor:.3f}"

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def wall_seconds(self, sim: timedelta) -> float:
        return sim.total_seconds() / self.speed

    async def sleep_until(self, at: datetime) -> None:
        delay = (at - self()).total_seconds() / self.speed
        if delay > 0:
            await asyncio.sleep(delay)
