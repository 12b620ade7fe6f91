"""Auditors' pages are found by index, whatever the log's size and order (issue 13 item 7): a municipality
that is not first in the log, and a desk whose matches run out, no longer walk the primary key."""

from __future__ import annotations

import json
from uuid import UUID

from audit_harness import migrator_pool

from madoguchi_shared import subjects
from madoguchi_shared.events.audit import QueryFilters

from madoguchi_audit import chain, query, schema

CASE = UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")  # one case's correlation id, on a few records


async def test_a_later_municipality_and_an_exhausted_desk_filter_use_their_indexes(pg_pool, audit_settings):
    """(Every record of these tests is written today: one partition holds them; the days ahead are empty.)"""
    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    first, later = "900001", "900002"
    rows, prev = [], chain.GENESIS
    for position in range(1, 30_001):  # 28,000 records of another municipality first, then ours
        municipality = first if position <= 28_000 else later
        desk = f"d{position % 50}" if position <= 29_000 else None
        rows.append(
            (
                position,
                "MG_DESK",
                position,
                subjects.aggregate_subject("desk", municipality, "x", "y"),
                True,
                None,
                "desk.x",
                None,
                municipality,
                "chuo",
                desk,
                "S1",
                "supporter",
                None,
                None,
                b"{}",
                prev,
                prev,
            )
        )
    async with pg_pool.acquire() as conn:
        await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=rows, columns=chain.COLUMNS)
        await conn.execute(f'ANALYZE "{audit.schema_name}".log')
        for filters in (QueryFilters(), QueryFilters(desk="d7")):
            sql, args = query.build(audit.schema_name, filters, query.Scope(later), 50)
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))[0]["Plan"]
            scans = []

            def walk(node, scans=scans):
                if not _empty(node):
                    scans.append((node["Node Type"], node.get("Index Name"), node.get("Rows Removed by Filter", 0)))
                for child in node.get("Plans", []):
                    walk(child)

            walk(plan)
            assert all(kind != "Seq Scan" for kind, _, _ in scans), (filters, scans)
            used = {await parent_index(conn, audit.schema_name, name) for _, name, _ in scans if name}
            assert used & {"log_municipality", "log_desk"}, (filters, scans)
            assert sum(removed for _, _, removed in scans) < 1000, (filters, scans)  # not 28,000 walked past


async def parent_index(conn, schema_name: str, name: str) -> str:
    """The log's index a partition's index belongs to (a plan names the partitions' indexes)."""
    return await conn.fetchval(
        """SELECT coalesce((SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                            WHERE i.inhrelid = c.oid), c.relname)
           FROM pg_class c WHERE c.relname = $2 AND c.relnamespace = $1::regnamespace""",
        schema_name,
        name,
    )


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


async def generic_plan(conn, sql: str, args: list) -> dict:
    """EXPLAIN ANALYZE of the statement's generic plan (plan_cache_mode = force_generic_plan, as query.READING)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE audit_page AS {sql}")
        try:
            values = ", ".join(_literal(a) for a in args)
            out = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE audit_page({values})")
        finally:
            await conn.execute("DEALLOCATE audit_page")
    plan = json.loads(out)[0]
    assert "Planning Time" not in plan or plan["Planning Time"] < 1000
    return plan["Plan"]


def _empty(node: dict) -> bool:
    """A scan of a partition that holds nothing (a day ahead): the planner may take a seq scan of nothing."""
    return (
        node["Node Type"] == "Seq Scan" and node.get("Actual Rows", 0) == 0 and not node.get("Rows Removed by Filter")
    )


def _walked(plan: dict) -> int:
    """Records read from the log's partitions by index (every loop of every scan)."""
    total = 0

    def walk(node):
        nonlocal total
        if node.get("Index Name") and str(node.get("Relation Name", "")).startswith("log_"):
            total += node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return int(total)


def _scans(plan: dict) -> list[tuple]:
    out = []

    def walk(node):
        if not _empty(node):
            out.append((node["Node Type"], node.get("Index Name"), node.get("Rows Removed by Filter", 0)))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return out


async def test_every_auditor_filter_pages_by_index_with_exact_results(pg_pool, audit_settings):
    """Time, type, staff and device filters (scoped to a municipality that is not first in the log) start at their
    first match and stop after a page — a time range through the days' position ranges (day_span), including a
    record that arrived late — and give the same records as a plain scan."""
    from datetime import UTC, datetime, timedelta

    audit = audit_settings
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    first, later = "900001", "900002"
    base = datetime(2021, 4, 1, tzinfo=UTC)
    rows, prev = [], chain.GENESIS
    for position in range(1, 30_001):
        municipality = first if position <= 28_000 else later
        occurred = base + timedelta(minutes=position)
        if position == 29_990:
            occurred = base + timedelta(hours=3)  # sent late: an offline desk's event of the first day
        if position == 29_995:
            occurred = base + timedelta(minutes=28_100)  # sent late: an event of an hour written 1,895 records before
        kind = "desk.rare" if position % 997 == 0 else "desk.x"
        rows.append(
            (
                position,
                "MG_DESK",
                position,
                subjects.aggregate_subject("desk", municipality, "x", "y"),
                True,
                None,
                kind,
                occurred,
                municipality,
                "chuo",
                f"d{position % 50}",
                f"S{position % 300}",
                "supporter",
                f"pc-{position % 40}",
                CASE if position % 1000 == 5 else None,
                b"{}",
                prev,
                prev,
            )
        )
    async with pg_pool.acquire() as conn:
        await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=rows, columns=chain.COLUMNS)
        await schema.rebuild_day_spans(conn, audit.schema_name)
        await conn.execute(f'ANALYZE "{audit.schema_name}".log')
        t = f'"{audit.schema_name}".log'
        day20 = base + timedelta(days=20)
        cases = [
            (
                QueryFilters(time_from=day20, time_to=day20 + timedelta(hours=6)),
                f"SELECT position FROM {t} WHERE municipality = $1 AND occurred_at >= $2 AND occurred_at < $3 "
                "ORDER BY position LIMIT 50",
                (later, day20, day20 + timedelta(hours=6)),
            ),
            (
                QueryFilters(time_from=base, time_to=base + timedelta(days=1)),  # only the late record
                f"SELECT position FROM {t} WHERE municipality = $1 AND occurred_at >= $2 AND occurred_at < $3 "
                "ORDER BY position LIMIT 50",
                (later, base, base + timedelta(days=1)),
            ),
            (
                QueryFilters(time_from=day20, desk="d7"),
                f"SELECT position FROM {t} WHERE municipality = $1 AND occurred_at >= $2 AND desk = 'd7' "
                "ORDER BY position LIMIT 50",
                (later, day20),
            ),
            (
                QueryFilters(event_type="desk.rare"),
                f"SELECT position FROM {t} WHERE municipality = $1 AND type = 'desk.rare' ORDER BY position LIMIT 50",
                (later,),
            ),
            (
                QueryFilters(actor="S7"),
                f"SELECT position FROM {t} WHERE municipality = $1 AND actor_id = 'S7' ORDER BY position LIMIT 50",
                (later,),
            ),
            (
                QueryFilters(device="pc-3"),
                f"SELECT position FROM {t} WHERE municipality = $1 AND device_id = 'pc-3' ORDER BY position LIMIT 50",
                (later,),
            ),
            (
                QueryFilters(ward="chuo", hide_routine=True),
                f"SELECT position FROM {t} WHERE municipality = $1 AND ward = 'chuo' ORDER BY position LIMIT 50",
                (later,),
            ),
            (
                QueryFilters(correlation_id=CASE),
                f"SELECT position FROM {t} WHERE municipality = $1 AND correlation_id = $2 ORDER BY position LIMIT 50",
                (later, CASE),
            ),
        ]
        for filters, plain, plain_args in cases:
            sql, args = query.build(audit.schema_name, filters, query.Scope(later), 50)
            got = [r["position"] for r in await conn.fetch(sql, *args)]
            assert got == [r["position"] for r in await conn.fetch(plain, *plain_args)] and got, (filters, got)
            scans = _scans(json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))[0]["Plan"])
            assert all(kind != "Seq Scan" for kind, _, _ in scans), (filters, scans)
            assert sum(removed for _, _, removed in scans) < 1000, (filters, scans)  # not the log walked past
            # The plan the API runs: the statement's generic plan (query.READING), made once and reused.
            scans = _scans(await generic_plan(conn, sql, args))
            assert all(kind != "Seq Scan" for kind, _, _ in scans), (filters, "generic", scans)
            assert sum(removed for _, _, removed in scans) < 1000, (filters, "generic", scans)
            assert any(name for _, name, _ in scans), (filters, "generic", scans)
        sql, args = query.build(
            audit.schema_name, QueryFilters(time_from=base, time_to=base + timedelta(days=1)), query.Scope(later), 50
        )
        late = [r["position"] for r in await conn.fetch(sql, *args)]
        assert late == [29_990]
        # An hour with a record that arrived late: its run and the late record are walked, not the positions between
        # (one span an hour walked from the hour's first record to the late one, 1,895 records further).
        hour = (base + timedelta(minutes=28_100)).replace(minute=0)
        for newest in (False, True):
            one_hour = QueryFilters(time_from=hour, time_to=hour + timedelta(hours=1), newest_first=newest)
            sql, args = query.build(audit.schema_name, one_hour, query.Scope(later), 100)
            got = [r["position"] for r in await conn.fetch(sql, *args)]
            want = sorted(
                {p for p in range(28_001, 30_001) if hour <= base + timedelta(minutes=p) < hour + timedelta(hours=1)}
                | {29_995}
            )
            assert got == (want[::-1] if newest else want), (newest, got)
            plan = await generic_plan(conn, sql, args)
            assert len(want) <= _walked(plan) <= 2 * len(want), (newest, _walked(plan))
        counted = await query.count(conn, audit.schema_name, one_hour, query.Scope(later))
        assert counted == len(want)
        counted = await query.count(conn, audit.schema_name, QueryFilters(), query.Scope(first))
        assert counted == query.COUNT_CAP + 1  # 28,000 matches: counted only up to the cap
