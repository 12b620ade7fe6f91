"""HTTP routes of the audit service: the auditors' log API, verification, HQ alerts (SEC-2, REP-5).

Every read of the log is itself recorded as an `audit.query_performed` event before the answer
leaves (ASVS 16.3: who looked at what); if it cannot be recorded, the answer is not given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from madoguchi_shared import bus, subjects
from madoguchi_shared.auth import Principal, revocable
from madoguchi_shared.events import Ident, new_id
from madoguchi_shared.events.audit import (
    EventTypeFilter,
    ExportFormat,
    QueryEndpoint,
    QueryFilters,
    QueryPerformed,
    VerificationRun,
)
from madoguchi_shared.pii import FreeText
from madoguchi_shared.errors import NotFound
from madoguchi_shared.web import ServiceInstant, correlation_id, downloads, event_stream, problems

from madoguchi_audit import checkpoints, domain, query, verify
from madoguchi_audit.deps import AlertHandler, AlertViewer, Audit, Auditor, Hub, Js, Nc, Pool, VerifyRole

log_router = APIRouter(prefix="/v1/audit", tags=["audit log"], responses=problems(401, 403, 404, 422, 503))
alert_router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=problems(401, 403, 404, 422, 503))


class RecordParams(BaseModel):
    """Filters of the log (all optional, combined with AND); pages follow `after` (a position)."""

    model_config = ConfigDict(extra="forbid")
    time_from: ServiceInstant | None = Field(default=None, description="occurred_at >= this")
    time_to: ServiceInstant | None = Field(default=None, description="occurred_at < this")
    ward: Ident | None = None
    desk: Ident | None = None
    device: Ident | None = None
    actor: Ident | None = Field(default=None, description="the actor id (a staff id, device or service)")
    event_type: EventTypeFilter | None = Field(default=None, description='an exact type, or a context like "desk."')
    correlation_id: UUID | None = None
    position_from: int | None = Field(default=None, ge=1)
    position_to: int | None = Field(default=None, ge=1)
    after: int = Field(default=0, ge=0, description="keyset pagination: records after this position")
    before: int | None = Field(
        default=None, ge=1, description="keyset pagination, newest first: records before this position"
    )
    newest_first: bool = Field(default=False, description="newest records first (then page with `before`)")
    hide_routine: bool = Field(default=False, description="leave out routine records (device heartbeats)")
    limit: int = Field(default=100, ge=1, le=query.MAX_PAGE)

    def filters(self, log_id: str, limit: int | None = None) -> QueryFilters:
        data = self.model_dump(exclude={"limit", "format"})
        return QueryFilters(log_id=log_id, limit=limit or self.limit, **data)


class ExportParams(RecordParams):
    format: Literal["csv", "jsonl"] = "jsonl"
    limit: int = Field(default=10_000, ge=1, le=query.MAX_EXPORT)


async def _scope(request: Request, principal: Principal, ward: str | None) -> query.Scope:
    if ward is not None:
        await principal.check_ward(request, ward)
    return query.Scope(principal.municipality, tuple(principal.wards))


async def _record_query(
    request: Request,
    js,
    principal: Principal,
    endpoint: QueryEndpoint,
    filters: QueryFilters,
    positions: list[int],
    fmt: ExportFormat = "json",
) -> UUID:
    query_id = new_id()
    await bus.append(
        js,
        QueryPerformed(
            municipality=principal.municipality,
            actor=principal.actor,
            correlation_id=correlation_id(request),
            query_id=str(query_id),
            endpoint=endpoint,
            filters=filters,
            result_count=len(positions),
            first_position=positions[0] if positions else None,
            last_position=positions[-1] if positions else None,
            export_format=fmt,
        ),
    )
    return query_id


@log_router.get("/records")
async def records(
    request: Request, principal: Auditor, pool: Pool, audit: Audit, js: Js, params: Annotated[RecordParams, Query()]
) -> dict[str, Any]:
    """Search the operation log: filtered, by position, each record with its hash."""
    scope = await _scope(request, principal, params.ward)
    filters = params.filters(audit.log_id)
    async with pool.acquire() as conn:
        rows = await query.fetch_page(conn, audit.schema_name, filters, scope, params.limit)
        positions = [r["position"] for r in rows]
        total = await query.count(conn, audit.schema_name, filters, scope)
        cp = await query.covering_checkpoint(conn, audit.schema_name, max(positions) if positions else None)
    query_id = await _record_query(request, js, principal, "records", filters, sorted(positions))
    full = len(rows) == params.limit
    return {
        "query_id": str(query_id),
        "records": [query.record_json(r) for r in rows],
        "total": min(total, query.COUNT_CAP),
        "total_capped": total > query.COUNT_CAP,  # more matches than counted: "at least total"
        "next_after": positions[-1] if full and not params.newest_first else None,
        "next_before": positions[-1] if full and params.newest_first else None,
        "checkpoint": cp,
        "covered": cp is not None or not rows,
    }


@log_router.get("/records/{position}")
async def record(request: Request, position: int, principal: Auditor, pool: Pool, audit: Audit, js: Js) -> dict:
    """One record by position, with its hash and the checkpoint that covers it."""
    scope = await _scope(request, principal, None)
    async with pool.acquire() as conn:
        row = await query.fetch_one(conn, audit.schema_name, position, scope)
        cp = await query.covering_checkpoint(conn, audit.schema_name, position) if row else None
    filters = QueryFilters(log_id=audit.log_id, position_from=position, position_to=position)
    await _record_query(request, js, principal, "record", filters, [position] if row else [])
    if row is None:
        raise NotFound("指定された位置の記録はありません（または閲覧の範囲外です）。")
    return {"record": query.record_json(row), "checkpoint": cp}


@log_router.get("/export", responses=downloads("application/x-ndjson", "application/zip"))
async def export(
    request: Request, principal: Auditor, pool: Pool, audit: Audit, js: Js, params: Annotated[ExportParams, Query()]
) -> StreamingResponse:
    """Export a result as JSON Lines or as a zip of CSV, with the covering signed checkpoint.

    Streamed in parts read by position (query.export_parts: 100 records, then 2,000 at a time): the first byte
    leaves after the first part, whatever the export's size. Each part is recorded (`audit.query_performed`, its
    exact count and positions) before its bytes leave; if that cannot be recorded, the stream stops there, so the
    file has no checkpoint at its end and is visibly incomplete."""
    scope = await _scope(request, principal, params.ward)
    filters = params.filters(audit.log_id).model_copy(update={"newest_first": False, "before": None})  # in log order
    keys = (
        {k: checkpoints.public_bytes(v).hex() for k, v in checkpoints.load_keyring(audit).items()}
        if params.format == "csv"
        else {}
    )
    parts = query.export_parts(pool, audit.schema_name, filters, scope, params.limit)
    try:
        first = await anext(parts)
        positions = [r["position"] for r in first]
        query_ids = [await _record_query(request, js, principal, "export", filters, positions, params.format)]
    except BaseException:
        await parts.aclose()
        raise
    meta = query.meta(filters, datetime.now(UTC), query_ids[0])

    async def body() -> AsyncIterator[bytes]:
        count, last, rows = 0, None, first
        zipped = query.CsvZip() if params.format == "csv" else None
        try:
            if zipped is None:
                yield query.jsonl_head(meta)
            while True:
                recs = [query.record_json(r) for r in rows]
                count += len(recs)
                last = rows[-1]["position"] if rows else last
                yield zipped.records(recs) if zipped is not None else query.jsonl_lines(recs)
                rows = await anext(parts, None)
                if rows is None:
                    break
                if rows:
                    here = [r["position"] for r in rows]
                    query_ids.append(
                        await _record_query(request, js, principal, "export", filters, here, params.format)
                    )
        finally:
            await parts.aclose()
        async with pool.acquire() as conn:
            cp = await query.covering_checkpoint(conn, audit.schema_name, last)
        summary = {"count": count, "query_ids": [str(q) for q in query_ids]}
        if zipped is not None:
            yield zipped.close(cp, {**meta, **summary}, keys)
        else:
            yield query.jsonl_tail(cp, summary)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind, ext = ("application/zip", "zip") if params.format == "csv" else ("application/x-ndjson", "jsonl")
    return StreamingResponse(
        body(),
        media_type=kind,
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{ext}"'},
    )


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_checkpoint: bool = Field(default=False, description="start after the newest signed checkpoint")


@log_router.post("/verify")
async def run_verify(
    request: Request, principal: VerifyRole, pool: Pool, audit: Audit, nc: Nc, js: Js, body: VerifyRequest | None = None
) -> dict[str, Any]:
    """Recompute the chain and check it against every signed checkpoint."""
    body = body or VerifyRequest()
    async with pool.acquire() as conn:
        report = await verify.verify_all(conn, nc, audit, from_checkpoint=body.from_checkpoint)
    run_id = new_id()
    fault = report.first_fault
    await bus.append(
        js,
        VerificationRun(
            municipality=principal.municipality,
            actor=principal.actor,
            correlation_id=correlation_id(request),
            run_id=str(run_id),
            log_id=audit.log_id,
            result="ok" if report.ok else "bad",
            records=report.records,
            from_position=report.from_position,
            to_position=report.to_position,
            head=report.head,
            checkpoints_checked=report.checkpoints_checked,
            first_bad_position=fault.position if fault else None,
            fault=fault.event_fault() if fault else None,
            trigger="api",
        ),
    )
    return {"run_id": str(run_id), **report.as_dict(), "summary": report.lines()}


@log_router.get("/checkpoints")
async def list_checkpoints(
    principal: VerifyRole, pool: Pool, audit: Audit, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict[str, Any]:
    """The newest signed checkpoints (the trusted copies are the file and the stream)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f'SELECT event FROM "{audit.schema_name}".checkpoint ORDER BY position DESC LIMIT $1', limit
        )
        head = await conn.fetchrow(
            f'SELECT position, hash FROM "{audit.schema_name}".chain_head WHERE log_id = $1', audit.log_id
        )
    return {
        "head": {"position": head["position"], "hash": bytes(head["hash"]).hex()} if head else None,
        "checkpoints": [json.loads(bytes(r["event"])) for r in rows],
    }


@log_router.get("/keys")
async def public_keys(principal: VerifyRole, audit: Audit) -> dict[str, str]:
    """The trusted Ed25519 public keys by key id (raw key as hex), for checking checkpoints offline."""
    return {k: checkpoints.public_bytes(v).hex() for k, v in checkpoints.load_keyring(audit).items()}


# --------------------------------------------------------------------------------------------
# HQ alerts
# --------------------------------------------------------------------------------------------


def _alert_json(row) -> dict[str, Any]:
    out = dict(row)
    for key in ("raised_at", "acknowledged_at", "last_raised_at", "resolved_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


async def _alerts(pool, audit, principal: Principal, status: str, limit: int) -> list[dict[str, Any]]:
    args: list[Any] = [principal.municipality, limit]
    where = "municipality = $1"
    if status != "all":
        args.append(status)
        where += f" AND status = ${len(args)}"
    if principal.wards:
        args.append(list(principal.wards))
        where += f" AND (ward = ANY(${len(args)}) OR ward IS NULL)"
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f'SELECT * FROM "{audit.schema_name}".alert WHERE {where} ORDER BY raised_at DESC LIMIT $2', *args
        )
    return [_alert_json(r) for r in rows]


@alert_router.get("")
async def list_alerts(
    principal: AlertViewer,
    pool: Pool,
    audit: Audit,
    status: Literal["open", "acknowledged", "resolved", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """HQ alerts, newest first (default: the open ones)."""
    return {"alerts": await _alerts(pool, audit, principal, status, limit)}


@alert_router.get("/stream", responses=event_stream())
async def alert_stream(request: Request, principal: AlertViewer, pool: Pool, audit: Audit, hub: Hub):
    """Server-sent events: the open alerts first, then every alert event as it happens."""

    async def events():
        async with hub.listen() as q:
            for alert in reversed(await _alerts(pool, audit, principal, "open", 200)):
                yield {"event": "alert_open", "id": alert["alert_id"], "data": json.dumps(alert, ensure_ascii=False)}
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), timeout=5.0)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if event is None:
                    return
                if event.municipality != principal.municipality or not principal.sees_ward(event.ward):
                    continue
                yield {
                    "event": event.type.removeprefix("audit."),
                    "id": str(event.event_id),
                    "data": event.model_dump_json(),
                }

    return EventSourceResponse(revocable(request.app, principal, events()), ping=15)


class AlertNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[FreeText, Field(max_length=400)] | None = None


async def _load_alert(nc, principal: Principal, alert_id: str):
    try:
        subject = subjects.aggregate_subject("audit", principal.municipality, "alert", alert_id)
    except subjects.SubjectError as exc:
        raise NotFound("指定された警報は見つかりません。") from exc
    return bus.fold(domain.evolve, await bus.load(nc, subject), None)


@alert_router.post("/{alert_id}/acknowledge", responses=problems(409))
async def acknowledge(
    request: Request, alert_id: str, principal: AlertHandler, nc: Nc, js: Js, body: AlertNote | None = None
) -> dict[str, Any]:
    """HQ has seen the alert and takes it on (stops re-raising)."""
    alert, seq = await _load_alert(nc, principal, alert_id)
    if alert is not None:
        await principal.check_ward(request, alert.ward)
    events = domain.acknowledge(alert, principal.actor, body.note if body else None, correlation_id(request))
    await bus.append_all(js, events, expected=seq)
    return {"alert_id": alert_id, "status": "acknowledged", "acknowledged_by": principal.staff_id}


@alert_router.post("/{alert_id}/close", responses=problems(409))
async def close_alert(
    request: Request, alert_id: str, principal: AlertHandler, nc: Nc, js: Js, body: AlertNote | None = None
) -> dict[str, Any]:
    """HQ closes the alert (handled)."""
    alert, seq = await _load_alert(nc, principal, alert_id)
    if alert is not None:
        await principal.check_ward(request, alert.ward)
    events = domain.close(alert, principal.actor, body.note if body else None, correlation_id(request))
    await bus.append_all(js, events, expected=seq)
    return {"alert_id": alert_id, "status": "resolved"}


from madoguchi_audit.device_activity import router as device_activity_router  # noqa: E402


def routers() -> list[APIRouter]:
    return [log_router, alert_router, device_activity_router]
