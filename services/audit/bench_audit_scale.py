"""Auditor pages and exports at national scale: the same queries at 100 k and 1 M records (and more), with
the growth ratio (issue 13 item 7: every page and export < 50 ms at any log size).

    .venv/bin/python services/audit/bench_audit_scale.py [results.json] [--sizes 100000,1000000] [--repeat 5]
        [--incremental 10000,100000]
    make bench-audit-scale                                   # 100 k and 1 M
    make bench-audit-scale AUDIT_SCALE_SIZES=100000,1000000,10000000   # and 10 M (built in SQL; long)

Starts its own PostgreSQL in a temp folder (or --dsn), migrates an audit schema per size (the real
migrations: every index the writer maintains) and fills it in SQL with a national-looking log: 20
municipalities interleaved in arrival order, 200 desks, 5,000 staff, 2,000 PCs, 30 days of time with
0.1 % of the events arriving days late, a rare event type, a desk that closed after the first 1 % of
the log, written over the 30 days into one partition a day. The chain columns are filler (pages do not
verify; `bench_audit.py` measures the full verification). `day_span` is built as the writer keeps it.
Then, per size, `--incremental`: k real chained records appended after a signed checkpoint at the end of
the filler, and the incremental verification of them timed (it must follow k, not the log's size).

Each figure is what the API does for one request, as the auditor reading role: a page is
`query.fetch_page` (50 records) plus the page's total (`query.count`, capped) — the console's
audit screen; an export (`GET /v1/audit/export`) streams in parts read by keyset (query.export_parts: 100
records, then 2,000): its figure is the first byte, i.e. the first part read and encoded as JSON Lines; the whole
file (up to 10,000 records) is timed too, for information (it grows with the records it holds, ~20-40 µs each).
Median of `--repeat` runs after one warm-up, in milliseconds.

`--pgdata DIR` keeps the PostgreSQL folder: a later run reuses a size's log (migrated to the current schema
version in place) instead of filling it again (the 10 M log once; delete the folder after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from madoguchi_shared import subjects
from madoguchi_shared.events.audit import QueryFilters
from madoguchi_shared.runtime import PostgresServer

from madoguchi_audit import query, schema

BASE = datetime(2021, 4, 1, tzinfo=UTC)
DAYS = 30
M = "900007"  # a municipality that is not first in the log (codes 900000 … 900019)

FILL = """
INSERT INTO log (position, stream, stream_seq, subject, parsed, event_id, type, occurred_at, municipality, ward, desk,
                 actor_id, actor_role, device_id, correlation_id, data, prev_hash, hash, day)
SELECT p, 'MG_DESK', p, 'mg.desk.' || m || '.deskday.x', true, NULL,
       CASE WHEN p % 1000 = 27 THEN 'audit.alert_raised' WHEN p % 3 = 0 THEN 'device.heartbeat' ELSE 'desk.ticket_issued' END,
       CASE WHEN p % 1000 = 7 THEN t - interval '3 days' ELSE t END,
       m, 'w' || (p % 10), CASE WHEN p % 200 = 27 AND p > $1::bigint / 100 THEN 'd-open' WHEN p % 200 = 27 THEN 'd-closed'
                                 ELSE 'd' || (p % 200) END,
       'S' || (p % 5000), 'supporter', 'pc-' || (p % 2000), NULL, $3::bytea, $4::bytea, $4::bytea,
       (t AT TIME ZONE 'UTC')::date
FROM (SELECT p, '9000' || lpad((p % 20)::text, 2, '0') AS m,
             $2::timestamptz + (p * ($5::float8 / $1::bigint)) * interval '1 second' AS t
      FROM generate_series($6::bigint, $7::bigint) AS p) s
"""


async def built(pool, name: str, n: int) -> bool:
    """A schema `name` left by an earlier run (--pgdata) with exactly n records: migrated to the current version
    (new migrations, such as a dropped index, apply in place) and reused instead of filled again."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{name}".hour_span'):
            return False
        top = await conn.fetchval(f'SELECT max(position) FROM "{name}".log')
        valid = await conn.fetchval(  # every index of the log on every partition (a build cut short has not)
            "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = $1::regclass", f'"{name}".log'
        )
    if top != n or not valid:
        return False
    await schema.migrate_pool(pool, name)
    async with pool.acquire() as conn:
        await conn.execute(f'ANALYZE "{name}".log')
    return True


async def build(pool, name: str, n: int) -> float:
    """A migrated schema `name` with n records; returns the seconds it took."""
    start = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    await schema.migrate_pool(pool, name)
    data = json.dumps({"v": 1, "note": "x" * 260}).encode()
    async with pool.acquire() as conn:
        await conn.execute(f'SET search_path = "{name}"')
        await conn.execute("SET session_replication_role = replica")  # a bench filling its own table
        await conn.execute("SET maintenance_work_mem = '256MB'")
        # Written over the 30 days: one partition per day (a run of positions each), as the writer leaves them.
        await conn.execute("SELECT ensure_log_days($1, $2)", BASE.date(), (BASE + timedelta(days=DAYS)).date())
        # Filled without the secondary indexes, which are then made by the migrations' own definitions (a sorted
        # build instead of 10 M inserts into each: the 10 M log in minutes instead of half an hour).
        indexes = await conn.fetch(
            """SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = $1::regclass AND NOT i.indisprimary""",
            f'"{name}".log',
        )
        for ix in indexes:
            await conn.execute(f'DROP INDEX "{name}"."{ix["relname"]}"')
        step = 50_000
        for low in range(1, n + 1, step):
            await conn.execute(FILL, n, BASE, data, bytes(32), DAYS * 86400.0, low, min(n, low + step - 1))
        for ix in indexes:  # the parent's definition says ON ONLY (the parent alone): here, every partition too
            await conn.execute(ix["def"].replace(" ON ONLY ", " ON ", 1))
        await conn.execute("SET session_replication_role = origin")
        await conn.execute("RESET search_path")
        await schema.rebuild_day_spans(conn, name)
        await conn.execute(f'VACUUM ANALYZE "{name}".log')
    return time.perf_counter() - start


def cases(n: int) -> dict[str, tuple[str, QueryFilters]]:
    middle = BASE + timedelta(days=DAYS / 2)
    return {
        "page: first page of a municipality not first in the log": ("page", QueryFilters()),
        "page: deep keyset page (after the middle of the log)": ("page", QueryFilters(after=n // 2)),
        "page: newest first": ("page", QueryFilters(newest_first=True)),
        "page: desk": ("page", QueryFilters(desk="d7")),
        "page: desk whose matches ran out (closed early)": ("page", QueryFilters(desk="d-closed", after=n // 50)),
        "page: ward, routine hidden": ("page", QueryFilters(ward="w7", hide_routine=True)),
        "page: one hour in the middle of the log": (
            "page",
            QueryFilters(time_from=middle, time_to=middle + timedelta(hours=1)),
        ),
        "page: desk within one day": (
            "page",
            QueryFilters(desk="d7", time_from=middle, time_to=middle + timedelta(days=1)),
        ),
        "page: rare event type": ("page", QueryFilters(event_type="audit.alert_raised")),
        "page: staff": ("page", QueryFilters(actor="S7")),
        "page: PC": ("page", QueryFilters(device="pc-7")),
        "export: one desk, one day": (
            "export",
            QueryFilters(desk="d7", time_from=middle, time_to=middle + timedelta(days=1)),
        ),
        "export: rare event type (runs out of matches)": ("export", QueryFilters(event_type="audit.alert_raised")),
        "export: a staff member's last week": (
            "export",
            QueryFilters(actor="S7", time_from=BASE + timedelta(days=DAYS - 7)),
        ),
    }


async def one(pool, conn, name: str, kind: str, filters: QueryFilters) -> int:
    scope = query.Scope(M)
    if kind == "page":
        rows = await query.fetch_page(conn, name, filters, scope, 50)
        await query.count(conn, name, filters, scope)
        return len(rows)
    # An export streams (api.export): its first byte leaves with the first part, read and encoded as JSON Lines
    # ("first"); the whole file (up to 10,000 records here, "whole") is timed too, for information: it grows with
    # the records it holds, not with the log.
    found = 0
    parts = query.export_parts(pool, name, filters, scope, 10_000)
    async for rows in parts:
        query.jsonl_lines(query.record_json(r) for r in rows)
        found += len(rows)
        if kind == "first":
            await parts.aclose()
            break
    return found


async def measure(pool, name: str, n: int, repeat: int) -> dict[str, dict]:
    out = {}
    runs = []
    for label, (kind, filters) in cases(n).items():
        if kind == "export":
            runs.append((f"{label}: first byte (first part of ≤ {query.FIRST_PART})", "first", filters))
            runs.append((f"{label}: whole file, information only", "whole", filters))
        else:
            runs.append((label, kind, filters))
    async with pool.acquire() as conn:
        for title, kind, filters in runs:
            await one(pool, conn, name, kind, filters)  # warm
            times, found = [], 0
            for _ in range(repeat):
                start = time.perf_counter()
                found = await one(pool, conn, name, kind, filters)
                times.append((time.perf_counter() - start) * 1000)
            out[title] = {"ms": statistics.median(times), "records": found}
    return out


async def incremental(pool, name: str, n: int, adds: list[int]) -> dict[int, dict]:
    """`audit verify --incremental` after k new records on a log of n: the run starts at the verified signed
    checkpoint at n (its head is the filler's last hash) and checks only what follows. The new records are real
    chained rows (COPY, as the writer writes them), signed at their end; the time must follow k, not n."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from madoguchi_audit import chain, checkpoints, verify

    key = checkpoints.SigningKey(Ed25519PrivateKey.generate())
    keyring = {key.key_id: key.public}
    out: dict[int, dict] = {}
    async with pool.acquire() as conn:
        top, head = await conn.fetchrow(f'SELECT position, hash FROM "{name}".log ORDER BY position DESC LIMIT 1')
        head = bytes(head)
        for k in adds:
            cps = [
                checkpoints.sign(
                    key, municipality="999999", log_id="oplog", position=top, head=head, previous_position=0
                )
            ]
            data = json.dumps({"v": 1, "note": "y" * 260}).encode()
            messages = [
                chain.Message("MG_ADMIN", top + i, subjects.aggregate_subject("admin", M, "staff", "x"), data)
                for i in range(1, k + 1)
            ]
            rows, end, new_head = chain.chain_records(messages, top, head)
            for i in range(0, len(rows), 20_000):
                await conn.copy_records_to_table(
                    "log", schema_name=name, records=rows[i : i + 20_000], columns=chain.COLUMNS
                )
            cps.append(
                checkpoints.sign(
                    key, municipality="999999", log_id="oplog", position=end, head=new_head, previous_position=top
                )
            )
            times = []
            for _ in range(3):
                report = await verify.verify_db(conn, name, "oplog", cps, keyring, from_checkpoint=top)
                assert report.ok and report.records == k, report.lines()
                times.append(report.seconds)
            out[k] = {"seconds": round(statistics.median(times), 3), "records": k, "log": end}
            print(f"    incremental verify of {k:,} new records on {top:,}: {out[k]['seconds']:.3f} s", flush=True)
            top, head = end, new_head
    return out


async def run(dsn: str, sizes: list[int], repeat: int, adds: list[int] | None = None) -> dict:
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, command_timeout=None)  # building 10 M takes long
    try:
        res: dict = {"sizes": sizes, "built_s": {}, "figures": {}}
        for n in sizes:
            name = f"scale_{n}"
            if await built(pool, name, n):
                res["built_s"][n] = "reused"
                print(f"  {n:,} records: reused from an earlier run", flush=True)
            else:
                res["built_s"][n] = round(await build(pool, name, n), 1)
                print(f"  {n:,} records built in {res['built_s'][n]} s", flush=True)
            res["figures"][n] = await measure(pool, name, n, repeat)
            for label, fig in res["figures"][n].items():
                print(f"    {fig['ms']:7.1f} ms  {label} ({fig['records']:,})", flush=True)
            async with pool.acquire() as conn:
                res.setdefault("table_mb", {})[n] = round(
                    await conn.fetchval(
                        "SELECT sum(pg_total_relation_size(inhrelid)) / 1e6 FROM pg_inherits WHERE inhparent = $1::regclass",
                        f'"{name}".log',
                    ),
                    1,
                )
                res.setdefault("partitions", {})[n] = await conn.fetchval(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass", f'"{name}".log'
                )
            if adds:
                res.setdefault("incremental", {})[n] = await incremental(pool, name, n, adds)
        return res
    finally:
        await pool.close()


def table(res: dict) -> str:
    sizes = res["sizes"]
    head = "| query | " + " | ".join(f"{n:,} records, ms" for n in sizes) + " | growth (largest / smallest) | records |"
    lines = [head, "|---|" + "---:|" * (len(sizes) + 2)]
    for label in res["figures"][sizes[0]]:
        ms = [res["figures"][n][label]["ms"] for n in sizes]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.1f}" for v in ms)
            + f" | {ms[-1] / ms[0]:.2f}× | {res['figures'][sizes[-1]][label]['records']:,} |"
        )
    worst = max(
        res["figures"][n][label]["ms"] for n in sizes for label in res["figures"][n] if "information only" not in label
    )
    lines.append(
        f"\nslowest page or export (first byte) at any size: {worst:.1f} ms (target < 50 ms); "
        + ", ".join(f"{n:,}: {res['table_mb'][n]} MB in {res['partitions'][n]} day partitions" for n in sizes)
    )
    if res.get("incremental"):
        adds = list(res["incremental"][sizes[0]])
        lines.append("\n| incremental verify | " + " | ".join(f"{n:,} records, s" for n in sizes) + " |")
        lines.append("|---|" + "---:|" * len(sizes))
        for k in adds:
            lines.append(
                f"| {k:,} records added | "
                + " | ".join(f"{res['incremental'][n][k]['seconds']:.3f}" for n in sizes)
                + " |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", default="bench-audit-scale.json")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated record counts")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--incremental", default="10000,100000", help="records added before each incremental verify ('' for none)"
    )
    parser.add_argument("--dsn", help="use this PostgreSQL instead of starting one")
    parser.add_argument(
        "--pgdata",
        help="keep PostgreSQL in this folder and reuse the logs it holds (a big log is built once; delete the folder after)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mgscale") as tmp:
        pg = None if args.dsn else PostgresServer(Path(args.pgdata or Path(tmp) / "pg")).start()
        try:
            adds = [int(k) for k in args.incremental.split(",") if k]
            res = await run(args.dsn or pg.dsn, sizes, args.repeat, adds)
        finally:
            if pg:
                pg.stop()
    res["seconds"] = round(time.perf_counter() - started, 1)
    res["when"] = datetime.now(UTC).isoformat()
    res["machine"] = platform.platform()
    print(table(res))
    Path(args.output).write_text(json.dumps(res, indent=2, default=str))
    print(f"\nwritten {args.output} ({res['seconds']} s)")


if __name__ == "__main__":
    asyncio.run(main())
