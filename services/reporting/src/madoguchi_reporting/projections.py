"""The statistics projections (REP-1, REP-2), exactly once (ARCHITECTURE rule 3).

Three `madoguchi_shared.projection.Projection`s, each storing its stream position in
``reporting.projection_checkpoint`` in the same transaction as its changes:

* ``reporting-desk``   MG_DESK  (mg.desk.>):  visits, tickets, desk-days, escalations, opinions, ...
* ``reporting-calls``  MG_CALLS (mg.calls.>): calls, callbacks, line-days
* ``reporting-deliverables`` MG_REPORT (mg.report.*.deliverable.*): deliverables (REP-6)

A batch is folded in memory first (ARCHITECTURE: summing a batch in Python is ~12x faster than a
counter upsert per event): per-visit and per-call rows are loaded once, the batch's events are
applied to them in order, and each row's contribution to the day counters is the difference
between its figures after and before the batch. A late correction therefore moves a visit from
one counter to another (REP-5) without any special case. All counters of the batch are then
written with one upsert.

After the statistics, in the same transaction: the data revision of every affected report is
bumped and a `report.report_updated` event per affected report goes into the outbox (published
after commit, once per report per batch); for a report already submitted, the difference from the
submitted figures is computed and, when it changed, a `report.report_revision_made` goes out too.
A rebuild replays with both switched off.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from madoguchi_shared import bus
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events import dump_event
from madoguchi_shared.events import calls as cl
from madoguchi_shared.events import report as rp
from madoguchi_shared.events.base import Event
from madoguchi_shared import subjects
from madoguchi_shared.projection import Projection, Transient

from madoguchi_reporting.schema import SCHEMA

TOKYO = ZoneInfo("Asia/Tokyo")
REBUILD_LOCK = 0x5245504F  # "REPO": held exclusively by a rebuild, shared by every live batch

DESK = "reporting-desk"
CALLS = "reporting-calls"
DELIVERABLES = "reporting-deliverables"

CALENDAR_TYPES = {
    "desk.opening_suspended", "desk.opening_delayed", "desk.city_instruction_lifted",
    "desk.special_opening_scheduled", "desk.extended_hours_scheduled",
}


def to_ms(seconds: float) -> int:
    """Durations are kept as integer milliseconds, so sums and means are exact."""
    return int(round(seconds * 1000))


def local(t: dt.datetime) -> dt.datetime:
    return t.astimezone(TOKYO)


# --- per-visit state and its figures -------------------------------------------------------------

VISIT_COLUMNS = (
    "municipality", "visit_id", "desk", "ward", "day", "ticket_no", "arrival_hour", "started_at", "waited_ms",
    "gender", "age_band", "purposes", "support_needed", "support_given", "payment_service", "outcome", "reason",
    "service_ms", "ended_at", "corrections",
)


@dataclass
class VisitRow:
    municipality: str
    visit_id: UUID
    desk: str
    ward: str
    day: dt.date | None = None
    ticket_no: int | None = None
    arrival_hour: int | None = None
    started_at: dt.datetime | None = None
    waited_ms: int | None = None
    gender: str | None = None
    age_band: str | None = None
    purposes: list[str] | None = None
    support_needed: bool | None = None
    support_given: bool | None = None
    payment_service: str | None = None
    outcome: str | None = None
    reason: str | None = None
    service_ms: int | None = None
    ended_at: dt.datetime | None = None
    corrections: int = 0

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, c) for c in VISIT_COLUMNS)


def visit_figures(v: VisitRow | None) -> Counter:
    """What one visit contributes to its desk-day's counters (REP-1)."""
    out: Counter = Counter()
    if v is None or v.day is None:
        return out
    out["visitors"] += 1
    if v.arrival_hour is not None:
        out[f"by_hour.{v.arrival_hour:02d}"] += 1
    out["wait_n"] += 1
    out["wait_ms_sum"] += v.waited_ms or 0
    if v.gender is not None:
        out["details_n"] += 1
        out[f"by_gender.{v.gender}"] += 1
        out[f"by_age_band.{v.age_band}"] += 1
        out["support_needed"] += int(bool(v.support_needed))
        out["support_given"] += int(bool(v.support_given))
        for p in v.purposes or ():
            out[f"by_purpose.{p}"] += 1
        if v.payment_service:
            out[f"payment_service.{v.payment_service}"] += 1
    if v.outcome is not None:
        out[v.outcome] += 1  # completed | not_completed
        if v.reason:
            out[f"not_completed_reason.{v.reason}"] += 1
        for p in v.purposes or ():
            out[f"outcome_by_purpose.{p}.{v.outcome}"] += 1
        out["service_n"] += 1
        out["service_ms_sum"] += v.service_ms or 0
    if v.corrections:
        out["visit_corrections"] += v.corrections
    return out


# --- per-call state --------------------------------------------------------------------------------

CALL_COLUMNS = (
    "municipality", "call_id", "line", "day", "received_at", "within_hours", "connection", "missed_reason", "wait_s",
    "overflow", "categories", "resolution", "provider_category", "guided_ward", "duration_s", "notes", "opinions",
    "callback_status",
)
CALLBACK_COLUMNS = ("municipality", "callback_id", "call_id", "line", "opened_day", "reason", "needs_city", "status")


@dataclass
class CallRow:
    municipality: str
    call_id: UUID
    line: str
    day: dt.date
    received_at: dt.datetime
    within_hours: bool
    connection: str = "pending"
    missed_reason: str | None = None
    wait_s: int | None = None
    overflow: str | None = None
    categories: list[str] | None = None
    resolution: str | None = None
    provider_category: str | None = None
    guided_ward: str | None = None
    duration_s: int | None = None
    notes: str | None = None
    opinions: str | None = None  # JSON text
    callback_status: str | None = None

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, c) for c in CALL_COLUMNS)


def call_figures(c: CallRow | None) -> Counter:
    """What one call contributes to its line-day's counters (REP-2)."""
    out: Counter = Counter()
    if c is None:
        return out
    out["received"] += 1
    out[f"by_hour.{local(c.received_at).hour:02d}"] += 1
    if c.within_hours:
        out["received_in_hours"] += 1
    if c.connection != "pending":
        out[c.connection] += 1  # answered | missed | abandoned | out_of_hours
    if c.connection == "missed" and c.missed_reason == "callback_chosen":
        out["missed_callback_chosen"] += 1
    if c.connection == "answered":
        out["answer_wait_n"] += 1
        out["answer_wait_s_sum"] += c.wait_s or 0
    if c.overflow:
        out["overflow_offered"] += 1
    if c.resolution is not None:
        out["closed"] += 1
        out[f"by_resolution.{c.resolution}"] += 1
        for cat in c.categories or ():
            out[f"by_category.{cat}"] += 1
        if c.provider_category:
            out[f"by_provider.{c.provider_category}"] += 1
        if c.guided_ward:
            out[f"guided_ward.{c.guided_ward}"] += 1
        if c.resolution == "escalated_callback":
            out["escalations"] += 1
        out["duration_n"] += 1
        out["duration_s_sum"] += c.duration_s or 0
        for op in json.loads(c.opinions or "[]"):
            out["opinions"] += 1
            out[f"opinions_by_kind.{op['kind']}"] += 1
            if op.get("step"):
                out[f"difficulties_by_step.{op['step']}"] += 1
    return out


# --- the batch accumulator -----------------------------------------------------------------------

DayKey = tuple[str, str, str, dt.date]  # municipality, channel, scope, day


@dataclass
class Acc:
    counts: Counter = field(default_factory=Counter)  # (m, channel, scope, day, figure) -> delta
    affected: dict[DayKey, str | None] = field(default_factory=dict)  # -> ward (desk) / line id

    def add(self, key: DayKey, figure: str, n: int = 1, ward: str | None = None) -> None:
        if n:
            self.counts[(*key, figure)] += n
        self.touch(key, ward)

    def touch(self, key: DayKey, ward: str | None = None) -> None:
        if key not in self.affected or self.affected[key] is None:
            self.affected[key] = ward

    def add_all(self, key: DayKey, figures: Counter, sign: int, ward: str | None) -> None:
        for figure, n in figures.items():
            if n:
                self.counts[(*key, figure)] += sign * n
        self.touch(key, ward)


async def write_counts(conn: asyncpg.Connection, acc: Acc) -> None:
    items = [(k, n) for k, n in acc.counts.items() if n]
    if not items:
        return
    cols = list(zip(*[(*k, n) for k, n in items], strict=True))
    await conn.execute(
        f"""INSERT INTO "{SCHEMA}".day_count (municipality, channel, scope, day, figure, n)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[], $6::bigint[])
            ON CONFLICT (municipality, channel, scope, day, figure) DO UPDATE SET n = day_count.n + EXCLUDED.n""",
        *[list(c) for c in cols],
    )
    negative = [k for k, n in items if n < 0]
    if negative:
        # A figure that went back to zero is removed, so the table equals a rebuild's (which never
        # writes a zero) and a checksum can compare them.
        cols = list(zip(*negative, strict=True))
        await conn.execute(
            f"""DELETE FROM "{SCHEMA}".day_count d USING unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[])
                    AS u(municipality, channel, scope, day, figure)
                WHERE d.municipality = u.municipality AND d.channel = u.channel AND d.scope = u.scope
                  AND d.day = u.day AND d.figure = u.figure AND d.n = 0""",
            *[list(c) for c in cols],
        )


class RebuildInProgress(Transient):
    """A live batch found a rebuild running: it rolls back, the projection retries later."""


async def live_batch_guard(conn: asyncpg.Connection, notifier: Notifier) -> None:
    """Every batch's first statement.

    - Asynchronous commit: a batch lost to a crash loses its checkpoint with it (one transaction),
      so it is simply applied again from the stream; waiting for the WAL flush buys nothing here.
    - A live batch never waits for a rebuild's lock: this transaction already holds the checkpoint
      row, which the rebuild must delete (waiting would deadlock); it fails and is retried.
    """
    if not notifier.enabled:
        await conn.execute("SET LOCAL synchronous_commit TO off")
        return
    if not await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock_shared($1) FROM set_config('synchronous_commit', 'off', true)", REBUILD_LOCK
    ):
        raise RebuildInProgress("a rebuild of the reporting projections is running")


async def upsert(conn: asyncpg.Connection, table: str, cols: Sequence[tuple[str, str]], rows: Sequence[tuple],
                 conflict: str, action: str, expr: dict[str, str] | None = None) -> None:
    """Write many rows in one set-based statement (unnest of one array per column).

    A text[] column travels as one comma-joined text (`expr` splits it back): unnest cannot carry
    arrays of different lengths per row.
    """
    if not rows:
        return
    names = [c for c, _t in cols]
    params = ", ".join(f"${i}::{t}[]" for i, (_c, t) in enumerate(cols, start=1))
    select = ", ".join((expr or {}).get(c, c) for c in names)
    await conn.execute(
        f"""INSERT INTO "{SCHEMA}".{table} ({", ".join(names)}) SELECT {select}
            FROM unnest({params}) AS u({", ".join(names)}) ON CONFLICT ({conflict}) DO {action}""",
        *[list(c) for c in zip(*rows, strict=True)],
    )


def _joined(values: list[str] | None) -> str | None:
    return None if values is None else ",".join(values)


VISIT_TYPES = ("text", "uuid", "text", "text", "date", "int4", "int2", "timestamptz", "int8", "text", "text", "text",
               "bool", "bool", "text", "text", "text", "int8", "timestamptz", "int4")
CALL_TYPES = ("text", "uuid", "text", "date", "timestamptz", "bool", "text", "text", "int4", "text", "text", "text",
              "text", "text", "int4", "text", "jsonb", "text")
CALLBACK_TYPES = ("text", "uuid", "uuid", "text", "date", "text", "bool", "text")
ARRAY_EXPR = {"purposes": "string_to_array(u.purposes, ',')", "categories": "string_to_array(u.categories, ',')"}


# --- notifications: report updated / revision made (outbox, published after commit) ---------------


@dataclass
class Notifier:
    """What a live projection does after its statistics: report events into the outbox."""

    enabled: bool = True
    revision_check: Callable[[asyncpg.Connection, str, list[str]], Any] | None = None
    on_outbox: Callable[[], None] | None = None


async def notify_affected(conn: asyncpg.Connection, affected: dict[DayKey, str | None], notifier: Notifier) -> None:
    if not affected or not notifier.enabled:
        return
    weeks: dict[tuple[str, dt.date], None] = {}
    rows = []
    for (m, channel, scope, day), ward in sorted(affected.items()):
        rows.append((m, channel, scope, day))
        weeks[(m, day - dt.timedelta(days=day.weekday()))] = None
    for (m, ws) in weeks:
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
    events: list[Event] = []
    ids_by_m: dict[str, list[str]] = {}
    for r in revs:
        m, channel, scope, day = r["municipality"], r["channel"], r["scope"], r["day"]
        if channel == "desk":
            rid = rp.report_id("daily", scope, day)
            ward = affected.get((m, channel, scope, day))
            e = dict(kind="daily", scope="desk", scope_id=scope, date=day, period_end=day, ward=ward, desk=scope)
        elif channel == "line":
            sid = rp.line_scope_id(scope)
            rid = rp.report_id("daily", sid, day)
            e = dict(kind="daily", scope="line", scope_id=sid, date=day, period_end=day, line=scope)
        else:
            rid = rp.report_id("weekly", "city", day)
            e = dict(kind="weekly", scope="city", scope_id="city", date=day, period_end=day + dt.timedelta(days=6))
        ids_by_m.setdefault(m, []).append(rid)
        events.append(rp.ReportUpdated(municipality=m, report_id=rid, data_revision=r["data_revision"], **e))
    # The revision a change applies to: the next delivered version, when one was delivered.
    submitted: dict[tuple[str, str], int] = {}
    for m, ids in ids_by_m.items():
        for row in await conn.fetch(
            f"""SELECT report_id, max(revision) AS rev FROM "{SCHEMA}".report_submission
                WHERE municipality = $1 AND report_id = ANY($2::text[]) GROUP BY report_id""", m, ids):
            submitted[(m, row["report_id"])] = row["rev"]
    events = [e.model_copy(update={"revision": submitted[(e.municipality, e.report_id)] + 1})
              if (e.municipality, e.report_id) in submitted else e for e in events]
    if notifier.revision_check is not None:
        for m in ids_by_m:
            ids = [rid for (mm, rid) in submitted if mm == m]
            if ids:
                events.extend(await notifier.revision_check(conn, m, ids))
    await write_outbox(conn, events)
    if notifier.on_outbox:
        notifier.on_outbox()


async def write_outbox(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    if not events:
        return
    await conn.executemany(
        f'INSERT INTO "{SCHEMA}".outbox (subject, msg_id, payload) VALUES ($1, $2, $3)',
        [(e.subject, str(e.event_id), dump_event(e)) for e in events],
    )
    await conn.execute("SELECT pg_notify('reporting_outbox', '')")


async def drain_outbox(conn: asyncpg.Connection, js, limit: int = 2000) -> int:
    """Publish waiting report events (Nats-Msg-Id = event id: a retry is deduplicated)."""
    async with conn.transaction():
        rows = await conn.fetch(
            f"""SELECT id, subject, msg_id, payload FROM "{SCHEMA}".outbox ORDER BY id
                LIMIT $1 FOR UPDATE SKIP LOCKED""", limit)
        if not rows:
            return 0
        futures = [await js.publish_async(r["subject"], bytes(r["payload"]), headers={"Nats-Msg-Id": r["msg_id"]})
                   for r in rows]
        for f in futures:
            await f
        await conn.execute(f'DELETE FROM "{SCHEMA}".outbox WHERE id = ANY($1::bigint[])', [r["id"] for r in rows])
    return len(rows)


# --- the desk projection ---------------------------------------------------------------------------


async def _load_visits(conn, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], VisitRow]:
    if not keys:
        return {}
    ms, ids = zip(*keys, strict=True)
    rows = await conn.fetch(
        f"""SELECT v.* FROM "{SCHEMA}".visit v JOIN unnest($1::text[], $2::uuid[]) AS k(m, id)
            ON v.municipality = k.m AND v.visit_id = k.id""", list(ms), list(ids))
    out = {}
    for r in rows:
        d = dict(r)
        d["purposes"] = list(d["purposes"]) if d["purposes"] is not None else None
        out[(r["municipality"], r["visit_id"])] = VisitRow(**d)
    return out


async def _load_tickets(conn, keys: set[tuple[str, str, dt.date, int]]) -> dict[tuple, dt.datetime]:
    if not keys:
        return {}
    cols = list(zip(*keys, strict=True))
    rows = await conn.fetch(
        f"""SELECT t.municipality, t.desk, t.day, t.ticket_no, t.issued_at FROM "{SCHEMA}".ticket t
            JOIN unnest($1::text[], $2::text[], $3::date[], $4::int[]) AS k(m, desk, day, no)
            ON t.municipality = k.m AND t.desk = k.desk AND t.day = k.day AND t.ticket_no = k.no""",
        *[list(c) for c in cols])
    return {(r["municipality"], r["desk"], r["day"], r["ticket_no"]): r["issued_at"] for r in rows}


_DESKDAYS: dict[str, tuple[str, dt.date] | None] = {}


def deskday(deskday_id: str) -> tuple[str, dt.date] | None:
    """(desk, day) of a desk-day id; None for an id without a date (such an event is not counted,
    the verifier skips it too; a batch must never fail on it)."""
    if deskday_id not in _DESKDAYS:
        if len(_DESKDAYS) > 100_000:
            _DESKDAYS.clear()
        try:
            _DESKDAYS[deskday_id] = dk.parse_deskday_id(deskday_id)
        except ValueError:
            _DESKDAYS[deskday_id] = None
    return _DESKDAYS[deskday_id]


def arrival_hour(issued_at: dt.datetime | None, started_at: dt.datetime, waited_seconds: float) -> int:
    """The hour (local) the visitor arrived: when the ticket was issued; without the ticket's
    record, the start of service minus the wait."""
    if issued_at is not None:
        return local(issued_at).hour
    return local(started_at - dt.timedelta(seconds=waited_seconds)).hour


def make_desk_apply(notifier: Notifier):
    async def apply(conn: asyncpg.Connection, batch: Sequence[bus.Stored]) -> None:
        await live_batch_guard(conn, notifier)
        acc = Acc()
        # 1. what the batch needs from earlier batches: visit rows, ticket issue times
        # A ticket number can be issued twice on one desk-day (the day restarted): a visit's ticket
        # is the LATEST issue of its number before it in stream order. So the issue times of earlier
        # batches are loaded for every visit (even when the batch issues the number again later),
        # and the batch's own issues override them in stream order; the table keeps the latest.
        # The result never depends on where batches begin and end (issue 12, deterministic rebuilds).
        visit_keys: set[tuple[str, UUID]] = set()
        ticket_keys: set[tuple[str, str, dt.date, int]] = set()
        for s in batch:
            e = s.event
            if isinstance(e, dk._VisitEvent):
                visit_keys.add((e.municipality, e.visit_id))
                if isinstance(e, dk.VisitStarted) and (dd_ := deskday(e.deskday_id)):
                    ticket_keys.add((e.municipality, *dd_, e.ticket_no))
        visits = await _load_visits(conn, visit_keys)
        before = {k: visit_figures(v) for k, v in visits.items()}
        issued = await _load_tickets(conn, ticket_keys)
        new_tickets: dict[tuple, dt.datetime] = {}
        desk_days: dict[tuple[str, str, dt.date], dict] = {}
        notes: dict[tuple, dict] = {}
        note_updates: list[tuple[tuple, dict]] = []
        calendar_rows: list[tuple] = []

        def dd(e: Event, desk: str, day: dt.date) -> dict:
            k = (e.municipality, desk, day)
            if k not in desk_days:
                desk_days[k] = {"ward": e.ward, "started_at": None, "ended_at": None, "stops": 0}
            return desk_days[k]

        for s in batch:
            e = s.event
            m = e.municipality
            if e.type in CALENDAR_TYPES:
                calendar_rows.append((m, e.event_id, s.seq, e.model_dump_json()))
                continue
            if isinstance(e, dk._DayEvent):
                if (dd_ := deskday(e.deskday_id)) is None:
                    continue
                desk, day = dd_
                key: DayKey = (m, "desk", desk, day)
                row = dd(e, desk, day)
                match e:
                    case dk.TicketIssued():
                        issued[(m, desk, day, e.ticket_no)] = e.occurred_at
                        new_tickets[(m, desk, day, e.ticket_no)] = e.occurred_at
                        acc.add(key, "tickets_issued")
                    case dk.TicketNoShow():
                        acc.add(key, "no_shows")
                    case dk.TicketRecalled():
                        acc.add(key, "recalls")
                    case dk.DevicesDisinfected():
                        acc.add(key, "disinfections")
                    case dk.VisitStartedBeforeDisinfection():
                        acc.add(key, "disinfection_misses")
                    case dk.MaskStatusRecorded():
                        acc.add(key, "masks_checked")
                        if not e.wearing:
                            acc.add(key, "masks_missing")
                    case dk.StaffingBreachDetected():
                        acc.add(key, "staffing_breaches")
                    case dk.StaffingBreachEnded():
                        acc.add(key, "staffing_breach_ms", to_ms(e.duration_seconds))
                    case dk.ShortAbsenceStarted():
                        acc.add(key, "short_absences")
                    case dk.CapacityThresholdReached():
                        acc.add(key, "capacity_alerts")
                    case dk.IncidentOpened():
                        acc.add(key, f"incidents.{e.kind}")
                        if e.kind == "card_left_behind":
                            acc.add(key, "card_incidents")
                    case dk.EscalationRaised():
                        acc.add(key, "escalations")
                        acc.add(key, f"escalations_by_category.{e.category}")
                        notes[(m, "desk", desk, day, "escalation", str(e.escalation_no))] = {
                            "at": e.occurred_at, "category": e.category, "step": None, "text": e.summary,
                            "status": "raised", "detail": None}
                    case dk.EscalationAcknowledged():
                        acc.touch(key, e.ward)
                        note_updates.append(((m, "desk", desk, day, "escalation", str(e.escalation_no)), {"status": "acknowledged"}))
                    case dk.EscalationEscalatedToCity():
                        acc.add(key, "escalations_to_city", ward=e.ward)
                        note_updates.append(((m, "desk", desk, day, "escalation", str(e.escalation_no)), {"status": "to_city"}))
                    case dk.EscalationResolved():
                        acc.touch(key, e.ward)
                        note_updates.append(((m, "desk", desk, day, "escalation", str(e.escalation_no)),
                                             {"status": "resolved", "detail": e.outcome}))
                    case dk.DayStarted():
                        acc.touch(key, e.ward)
                        row["started_at"] = min(filter(None, (row["started_at"], e.occurred_at)))
                    case dk.DayEnded():
                        acc.touch(key, e.ward)
                        row["ended_at"] = max(filter(None, (row["ended_at"], e.occurred_at)))
                    case dk.DayCannotStart() | dk.DayCannotContinue():
                        row["stops"] += 1
                        acc.add(key, "day_stops")
                    case _:
                        pass
                continue
            if isinstance(e, dk._VisitEvent):
                if isinstance(e, dk.VisitStarted) and deskday(e.deskday_id) is None:
                    continue
                vk = (m, e.visit_id)
                v = visits.get(vk)
                if v is None:
                    v = visits[vk] = VisitRow(municipality=m, visit_id=e.visit_id, desk=e.desk, ward=e.ward)
                match e:
                    case dk.VisitStarted():
                        desk, day = deskday(e.deskday_id)
                        v.desk, v.ward, v.day, v.ticket_no = desk, e.ward, day, e.ticket_no
                        v.started_at = e.occurred_at
                        v.waited_ms = to_ms(e.waited_seconds)
                        v.arrival_hour = arrival_hour(issued.get((m, desk, day, e.ticket_no)), e.occurred_at, e.waited_seconds)
                        dd(e, desk, day)
                    case dk.VisitDetailsRecorded():
                        v.gender, v.age_band, v.purposes = e.gender, e.age_band, list(e.purposes)
                        v.support_needed, v.support_given, v.payment_service = e.support_needed, e.support_given, e.payment_service
                    case dk.VisitEnded():
                        v.outcome, v.reason, v.service_ms, v.ended_at = e.outcome, e.reason, to_ms(e.service_seconds), e.occurred_at
                    case dk.VisitCorrected():
                        if e.outcome is not None:
                            v.outcome, v.reason = e.outcome, e.reason
                        for name in ("gender", "age_band", "support_needed", "support_given", "payment_service"):
                            if getattr(e, name) is not None:
                                setattr(v, name, getattr(e, name))
                        if e.purposes is not None:
                            v.purposes = list(e.purposes)
                        v.corrections += 1
                    case _:
                        day = v.day if v.day is not None else local(e.occurred_at).date()
                        key = (m, "desk", v.desk, day)
                        match e:
                            case dk.OpinionRecorded():
                                acc.add(key, "opinions", ward=v.ward)
                                acc.add(key, f"opinions_by_kind.{e.kind}")
                                if e.step:
                                    acc.add(key, f"difficulties_by_step.{e.step}")
                                notes[(m, "desk", v.desk, day, "opinion", str(e.event_id))] = {
                                    "at": e.occurred_at, "category": e.kind, "step": e.step, "text": e.text,
                                    "status": None, "detail": None}
                            case dk.PinFailureRecorded():
                                acc.add(key, "pin_failures", ward=v.ward)
                                if e.locked:
                                    acc.add(key, "pin_locks")
                            case dk.PinLockWarningIssued():
                                acc.add(key, "pin_lock_warnings", ward=v.ward)
                            case dk.CardHandedToStaff():
                                acc.add(key, "cards_handed", ward=v.ward)
                            case _:
                                pass
        # 2. each touched visit contributes (after - before); a visit never changes its day, and
        #    contributes nothing before its day is known
        for vk, v in visits.items():
            old, new = before.get(vk, Counter()), visit_figures(v)
            if old != new and v.day is not None:
                key = (v.municipality, "desk", v.desk, v.day)
                acc.add_all(key, new, +1, v.ward)
                acc.add_all(key, old, -1, v.ward)
        # 3. write
        await upsert(conn, "ticket", [("municipality", "text"), ("desk", "text"), ("day", "date"), ("ticket_no", "int4"),
                                      ("issued_at", "timestamptz")], [(*k, t) for k, t in new_tickets.items()],
                     "municipality, desk, day, ticket_no", "UPDATE SET issued_at = EXCLUDED.issued_at")
        vrows = []
        for v in visits.values():
            row = list(v.as_tuple())
            row[11] = _joined(row[11])
            vrows.append(tuple(row))
        await upsert(conn, "visit", list(zip(VISIT_COLUMNS, VISIT_TYPES, strict=True)), vrows, "municipality, visit_id",
                     "UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in VISIT_COLUMNS[2:]), ARRAY_EXPR)
        await upsert(conn, "desk_day", [("municipality", "text"), ("desk", "text"), ("day", "date"), ("ward", "text"),
                                        ("started_at", "timestamptz"), ("ended_at", "timestamptz"), ("stops", "int4")],
                     [(m, desk, day, r["ward"], r["started_at"], r["ended_at"], r["stops"])
                      for (m, desk, day), r in desk_days.items()],
                     "municipality, desk, day",
                     """UPDATE SET started_at = LEAST(desk_day.started_at, EXCLUDED.started_at),
                          ended_at = GREATEST(desk_day.ended_at, EXCLUDED.ended_at), stops = desk_day.stops + EXCLUDED.stops""")
        await _write_notes(conn, notes, note_updates)
        if calendar_rows:
            await conn.executemany(
                f"""INSERT INTO "{SCHEMA}".calendar_override (municipality, event_id, seq, event) VALUES ($1, $2, $3, $4::jsonb)
                    ON CONFLICT DO NOTHING""", calendar_rows)
        await write_counts(conn, acc)
        for (m, _ch, desk, day), ward in acc.affected.items():
            if ward is None and (m, desk, day) in desk_days:
                acc.affected[(m, _ch, desk, day)] = desk_days[(m, desk, day)]["ward"]
        await notify_affected(conn, acc.affected, notifier)

    return apply


async def _write_notes(conn, notes: dict[tuple, dict], updates: list[tuple[tuple, dict]]) -> None:
    remote: list[tuple[tuple, dict]] = []
    for key, change in updates:
        if key in notes:
            notes[key].update(change)
        else:
            remote.append((key, change))
    await upsert(conn, "note", [("municipality", "text"), ("channel", "text"), ("scope", "text"), ("day", "date"),
                                ("kind", "text"), ("ref", "text"), ("at", "timestamptz"), ("category", "text"),
                                ("step", "text"), ("text", "text"), ("status", "text"), ("detail", "text")],
                 [(*k, n["at"], n["category"], n["step"], n["text"], n["status"], n["detail"]) for k, n in notes.items()],
                 "municipality, channel, scope, day, kind, ref",
                 """UPDATE SET at = EXCLUDED.at, category = EXCLUDED.category, step = EXCLUDED.step, text = EXCLUDED.text,
                      status = EXCLUDED.status, detail = EXCLUDED.detail""")
    for key, change in remote:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(change, start=7))
        await conn.execute(
            f"""UPDATE "{SCHEMA}".note SET {sets} WHERE municipality = $1 AND channel = $2 AND scope = $3
                AND day = $4 AND kind = $5 AND ref = $6""", *key, *change.values())


# --- the calls projection --------------------------------------------------------------------------


async def _load_calls(conn, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], CallRow]:
    if not keys:
        return {}
    ms, ids = zip(*keys, strict=True)
    rows = await conn.fetch(
        f"""SELECT c.* FROM "{SCHEMA}".call_record c JOIN unnest($1::text[], $2::uuid[]) AS k(m, id)
            ON c.municipality = k.m AND c.call_id = k.id""", list(ms), list(ids))
    out = {}
    for r in rows:
        d = dict(r)
        d["categories"] = list(d["categories"]) if d["categories"] is not None else None
        out[(r["municipality"], r["call_id"])] = CallRow(**d)
    return out


async def _load_callbacks(conn, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], dict]:
    if not keys:
        return {}
    ms, ids = zip(*keys, strict=True)
    rows = await conn.fetch(
        f"""SELECT c.* FROM "{SCHEMA}".callback c JOIN unnest($1::text[], $2::uuid[]) AS k(m, id)
            ON c.municipality = k.m AND c.callback_id = k.id""", list(ms), list(ids))
    return {(r["municipality"], r["callback_id"]): dict(r) for r in rows}


def make_calls_apply(notifier: Notifier):
    async def apply(conn: asyncpg.Connection, batch: Sequence[bus.Stored]) -> None:
        await live_batch_guard(conn, notifier)
        acc = Acc()
        call_keys: set[tuple[str, UUID]] = set()
        callback_keys: set[tuple[str, UUID]] = set()
        for s in batch:
            e = s.event
            if isinstance(e, cl._CallEvent) and not isinstance(e, cl.CallReceived):
                call_keys.add((e.municipality, e.call_id))
            elif isinstance(e, cl._CallbackEvent):
                callback_keys.add((e.municipality, e.callback_id))
                if isinstance(e, cl.CallbackRequested):
                    call_keys.add((e.municipality, e.call_id))
        calls = await _load_calls(conn, call_keys)
        before = {k: call_figures(c) for k, c in calls.items()}
        callbacks = await _load_callbacks(conn, callback_keys)
        callbacks_changed: set[tuple[str, UUID]] = set()
        notes: dict[tuple, dict] = {}
        call_with_callback: dict[tuple[str, UUID], str] = {}
        for s in batch:
            e = s.event
            m = e.municipality
            if isinstance(e, cl._LineDayEvent):
                key: DayKey = (m, "line", e.line, e.day)
                match e:
                    case cl.CapacityThresholdCrossed():
                        acc.add(key, "capacity_alerts")
                    case cl.NoOperatorSeated():
                        acc.add(key, "staffing_breaches")
                    case cl.SeatCoverageRestored():
                        acc.add(key, "staffing_gap_s_sum", e.gap_seconds)
                    case _:
                        pass
                continue
            if isinstance(e, cl._CallEvent):
                ck = (m, e.call_id)
                if isinstance(e, cl.CallReceived):
                    calls[ck] = CallRow(m, e.call_id, e.line, local(e.occurred_at).date(), e.occurred_at, e.within_hours)
                    continue
                c = calls.get(ck)
                if c is None:
                    continue  # a call whose reception was never recorded cannot be dated; the verifier skips it too
                match e:
                    case cl.CallAnswered():
                        c.connection, c.wait_s = "answered", e.wait_seconds
                    case cl.CallMissed():
                        c.connection, c.missed_reason = "missed", e.reason
                    case cl.CallAbandoned():
                        c.connection, c.wait_s = "abandoned", e.wait_seconds
                    case cl.CallOutOfHours():
                        c.connection = "out_of_hours"
                    case cl.OverflowOffered():
                        c.overflow = e.reason
                    case cl.CallClosed():
                        c.categories, c.resolution = list(e.categories), e.resolution
                        c.provider_category, c.guided_ward, c.duration_s = e.provider_category, e.ward, e.duration_seconds
                        c.notes = e.notes
                        c.opinions = json.dumps([op.model_dump(mode="json") for op in e.opinions], ensure_ascii=False)
                        for i, op in enumerate(e.opinions):
                            notes[(m, "line", c.line, c.day, "opinion", f"{e.call_id}:{i}")] = {
                                "at": e.occurred_at, "category": op.kind, "step": op.step, "text": op.text,
                                "status": None, "detail": None}
                        if e.resolution == "escalated_callback":
                            notes[(m, "line", c.line, c.day, "escalation", str(e.call_id))] = {
                                "at": e.occurred_at, "category": ",".join(e.categories), "step": None,
                                "text": e.notes or "", "status": "raised", "detail": None}
                    case _:
                        pass
                continue
            if isinstance(e, cl._CallbackEvent):
                bk = (m, e.callback_id)
                if isinstance(e, cl.CallbackRequested):
                    callbacks[bk] = {"municipality": m, "callback_id": e.callback_id, "call_id": e.call_id, "line": e.line,
                                     "opened_day": local(e.occurred_at).date(), "reason": e.reason,
                                     "needs_city": e.needs_city, "status": "open"}
                    callbacks_changed.add(bk)
                    acc.add((m, "line", e.line, local(e.occurred_at).date()), "callbacks_opened")
                    call_with_callback[(m, e.call_id)] = "open"
                    continue
                cb = callbacks.get(bk)
                if cb is None:
                    continue
                key = (m, "line", cb["line"], local(e.occurred_at).date())
                status = None
                match e:
                    case cl.CallbackCompleted():
                        acc.add(key, "callbacks_done")
                        status = "done"
                    case cl.CallbackFailed():
                        acc.add(key, "callbacks_failed")
                        status = "failed"
                    case cl.CallbackCancelled():
                        acc.add(key, "callbacks_cancelled")
                        status = "cancelled"
                    case cl.CallbackOverdue():
                        acc.add(key, "callbacks_overdue")
                    case cl.CallbackEscalatedToCity():
                        acc.add(key, "callbacks_to_city")
                    case cl.CityAnswered():
                        acc.add(key, "callbacks_city_answered")
                    case _:
                        pass
                if status:
                    cb["status"] = status
                    callbacks_changed.add(bk)
                    call_with_callback[(m, cb["call_id"])] = status
        # callback status shown on the call record (the final report lists it)
        for ck, status in call_with_callback.items():
            if ck not in calls:
                loaded = await _load_calls(conn, {ck})
                calls.update(loaded)
                before.update({k: call_figures(c) for k, c in loaded.items()})
            if ck in calls:
                calls[ck].callback_status = status
        changed = []
        for ck, c in calls.items():
            old, new = before.get(ck, Counter()), call_figures(c)
            key = (c.municipality, "line", c.line, c.day)
            if old != new:
                acc.add_all(key, new, +1, c.line)
                acc.add_all(key, old, -1, c.line)
            changed.append(c.as_tuple())
        crows = []
        for row in changed:
            row = list(row)
            row[10] = _joined(row[10])
            crows.append(tuple(row))
        await upsert(conn, "call_record", list(zip(CALL_COLUMNS, CALL_TYPES, strict=True)), crows, "municipality, call_id",
                     "UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in CALL_COLUMNS[2:]), ARRAY_EXPR)
        await upsert(conn, "callback", list(zip(CALLBACK_COLUMNS, CALLBACK_TYPES, strict=True)),
                     [tuple(callbacks[k][c] for c in CALLBACK_COLUMNS) for k in callbacks_changed],
                     "municipality, callback_id", "UPDATE SET status = EXCLUDED.status")
        await _write_notes(conn, notes, [])
        await write_counts(conn, acc)
        await notify_affected(conn, acc.affected, notifier)

    return apply


# --- deliverables ----------------------------------------------------------------------------------


async def apply_deliverables(conn: asyncpg.Connection, batch: Sequence[bus.Stored]) -> None:
    for s in batch:
        e = s.event
        if isinstance(e, rp.DeliverableDefined):
            await conn.execute(
                f"""INSERT INTO "{SCHEMA}".deliverable (municipality, deliverable_id, kind, period_start, period_end, due,
                        contract_start, contract_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    ON CONFLICT (municipality, deliverable_id) DO UPDATE SET kind = EXCLUDED.kind,
                      period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, due = EXCLUDED.due,
                      contract_start = EXCLUDED.contract_start, contract_end = EXCLUDED.contract_end""",
                e.municipality, e.deliverable_id, e.kind, e.period_start, e.period_end, e.due, e.contract_start, e.contract_end)
        elif isinstance(e, rp.DeliverableSubmitted):
            await conn.execute(
                f"""UPDATE "{SCHEMA}".deliverable SET submitted_on = coalesce(submitted_on, $3), revision = $4,
                      late = $5, report_ids = $6, sha256 = $7 WHERE municipality = $1 AND deliverable_id = $2""",
                e.municipality, e.deliverable_id, e.submitted_on, e.revision, e.late, list(e.report_ids), e.sha256)
        elif isinstance(e, rp.DeliverableOverdue):
            await conn.execute(
                f"""UPDATE "{SCHEMA}".deliverable SET overdue_on = $3 WHERE municipality = $1 AND deliverable_id = $2""",
                e.municipality, e.deliverable_id, e.detected_on)


# --- the projections -------------------------------------------------------------------------------


def projections(notifier: Notifier | None = None, batch: int = 1000) -> list[Projection]:
    """The three projections (the shared runner and reader); `Notifier(enabled=False)` for a rebuild."""
    notifier = notifier or Notifier()
    return [
        Projection(DESK, "MG_DESK", [subjects.stream_filter("MG_DESK")], make_desk_apply(notifier), SCHEMA, batch=batch),
        Projection(CALLS, "MG_CALLS", [subjects.stream_filter("MG_CALLS")], make_calls_apply(notifier), SCHEMA,
                   batch=batch),
        Projection(DELIVERABLES, "MG_REPORT", [subjects.context_filter("report", None, "deliverable")],
                   apply_deliverables, SCHEMA, batch=batch),
    ]


__all__ = [
    "projections", "Notifier", "VisitRow", "CallRow", "visit_figures", "call_figures", "drain_outbox", "write_outbox",
    "REBUILD_LOCK", "RebuildInProgress", "DESK", "CALLS", "DELIVERABLES", "to_ms", "local",
]
