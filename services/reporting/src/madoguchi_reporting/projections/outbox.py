"""After the statistics, in the same transaction: report events into the outbox.

The data revision of every affected report is bumped and a `report.report_updated` event per
affected report goes into the outbox (published after commit by `drain_outbox`, once per report per
batch); for a report already submitted, the difference from the submitted figures is computed and,
when it changed, a `report.report_revision_made` goes out too. A rebuild replays with both
switched off (`Notifier(enabled=False)`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from madoguchi_shared import db
from madoguchi_shared.events import dump_event
from madoguchi_shared.events import report as rp
from madoguchi_shared.events.base import Event

from madoguchi_reporting.projections.store import DayKey
from madoguchi_reporting.schema import SCHEMA


@dataclass
class Notifier:
    """What a live projection does after its statistics: report events into the outbox."""

    enabled: bool = True
    revision_check: Callable[[db.Connection, str, list[str]], Any] | None = None
    on_outbox: Callable[[], None] | None = None


async def notify_affected(conn: db.Connection, affected: dict[DayKey, str | None], notifier: Notifier) -> None:
    if not affected or not notifier.enabled:
        return
    weeks: dict[tuple[str, dt.date], None] = {}
    rows = []
    for m, channel, scope, day in sorted(affected):
        rows.append((m, channel, scope, day))
        weeks[(m, day - dt.timedelta(days=day.weekday()))] = None
    for m, ws in weeks:
        rows.append((m, "city", "city", ws))
    cols = list(zip(*rows, strict=True))
    revs = await conn.fetch(
        f"""INSERT INTO "{SCHEMA}".report_day (municipality, channel, scope, day, data_revision)
            SELECT *, 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::date[])
            ON CONFLICT (municipality, channel, scope, day)
            DO UPDATE SET data_revision = report_day.data_revision + 1, updated_at = now()
            RETURNING municipality, channel, scope, day, data_revision""",
        *[list(c) for c in cols],
    )
    updated: list[rp.ReportUpdated] = []
    ids_by_m: dict[str, list[str]] = {}
    for r in revs:
        m, channel, scope, day = r["municipality"], r["channel"], r["scope"], r["day"]
        if channel == "desk":
            rid = rp.report_id("daily", scope, day)
            ward = affected.get((m, channel, scope, day))
            e: dict[str, Any] = dict(
                kind="daily", scope="desk", scope_id=scope, date=day, period_end=day, ward=ward, desk=scope
            )
        elif channel == "line":
            sid = rp.line_scope_id(scope)
            rid = rp.report_id("daily", sid, day)
            e = dict(kind="daily", scope="line", scope_id=sid, date=day, period_end=day, line=scope)
        else:
            rid = rp.report_id("weekly", "city", day)
            e = dict(kind="weekly", scope="city", scope_id="city", date=day, period_end=day + dt.timedelta(days=6))
        ids_by_m.setdefault(m, []).append(rid)
        updated.append(rp.ReportUpdated(municipality=m, report_id=rid, data_revision=r["data_revision"], **e))
    # The revision a change applies to: the next delivered version, when one was delivered.
    submitted: dict[tuple[str, str], int] = {}
    for m, ids in ids_by_m.items():
        for row in await conn.fetch(
            f"""SELECT report_id, max(revision) AS rev FROM "{SCHEMA}".report_submission
                WHERE municipality = $1 AND report_id = ANY($2::text[]) GROUP BY report_id""",
            m,
            ids,
        ):
            submitted[(m, row["report_id"])] = row["rev"]
    events: list[Event] = [
        e.model_copy(update={"revision": submitted[(e.municipality, e.report_id)] + 1})
        if (e.municipality, e.report_id) in submitted
        else e
        for e in updated
    ]
    if notifier.revision_check is not None:
        for m in ids_by_m:
            ids = [rid for (mm, rid) in submitted if mm == m]
            if ids:
                events.extend(await notifier.revision_check(conn, m, ids))
    await write_outbox(conn, events)
    if notifier.on_outbox:
        notifier.on_outbox()


async def write_outbox(conn: db.Connection, events: Sequence[Event]) -> None:
    """Queue `events`; the transaction's commit is synchronous (a batch's is not, `store.Writes.run`).

    They are published as soon as it commits (`drain_outbox`, woken by the notify): a commit a crash could
    still lose would have its report events out already, and the batch, read again, would announce the same
    data revisions a second time under other event ids."""
    if not events:
        return
    await conn.executemany(
        f'INSERT INTO "{SCHEMA}".outbox (subject, msg_id, payload) VALUES ($1, $2, $3)',
        [(e.subject, str(e.event_id), dump_event(e)) for e in events],
    )
    await conn.execute("SELECT pg_notify('reporting_outbox', ''), set_config('synchronous_commit', 'on', true)")


async def drain_outbox(conn: db.Connection, js, limit: int = 2000) -> int:
    """Publish waiting report events (Nats-Msg-Id = event id: a retry is deduplicated)."""
    async with conn.transaction():
        rows = await conn.fetch(
            f"""SELECT id, subject, msg_id, payload FROM "{SCHEMA}".outbox ORDER BY id
                LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        if not rows:
            return 0
        futures = [
            await js.publish_async(r["subject"], bytes(r["payload"]), headers={"Nats-Msg-Id": r["msg_id"]})
            for r in rows
        ]
        for f in futures:
            await f
        await conn.execute(f'DELETE FROM "{SCHEMA}".outbox WHERE id = ANY($1::bigint[])', [r["id"] for r in rows])
    return len(rows)
