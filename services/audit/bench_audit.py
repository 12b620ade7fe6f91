"""Audit benchmark: ingest into the hash-chained log vs. the plain ceiling, and verification.

    .venv/bin/python services/audit/bench_audit.py [results.json] [--events 150000] [--rounds 3]

Starts its own nats-server and PostgreSQL in a temp folder (or uses --nats/--dsn), publishes N
events of the project's own types (~300-500 bytes) over four streams, then, in the same run:

- plain ceiling: the same messages pulled with the same raw pull reader and COPY'd into an unchained
  table (stream, seq, data) with no logic: no envelope, no hash, no per-stream checkpoint, no
  indexes; one transaction per batch, the best of batches of 5,000 and of 20,000;
- same-shape ceiling (the one the ≥ 75 % target is held to): the same pull, and a COPY of the writer's
  own rows for those messages (made before the timing, looked up by stream and sequence) into a log of
  the same shape — a freshly migrated audit schema: the same partitioned table, the same auditor
  indexes — with no logic (no envelope, no hash, no duplicates, no positions or head kept); best of
  5,000 and 20,000. The plain ceiling stays in the table beside it: the gap between the two is what
  storing the records so that auditors can query them costs, whoever writes them;
- chained: the real writer (madoguchi_audit.ingest.Ingest, batches of up to 20,000) from an
  empty schema until all N are written: envelope columns, sha256 chain, COPY into audit.log with
  its indexes, per-stream positions and the head in the same transaction, signed checkpoints
  every 10,000 records (each written to the file, published, and itself logged);
- verify: the real verifier (madoguchi_audit.verify.verify_db) over the chained table;
- verify + reconcile: `madoguchi audit verify`'s default (verify.verify_all): the key chain and
  the checkpoint copies from the stream, the chain, and every message of every stream of record
  read back with the shared reader and compared with the log (records/s over the whole run);
- sha256-chain ceilings: (a) over the table — the verifier's own read (snapshot, server-side cursor,
  PostgreSQL building `prev || header || data`, next chunk in flight) and one chained sha256 a record,
  no checks: what `audit verify` must at least do (the ≥ 80 % target is against this one); (b) in
  memory — Python hashing the same payloads already fetched, on a sample of up to 200,000.

`--reconcile-only` skips the ingest ceiling rounds (for the 1 M record figure:
`--events 1000000 --rounds 1 --reconcile-only`).

Rounds alternate ceiling and chained; the median of each is reported. Prints a table and writes
JSON to the given path. `suite(...)` has the shape of bench/suites.py for `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from madoguchi_shared import bus
from madoguchi_shared import db
from madoguchi_shared.reader import Reader
from madoguchi_shared.events import Actor, Role, dump_event
from madoguchi_shared.events.admin import AccessDenied, LoginSucceeded
from madoguchi_shared.events.calls import CallReceived
from madoguchi_shared.events.device import Heartbeat
from madoguchi_shared.runtime import NatsServer, PostgresServer

from madoguchi_audit import chain as chain_mod
from madoguchi_audit import checkpoints, schema, verify
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.ingest import Ingest, filter_subjects

MUNICIPALITY = "999001"


def make_events(n: int, municipality: str = MUNICIPALITY):
    t = datetime(2021, 4, 1, tzinfo=UTC)
    wards = ("chuo", "kita", "higashi", "shiroishi", "atsubetsu", "toyohira", "kiyota", "minami", "nishi", "teine")
    for i in range(n):
        t += timedelta(milliseconds=250)
        ward = wards[i % 10]
        staff = f"S{i % 97:04d}"
        kind = i % 4
        if kind == 0:
            yield LoginSucceeded(
                municipality=municipality,
                staff_id=staff,
                service="desk",
                occurred_at=t,
                actor=Actor(id=staff, role=Role.supporter),
            )
        elif kind == 1:
            yield AccessDenied(
                municipality=municipality,
                ward=ward,
                subject_id=staff,
                service="desk",
                method="GET",
                path="/v1/desks/{desk}/tickets",
                reason="ward",
                target_ward=ward,
                occurred_at=t,
                actor=Actor(id=staff, role=Role.supporter),
                correlation_id=uuid4(),
            )
        elif kind == 2:
            yield Heartbeat(
                municipality=municipality,
                ward=ward,
                desk=f"{ward}-1",
                device_id=f"{ward}-1-pc",
                agent_version="1.0",
                policy_version=1,
                outbox_depth=0,
                outbox_bytes=0,
                link_up=True,
                uptime_s=i,
                occurred_at=t,
                actor=Actor(id=f"{ward}-1-pc", role=Role.device),
            )
        else:
            yield CallReceived(
                municipality=municipality,
                call_id=uuid4(),
                line="main",
                within_hours=True,
                seats_signed_in=2,
                seats_free=1,
                occurred_at=t,
            )


async def publish_all(js, n: int) -> float:
    """Setup: the events as the services write them (dumped first, so the rate is the bus's)."""
    batch = []
    for e in make_events(n):
        batch.append((e.subject, dump_event(e), {"Nats-Msg-Id": str(e.event_id)}))
        if len(batch) % 5000 == 0:
            await asyncio.sleep(0)  # answer the server's PINGs: a stale client is cut off (on a loaded machine,
            # dumping 1 M events at once took longer than the server waits)
    start = time.perf_counter()
    futures = []
    for subject, data, headers in batch:
        futures.append(await js.publish_async(subject, data, headers=headers))
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    return n / (time.perf_counter() - start)


async def plain_ceiling(nc, pool, n: int, batch: int, table: str) -> float:
    """Raw pull of the same messages + COPY into an unchained table, nothing else."""
    buffer: collections.deque = collections.deque()
    wake = asyncio.Event()

    def sink(msgs):  # a socket read's worth, as the writer takes them (the reader's batch_sink)
        buffer.extend(msgs)
        wake.set()

    async with pool.acquire() as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (stream text, seq bigint, data bytea)")
        pullers = [Reader(nc, s, filter_subjects(s, [MUNICIPALITY]), batch_sink=sink) for s in bus.LOG_STREAMS]
        start = time.perf_counter()
        for p in pullers:
            await p.start()
        written = 0
        while written < n:
            if not buffer:
                wake.clear()
                await asyncio.wait_for(wake.wait(), 30)
                continue
            take = [buffer.popleft() for _ in range(min(batch, len(buffer)))]
            async with conn.transaction():
                await conn.copy_records_to_table(table, records=[(m.stream, m.seq, m.data) for m in take])
            written += len(take)
        rate = written / (time.perf_counter() - start)
        for p in pullers:
            await p.stop()
        await conn.execute(f"DROP TABLE {table}")
    return rate


async def shaped_rows(nc) -> dict[tuple[str, int], tuple]:
    """Setup for the same-shape ceiling (not timed): every published message as the writer's COPY row, by (stream,
    sequence), without its position (chained once here, in one order; the ceiling only looks them up)."""
    from madoguchi_shared.reader import read_all

    rows: dict[tuple[str, int], tuple] = {}
    position, head = 0, chain_mod.GENESIS
    for stream in bus.LOG_STREAMS:
        msgs = [m async for m in read_all(nc, filter_subjects(stream, [MUNICIPALITY]), stream=stream)]
        part, position, head = chain_mod.chain_records(msgs, position, head)
        for m, row in zip(msgs, part, strict=True):
            rows[(m.stream, m.seq)] = row[1:]
    return rows


async def shaped_ceiling(nc, pool, n: int, batch: int, schema_name: str, rows: dict[tuple[str, int], tuple]) -> float:
    """Raw pull of the same messages + COPY of the writer's rows for them (made before, looked up by stream and
    sequence) into a log of the same shape: a fresh audit schema (the same partitioned table, the same indexes),
    one transaction per batch, nothing else (no chaining, no envelope, no duplicates, no positions or head kept).
    The few messages published after the setup (the checkpoints signed by an earlier round's writer) are made into
    rows when first seen."""
    buffer: collections.deque = collections.deque()
    wake = asyncio.Event()

    def sink(msgs):
        buffer.extend(msgs)
        wake.set()

    await schema.migrate_pool(pool, schema_name)
    async with pool.acquire() as conn:
        pullers = [Reader(nc, s, filter_subjects(s, [MUNICIPALITY]), batch_sink=sink) for s in bus.LOG_STREAMS]
        start = time.perf_counter()
        for p in pullers:
            await p.start()
        written = 0
        while written < n:
            if not buffer:
                wake.clear()
                await asyncio.wait_for(wake.wait(), 30)
                continue
            take = [buffer.popleft() for _ in range(min(batch, len(buffer)))]
            for m in take:  # a checkpoint a writer of an earlier round published after the setup (a few)
                if (m.stream, m.seq) not in rows:
                    rows[(m.stream, m.seq)] = chain_mod.chain_records([m], 0, chain_mod.GENESIS)[0][0][1:]
            records = [(written + i, *rows[(m.stream, m.seq)]) for i, m in enumerate(take, start=1)]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "log", schema_name=schema_name, records=records, columns=chain_mod.COLUMNS
                )
            written += len(take)
        rate = written / (time.perf_counter() - start)
        for p in pullers:
            await p.stop()
        await conn.execute(f'DROP SCHEMA "{schema_name}" CASCADE')
    return rate


async def chained(nc, pool, n: int, data_dir: Path, schema_name: str, batch: int) -> tuple[float, AuditSettings]:
    audit = AuditSettings(
        data_dir=data_dir,
        municipality=MUNICIPALITY,
        schema_name=schema_name,
        log_id=schema_name,
        municipalities=[MUNICIPALITY],
        ingest_batch=batch,
        checkpoint_every=10_000,
        checkpoint_seconds=60,
    )
    await schema.migrate_pool(pool, schema_name)
    ingest = Ingest(audit, nc, pool)
    start = time.perf_counter()
    task = asyncio.create_task(ingest.run())
    while ingest.written < n:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
            raise RuntimeError(f"the writer stopped: {ingest.halted}")
    rate = ingest.written / (time.perf_counter() - start)
    ingest.stop()  # a clean stop signs the tail
    await task
    return rate, audit


async def verify_rate(pool, audit: AuditSettings) -> tuple[float, verify.Report]:
    async with pool.acquire() as conn:
        found = await checkpoints.gather(audit, conn)
        report = await verify.verify_db(conn, audit.schema_name, audit.log_id, found, checkpoints.load_keyring(audit))
    if not report.ok:
        raise RuntimeError("\n".join(report.lines()))
    return report.rate, report


async def reconcile_rate(nc, pool, audit: AuditSettings) -> verify.Report:
    """`audit verify`'s default run; `report.cpu_seconds`: the verifier process's own CPU time (the rest of the
    wall time is PostgreSQL and nats-server working, or waiting for a core on a loaded machine)."""
    cpu = time.process_time()
    async with pool.acquire() as conn:
        report = await verify.verify_all(conn, nc, audit, grace_seconds=0)
    report.cpu_seconds = time.process_time() - cpu
    if not report.ok or report.reconciliation is None or not report.reconciliation.ok:
        raise RuntimeError("\n".join(report.lines()))
    return report


async def read_ceiling(nc, audit: AuditSettings) -> float:
    """The streams of record read with the shared reader and nothing else: what reconciling must at least do."""
    from madoguchi_audit import reconcile

    count = 0
    done: list[asyncio.Event] = []
    readers = []
    start = time.perf_counter()
    for stream, filters in reconcile.stream_filters(audit.municipalities).items():
        event = asyncio.Event()

        def sink(m, event=event):
            nonlocal count
            count += 1
            if m.pending == 0:
                event.set()

        reader = Reader(nc, stream, filters, sink=sink)
        await reader.start()
        if reader.pending == 0:
            event.set()
        readers.append(reader)
        done.append(event)
    for event in done:
        await event.wait()
    rate = count / (time.perf_counter() - start)
    for reader in readers:
        await reader.stop()
    return rate


async def sha_ceiling(pool, audit: AuditSettings, sample: int = 200_000) -> float:
    """The sha256 chain alone over `prev || header || data` of the table's records, in memory."""
    import hashlib

    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f'SELECT prev_hash || {chain_mod.HEADER_SQL} || data FROM "{audit.schema_name}".log '
            "ORDER BY position LIMIT $1",
            sample,
        )
    payloads = [bytes(r[0]) for r in rows]
    sha = hashlib.sha256
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for p in payloads:
            sha(p).digest()
        best = max(best, len(payloads) / (time.perf_counter() - start))
    return best


async def sha_table_ceiling(pool, audit: AuditSettings) -> float:
    """The sha256 chain over the table: the verifier's own read (a read-only snapshot, a server-side cursor
    with PostgreSQL building `prev_hash || header || data`, the next chunk in flight) and one chained sha256
    per record, with no check at all — what `audit verify` must at least do, in the same run."""
    import hashlib

    sha = hashlib.sha256
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(
                f'SELECT prev_hash || {chain_mod.HEADER_SQL} || data FROM "{audit.schema_name}".log ORDER BY position'
            )
            count = 0
            start = time.perf_counter()
            pending = asyncio.ensure_future(cursor.fetch(10_000))
            while True:
                rows = await pending
                if not rows:
                    break
                pending = asyncio.ensure_future(cursor.fetch(10_000))
                for i in range(0, len(rows), 500):
                    for r in rows[i : i + 500]:
                        sha(r[0]).digest()
                    await asyncio.sleep(0)
                count += len(rows)
            return count / (time.perf_counter() - start)


async def run_reconcile(nats_url: str, dsn: str, n: int, data_dir: Path, batch: int = 20_000) -> dict:
    """Publish n, write them with the real writer, then verify + reconcile beside the sha256-chain ceiling."""
    nc = await bus.connect(nats_url, name="bench-audit")
    js = nc.jetstream(publish_async_max_pending=4000)
    await bus.ensure_streams(js)
    pool = await db.create_pool(dsn, max_size=4)
    try:
        publish = await publish_all(js, n)
        gc.collect()
        gc.freeze()
        rate, audit = await chained(nc, pool, n, data_dir / "rec", "bench_audit_rec", batch)
        plain = await verify_rate(pool, audit)
        full = await reconcile_rate(nc, pool, audit)
        ceiling = await sha_ceiling(pool, audit)
        table_ceiling = await sha_table_ceiling(pool, audit)
        reading = await read_ceiling(nc, audit)
        return {
            "sha256_chain_table_ceiling_per_s": table_ceiling,
            "verify_ratio_to_table_ceiling": plain[0] / table_ceiling,
            "reconcile_ratio_to_table_ceiling": (full.records / full.seconds) / table_ceiling,
            "read_ceiling_per_s": reading,
            "ratio_to_read_ceiling": (full.records / full.seconds) / reading,
            "events": n,
            "publish_events_per_s": publish,
            "chained_events_per_s": rate,
            "verify_records_per_s": plain[0],
            "records": full.records,
            "reconciled_messages": full.reconciliation.messages,
            "verify_reconcile_seconds": full.seconds,
            "verify_reconcile_records_per_s": full.records / full.seconds,
            "verify_reconcile_cpu_seconds": full.cpu_seconds,
            "load_average": os.getloadavg(),
            "reconcile_seconds": full.reconciliation.seconds,
            "sha256_chain_ceiling_per_s": ceiling,
            "ratio_to_sha_ceiling": (full.records / full.seconds) / ceiling,
        }
    finally:
        await pool.close()
        await nc.drain()


def reconcile_table(res: dict) -> str:
    return "\n".join(
        [
            "| figure | value | target |",
            "|---|---:|---|",
            f"| records in the log | {res['records']:,} | 1,000,000 |",
            f"| verify + reconcile with the streams, seconds | {res['verify_reconcile_seconds']:.1f} | < 30 |",
            f"| verify + reconcile, records/s | {res['verify_reconcile_records_per_s']:,.0f} | |",
            f"| of which the verifier's own CPU, seconds (load average {res['load_average'][0]:.1f}) | "
            f"{res['verify_reconcile_cpu_seconds']:.1f} | |",
            f"| of which comparing after the pass (the reading overlaps it), seconds | {res['reconcile_seconds']:.1f} | |",
            f"| chain verification alone, records/s | {res['verify_records_per_s']:,.0f} | |",
            f"| sha256-chain ceiling (Python, in memory), records/s | {res['sha256_chain_ceiling_per_s']:,.0f} | |",
            f"| verify + reconcile / sha256 ceiling | {res['ratio_to_sha_ceiling']:.0%} | |",
            f"| sha256-chain ceiling over the table (verify's read + one sha256 a record, no checks), records/s | "
            f"{res['sha256_chain_table_ceiling_per_s']:,.0f} | |",
            f"| audit verify / table sha256-chain ceiling | {res['verify_ratio_to_table_ceiling']:.0%} | ≥ 80 % |",
            f"| verify + reconcile / table sha256-chain ceiling | {res['reconcile_ratio_to_table_ceiling']:.0%} | |",
            f"| reading the streams alone (shared reader, no logic), messages/s | {res['read_ceiling_per_s']:,.0f} | |",
            f"| verify + reconcile / reading ceiling | {res['ratio_to_read_ceiling']:.0%} | |",
        ]
    )


async def run(nats_url: str, dsn: str, n: int, rounds: int, data_dir: Path, batch: int = 20_000) -> dict:
    nc = await bus.connect(nats_url, name="bench-audit")
    js = nc.jetstream(publish_async_max_pending=4000)
    await bus.ensure_streams(js)
    pool = await db.create_pool(dsn, max_size=4)
    try:
        publish = await publish_all(js, n)
        rows = await shaped_rows(nc)
        # Setup garbage out of the way, the same for every measurement below (long-lived objects
        # would otherwise make every full collection walk the setup's leftovers).
        gc.collect()
        gc.freeze()
        ceilings, shapeds, chains, verifies, reconciles, shas, tables = [], [], [], [], [], [], []
        report = None
        for r in range(rounds):
            # Each ceiling is the best of two batch sizes (small batches overlap COPY with pulling,
            # large ones pay fewer transactions); the writer runs with its own default.
            ceilings.append(max([await plain_ceiling(nc, pool, n, b, f"bench_plain_{r}_{b}") for b in (5000, 20_000)]))
            shapeds.append(
                max([await shaped_ceiling(nc, pool, n, b, f"bench_shape_{r}_{b}", rows) for b in (5000, 20_000)])
            )
            rate, audit = await chained(nc, pool, n, data_dir / f"r{r}", f"bench_audit_{r}", batch)
            chains.append(rate)
            for _ in range(2):
                v, report = await verify_rate(pool, audit)
                verifies.append(v)
            full = await reconcile_rate(nc, pool, audit)
            reconciles.append(full.records / full.seconds)
            shas.append(await sha_ceiling(pool, audit))
            tables.append(await sha_table_ceiling(pool, audit))
            print(
                f"  round {r + 1}: ceiling {ceilings[-1]:,.0f}/s, same-shape ceiling {shapeds[-1]:,.0f}/s, "
                f"chained {chains[-1]:,.0f}/s, "
                f"verify {max(verifies[-2:]):,.0f}/s",
                flush=True,
            )
        ceiling, chain_rate = statistics.median(ceilings), statistics.median(chains)
        shaped = statistics.median(shapeds)
        return {
            "events": n,
            "rounds": rounds,
            "batch": batch,
            "publish_events_per_s": publish,
            "ceiling_events_per_s": ceiling,
            "ceiling_rounds": ceilings,
            "chained_events_per_s": chain_rate,
            "chained_rounds": chains,
            "ratio": chain_rate / ceiling,
            "shaped_ceiling_events_per_s": shaped,
            "shaped_ceiling_rounds": shapeds,
            "shaped_ratio": chain_rate / shaped,
            "verify_records_per_s": statistics.median(verifies),
            "verify_rounds": verifies,
            "verified_records": report.records if report else 0,
            "verify_reconcile_records_per_s": statistics.median(reconciles),
            "sha256_chain_ceiling_per_s": statistics.median(shas),
            "sha256_chain_table_ceiling_per_s": statistics.median(tables),
            "verify_ratio_to_table_ceiling": statistics.median(verifies) / statistics.median(tables),
            "reconcile_ratio_to_table_ceiling": statistics.median(reconciles) / statistics.median(tables),
        }
    finally:
        await pool.close()
        await nc.drain()


def table(res: dict) -> str:
    return "\n".join(
        [
            "| figure | value | target |",
            "|---|---:|---|",
            f"| publish (setup), events/s | {res['publish_events_per_s']:,.0f} | |",
            f"| plain ceiling: raw pull + COPY, unchained, unindexed, events/s | {res['ceiling_events_per_s']:,.0f} | |",
            f"| same-shape ceiling: raw pull + COPY of the same rows into a log of the same shape (same indexes), "
            f"events/s | {res['shaped_ceiling_events_per_s']:,.0f} | |",
            f"| audit ingest into the chained log, events/s | {res['chained_events_per_s']:,.0f} | |",
            f"| ingest / same-shape ceiling | {res['shaped_ratio']:.0%} | ≥ 75 % |",
            f"| ingest / plain (unindexed) ceiling | {res['ratio']:.0%} | reference |",
            f"| verify, records/s ({res['verified_records']:,} records) | {res['verify_records_per_s']:,.0f} | ≥ 200,000 |",
            f"| verify + reconcile with the streams, records/s | {res['verify_reconcile_records_per_s']:,.0f} | 1 M in < 30 s |",
            f"| sha256-chain ceiling (Python, in memory), records/s | {res['sha256_chain_ceiling_per_s']:,.0f} | |",
            f"| sha256-chain ceiling over the table (verify's read, no checks), records/s | "
            f"{res['sha256_chain_table_ceiling_per_s']:,.0f} | |",
            f"| audit verify / table sha256-chain ceiling | {res['verify_ratio_to_table_ceiling']:.0%} | ≥ 80 % |",
            f"| verify + reconcile / table sha256-chain ceiling | {res['reconcile_ratio_to_table_ceiling']:.0%} | |",
        ]
    )


async def suite(nats_server, pg, pool, ceilings, args) -> list[dict]:
    """The bench/suites.py shape: rows for `make bench`."""
    n = min(getattr(args, "events", 100_000), 150_000)
    with tempfile.TemporaryDirectory(prefix="mgaudit") as tmp:
        res = await run(nats_server.url, pg.dsn, n, 1, Path(tmp))
    return [
        {
            "area": "audit",
            "figure": "ingest into the hash-chained log",
            "value": res["chained_events_per_s"],
            "unit": "events/s",
            "ceiling_name": "raw pull + COPY of the same rows into a log of the same shape, same indexes (same run)",
            "ceiling": res["shaped_ceiling_events_per_s"],
            "target": "≥ 75 % of ceiling",
        },
        {
            "area": "audit",
            "figure": "ingest into the hash-chained log (against an unindexed table)",
            "value": res["chained_events_per_s"],
            "unit": "events/s",
            "ceiling_name": "raw pull + COPY, unchained, no indexes (same run)",
            "ceiling": res["ceiling_events_per_s"],
            "target": "reference (the auditor indexes are not in this ceiling)",
        },
        {
            "area": "audit",
            "figure": "audit verify (the chain)",
            "value": res["verify_records_per_s"],
            "unit": "records/s",
            "ceiling_name": "sha256 chain over the table: the same read, one sha256 a record, no checks (same run)",
            "ceiling": res["sha256_chain_table_ceiling_per_s"],
            "target": "≥ 80 % of ceiling",
        },
        {
            "area": "audit",
            "figure": "sha256 chain in Python, in memory (no read)",
            "unit": "records/s",
            "value": res["sha256_chain_ceiling_per_s"],
            "target": "reference",
        },
        {
            "area": "audit",
            "figure": "verify + reconcile with the streams of record",
            "unit": "records/s",
            "value": res["verify_reconcile_records_per_s"],
            "ceiling_name": "sha256 chain over the table (same run)",
            "ceiling": res["sha256_chain_table_ceiling_per_s"],
            "target": "1 M records in < 30 s (≥ 33,400/s)",
        },
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", default="bench-audit.json", help="where to write the JSON results")
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nats", help="use this NATS server instead of starting one")
    parser.add_argument("--dsn", help="use this PostgreSQL instead of starting one")
    parser.add_argument("--reconcile-only", action="store_true", help="only verify + reconcile vs the sha256 ceiling")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mgaudit") as tmp:
        nats_server = pg = None
        try:
            if not args.nats:
                nats_server = NatsServer(Path(tmp) / "nats").start()
            if not args.dsn:
                pg = PostgresServer(Path(tmp) / "pg").start()
            if args.reconcile_only:
                res = await run_reconcile(
                    args.nats or nats_server.url, args.dsn or pg.dsn, args.events, Path(tmp) / "data"
                )
            else:
                res = await run(
                    args.nats or nats_server.url, args.dsn or pg.dsn, args.events, args.rounds, Path(tmp) / "data"
                )
        finally:
            if pg:
                pg.stop()
            if nats_server:
                nats_server.stop()
    res["seconds"] = round(time.perf_counter() - started, 1)
    res["when"] = datetime.now(UTC).isoformat()
    res["machine"] = platform.platform()
    print(reconcile_table(res) if args.reconcile_only else table(res))
    Path(args.output).write_text(json.dumps(res, indent=2))
    print(f"\nwritten {args.output} ({res['seconds']} s)")


if __name__ == "__main__":
    asyncio.run(main())
