"""The reporting-deliverables projection (REP-6): MG_REPORT deliverable events into `deliverable`."""

from __future__ import annotations

from collections.abc import Sequence

from madoguchi_shared import db
from madoguchi_shared.bus import Stored
from madoguchi_shared.events import report as rp
from madoguchi_shared.read_events import is_a

from madoguchi_reporting.schema import SCHEMA


async def on_defined(conn: db.Connection, e: rp.DeliverableDefined) -> None:
    await conn.execute(
        f"""INSERT INTO "{SCHEMA}".deliverable (municipality, deliverable_id, kind, period_start, period_end, due,
                contract_start, contract_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (municipality, deliverable_id) DO UPDATE SET kind = EXCLUDED.kind,
              period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, due = EXCLUDED.due,
              contract_start = EXCLUDED.contract_start, contract_end = EXCLUDED.contract_end""",
        e.municipality,
        e.deliverable_id,
        e.kind,
        e.period_start,
        e.period_end,
        e.due,
        e.contract_start,
        e.contract_end,
    )


async def on_submitted(conn: db.Connection, e: rp.DeliverableSubmitted) -> None:
    await conn.execute(
        f"""UPDATE "{SCHEMA}".deliverable SET submitted_on = coalesce(submitted_on, $3), revision = $4,
              late = $5, report_ids = $6, sha256 = $7 WHERE municipality = $1 AND deliverable_id = $2""",
        e.municipality,
        e.deliverable_id,
        e.submitted_on,
        e.revision,
        e.late,
        list(e.report_ids),
        e.sha256,
    )


async def on_overdue(conn: db.Connection, e: rp.DeliverableOverdue) -> None:
    await conn.execute(
        f"""UPDATE "{SCHEMA}".deliverable SET overdue_on = $3 WHERE municipality = $1 AND deliverable_id = $2""",
        e.municipality,
        e.deliverable_id,
        e.detected_on,
    )


async def apply_deliverables(conn: db.Connection, batch: Sequence[Stored]) -> None:
    """Deliverable events are few (a handful per month): one statement each, in stream order."""
    for s in batch:
        e = s.event
        if is_a(e, rp.DeliverableDefined):
            await on_defined(conn, e)
        elif is_a(e, rp.DeliverableSubmitted):
            await on_submitted(conn, e)
        elif is_a(e, rp.DeliverableOverdue):
            await on_overdue(conn, e)
