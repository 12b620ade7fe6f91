"""Auditors' pages are found by index, whatever the log's size and order (issue 13 item 7): a municipality
that is not first in the log, and a desk whose matches run out, no longer walk the primary key."""

from __future__ import annotations

import json

from madoguchi_shared.events.audit import QueryFilters

from madoguchi_audit import chain, query, schema


async def test_a_later_municipality_and_an_exhausted_desk_filter_use_their_indexes(pg_pool, audit_settings):
    audit = audit_settings
    await schema.migrate_pool(pg_pool, audit.schema_name)
    first, later = "900001", "900002"
    rows, prev = [], chain.GENESIS
    for position in range(1, 30_001):  # 28,000 records of another municipality first, then ours
        municipality = first if position <= 28_000 else later
        desk = f"d{position % 50}" if position <= 29_000 else None
        rows.append((position, "MG_DESK", position, f"mg.desk.{municipality}.x.y", True, None, "desk.x", None,
                     municipality, "chuo", desk, "S1", "supporter", None, None, b"{}", prev, prev))
    async with pg_pool.acquire() as conn:
        await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=rows, columns=chain.COLUMNS)
        await conn.execute(f'ANALYZE "{audit.schema_name}".log')
        for filters in (QueryFilters(), QueryFilters(desk="d7")):
            sql, args = query.build(audit.schema_name, filters, query.Scope(later), 50)
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))[0]["Plan"]
            scans = []

            def walk(node):
                scans.append((node["Node Type"], node.get("Index Name"), node.get("Rows Removed by Filter", 0)))
                for child in node.get("Plans", []):
                    walk(child)

            walk(plan)
            assert all(kind != "Seq Scan" for kind, _, _ in scans), (filters, scans)
            assert any(name in ("log_municipality", "log_desk") for _, name, _ in scans), (filters, scans)
            assert sum(removed for _, _, removed in scans) < 1000, (filters, scans)  # not 28,000 walked past
