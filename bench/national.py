"""The national peak day on this machine (issue 9 §4): fill the bus straight with (a slice of)
the day of 1,741 municipalities and 4,000 desks, then replay it through the reporting projections
and the audit ingest running together, and time both. Each runs in its own process, as deployed (the
reporting and audit services are separate processes): the reporting worker in this one, the audit
writer in a child started before the clock and released at the same moment.

    .venv/bin/python -m bench.national --events 1000000     (make bench-national)

The full day is ~15 million events; a slice gives the rates, from which the full day's time is
extrapolated (and stated as such). The ceiling of the same run: the shared reader and COPY, no
parsing and no logic (`bench_reporting.raw_ceiling`), over every logged stream of the slice; the
projections and the audit ingest together are stated as a share of it (issue 12 target: ≥ 50 %).
The load average is printed with the figures: the machine may be shared."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from madoguchi_shared import bus, db
from madoguchi_shared.runtime import NatsServer, PostgresServer
from madoguchi_shared.settings import Settings

RESULTS = Path(__file__).parent / "results"
FULL_DAY = 15_000_000


AUDIT_APP = "mg-national-audit"  # the audit writer's PostgreSQL sessions, told apart by application_name


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(postmaster: int) -> dict[int, float]:
    """CPU seconds of the postmaster and each of its processes (backends, WAL writer, checkpointer, ...)."""
    out = {postmaster: proc_cpu(postmaster)}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == postmaster:
                out[int(entry.name)] = proc_cpu(int(entry.name))
    return out


async def stream_total(js, names) -> int:
    return sum([(await js.stream_info(n)).state.messages for n in names])


def _bench_reporting():
    path = Path(__file__).resolve().parent.parent / "services" / "reporting" / "bench_reporting.py"
    spec = importlib.util.spec_from_file_location("bench_reporting", path)
    module = importlib.util.module_from_spec(spec)  # pyright: ignore[reportArgumentType]
    spec.loader.exec_module(module)  # pyright: ignore[reportOptionalMemberAccess]
    return module


async def raw_ceiling(nc, pool, js, streams) -> float:
    """Events/s of the shared reader + COPY (no parsing, no logic) over the slice's logged streams."""
    raw = _bench_reporting().raw_ceiling
    events, seconds = 0, 0.0
    for name in streams:
        n = (await js.stream_info(name)).state.messages
        if n:
            seconds += n / await raw(nc, pool, name, n)
            events += n
    return events / seconds


def audit_process(nats_url: str, dsn: str, data_dir: str, total: int, pipe) -> None:
    """The audit service's writer in its own process: set up, say ready, wait for the start, write until `total`
    records are in the log, send the monotonic time (system-wide on Linux) it got there, stop when told."""
    asyncio.run(_audit_writer(nats_url, dsn, Path(data_dir), total, pipe))


async def _audit_writer(nats_url: str, dsn: str, data_dir: Path, total: int, pipe) -> None:
    from madoguchi_audit import checkpoints, schema
    from madoguchi_audit.config import AuditSettings
    from madoguchi_audit.ingest import Ingest

    nc = await bus.connect(nats_url, name="bench-national-audit")
    pool = await db.create_pool(f"{dsn}?application_name={AUDIT_APP}", max_size=4)
    try:
        audit = AuditSettings(data_dir=data_dir, checkpoint_every=100_000, checkpoint_seconds=60)
        await schema.migrate_pool(pool, audit.schema_name)
        ingest = Ingest(audit, nc, pool, checkpoints.load_signing_key(audit))
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # the start
        cpu0 = time.process_time()
        task = asyncio.create_task(ingest.run())
        while ingest.written < total:
            await asyncio.sleep(0.05)
            if task.done():
                task.result()
                raise RuntimeError(f"the audit writer stopped: {ingest.halted}")
        pipe.send((time.monotonic(), time.process_time() - cpu0))
        await asyncio.to_thread(pipe.recv)  # stop
        ingest.stop()
        await task
    finally:
        await pool.close()
        await nc.close()


async def audit_backends(pool) -> list[int]:
    """The process ids of the audit writer's PostgreSQL sessions."""
    async with pool.acquire() as conn:
        return [
            r[0] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = $1", AUDIT_APP)
        ]


async def main(events: int) -> dict:
    from madoguchi_reporting.worker import Worker
    from madoguchi_sim import national

    with tempfile.TemporaryDirectory(prefix="mgnational") as tmp:
        nats_server = NatsServer(Path(tmp) / "nats").start()
        pg = PostgresServer(Path(tmp) / "pg").start()
        nc = await bus.connect(nats_server.url, name="bench-national")
        js = nc.jetstream(publish_async_max_pending=4000)
        await bus.ensure_streams(js)
        pool = await db.create_pool(pg.dsn, max_size=12)
        try:
            t0 = time.perf_counter()
            await national.fill(js, events=events, workers=1)
            fill_s = time.perf_counter() - t0
            logged = [s.name for s in bus.STREAMS if s.log]
            total = await stream_total(js, logged)
            projected_streams = {
                "MG_DESK": (await js.stream_info("MG_DESK")).state.last_seq,
                "MG_CALLS": (await js.stream_info("MG_CALLS")).state.last_seq,
            }
            print(f"filled {total:,} events in {fill_s:.0f} s ({total / fill_s:,.0f}/s)", flush=True)
            ceiling = await raw_ceiling(nc, pool, js, logged)
            print(f"raw ceiling (shared reader + COPY, no logic): {ceiling:,.0f} events/s", flush=True)

            settings = Settings(
                nats_url=nats_server.url,
                pg_dsn=pg.dsn,
                token_secret="x" * 40,
                data_dir=Path(tmp),
                extra={"deadline_check_seconds": "0"},
            )
            pipe, child_pipe = multiprocessing.Pipe()
            child = multiprocessing.get_context("spawn").Process(
                target=audit_process, args=(nats_server.url, pg.dsn, str(Path(tmp) / "audit"), total, child_pipe)
            )
            child.start()
            if await asyncio.to_thread(pipe.recv) != "ready":
                raise RuntimeError("the audit process did not start")
            worker = Worker(settings, nc, pool)
            postmaster = pg.proc.pid if pg.proc else 0
            pg_cpu0 = postgres_cpu(postmaster)
            cpu0 = time.process_time()
            start = time.monotonic()
            pipe.send("start")
            await worker.start()
            done_at: dict[str, float] = {}
            while len(done_at) < 2:
                await asyncio.sleep(0.1)
                if "audit" not in done_at and pipe.poll():
                    at, audit_cpu = pipe.recv()
                    done_at["audit"] = at - start
                if not child.is_alive() and "audit" not in done_at:
                    raise RuntimeError(f"the audit process ended ({child.exitcode}) before writing {total:,}")
                positions = {p.stream: p.position for p in worker.projections}
                if "reporting" not in done_at and all(
                    positions.get(s, 0) >= last for s, last in projected_streams.items()
                ):
                    done_at["reporting"] = time.monotonic() - start
                    reporting_cpu = time.process_time() - cpu0
            both = max(done_at.values())
            audit_pids = await audit_backends(pool)  # the writer's sessions are open until it is told to stop
            pg_cpu1 = postgres_cpu(postmaster)
            pg_used = {pid: cpu - pg_cpu0.get(pid, 0.0) for pid, cpu in pg_cpu1.items()}
            audit_pg_cpu = sum(pg_used.get(pid, 0.0) for pid in audit_pids)
            pipe.send("stop")
            await asyncio.to_thread(child.join, 60)
            await worker.stop()
        finally:
            await pool.close()
            await nc.close()
            pg.stop()
            nats_server.stop()
    result = {
        "events": total,
        "fill_s": round(fill_s, 1),
        "fill_events_per_s": round(total / fill_s),
        "reporting_s": round(done_at["reporting"], 1),
        "audit_s": round(done_at["audit"], 1),
        "together_s": round(both, 1),
        "together_events_per_s": round(total / both),
        "raw_ceiling_events_per_s": round(ceiling),
        "together_share_of_ceiling": round(total / both / ceiling, 3),
        "reporting_events_per_s": round(sum(projected_streams.values()) / done_at["reporting"]),
        "audit_events_per_s": round(total / done_at["audit"]),
        "full_day_events": FULL_DAY,
        "full_day_fill_s_extrapolated": round(FULL_DAY / (total / fill_s)),
        "full_day_replay_s_extrapolated": round(FULL_DAY / (total / both)),
        "full_day_raw_ceiling_s_extrapolated": round(FULL_DAY / ceiling),
        # CPU per event (µs): each process's own, and PostgreSQL's (the audit writer's sessions; all its processes)
        "audit_python_cpu_us_per_event": round(audit_cpu / total * 1e6, 1),
        "audit_postgres_cpu_us_per_event": round(audit_pg_cpu / total * 1e6, 1),
        "reporting_python_cpu_us_per_event": round(reporting_cpu / total * 1e6, 1),
        "postgres_cpu_us_per_event": round(sum(pg_used.values()) / total * 1e6, 1),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "national.json").write_text(json.dumps(result, indent=2))
    for k, v in result.items():
        print(f"{k:37s} {v:>12,}" if isinstance(v, int | float) else f"{k:37s} {v}")
    print(
        f"\nprojections + audit ingest together: {result['together_events_per_s']:,} events/s = "
        f"{result['together_share_of_ceiling']:.0%} of the raw ceiling ({result['raw_ceiling_events_per_s']:,}/s, "
        f"same run; target ≥ 50 %); the 15 M day: {result['full_day_replay_s_extrapolated']:,} s "
        f"(ceiling {result['full_day_raw_ceiling_s_extrapolated']:,} s), extrapolated from {total:,} events; "
        f"load average {result['load_average_1m_at_end']}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().events))
