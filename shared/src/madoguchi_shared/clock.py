"""A clock a service can be started with, described in a string (settings.extra["clock"]).

The living demo (`make demo`) runs a day in minutes: the desk and calls services must read the
simulation's clock. The spec is the simulator's (`madoguchi simulate clock`):

    "<start ISO 8601>@<speed>@<anchor epoch seconds>"   e.g. "2021-04-06T07:40:00+09:00@51@1764057600.0"

At wall time `anchor` the clock reads `start`, then runs `speed` times faster than real time; every
process computing it from the same spec reads the same instant, including a service the
supervisor restarted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from madoguchi_shared.calendar import TOKYO


def clock_from_spec(spec: str) -> Callable[[], datetime]:
    parts = spec.split("@")
    if len(parts) != 3:
        raise ValueError("clock spec is <start ISO>@<speed>@<anchor epoch seconds>")
    start = datetime.fromisoformat(parts[0])
    if start.tzinfo is None:
        start = start.replace(tzinfo=TOKYO)
    speed, anchor = float(parts[1]), float(parts[2])
    if speed <= 0:
        raise ValueError("clock speed must be positive")

    def now() -> datetime:
        return start + timedelta(seconds=(time.time() - anchor) * speed)

    return now


Clock = Callable[[], datetime]  # what every service reads the time from (a test passes its own)


def utc_clock() -> datetime:
    """The real time, in UTC: every service's default clock."""
    return datetime.now(UTC)
