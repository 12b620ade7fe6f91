"""Raw ceilings on this machine, measured in the same run as the project's figures:
what nats-py and asyncpg can do with no project logic (ARCHITECTURE.md, "Measured ceilings")."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import nats
from nats.js import api

PAYLOAD = json.dumps(
    {
        "type": "desk.bench",
        "municipality": "011002",
        "ward": "chuo",
        "desk": "chuo-1",
        "actor": {"id": "S0001", "role": "supporter"},
        "pad": "x" * 150,
    }
).encode()  # ~300 bytes


async def fresh_stream(js, name: str, subject: str) -> None:
    try:
        await js.delete_stream(name)
    except Exception:  # noqa: BLE001
        pass
    await js.add_stream(
        api.StreamConfig(name=name, subjects=[subject], storage=api.StorageType.FILE, allow_direct=True)
    )


async def publish_acked(nc, n: int) -> float:
    js = nc.jetstream()
    await fresh_stream(js, "BENCH_ACK", "bench.ack.>")
    start = time.perf_counter()
    for i in range(n):
        await js.publish(f"bench.ack.{i % 100}", PAYLOAD)
    return n / (time.perf_counter() - start)


async def publish_async(nc, n: int, headers: bool = False, stream: str = "BENCH_ASYNC") -> float:
    js = nc.jetstream(publish_async_max_pending=2000)
    await fresh_stream(js, stream, f"{stream.lower()}.>")
    start = time.perf_counter()
    futures = []
    for i in range(n):
        hdr = {"Nats-Msg-Id": uuid.uuid4().hex} if headers else None
        futures.append(await js.publish_async(f"{stream.lower()}.{i % 1000}", PAYLOAD, headers=hdr))
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    return n / (time.perf_counter() - start)


async def pull_fetch(nc, n: int, stream: str = "BENCH_ASYNC") -> float:
    """pull fetch(1000) with per-message ack."""
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        f"{stream.lower()}.>",
        stream=stream,
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=-1),
    )
    got = 0
    start = time.perf_counter()
    while got < n:
        msgs = await psub.fetch(1000, timeout=5)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    rate = got / (time.perf_counter() - start)
    await psub.unsubscribe()
    return rate


async def raw_pull(nc, n: int, stream: str = "BENCH_ASYNC") -> float:
    """$JS.API.CONSUMER.MSG.NEXT requests of 1,000 kept two deep, AckNone, core subscription callback."""
    js = nc.jetstream()
    name = "raw" + uuid.uuid4().hex[:8]
    await js.add_consumer(stream, api.ConsumerConfig(name=name, ack_policy=api.AckPolicy.NONE, inactive_threshold=30))
    inbox = nc.new_inbox()
    done = asyncio.Event()
    state = {"got": 0, "in_batch": 0}

    async def request():
        await nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
            json.dumps({"batch": 1000, "expires": 2_000_000_000}).encode(),
            reply=inbox,
        )

    async def on_msg(msg):
        if msg.headers and msg.headers.get("Status"):
            return
        state["got"] += 1
        state["in_batch"] += 1
        if state["in_batch"] == 1000:
            state["in_batch"] = 0
            await request()
        if state["got"] >= n:
            done.set()

    sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=100_000)
    start = time.perf_counter()
    await request()
    await request()
    await asyncio.wait_for(done.wait(), 120)
    rate = state["got"] / (time.perf_counter() - start)
    await sub.unsubscribe()
    return rate


async def pg_copy(pool, n: int) -> float:
    rows = [(i, PAYLOAD) for i in range(n)]
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (seq bigint, data bytea)")
        start = time.perf_counter()
        for i in range(0, n, 1000):
            async with conn.transaction():
                await conn.copy_records_to_table("bench_copy", records=rows[i : i + 1000])
        rate = n / (time.perf_counter() - start)
        await conn.execute("DROP TABLE bench_copy")
    return rate


async def measure(nats_url: str, pool, n: int = 100_000) -> list[dict]:
    nc = await nats.connect(nats_url)
    try:
        rows = [
            {
                "area": "raw",
                "figure": "JetStream publish, awaiting each ack",
                "value": await publish_acked(nc, n // 10),
                "unit": "events/s",
            },
            {
                "area": "raw",
                "figure": "JetStream publish_async, 2,000 in flight",
                "value": await publish_async(nc, n),
                "unit": "events/s",
            },
            {
                "area": "raw",
                "figure": "... with Nats-Msg-Id",
                "value": await publish_async(nc, n, headers=True, stream="BENCH_HDR"),
                "unit": "events/s",
            },
            {
                "area": "raw",
                "figure": "pull fetch(1000), per-message ack",
                "value": await pull_fetch(nc, n),
                "unit": "events/s",
            },
            {
                "area": "raw",
                "figure": "raw pull (MSG.NEXT x2 deep, AckNone)",
                "value": await raw_pull(nc, n),
                "unit": "events/s",
            },
            {
                "area": "raw",
                "figure": "PostgreSQL COPY, 1,000 rows a transaction",
                "value": await pg_copy(pool, n),
                "unit": "rows/s",
            },
        ]
        for name in ("BENCH_ACK", "BENCH_ASYNC", "BENCH_HDR"):
            await nc.jetstream().delete_stream(name)
        return rows
    finally:
        await nc.close()
