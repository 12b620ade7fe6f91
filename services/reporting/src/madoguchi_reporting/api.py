"""HTTP routes: reports as JSON or files (REP-1 … REP-4), their delivered versions, deliverables
(REP-6), and the live stream of report changes (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from nats import errors as nats_errors
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from madoguchi_shared import db, subjects
from madoguchi_shared.errors import Invalid, NotFound, Refused, Unavailable
from madoguchi_shared.auth import deny, revocable
from madoguchi_shared.logging import get_logger
from madoguchi_shared.web import ServiceDate, downloads, event_stream, problems

from madoguchi_reporting import deadlines, deliverables, queries, submissions
from madoguchi_reporting.deps import Config, Manager, Pool, Reader, Runtime
from madoguchi_reporting.projections import CALLS, DESK
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.worker import Worker

log = get_logger(__name__)

Format = Literal["json", "xlsx", "pdf", "csv"]
FormatQ = Annotated[Format, Query(description="json (default), xlsx, pdf or csv")]


def _doc(model: type) -> dict[int | str, dict[str, Any]]:
    """The 200 response of a report route: the report model as JSON, or its file."""
    files = {submissions.MEDIA[f]: {} for f in ("xlsx", "pdf", "csv")}
    return {200: {"model": model, "content": files}}


async def _respond(report: md.AnyReport, fmt: str, name: str | None = None) -> Response:
    if fmt == "json":
        return JSONResponse(report.model_dump(mode="json"))
    data = await submissions.render_async(report, fmt)
    filename = f"{name or report.report_id}.{fmt}"
    return Response(
        data,
        media_type=submissions.MEDIA[fmt],
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


# a report as the client asks for it (`format`): JSON, or a file
REPORT_FILES = downloads(*(media for fmt, media in submissions.MEDIA.items() if fmt != "json"))


async def _city_wide(request: Request, principal) -> None:
    # A ward-scoped reader sees its wards' daily reports, not the city-wide tables.
    if principal.wards:
        await deny(request, principal, "ward")


# A report is computed from the statistics tables only once they hold every event the streams held
# when it was asked for (REP-5): right after a command, or while the projection catches up after a
# restart, a report would otherwise count part of the day and say nothing (a restarted reporting
# service answered 1,277 of 2,317 tickets). It waits up to SETTLE_SECONDS, then answers 503.
SETTLE_SECONDS = 10.0
BEHIND_DETAIL = (
    "集計が最新の記録にまだ追いついていません（再起動の直後など）。正確な数値をお出しするため、"
    "しばらくしてからもう一度お試しください。"
)


async def _settled(runtime: Worker, *projections: str) -> None:
    """Wait until these projections have applied what their streams hold now; 503 past SETTLE_SECONDS.
    With the bus out of reach nothing new can be recorded either: the tables are served as they are."""
    try:
        await runtime.caught_up(timeout=SETTLE_SECONDS, only=projections)
    except db.NoAnswer:
        raise  # the database is frozen, not behind: its own 503
    except TimeoutError as exc:
        log.warning("reporting.report_behind", projections=list(projections), error=str(exc))
        raise Unavailable(BEHIND_DETAIL, part="statistics", retry_after=10) from exc
    except (OSError, nats_errors.Error) as exc:  # the bus is down: what is stored is all there is
        log.warning("reporting.report_unsettled", projections=list(projections), error=type(exc).__name__)


def reports_router() -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=problems(401, 403, 404, 422, 503))

    @router.get("/daily", responses=_doc(md.DeskDaily))
    async def desk_daily(
        request: Request,
        principal: Reader,
        pool: Pool,
        cfg: Config,
        runtime: Runtime,
        desk: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
        date: ServiceDate,
        format: FormatQ = "json",
    ) -> Response:
        """REP-1: one desk's daily report."""
        m = principal.municipality
        await _settled(runtime, DESK)
        async with pool.acquire() as conn:
            wards = await queries.desk_wards(conn, cfg, m)
            if desk not in wards:
                raise NotFound(f"窓口「{desk}」は登録されていません。")
            await principal.check_ward(request, wards[desk])
            report = await queries.desk_daily(conn, cfg, m, desk, date)
        return await _respond(report, format)

    @router.get("/city/daily", responses=_doc(md.CityDaily))
    async def city_daily(
        request: Request,
        principal: Reader,
        pool: Pool,
        cfg: Config,
        runtime: Runtime,
        date: ServiceDate,
        format: FormatQ = "json",
    ) -> Response:
        """Every desk's daily figures in one table, with the city's total and the phone line."""
        await _city_wide(request, principal)
        await _settled(runtime, DESK, CALLS)
        async with pool.acquire() as conn:
            report = await queries.city_daily(conn, cfg, principal.municipality, date)
        return await _respond(report, format)

    @router.get("/line/daily", responses=_doc(md.LineDaily))
    async def line_daily(
        principal: Reader,
        pool: Pool,
        cfg: Config,
        runtime: Runtime,
        date: ServiceDate,
        line: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,58}$")] = None,
        format: FormatQ = "json",
    ) -> Response:
        """REP-2: the phone line's daily figures (the only line when `line` is omitted)."""
        m = principal.municipality
        await _settled(runtime, CALLS)
        async with pool.acquire() as conn:
            if line is None:
                known = await queries.known_lines(conn, m)
                if len(known) > 1:
                    raise Invalid(f"回線を指定してください（{', '.join(known)}）。", field="line")
                line = known[0] if known else cfg.settings.extra.get("phone_line", "main")
            report = await queries.line_daily(conn, cfg, m, line, date)
        return await _respond(report, format)

    @router.get("/weekly", responses=_doc(md.Weekly))
    async def weekly(
        request: Request,
        principal: Reader,
        pool: Pool,
        cfg: Config,
        runtime: Runtime,
        week_start: ServiceDate,
        format: FormatQ = "json",
    ) -> Response:
        """REP-3: the city-wide weekly table (wards x days, with totals); any date of the week works."""
        await _city_wide(request, principal)
        await _settled(runtime, DESK, CALLS)
        async with pool.acquire() as conn:
            report = await queries.weekly(conn, cfg, principal.municipality, week_start)
        return await _respond(report, format)

    @router.get("/final", responses=_doc(md.Final))
    async def final(
        request: Request,
        principal: Reader,
        pool: Pool,
        cfg: Config,
        runtime: Runtime,
        start: Annotated[ServiceDate | None, Query(alias="from")] = None,
        end: Annotated[ServiceDate | None, Query(alias="to")] = None,
        format: FormatQ = "json",
    ) -> Response:
        """REP-4: the final report with every call record (the contract period unless from/to given)."""
        await _city_wide(request, principal)
        m = principal.municipality
        contract = cfg.contract(m)
        start = start or (contract.start if contract else None)
        end = end or (contract.end if contract else None)
        if start is None or end is None:
            raise Invalid("契約期間が設定されていません。from と to を指定してください。", field="from")
        if end < start:
            raise Invalid("終了日は開始日以降にしてください。", field="to")
        await _settled(runtime, DESK, CALLS)
        async with pool.acquire() as conn:
            report = await queries.final(conn, cfg, m, start, end)
        return await _respond(report, format)

    @router.get("/live", responses=event_stream())
    async def live(
        request: Request, principal: Reader, kind: Annotated[Literal["daily", "weekly", "final"] | None, Query()] = None
    ) -> EventSourceResponse:
        """Server-sent events: report updated / submitted / revision made, as they are published."""
        nc = request.app.state.nc
        queue: asyncio.Queue = asyncio.Queue(maxsize=10000)

        async def on_msg(msg) -> None:
            if not queue.full():
                queue.put_nowait(msg.data)

        sub = await nc.subscribe(subjects.pattern("report", principal.municipality, "report"), cb=on_msg)

        async def events():
            try:
                yield {"event": "ready", "data": json.dumps({"municipality": principal.municipality})}
                while True:
                    try:
                        data = await asyncio.wait_for(queue.get(), timeout=5.0)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        continue
                    event = json.loads(data)
                    if kind and event.get("kind") != kind:
                        continue
                    if principal.wards and event.get("ward") not in principal.wards:
                        continue
                    yield {"event": event["type"], "id": event["event_id"], "data": data.decode()}
            finally:
                await sub.unsubscribe()

        return EventSourceResponse(revocable(request.app, principal, events()), ping=15)

    @router.get("/status")
    async def status(principal: Reader, runtime: Runtime) -> dict:
        """Projection positions against the streams (how far behind the statistics are)."""
        return {"projections": await runtime.lag()}

    @router.get("/{report_id}/submissions")
    async def list_submissions(principal: Reader, pool: Pool, report_id: str) -> dict:
        """The delivered versions of a report, with the sha256 of each file."""
        async with pool.acquire() as conn:
            return {
                "report_id": report_id,
                "submissions": await submissions.submissions(conn, principal.municipality, report_id),
            }

    @router.get("/{report_id}/submissions/{revision}", responses=REPORT_FILES)
    async def get_submission(
        principal: Reader,
        pool: Pool,
        report_id: str,
        revision: Annotated[int, Path(ge=1, le=2**31 - 1)],
        format: FormatQ = "json",
    ) -> Response:
        """A delivered version exactly as delivered (the stored bytes; their sha256 is in the event)."""
        async with pool.acquire() as conn:
            found = await submissions.submitted_file(conn, principal.municipality, report_id, revision, format)
        if found is None:
            raise NotFound("提出版が見つかりません。")
        name, data = found
        return Response(
            data,
            media_type=submissions.MEDIA[format],
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )

    @router.post("/{report_id}/submit", responses=problems(409))
    async def submit_one(
        principal: Manager, pool: Pool, cfg: Config, runtime: Runtime, request: Request, report_id: str
    ) -> dict:
        """Deliver one report now (normally done through its deliverable)."""
        try:
            submissions.parse_report_id(report_id)
        except ValueError as exc:
            raise Invalid("報告書IDの形式が正しくありません。", field="report_id") from exc
        await _settled(runtime, DESK, CALLS)  # a delivered version is frozen: never one counted halfway
        return await submissions.submit_report(
            pool, request.app.state.js, cfg, principal.municipality, report_id, principal.actor
        )

    return router


class SubmitDeliverable(BaseModel):
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="for a plan delivered as a document: the sha256 of the file",
    )


def deliverables_router() -> APIRouter:
    router = APIRouter(prefix="/v1/deliverables", tags=["deliverables"], responses=problems(401, 403, 404, 422, 503))

    @router.get("")
    async def listing(principal: Reader, pool: Pool, cfg: Config) -> dict:
        """REP-6: every deliverable with its due date and submission record (daily and weekly reports
        from the contract's first day of operations)."""
        contract = cfg.contract(principal.municipality)
        async with pool.acquire() as conn:
            items = await deliverables.listing(
                conn, principal.municipality, opens=contract.first_day if contract else None
            )
        return {
            "deliverables": items,
            "counts": {s: sum(1 for i in items if i["status"] == s) for s in ("pending", "submitted", "overdue")},
        }

    @router.post("/plan", responses=problems(409))
    async def plan(principal: Manager, runtime: Runtime) -> dict:
        """Define the contract's deliverables (idempotent) and check for overdue ones."""
        if runtime.cfg.contract(principal.municipality) is None:
            raise Refused("契約期間が設定されていません（設定 contract_start / contract_end）。")
        return await runtime.check_deadlines(principal.municipality)

    @router.post("/{deliverable_id}/submit", responses=problems(409))
    async def submit(
        principal: Manager,
        runtime: Runtime,
        deliverable_id: str,
        body: Annotated[SubmitDeliverable | None, Body()] = None,
    ) -> dict:
        """The manager marks a deliverable submitted; its reports are frozen as delivered versions."""
        await _settled(runtime, DESK, CALLS)
        try:
            result = await deliverables.submit(
                runtime.pool,
                runtime.nc,
                runtime.cfg,
                principal.municipality,
                deliverable_id,
                principal.actor,
                sha256=body.sha256 if body else None,
            )
        except deadlines.CannotSubmit as exc:
            raise Refused(str(exc)) from exc
        await runtime.caught_up(only=("reporting-deliverables",))
        return result

    return router


def routers() -> list[APIRouter]:
    return [reports_router(), deliverables_router()]


__all__ = ["routers"]
