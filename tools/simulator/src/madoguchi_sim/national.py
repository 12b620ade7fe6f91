"""The national peak day straight onto the bus (issue 9 part 4).

Japan has about 1,741 municipalities; the sizing assumes 4,000 desks, 300,000 visits and 15 million
events on a peak day. `fill` generates that day (the PEAK profile: 75 visitors a desk, agents
reporting every 30 seconds, a busier phone line per municipality) and publishes it, streaming:
a generator process simulates and serialises desk-days group by group while this process keeps
2,000 publishes in flight, so neither the day nor the stream is ever held in memory.

`events` chooses the size. The whole day is about `desks x events per desk-day` events; a smaller
`events` takes a slice of the day — whole desk-days of municipalities spread over the list, each
with its phone line — and a larger one is capped at the whole day. The fill reports events/s.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import queue as queue_mod
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date

from nats.js import JetStreamContext

from madoguchi_shared.events import dump_event
from madoguchi_shared.municipality import Municipality, load_municipality

from madoguchi_sim import ids
from madoguchi_sim.busmode import FillReport, publish
from madoguchi_sim.calls import LineState, simulate_line_day
from madoguchi_sim.desk import simulate_desk_day
from madoguchi_sim.generator import Scenario, iter_events, scaled_municipalities
from madoguchi_sim.profile import PEAK, Profile
from madoguchi_sim.truth import Truth

PEAK_DAY = date(2021, 9, 30)  # a Thursday near the end of the Mynapoint application period
BATCH = 2000


@dataclass
class NationalPlan:
    municipalities: list[Municipality]
    desks: int
    events_per_desk_day: float
    expected_events: int
    whole_day_events: int
    profile: Profile = PEAK


@dataclass
class NationalReport:
    plan: NationalPlan
    fill: FillReport
    by_type: Counter = field(default_factory=Counter)
    truth: dict | None = None

    def by_context(self) -> Counter:
        out: Counter = Counter()
        for kind, n in self.by_type.items():
            out[kind.split(".")[0]] += n
        return out

    def as_dict(self) -> dict:
        return {
            "municipalities": len(self.plan.municipalities),
            "desks": self.plan.desks,
            "events_per_desk_day": round(self.plan.events_per_desk_day, 1),
            "heartbeat_seconds": round(self.plan.profile.heartbeat_minutes * 60, 1),
            "whole_day_events_estimate": self.plan.whole_day_events,
            **self.fill.as_dict(),
            "by_context": dict(sorted(self.by_context().items())),
        }


def plan(
    events: int,
    *,
    municipalities: int = 1741,
    desks: int = 4000,
    day: date = PEAK_DAY,
    seed: int | str = 1,
    profile: Profile = PEAK,
    template: Municipality | None = None,
    codes: list[str] | None = None,
    fit: bool = True,
) -> NationalPlan:
    """Which municipalities to simulate so the day holds about `events` events.

    With `fit`, a request beyond the whole day at the profile's rates (about 7.5 million with
    heartbeats every 30 seconds) shortens the agents' heartbeat interval until the whole day holds
    `events` (15 million: about every 11 seconds): the sizing's 15 million events a day.
    """
    template = template or load_municipality("011002")
    everyone = scaled_municipalities(template, municipalities, desks, include_template=False, codes=codes)
    sample = everyone[0]
    sampled = [simulate_desk_day(seed, sample, d, day, profile) for d in sample.desks]
    per_desk = sum(len(r.events) for r in sampled) / len(sampled)
    heartbeats = sum(1 for r in sampled for e in r.events if e.type == "device.heartbeat") / len(sampled)
    per_line = float(len(simulate_line_day(seed, sample, day, profile, LineState()).events))
    whole = int(desks * per_desk + municipalities * per_line)
    if fit and events > whole and heartbeats:
        wanted = (events - municipalities * per_line) / desks - (per_desk - heartbeats)
        factor = wanted / heartbeats
        profile = replace(profile, heartbeat_minutes=max(5 / 60, profile.heartbeat_minutes / factor))
        per_desk = per_desk - heartbeats + heartbeats * factor
        whole = int(desks * per_desk + municipalities * per_line)
    avg = desks / municipalities
    need = math.ceil(events / (per_desk + per_line / avg))
    if need >= desks:
        chosen = everyone
    else:  # a slice spread over the whole list
        k = max(1, round(need / avg))
        chosen = [everyone[i * len(everyone) // k] for i in range(k)]
    n_desks = sum(len(m.desks) for m in chosen)
    return NationalPlan(chosen, n_desks, per_desk, int(n_desks * per_desk + len(chosen) * per_line), whole, profile)


def _scenario(munis: list[Municipality], day: date, seed: int | str, profile: Profile) -> Scenario:
    return Scenario(
        municipalities=tuple(munis), start=day, days=1, seed=seed, profile=profile, setup=False, group_desks=20
    )


def _worker(munis: list[Municipality], day: date, seed, profile: Profile, out: mp.Queue, with_truth: bool) -> None:
    """Generator process: simulate, serialise, hand over batches of (subject, data, msg id, type)."""
    truth = Truth(keep_notes=False)
    batch: list[tuple[str, bytes, str, str]] = []
    for event in iter_events(_scenario(munis, day, seed, profile), truth):
        batch.append((event.subject, dump_event(event), str(event.event_id), event.type))
        if len(batch) >= BATCH:
            out.put(batch)
            batch = []
    if batch:
        out.put(batch)
    out.put(("done", dict(truth.event_types), truth.reports() if with_truth else None))


async def publish_raw(js: JetStreamContext, batches, window: int = BATCH) -> int:
    """Pipelined publish of pre-serialised events, with the headers `bus.publish_many` sends
    (Nats-Msg-Id = event id, Mg-Type)."""
    acked = 0
    for batch in batches:
        futures = [
            await js.publish_async(subject, data, headers={"Nats-Msg-Id": msg_id, "Mg-Type": kind})
            for subject, data, msg_id, kind in batch
        ]
        for fut in futures:
            await fut
        acked += len(futures)
    return acked


async def fill(
    js: JetStreamContext,
    events: int = 200_000,
    *,
    municipalities: int = 1741,
    desks: int = 4000,
    day: date = PEAK_DAY,
    seed: int | str = 1,
    profile: Profile = PEAK,
    workers: int = 2,
    with_truth: bool = False,
    progress: bool = False,
    codes: list[str] | None = None,
) -> NationalReport:
    """Generate and publish (a slice of) the national peak day; `workers` generator processes
    (0 = generate in this process)."""
    the_plan = plan(
        events, municipalities=municipalities, desks=desks, day=day, seed=seed, profile=profile, codes=codes
    )
    profile = the_plan.profile
    if workers <= 0:
        truth = Truth(keep_notes=False)
        report = await publish(
            js,
            iter_events(_scenario(the_plan.municipalities, day, seed, profile), truth),
            progress=progress,
            total=the_plan.expected_events,
        )
        return NationalReport(the_plan, report, Counter(truth.event_types), truth.reports() if with_truth else None)

    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue(maxsize=64)
    shards = [the_plan.municipalities[i::workers] for i in range(workers)]
    procs = [
        ctx.Process(target=_worker, args=(shard, day, seed, profile, q, with_truth), daemon=True)
        for shard in shards
        if shard
    ]
    for p in procs:
        p.start()
    by_type: Counter = Counter()
    truths: dict = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=the_plan.expected_events, unit="ev", unit_scale=True, desc="national fill", smoothing=0.1)

    async def batches():
        done = 0
        loop = asyncio.get_running_loop()
        while done < len(procs):
            try:
                item = await loop.run_in_executor(None, q.get, True, 600)
            except queue_mod.Empty as exc:
                raise RuntimeError("the generator process stopped answering") from exc
            if isinstance(item, tuple) and item and item[0] == "done":
                done += 1
                by_type.update(item[1])
                if item[2]:
                    for m, reports in item[2].items():
                        truths.setdefault(m, {}).update(reports)
                continue
            if bar is not None:
                bar.update(len(item))
            yield item

    started = time.perf_counter()
    try:
        acked = 0
        async for batch in batches():
            acked += await publish_raw(js, [batch])
    finally:
        if bar is not None:
            bar.close()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    elapsed = time.perf_counter() - started
    return NationalReport(the_plan, FillReport(acked, elapsed), by_type, truths if with_truth else None)


def default_codes(n: int) -> list[str]:
    return ids.synthetic_codes(n)
