"""HQ's view of the desk PCs' activity (SEC-2 "every operation"): per desk and PC, how many of
each device event the log holds for a day, with the first and last time, and one PC's timeline of
the day (time and kind of each event, for the manager); an event an outbox sent again after the
stream's duplicate window counts once (see ingest/); the events' details are the auditors'
record search (`/v1/audit/records?desk=...&event_type=device.&hide_routine=true`).

Kept apart from api.py. Like every read of the log, the query is recorded (audit.query_performed)
before the answer leaves. Managers see the counts of their municipality (and wards); auditors too.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request

from madoguchi_shared.auth import Principal, Role, require
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Ident, new_id
from madoguchi_shared.events.audit import QueryFilters, QueryPerformed
from madoguchi_shared import bus
from madoguchi_shared.web import correlation_id, problems

from madoguchi_audit.deps import Audit, Js, Pool
from madoguchi_audit.schema import READER

router = APIRouter(prefix="/v1/audit", tags=["audit log"], responses=problems(401, 403, 404, 422, 503))
HqReader = Annotated[Principal, Depends(require(Role.manager, Role.auditor))]


@router.get("/device-activity")
async def device_activity(
    request: Request,
    principal: HqReader,
    pool: Pool,
    audit: Audit,
    js: Js,
    day: Annotated[date | None, Query(alias="date", description="default: today (Asia/Tokyo)")] = None,
    ward: Ident | None = None,
    desk: Ident | None = None,
) -> dict[str, Any]:
    """Counts of device events per desk and PC on a day (programs started, files changed, USB,
    sessions, prints, violations, gaps...), with the first and last time."""
    if ward is not None:
        await principal.check_ward(request, ward)
    day = day or datetime.now(TOKYO).date()
    start = datetime.combine(day, time(0), TOKYO)
    end = start + timedelta(days=1)
    args: list[Any] = [principal.municipality, start, end]
    where = [
        "municipality = $1",
        "occurred_at >= $2",
        "occurred_at < $3",
        "type LIKE 'device.%'",
        f'NOT EXISTS (SELECT 1 FROM "{audit.schema_name}".duplicate d WHERE d.position = log.position)',
    ]
    for column, value in (("ward", ward), ("desk", desk)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if principal.wards:
        args.append(list(principal.wards))
        where.append(f"ward = ANY(${len(args)})")
    sql = (
        f"SELECT desk, device_id, type, count(*) AS n, min(occurred_at) AS first, max(occurred_at) AS last, "
        f'min(position) AS p0, max(position) AS p1 FROM "{audit.schema_name}".log WHERE {" AND ".join(where)} '
        f"GROUP BY desk, device_id, type ORDER BY desk, device_id, type"
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        rows = await conn.fetch(sql, *args)
    filters = QueryFilters(
        log_id=audit.log_id, time_from=start, time_to=end, ward=ward, desk=desk, event_type="device."
    )
    total = sum(r["n"] for r in rows)
    query_id = new_id()
    await bus.append(
        js,
        QueryPerformed(
            municipality=principal.municipality,
            actor=principal.actor,
            correlation_id=correlation_id(request),
            query_id=str(query_id),
            endpoint="device_activity",
            filters=filters,
            result_count=total,
            first_position=min((r["p0"] for r in rows), default=None),
            last_position=max((r["p1"] for r in rows), default=None),
        ),
    )
    pcs: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        pc = pcs.setdefault(
            (r["desk"], r["device_id"]),
            {"desk": r["desk"], "device_id": r["device_id"], "counts": {}, "first": r["first"], "last": r["last"]},
        )
        pc["counts"][r["type"].removeprefix("device.")] = r["n"]
        pc["first"], pc["last"] = min(pc["first"], r["first"]), max(pc["last"], r["last"])
    return {
        "query_id": str(query_id),
        "date": day.isoformat(),
        "total": total,
        "pcs": [
            {
                **pc,
                "first": pc["first"].isoformat(),
                "last": pc["last"].isoformat(),
                "timeline": "/v1/audit/records?"
                + urlencode(
                    {
                        "device": pc["device_id"],
                        "event_type": "device.",
                        "hide_routine": "true",
                        "time_from": start.isoformat(),
                        "time_to": end.isoformat(),
                    }
                ),
            }
            for pc in pcs.values()
        ],
    }


# What a timeline row shows: when and what kind, never the event's data (no paths, names or
# programs here); an auditor reads those, redacted as stored, in the record search.
TIMELINE_LIMIT = 500


@router.get("/device-activity/{device_id}/timeline")
async def device_timeline(
    request: Request,
    device_id: Ident,
    principal: HqReader,
    pool: Pool,
    audit: Audit,
    js: Js,
    day: Annotated[date | None, Query(alias="date", description="default: today (Asia/Tokyo)")] = None,
    routine: Annotated[bool, Query(description="include heartbeats")] = False,
) -> dict[str, Any]:
    """One PC's device events of a day, newest first (time and type); for the manager at HQ, who
    may not read the records themselves."""
    day = day or datetime.now(TOKYO).date()
    start = datetime.combine(day, time(0), TOKYO)
    end = start + timedelta(days=1)
    args: list[Any] = [principal.municipality, device_id, start, end]
    where = [
        "municipality = $1",
        "device_id = $2",
        "occurred_at >= $3",
        "occurred_at < $4",
        "type LIKE 'device.%'",
        f'NOT EXISTS (SELECT 1 FROM "{audit.schema_name}".duplicate d WHERE d.position = log.position)',
    ]
    if not routine:
        where.append("type NOT IN ('device.heartbeat', 'device.synthetic_load')")
    if principal.wards:
        args.append(list(principal.wards))
        where.append(f"ward = ANY(${len(args)})")
    sql = (
        f'SELECT position, occurred_at, type, desk, ward FROM "{audit.schema_name}".log '
        f"WHERE {' AND '.join(where)} ORDER BY position DESC LIMIT {TIMELINE_LIMIT + 1}"
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        rows = await conn.fetch(sql, *args)
    more, rows = len(rows) > TIMELINE_LIMIT, rows[:TIMELINE_LIMIT]
    filters = QueryFilters(
        log_id=audit.log_id,
        time_from=start,
        time_to=end,
        device=device_id,
        event_type="device.",
        hide_routine=not routine,
    )
    positions = sorted(r["position"] for r in rows)
    query_id = new_id()
    await bus.append(
        js,
        QueryPerformed(
            municipality=principal.municipality,
            actor=principal.actor,
            correlation_id=correlation_id(request),
            query_id=str(query_id),
            endpoint="device_activity",
            filters=filters,
            result_count=len(rows),
            first_position=positions[0] if positions else None,
            last_position=positions[-1] if positions else None,
        ),
    )
    return {
        "query_id": str(query_id),
        "date": day.isoformat(),
        "device_id": device_id,
        "more": more,
        "events": [
            {
                "position": r["position"],
                "at": r["occurred_at"].isoformat(),
                "type": r["type"].removeprefix("device."),
                "desk": r["desk"],
                "ward": r["ward"],
            }
            for r in rows
        ],
    }
