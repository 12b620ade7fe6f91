"""`madoguchi report ...`: verify the statistics against the stream (REP-5), rebuild the projections.

madoguchi report verify --from 2021-04-01 --to 2021-04-30     exit 0 only if every figure matches
madoguchi report rebuild                                       drop, replay, compare checksums
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from typing import Annotated

import asyncpg
import typer
from tqdm import tqdm

from madoguchi_shared import bus, db
from madoguchi_shared.logging import configure
from madoguchi_shared.settings import Settings

from madoguchi_reporting import queries, recount, schema
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.projections import REBUILD_LOCK, Notifier, projections
from madoguchi_reporting.schema import SCHEMA

app = typer.Typer(
    help="Reports: verify the statistics against the event stream (REP-5), rebuild the projections.",
    no_args_is_help=True,
)


# --- verify --------------------------------------------------------------------------------------


async def actual_figures(
    pool: asyncpg.Pool, cfg: ReportConfig, m: str, report_ids: set[str], start: dt.date, end: dt.date
) -> dict[str, dict]:
    """What the reports show now (built from the tables, as the API serves them)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT DISTINCT channel, scope, day FROM "{SCHEMA}".day_count
                WHERE municipality = $1 AND day BETWEEN $2 AND $3""",
            m,
            start,
            end,
        )
        ids = set(report_ids)
        for r in rows:
            sid = r["scope"] if r["channel"] == "desk" else f"line-{r['scope']}"
            ids.add(f"daily_{sid}_{r['day'].isoformat()}")
            ids.add(f"daily_city_{r['day'].isoformat()}")
        out: dict[str, dict] = {}
        for rid in sorted(ids):
            kind, rest = rid.split("_", 1)
            scope_id, day_s = rest.rsplit("_", 1)
            day = dt.date.fromisoformat(day_s)
            if kind == "daily" and scope_id == "city":
                report = await queries.city_daily(conn, cfg, m, day, with_revision=False)
            elif kind == "daily" and scope_id.startswith("line-"):
                report = await queries.line_daily(
                    conn, cfg, m, scope_id.removeprefix("line-"), day, with_revision=False
                )
            elif kind == "daily":
                report = await queries.desk_daily(conn, cfg, m, scope_id, day, with_revision=False)
            elif kind == "weekly":
                report = await queries.weekly(conn, cfg, m, day, with_revision=False)
            else:
                report = await queries.final(conn, cfg, m, start, end, with_revision=False, with_records=False)
            out[rid] = queries.flatten(report)
    return out


async def dead_letters(pool: asyncpg.Pool, m: str) -> set[tuple[str, int]]:
    """(stream, seq) of the municipality's events the projections dead-lettered and nobody has replayed."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT stream, seq FROM "{SCHEMA}".projection_dead_letter
                                    WHERE replayed_at IS NULL AND split_part(subject, '.', 3) = $1""",
            m,
        )
    return {(r["stream"], r["seq"]) for r in rows}


async def verify_async(
    nc, pool: asyncpg.Pool, cfg: ReportConfig, m: str, start: dt.date, end: dt.date, *, final: bool = True
) -> tuple[list[recount.Check], str]:
    dead = await dead_letters(pool, m)
    desk_events, call_events = await recount.read_events(nc, m, dead)
    folded = recount.fold(desk_events, call_events)
    expected = recount.expected(folded, start, end, final=(start, end) if final else None)
    actual = await actual_figures(pool, cfg, m, set(expected), start, end)
    checks = recount.compare(expected, actual)
    header = (
        f"municipality {m}, {start} .. {end}: {len(desk_events)} desk and {len(call_events)} calls events "
        f"recounted from the stream"
        + (f" ({len(dead)} dead-lettered events left out: `madoguchi dlq list`)" if dead else "")
    )
    return checks, header + "\n" + recount.summary_table(checks)


async def _lagging(js, pool) -> dict[str, int]:
    from madoguchi_reporting.worker import stream_target  # here, not at import: it brings the PDF renderer

    behind = {}
    async with pool.acquire() as conn:
        for p in projections(Notifier(enabled=False)):
            target = await stream_target(js, p)
            pos = await p.stored_position(conn)
            if pos < target:
                behind[p.name] = target - pos
    return behind


@app.command()
def verify(
    start: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first day (YYYY-MM-DD)")],
    end: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last day (YYYY-MM-DD)")],
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the projections to catch up")] = 30.0,
) -> None:
    """Recount every figure of the period from the stream and compare with the reports (REP-5)."""
    settings = Settings()
    configure("WARNING", json_logs=False)  # the table goes to stdout; only problems are logged
    m = municipality or settings.municipality

    async def go() -> int:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-report-verify")
        pool = await db.create_pool(settings.resolved_pg_dsn())
        try:
            js = nc.jetstream()
            async with pool.acquire() as conn:
                await schema.migrate(conn)
            deadline = time.monotonic() + wait
            while (behind := await _lagging(js, pool)) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            if behind:
                typer.echo(
                    f"warning: projections behind the stream: {behind} (is the reporting service running?)", err=True
                )
            checks, text = await verify_async(nc, pool, ReportConfig(settings), m, start.date(), end.date())
            typer.echo(text)
            bad = sum(len(c.mismatches) for c in checks)
            typer.echo("OK: every figure matches the stream" if not bad else f"FAILED: {bad} figures differ")
            return 0 if not bad else 1
        finally:
            await pool.close()
            await nc.drain()

    raise typer.Exit(asyncio.run(go()))


# --- rebuild -------------------------------------------------------------------------------------


async def rebuild_async(nc, pool: asyncpg.Pool, *, progress: bool = True, out=sys.stdout) -> tuple[dict, dict]:
    """Drop the statistics and replay the streams into them; returns checksums before and after.

    The live service's batches see the rebuild's lock and retry afterwards; delivered versions
    (report_submission*) are kept.
    """
    from madoguchi_reporting.worker import stream_target  # here, not at import: it brings the PDF renderer

    js = nc.jetstream()
    async with pool.acquire() as conn:
        await schema.migrate(conn)
    lock = await pool.acquire()
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK)
        before = await schema.checksums(lock)
        async with lock.transaction():
            await schema.truncate_projections(lock)
        for p in projections(Notifier(enabled=False)):
            target = await stream_target(js, p)
            bar = tqdm(total=target, desc=p.name, unit="seq", unit_scale=True, disable=not progress, file=sys.stderr)
            task = asyncio.create_task(p.run(nc, pool))
            try:
                while True:
                    pos = p.position  # advanced after each committed batch
                    bar.update(pos - bar.n)
                    if pos >= target:
                        break
                    if task.done():
                        task.result()  # raises what stopped it
                        raise RuntimeError(f"{p.name} stopped at {pos} of {target}")
                    await asyncio.sleep(0.2)
            finally:
                p.stop()
                await asyncio.gather(task, return_exceptions=True)
                bar.close()
        after = await schema.checksums(lock)
    finally:
        await lock.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)
        await pool.release(lock)
    return before, after


def checksum_table(before: dict, after: dict) -> str:
    lines = [
        f"{'table':<18} {'rows before':>11} {'md5 before':<34} {'rows after':>10} {'md5 after':<34} same",
        "-" * 116,
    ]
    for t in before:
        b, a = before[t], after[t]
        lines.append(f"{t:<18} {b[0]:>11} {b[1]:<34} {a[0]:>10} {a[1]:<34} {'yes' if a == b else 'NO'}")
    return "\n".join(lines)


@app.command()
def rebuild(
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Drop the reporting projections and replay the streams, with a progress bar and checksums."""
    if not yes:
        typer.confirm("Drop the reporting statistics and replay every event?", abort=True)
    settings = Settings()
    configure("WARNING", json_logs=False)

    async def go() -> int:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-report-rebuild")
        pool = await db.create_pool(settings.resolved_pg_dsn())
        try:
            started = time.monotonic()
            before, after = await rebuild_async(nc, pool)
            typer.echo(checksum_table(before, after))
            same = before == after
            typer.echo(
                f"rebuilt in {time.monotonic() - started:.1f} s; "
                + ("the same tables as before" if same else "tables DIFFER from before the rebuild")
            )
            return 0 if same else 2
        finally:
            await pool.close()
            await nc.drain()

    raise typer.Exit(asyncio.run(go()))


if __name__ == "__main__":
    app()
