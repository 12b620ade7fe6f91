"""Bus mode: the generated events straight onto JetStream, for scale (issue 9 parts 1 and 4).

Events go out with `bus.publish_many` (pipelined, Nats-Msg-Id = event_id, so a re-run of the same
seed is deduplicated within the streams' window). Unpaced by default (as fast as the bus takes
them); with a speed factor the events of a day go out at their simulated times, scaled: at speed
60 an hour of the day takes a minute. The night between two days is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext

from madoguchi_shared import bus
from madoguchi_shared.events import Event

NIGHT_GAP_SECONDS = 3 * 3600  # a gap this long between two events is skipped when pacing


@dataclass
class FillReport:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"events": self.events, "seconds": round(self.seconds, 3), "events_per_second": round(self.rate, 1)}


class _Counting:
    """Wraps the event stream: counts, and ticks an optional progress bar every few thousand."""

    def __init__(self, events: Iterable[Event], progress=None):
        self.events = events
        self.count = 0
        self.progress = progress

    def __iter__(self) -> Iterator[Event]:
        tick = 0
        for event in self.events:
            self.count += 1
            tick += 1
            if self.progress is not None and tick == 5000:
                self.progress.update(tick)
                tick = 0
            yield event
        if self.progress is not None and tick:
            self.progress.update(tick)


async def publish(
    js: JetStreamContext,
    events: Iterable[Event],
    *,
    speed: float = 0.0,
    window: int = 2000,
    progress: bool = False,
    total: int | None = None,
) -> FillReport:
    """Publish every event; returns how many and how fast. `speed` > 0 paces by `occurred_at`."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="ev", unit_scale=True, desc="publish", smoothing=0.1)
    counting = _Counting(events, bar)
    started = time.perf_counter()
    try:
        if speed and speed > 0:
            acked = await _paced(js, counting, speed, window)
        else:
            acked = await bus.publish_many(js, counting, window=window)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    if acked != counting.count:
        raise RuntimeError(f"published {counting.count} events but {acked} were acknowledged")
    return FillReport(acked, elapsed)


async def _paced(js: JetStreamContext, events: Iterable[Event], speed: float, window: int) -> int:
    sim_origin: datetime | None = None
    wall_origin = time.monotonic()
    last: datetime | None = None
    pending: list[Event] = []
    acked = 0
    for event in events:
        at = event.occurred_at
        if sim_origin is None or (last is not None and (at - last).total_seconds() > NIGHT_GAP_SECONDS):
            acked += await bus.publish_many(js, pending, window=window)
            pending.clear()
            sim_origin, wall_origin = at, time.monotonic()
        last = max(last, at) if last is not None else at
        due = wall_origin + max(0.0, (at - sim_origin).total_seconds()) / speed
        delay = due - time.monotonic()
        if delay > 0.05:
            acked += await bus.publish_many(js, pending, window=window)
            pending.clear()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        pending.append(event)
        if len(pending) >= window:
            acked += await bus.publish_many(js, pending, window=window)
            pending.clear()
    acked += await bus.publish_many(js, pending, window=window)
    return acked


async def stream_counts(js: JetStreamContext) -> dict[str, int]:
    """Messages in each stream of record (to report what a fill added)."""
    out = {}
    for spec in bus.STREAMS:
        try:
            info = await js.stream_info(spec.name)
            out[spec.name] = info.state.messages
        except Exception:  # noqa: BLE001 - a missing stream counts as empty
            out[spec.name] = 0
    return out
