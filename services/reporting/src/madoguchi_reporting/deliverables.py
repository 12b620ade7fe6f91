"""The deliverables shell (REP-6): plan them from the contract and the calendar, mark them
submitted (freezing the reports they consist of), raise overdue ones. Loads the aggregate,
decides with deadlines.py, appends with the expected last sequence (a concurrent change is a 409).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import asyncpg

from madoguchi_shared import bus
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events.base import Actor
from madoguchi_shared.events.report import line_scope_id, report_id
from madoguchi_shared.logging import get_logger
from madoguchi_shared.subjects import aggregate_subject

from madoguchi_reporting import deadlines
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.deadlines import TITLES, deliverable_title
from madoguchi_reporting.schema import SCHEMA
from madoguchi_reporting.submissions import submit_report

log = get_logger(__name__)
S = SCHEMA


def today() -> dt.date:
    return dt.datetime.now(TOKYO).date()


async def load_state(nc, m: str, did: str) -> tuple[deadlines.DeliverableState | None, int]:
    subject = aggregate_subject("report", m, "deliverable", did)
    state = None
    last = 0
    for stored in await bus.load(nc, subject):
        state = deadlines.evolve(state, stored.event)
        last = stored.seq
    return state, last


async def report_days(conn, cfg: ReportConfig, m: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Days with operations: a desk opens or the line is staffed (per the calendar)."""
    calendar = await cfg.calendar(conn, m)
    phone = cfg.phone_calendar(m)
    desks = [d.id for d in cfg.municipality(m).desks]
    out = []
    day = start
    while day <= end:
        if phone.hours(day).open_day or any(calendar.hours(day, d).open_day for d in desks):
            out.append(day)
        day += dt.timedelta(days=1)
    return out


async def plan(pool: asyncpg.Pool, nc, cfg: ReportConfig, m: str) -> int:
    """Define every deliverable of the contract once (idempotent). Returns how many were defined."""
    contract = cfg.contract(m)
    if contract is None:
        return 0
    js = nc.jetstream()
    async with pool.acquire() as conn:
        # daily and weekly reports from the first day of operations (the desks open after the contract is signed)
        days = await report_days(conn, cfg, m, contract.first_day, contract.end)
        calendar = await cfg.calendar(conn, m)
        known = {
            r["deliverable_id"]: r["due"]
            for r in await conn.fetch(f'SELECT deliverable_id, due FROM "{S}".deliverable WHERE municipality = $1', m)
        }
    defined = 0
    for planned in deadlines.plan(contract.start, contract.end, days, calendar.is_business_day):
        if known.get(planned.id) == planned.due:
            continue
        state, last = await load_state(nc, m, planned.id)
        events = deadlines.decide_define(
            state, planned, municipality=m, contract_start=contract.start, contract_end=contract.end
        )
        for e in events:
            try:
                await bus.append(js, e, expected=last)
                defined += 1
            except bus.ConcurrencyConflict:
                pass  # another replica defined it
    return defined


async def check_overdue(pool: asyncpg.Pool, nc, m: str | None = None, on: dt.date | None = None) -> int:
    """Raise DeliverableOverdue once for every deliverable past its due day without a submission."""
    on = on or today()
    js = nc.jetstream()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT municipality, deliverable_id FROM "{S}".deliverable
                WHERE submitted_on IS NULL AND overdue_on IS NULL AND due < $1 AND ($2::text IS NULL OR municipality = $2)""",
            on,
            m,
        )
    raised = 0
    for r in rows:
        state, last = await load_state(nc, r["municipality"], r["deliverable_id"])
        for e in deadlines.decide_overdue(state, today=on, municipality=r["municipality"]):
            try:
                await bus.append(js, e, expected=last)
                raised += 1
                log.warning("deliverable.overdue", deliverable=r["deliverable_id"], municipality=r["municipality"])
            except bus.ConcurrencyConflict:
                pass
    return raised


async def reports_of(conn, cfg: ReportConfig, m: str, state: deadlines.DeliverableState) -> list[str]:
    """The reports a deliverable consists of."""
    if state.kind == "daily_report":
        day = state.period_start
        calendar = await cfg.calendar(conn, m)
        desks = {d.id for d in cfg.municipality(m).desks if calendar.hours(day, d.id).open_day}
        desks |= {
            r["scope"]
            for r in await conn.fetch(
                f"""SELECT DISTINCT scope FROM "{S}".day_count WHERE municipality = $1 AND channel = 'desk' AND day = $2""",
                m,
                day,
            )
        }
        lines = {
            r["scope"]
            for r in await conn.fetch(
                f"""SELECT DISTINCT scope FROM "{S}".day_count WHERE municipality = $1 AND channel = 'line' AND day = $2""",
                m,
                day,
            )
        }
        return (
            [report_id("daily", "city", day)]
            + [report_id("daily", d, day) for d in sorted(desks)]
            + [report_id("daily", line_scope_id(x), day) for x in sorted(lines)]
        )
    if state.kind == "weekly_report":
        ws = state.period_start - dt.timedelta(days=state.period_start.weekday())
        return [report_id("weekly", "city", ws)]
    if state.kind == "final_report":
        return [report_id("final", "city", state.period_start)]
    return []


async def submit(
    pool: asyncpg.Pool,
    nc,
    cfg: ReportConfig,
    m: str,
    did: str,
    actor: Actor,
    sha256: str | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """The manager marks a deliverable submitted; its reports are frozen as delivered versions."""
    on = on or today()
    state, last = await load_state(nc, m, did)
    if state is None:
        raise deadlines.CannotSubmit("この成果物は定義されていません。")
    async with pool.acquire() as conn:
        rids = await reports_of(conn, cfg, m, state)
    # check the decision before freezing anything (e.g. a period not over yet is refused)
    deadlines.decide_submit(state, today=on, municipality=m, actor=actor)
    results = [await submit_report(pool, nc.jetstream(), cfg, m, rid, actor, deliverable_id=did) for rid in rids]
    if results:
        sha256 = hashlib.sha256("".join(f"{r['report_id']} {r['sha256']}\n" for r in results).encode()).hexdigest()
    events = deadlines.decide_submit(
        state, today=on, municipality=m, actor=actor, report_ids=tuple(rids), sha256=sha256
    )
    for e in events:
        await bus.append(nc.jetstream(), e, expected=last)
    return {"deliverable_id": did, "revision": events[0].revision, "late": events[0].late, "reports": results}


def describe(row: asyncpg.Record, on: dt.date) -> dict[str, Any]:
    status = "submitted" if row["submitted_on"] else ("overdue" if row["due"] < on else "pending")
    return {
        "deliverable_id": row["deliverable_id"],
        "kind": row["kind"],
        "title": deliverable_title(row["kind"], row["period_start"], row["period_end"]),
        "kind_ja": TITLES[row["kind"]],
        "period_start": row["period_start"].isoformat(),
        "period_end": row["period_end"].isoformat(),
        "due": row["due"].isoformat(),
        "status": status,
        "submitted_on": row["submitted_on"].isoformat() if row["submitted_on"] else None,
        "revision": row["revision"],
        "late": row["late"],
        "overdue_raised_on": row["overdue_on"].isoformat() if row["overdue_on"] else None,
        "report_ids": list(row["report_ids"]),
        "sha256": row["sha256"],
    }


async def listing(conn, m: str, on: dt.date | None = None, opens: dt.date | None = None) -> list[dict[str, Any]]:
    """Every deliverable; daily and weekly reports only from the first day of operations (`opens`),
    also when an older plan defined some before it."""
    on = on or today()
    rows = await conn.fetch(
        f"""SELECT * FROM "{S}".deliverable WHERE municipality = $1 ORDER BY due, kind, period_start""", m
    )
    return [
        describe(r, on)
        for r in rows
        if opens is None or r["kind"] not in ("daily_report", "weekly_report") or r["period_end"] >= opens
    ]


__all__ = ["plan", "check_overdue", "submit", "listing", "today", "load_state", "reports_of"]
