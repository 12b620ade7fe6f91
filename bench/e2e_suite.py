"""End to end: projection lag at a steady 1,000 events/s (issue 9 §3).

The reporting service's worker runs live (its own projections, outbox, notifier) against the bench
servers; simulated desk events of Sapporo are published at a steady rate, and each event's lag is
the time from its publish acknowledgement to the moment the projection's committed checkpoint
covers its stream sequence (polled every 2 ms)."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import date


from bench.suites import suite
from madoguchi_shared import bus
from madoguchi_shared.events import dump_event
from madoguchi_shared.municipality import load_municipality
from madoguchi_shared.settings import Settings

RATE = 1000
SECONDS = 15


def desk_events(n: int):
    from madoguchi_sim.generator import Scenario, iter_events

    scenario = Scenario(
        municipalities=(load_municipality("011002"),),
        start=date(2021, 4, 6),
        days=30,
        lines=False,
        devices=False,
        setup=False,
        seed=7,
    )
    out = []
    for event in iter_events(scenario):
        out.append(event)
        if len(out) >= n:
            break
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@suite
async def end_to_end(nats_server, pg, pool, ceilings, args) -> list[dict]:
    from madoguchi_reporting.projections import DESK
    from madoguchi_reporting.worker import Worker

    events = desk_events(RATE * SECONDS)
    settings = Settings(
        nats_url=nats_server.url, pg_dsn=pg.dsn, token_secret="x" * 40, extra={"deadline_check_seconds": "0"}
    )
    nc = await bus.connect(nats_server.url, name="bench-e2e")
    js = nc.jetstream(publish_async_max_pending=4000)
    await bus.ensure_streams(js)
    worker = Worker(settings, nc, pool)
    await worker.start()
    # Steady state: first let the projections catch up on what the earlier suites left in the
    # streams (the desk API bench's tickets), or the lag measured is that catch-up.
    t0 = time.perf_counter()
    await worker.caught_up(timeout=600)
    catch_up_s = time.perf_counter() - t0
    published: dict[int, float] = {}
    lags: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        pending = []
        async with pool.acquire() as conn:
            while not done.is_set() or pending or len(lags) < len(events):
                position = (
                    await conn.fetchval("SELECT last_seq FROM reporting.projection_checkpoint WHERE name = $1", DESK)
                    or 0
                )
                now = time.perf_counter()
                for seq in [s for s in published if s <= position]:
                    lags.append(now - published.pop(seq))
                pending = list(published)
                if done.is_set() and not published and len(lags) >= len(events):
                    break
                await asyncio.sleep(0.002)

    poller = asyncio.create_task(poll())
    start = time.perf_counter()
    try:
        for i in range(0, len(events), RATE // 100):  # 10 events every 10 ms
            due = start + i / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            futures = [
                await js.publish_async(e.subject, dump_event(e), headers={"Nats-Msg-Id": str(e.event_id)})
                for e in events[i : i + RATE // 100]
            ]
            for fut in futures:
                ack = await fut
                published[ack.seq] = time.perf_counter()
        rate = len(events) / (time.perf_counter() - start)
        done.set()
        await asyncio.wait_for(poller, 120)
    finally:
        await worker.stop()
        await nc.close()
    lags_ms = [x * 1000 for x in lags]
    return [
        {
            "area": "end to end",
            "figure": f"steady publish rate achieved ({len(events):,} desk events)",
            "value": rate,
            "unit": "events/s",
        },
        {
            "area": "end to end",
            "figure": "projection lag p50 (ack → committed checkpoint)",
            "value": statistics.median(lags_ms),
            "unit": "ms",
        },
        {
            "area": "end to end",
            "figure": "projection lag p99",
            "value": pct(lags_ms, 0.99),
            "unit": "ms",
            "target": "< 250 ms",
        },
        {"area": "end to end", "figure": "projection lag max", "value": max(lags_ms), "unit": "ms"},
        {
            "area": "end to end",
            "figure": "catch-up on the earlier suites' events before measuring",
            "value": catch_up_s,
            "unit": "s",
        },
    ]
