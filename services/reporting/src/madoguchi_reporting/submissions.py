"""Delivering reports (REP-6) and marking later revisions (REP-5).

A submitted report is frozen: its JSON, its flat figures and its files (json, xlsx, pdf, csv) with
their sha256 go into ``report_submission`` / ``report_submission_file`` and a
`report.report_submitted` event records the delivery. Submitting again after the figures changed
makes the next revision (2, 3, ...), whose files show what changed since the previous one.

When a projection batch changes the figures of a report that was already delivered,
`revision_check` compares the current figures with the delivered ones and, if the difference is
new, records it in ``report_revision`` and emits `report.report_revision_made` (through the
outbox, in the batch's transaction).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import threading
from typing import Any

import asyncpg

from madoguchi_shared import db
from madoguchi_shared import bus
from madoguchi_shared.events.base import Actor
from madoguchi_shared.events.report import (
    ReportKind,
    ReportRevisionMade,
    ReportSubmitted,
    SubmittedFile,
)
from madoguchi_shared.logging import get_logger

from madoguchi_reporting import queries
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.render_csv import render_csv
from madoguchi_reporting.render_pdf import render_pdf
from madoguchi_reporting.render_xlsx import render_xlsx
from madoguchi_reporting.reports.models import AnyReport, Revision
from madoguchi_reporting.schema import SCHEMA

log = get_logger(__name__)
S = SCHEMA
MEDIA = {
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}
_render_lock = threading.Lock()  # matplotlib's rc settings are process-wide


def parse_report_id(rid: str) -> tuple[ReportKind, str, dt.date]:
    kind, rest = rid.split("_", 1)
    scope_id, day = rest.rsplit("_", 1)
    if kind != "daily" and kind != "weekly" and kind != "final":
        raise ValueError(f"not a report id: {rid!r}")
    return kind, scope_id, dt.date.fromisoformat(day)


def render(report: AnyReport, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=1).encode()
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "pdf":
        with _render_lock:
            return render_pdf(report)
    raise ValueError(f"unknown format {fmt!r}")


async def render_async(report: AnyReport, fmt: str) -> bytes:
    return await asyncio.to_thread(render, report, fmt)


async def build(conn, cfg: ReportConfig, m: str, rid: str, *, with_revision: bool = True) -> AnyReport:
    """The current report of an id (daily desk / daily line / weekly / final)."""
    kind, scope_id, day = parse_report_id(rid)
    if kind == "daily" and scope_id == "city":
        return await queries.city_daily(conn, cfg, m, day, with_revision=with_revision)
    if kind == "daily" and scope_id.startswith("line-"):
        return await queries.line_daily(conn, cfg, m, scope_id.removeprefix("line-"), day, with_revision=with_revision)
    if kind == "daily":
        return await queries.desk_daily(conn, cfg, m, scope_id, day, with_revision=with_revision)
    if kind == "weekly":
        return await queries.weekly(conn, cfg, m, day, with_revision=with_revision)
    contract = cfg.contract(m)
    end = contract.end if contract and contract.start == day else day + dt.timedelta(days=182)
    return await queries.final(conn, cfg, m, day, end, with_revision=with_revision)


def file_set_sha256(files: list[SubmittedFile]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name} {f.sha256}\n".encode())
    return h.hexdigest()


async def submit_report(
    pool: asyncpg.Pool, js, cfg: ReportConfig, m: str, rid: str, actor: Actor, deliverable_id: str | None = None
) -> dict[str, Any]:
    """Freeze the current version of a report; unchanged since the last delivery = nothing new."""
    async with pool.acquire() as conn:
        report = await build(conn, cfg, m, rid)
    rev = report.revision
    assert rev is not None  # built with its revision
    if rev.status == "submitted":
        last = rev.submitted[-1]
        return {"report_id": rid, "revision": last.revision, "sha256": last.sha256, "new": False}
    revision = (rev.submitted[-1].revision + 1) if rev.submitted else 1
    delivered = Revision(
        data_revision=rev.data_revision,
        status="submitted",
        revision=revision,
        based_on=revision - 1 if revision > 1 else None,
        changes=rev.changes,
        label_ja=f"第{revision}版" + ("（訂正版）" if revision > 1 else ""),
        submitted=rev.submitted,
    )
    # 提出日 of the delivered files
    report = report.with_delivery(delivered, dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date())
    figures = queries.flatten(report)
    files: list[SubmittedFile] = []
    contents: dict[str, bytes] = {}
    for fmt in ("json", "xlsx", "pdf", "csv"):
        data = await render_async(report, fmt)
        name = f"{rid}_r{revision}.{fmt}"
        contents[name] = data
        files.append(SubmittedFile(name=name, format=fmt, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    sha = file_set_sha256(files)
    kind, scope_id, start = parse_report_id(rid)
    period_end = report.period.end
    event = ReportSubmitted(
        municipality=m,
        report_id=rid,
        kind=kind,
        scope=report.scope,
        scope_id=scope_id,
        date=start,
        period_end=period_end,
        revision=revision,
        data_revision=rev.data_revision,
        sha256=sha,
        files=tuple(files),
        deliverable_id=deliverable_id,
        actor=actor,
        ward=getattr(report, "ward", None),
        desk=getattr(report, "desk", None),
    )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"""INSERT INTO "{S}".report_submission (municipality, report_id, revision, kind, scope, scope_id, period_start,
                    period_end, data_revision, submitted_by, deliverable_id, sha256, figures, report)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::jsonb)""",
            m,
            rid,
            revision,
            kind,
            report.scope,
            scope_id,
            start,
            period_end,
            rev.data_revision,
            actor.id,
            deliverable_id,
            sha,
            json.dumps(figures),
            json.dumps(report.model_dump(mode="json"), ensure_ascii=False),
        )
        await conn.executemany(
            f"""INSERT INTO "{S}".report_submission_file (municipality, report_id, revision, name, format, sha256, size, content)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            [(m, rid, revision, f.name, f.format, f.sha256, f.size, contents[f.name]) for f in files],
        )
        await conn.execute(f'DELETE FROM "{S}".report_revision WHERE municipality = $1 AND report_id = $2', m, rid)
        # the event is appended inside the transaction: if the bus refuses, nothing is recorded
        await bus.append(js, event)
    log.info("report.submitted", report_id=rid, revision=revision)
    return {
        "report_id": rid,
        "revision": revision,
        "sha256": sha,
        "new": True,
        "files": [f.model_dump() for f in files],
    }


def make_revision_check(cfg: ReportConfig):
    """The projections' hook: for delivered reports whose figures a batch changed, emit what changed."""

    async def check(conn: db.Connection, m: str, report_ids: list[str]) -> list:
        events = []
        for rid in report_ids:
            last = await conn.fetchrow(
                f"""SELECT revision, figures FROM "{S}".report_submission WHERE municipality = $1 AND report_id = $2
                    ORDER BY revision DESC LIMIT 1""",
                m,
                rid,
            )
            if last is None:
                continue
            current = await build(conn, cfg, m, rid, with_revision=False)
            changes = queries.diff_figures(json.loads(last["figures"]), queries.flatten(current))
            noted = await conn.fetchval(
                f'SELECT changes FROM "{S}".report_revision WHERE municipality = $1 AND report_id = $2', m, rid
            )
            if not changes:
                if noted is not None:
                    await conn.execute(
                        f'DELETE FROM "{S}".report_revision WHERE municipality = $1 AND report_id = $2', m, rid
                    )
                continue
            if noted is not None and json.loads(noted) == [c.model_dump(mode="json") for c in changes]:
                continue
            revision = last["revision"] + 1
            await conn.execute(
                f"""INSERT INTO "{S}".report_revision (municipality, report_id, revision, based_on, changes)
                    VALUES ($1, $2, $3, $4, $5::jsonb)
                    ON CONFLICT (municipality, report_id) DO UPDATE SET revision = EXCLUDED.revision,
                      based_on = EXCLUDED.based_on, changes = EXCLUDED.changes, detected_at = now()""",
                m,
                rid,
                revision,
                last["revision"],
                json.dumps([c.model_dump(mode="json") for c in changes]),
            )
            kind, scope_id, start = parse_report_id(rid)
            truncated = len(changes) > 2000
            events.append(
                ReportRevisionMade(
                    municipality=m,
                    report_id=rid,
                    kind=kind,
                    scope=current.scope,
                    scope_id=scope_id,
                    date=start,
                    period_end=current.period.end,
                    revision=revision,
                    based_on=last["revision"],
                    changes=tuple(changes[:2000]),
                    changes_truncated=truncated,
                    ward=getattr(current, "ward", None),
                    desk=getattr(current, "desk", None),
                )
            )
        return events

    return check


async def submissions(conn, m: str, rid: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT s.revision, s.submitted_at, s.submitted_by, s.sha256, s.deliverable_id, s.data_revision,
                   coalesce(json_agg(json_build_object('name', f.name, 'format', f.format, 'sha256', f.sha256,
                            'size', f.size) ORDER BY f.name) FILTER (WHERE f.name IS NOT NULL), '[]') AS files
            FROM "{S}".report_submission s
            LEFT JOIN "{S}".report_submission_file f USING (municipality, report_id, revision)
            WHERE s.municipality = $1 AND s.report_id = $2 GROUP BY s.revision, s.submitted_at, s.submitted_by,
                  s.sha256, s.deliverable_id, s.data_revision ORDER BY s.revision""",
        m,
        rid,
    )
    return [
        {
            "revision": r["revision"],
            "submitted_at": r["submitted_at"].isoformat(),
            "submitted_by": r["submitted_by"],
            "sha256": r["sha256"],
            "deliverable_id": r["deliverable_id"],
            "data_revision": r["data_revision"],
            "files": json.loads(r["files"]),
        }
        for r in rows
    ]


async def submitted_file(conn, m: str, rid: str, revision: int, fmt: str) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(
        f"""SELECT name, content FROM "{S}".report_submission_file WHERE municipality = $1 AND report_id = $2
            AND revision = $3 AND format = $4""",
        m,
        rid,
        revision,
        fmt,
    )
    return (row["name"], bytes(row["content"])) if row else None
