"""Benchmark of the reporting service (issue 7, `make bench`).

    python services/reporting/bench_reporting.py [OUT.json] [--weeks 8] [--final-weeks 26] [--rounds N]

In one run, on its own nats-server and PostgreSQL (temp folder; or MADOGUCHI_NATS_URL /
MADOGUCHI_PG_DSN when set):
1. simulates --weeks weeks at 10 desks and the phone line (the simulator's generator, tests/sim_week.py) and publishes
   them (pipelined publish);
2. the raw ceiling: the fastest plain way to move the same events from JetStream into PostgreSQL
   with no logic: the shared reader (`madoguchi_shared.reader`, the projections' own pull: raw
   $JS.API.CONSUMER.MSG.NEXT requests kept two deep, AckNone) and COPY into an unchained table,
   a batch and a checkpoint per transaction (ARCHITECTURE: about 21,000 events/s on these machines);
3. projection throughput: the real projections over the same events, from an empty schema, in
   rebuild mode and in live mode (report-updated events into the outbox); target >= 60 % of (2);
4. rebuild (`madoguchi report rebuild` path) of everything, extrapolated to 1 million events
   (target < 80 s);
5. report generation: daily, weekly and the final report over --final-weeks of 10 desks (the
   projected tables replicated over six months), as JSON (target < 1 s), xlsx and PDF (< 5 s), CSV.
Prints a table and writes the numbers as JSON to OUT.json (default bench_reporting.json).
With --rounds N only (2) and (3) in rebuild mode run, alternated N times over the same events, each
round printed with its ratio and the projections' CPU per event: how a change to the projection
path is compared on a shared machine (run the old and the new code's rounds back to back).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "tests"))

from madoguchi_shared import bus, db, subjects  # noqa: E402
from madoguchi_shared.reader import Reader  # noqa: E402
from madoguchi_shared.logging import configure  # noqa: E402
from madoguchi_shared.runtime import NatsServer, PostgresServer  # noqa: E402
from madoguchi_shared.settings import Settings  # noqa: E402

from madoguchi_reporting import queries, schema  # noqa: E402
from madoguchi_reporting.cli import rebuild_async  # noqa: E402
from madoguchi_reporting.config import ReportConfig  # noqa: E402
from madoguchi_reporting.projections import Notifier, projections  # noqa: E402
from madoguchi_reporting.submissions import render  # noqa: E402
from madoguchi_reporting.worker import freeze_startup_heap, stream_target  # noqa: E402
from sim_week import WEEK_START, simulate  # noqa: E402

MUNICIPALITY = "990001"
FINAL_MUNICIPALITY = "990002"


async def raw_ceiling(nc, pool, stream: str, total: int) -> float:
    """Events/s of the shared reader + COPY, no parsing and no logic, `total` messages.

    The same pull the projections use (`madoguchi_shared.reader`), each batch COPied into an
    unchained table with a checkpoint in the same transaction: what a projection could reach.
    """
    async with pool.acquire() as conn:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (seq bigint, subject text, data bytea)"
        )
        await conn.execute(
            "DROP TABLE IF EXISTS bench_raw_ckpt; CREATE TABLE bench_raw_ckpt (name text PRIMARY KEY, seq bigint)"
        )
        await conn.execute("INSERT INTO bench_raw_ckpt VALUES ('raw', 0)")
    written = 0
    start = time.perf_counter()
    async with Reader(nc, stream, [subjects.stream_filter(stream)], batch=1000) as reader, pool.acquire() as conn:
        while written < total:
            rows = [(m.seq, m.subject, m.data) for m in await reader.next_batch(timeout=5.0)]
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw", records=rows)
                await conn.execute("UPDATE bench_raw_ckpt SET seq = $1 WHERE name = 'raw'", rows[-1][0])
            written += len(rows)
    return total / (time.perf_counter() - start)


async def run_projections(nc, pool, notifier: Notifier) -> tuple[int, float]:
    """Replay MG_DESK and MG_CALLS into an empty schema; (events, seconds)."""
    js = nc.jetstream()
    async with pool.acquire() as conn:
        await schema.truncate_projections(conn)
    events = 0
    start = time.perf_counter()
    for p in projections(notifier)[:2]:
        target = await stream_target(js, p)
        events += target
        task = asyncio.create_task(p.run(nc, pool))
        while p.position < target:  # advanced after each committed batch
            await asyncio.sleep(0.02)
        p.stop()
        await task
    return events, time.perf_counter() - start


async def replicate_six_months(pool, weeks: int, final_weeks: int) -> None:
    """Copy the projected weeks over `final_weeks` weeks under FINAL_MUNICIPALITY (new ids)."""
    async with pool.acquire() as conn, conn.transaction():
        for t in ("day_count", "visit", "call_record", "desk_day", "note"):
            await conn.execute(f"DELETE FROM reporting.{t} WHERE municipality = $1", FINAL_MUNICIPALITY)
        for k in range(0, final_weeks, weeks):
            shift = 7 * k
            await conn.execute(
                f"""INSERT INTO reporting.day_count SELECT $1, channel, scope, day + {shift}, figure, n
                                   FROM reporting.day_count WHERE municipality = $2""",
                FINAL_MUNICIPALITY,
                MUNICIPALITY,
            )
            await conn.execute(
                f"""INSERT INTO reporting.desk_day SELECT $1, desk, day + {shift}, ward, started_at, ended_at, stops
                                   FROM reporting.desk_day WHERE municipality = $2""",
                FINAL_MUNICIPALITY,
                MUNICIPALITY,
            )
            await conn.execute(
                f"""INSERT INTO reporting.visit SELECT $1, gen_random_uuid(), desk, ward, day + {shift}, ticket_no,
                                   arrival_hour, started_at + interval '{shift} days', waited_ms, gender, age_band, purposes,
                                   support_needed, support_given, payment_service, outcome, reason, service_ms,
                                   ended_at + interval '{shift} days', corrections
                                   FROM reporting.visit WHERE municipality = $2""",
                FINAL_MUNICIPALITY,
                MUNICIPALITY,
            )
            await conn.execute(
                f"""INSERT INTO reporting.call_record SELECT $1, gen_random_uuid(), line, day + {shift},
                                   received_at + interval '{shift} days', within_hours, connection, missed_reason, wait_s,
                                   overflow, categories, resolution, provider_category, guided_ward, duration_s, notes,
                                   opinions, callback_status FROM reporting.call_record WHERE municipality = $2""",
                FINAL_MUNICIPALITY,
                MUNICIPALITY,
            )
            await conn.execute(
                f"""INSERT INTO reporting.note SELECT $1, channel, scope, day + {shift}, kind, ref || '-{k}',
                                   at + interval '{shift} days', category, step, text, status, detail
                                   FROM reporting.note WHERE municipality = $2""",
                FINAL_MUNICIPALITY,
                MUNICIPALITY,
            )
        await conn.execute("ANALYZE reporting.day_count; ANALYZE reporting.visit; ANALYZE reporting.call_record")


async def timed(coro_fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await coro_fn()
        best = min(best, time.perf_counter() - start)
    return best, result


async def main(out: Path, weeks: int, final_weeks: int, rounds: int = 0) -> dict:
    configure("WARNING", json_logs=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-reporting-"))
    servers = []
    nats_url = os.environ.get("MADOGUCHI_NATS_URL")
    pg_dsn = os.environ.get("MADOGUCHI_PG_DSN")
    if not nats_url:
        servers.append(NatsServer(tmp / "nats").start())
        nats_url = servers[-1].url
    if not pg_dsn:
        servers.append(PostgresServer(tmp / "pg").start())
        pg_dsn = servers[-1].dsn
    results: dict = {"weeks": weeks, "final_weeks": final_weeks}
    try:
        nc = await bus.connect(nats_url, name="bench-reporting")
        js = nc.jetstream()
        await bus.ensure_streams(js)
        pool = await db.create_pool(pg_dsn, max_size=10)
        async with pool.acquire() as conn:
            await schema.migrate(conn)

        # 1. the events
        start = time.perf_counter()
        events = simulate(MUNICIPALITY, WEEK_START, days=7 * weeks, seed=100).events
        results["generate_s"] = round(time.perf_counter() - start, 2)
        before_desk = (await js.stream_info("MG_DESK")).state.last_seq
        before_calls = (await js.stream_info("MG_CALLS")).state.last_seq
        start = time.perf_counter()
        await bus.publish_many(js, events)
        results["publish_events_per_s"] = round(len(events) / (time.perf_counter() - start))
        # the generated events are on the bus now: dropped, and the heap frozen as the service's
        # worker does at start (`freeze_startup_heap`), so the ceiling and the projections run in a
        # process like the service's, not beside 200,000 models the collector walks again and again
        del events
        freeze_startup_heap()
        desk_events = (await js.stream_info("MG_DESK")).state.last_seq - before_desk
        call_events = (await js.stream_info("MG_CALLS")).state.last_seq - before_calls
        results["events"] = desk_events + call_events

        # 2. raw ceiling over the desk stream (the big one), then 3. the projections
        total_desk = (await js.stream_info("MG_DESK")).state.messages
        if rounds:  # --rounds: only 2 and 3 (rebuild mode), alternated, a ratio per round (noise on a shared machine)
            results["rounds"] = []
            for i in range(rounds):
                ceiling = await raw_ceiling(nc, pool, "MG_DESK", total_desk)
                cpu = time.process_time()
                n, secs = await run_projections(nc, pool, Notifier(enabled=False))
                cpu = time.process_time() - cpu
                one = {"ceiling": round(ceiling), "rebuild": round(n / secs), "ratio": round(n / secs / ceiling, 3)}
                results["rounds"].append({**one, "cpu_us_per_event": round(cpu / n * 1e6, 1)})
                print(
                    f"round {i + 1}: " + ", ".join(f"{k} {v:,}" for k, v in results["rounds"][-1].items()), flush=True
                )
            await pool.close()
            await nc.drain()
            out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
            return results
        results["raw_ceiling_events_per_s"] = round(await raw_ceiling(nc, pool, "MG_DESK", total_desk))
        n, secs = await run_projections(nc, pool, Notifier(enabled=False))
        results["projection_rebuild_mode_events_per_s"] = round(n / secs)
        cfg = ReportConfig(Settings(nats_url=nats_url, pg_dsn=pg_dsn))
        n, secs = await run_projections(nc, pool, Notifier(enabled=True))
        results["projection_live_mode_events_per_s"] = round(n / secs)
        results["projection_share_of_ceiling"] = round(
            results["projection_rebuild_mode_events_per_s"] / results["raw_ceiling_events_per_s"], 3
        )

        # 4. rebuild, extrapolated to a million events
        start = time.perf_counter()
        await rebuild_async(nc, pool, progress=False, out=sys.stderr)
        secs = time.perf_counter() - start
        stream_total = sum([(await js.stream_info(s)).state.messages for s in ("MG_DESK", "MG_CALLS")])
        results["rebuild_s"] = round(secs, 2)
        results["rebuild_events"] = stream_total
        results["rebuild_1M_extrapolated_s"] = round(secs * 1_000_000 / stream_total, 1)

        # 5. reports
        await replicate_six_months(pool, weeks, final_weeks)
        timings: dict = {}
        first = WEEK_START
        last = WEEK_START + dt.timedelta(days=7 * final_weeks - 1)
        async with pool.acquire() as conn:
            for name, fn in (
                (
                    "daily desk",
                    lambda: queries.desk_daily(conn, cfg, MUNICIPALITY, "chuo-1", WEEK_START + dt.timedelta(days=3)),
                ),
                (
                    "daily line",
                    lambda: queries.line_daily(conn, cfg, MUNICIPALITY, "main", WEEK_START + dt.timedelta(days=3)),
                ),
                ("weekly", lambda: queries.weekly(conn, cfg, MUNICIPALITY, WEEK_START)),
                (f"final ({final_weeks} weeks)", lambda: queries.final(conn, cfg, FINAL_MUNICIPALITY, first, last)),
            ):
                secs, report = await timed(fn)
                row = {"json_s": round(secs, 3)}
                for fmt in ("xlsx", "pdf", "csv"):
                    start = time.perf_counter()
                    data = await asyncio.to_thread(render, report, fmt)
                    row[f"{fmt}_s"] = round(time.perf_counter() - start, 3)
                    row[f"{fmt}_bytes"] = len(data)
                if name.startswith("final"):
                    row["visitors"] = report.figures.city.visitors  # pyright: ignore[reportAttributeAccessIssue]
                    row["call_records"] = report.figures.call_records  # pyright: ignore[reportAttributeAccessIssue]
                timings[name] = row
        results["reports"] = timings
        await pool.close()
        await nc.drain()
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # its NATS store and PostgreSQL data: ~700 MB a run
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def print_table(r: dict) -> None:
    ceiling = r["raw_ceiling_events_per_s"]
    print(f"\nreporting benchmark: {r['events']:,} events ({r['weeks']} simulated weeks, 10 desks + phone line)")
    print(f"{'measure':<44} {'value':>14}  target")
    print("-" * 76)
    rows = [
        ("publish (pipelined)", f"{r['publish_events_per_s']:,} ev/s", ""),
        ("raw ceiling: raw pull + COPY (same events)", f"{ceiling:,} ev/s", "~21,000 (ARCHITECTURE)"),
        (
            "projection, rebuild mode",
            f"{r['projection_rebuild_mode_events_per_s']:,} ev/s",
            f">= {int(0.6 * ceiling):,} (60 %)",
        ),
        ("projection, live mode (+ report events)", f"{r['projection_live_mode_events_per_s']:,} ev/s", ""),
        ("projection / ceiling", f"{r['projection_share_of_ceiling'] * 100:.0f} %", ">= 60 %"),
        (f"rebuild of {r['rebuild_events']:,} events", f"{r['rebuild_s']} s", ""),
        ("rebuild of 1,000,000 events (extrapolated)", f"{r['rebuild_1M_extrapolated_s']} s", "< 80 s"),
    ]
    for name, t in r["reports"].items():
        rows.append((f"report {name}: JSON", f"{t['json_s']:.3f} s", "< 1 s" if name.startswith("final") else ""))
        rows.append(
            (
                f"report {name}: xlsx / PDF / CSV",
                f"{t['xlsx_s']:.2f}/{t['pdf_s']:.2f}/{t['csv_s']:.2f} s",
                "< 5 s" if name.startswith("final") else "",
            )
        )
    for name, value, target in rows:
        print(f"{name:<44} {value:>14}  {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="bench_reporting.json", type=Path)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--final-weeks", type=int, default=26)
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="only the raw ceiling and the rebuild-mode projections, alternated this many times (a ratio per round)",
    )
    args = parser.parse_args()
    results = asyncio.run(main(args.out, args.weeks, args.final_weeks, args.rounds))
    if not args.rounds:
        print_table(results)
