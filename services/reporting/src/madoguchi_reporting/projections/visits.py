"""One visit's row in the reporting tables and what it contributes to its desk-day's counters."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

from madoguchi_shared import db

from madoguchi_reporting.projections.store import joined, load_rows

VISIT_COLUMNS = (
    "municipality", "visit_id", "desk", "ward", "day", "ticket_no", "arrival_hour", "started_at", "waited_ms",
    "gender", "age_band", "purposes", "support_needed", "support_given", "payment_service", "outcome", "reason",
    "service_ms", "ended_at", "corrections",
)
VISIT_TYPES = ("text", "uuid", "text", "text", "date", "int4", "int2", "timestamptz", "int8", "text", "text", "text",
               "bool", "bool", "text", "text", "text", "int8", "timestamptz", "int4")


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

    def as_row(self) -> tuple:
        """The visit table's row (purposes comma-joined, see `store.upsert`)."""
        return tuple(joined(self.purposes) if c == "purposes" else getattr(self, c) for c in VISIT_COLUMNS)


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


async def load_visits(conn: db.Connection, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], VisitRow]:
    return {(r["municipality"], r["visit_id"]): VisitRow(**r) for r in await load_rows(conn, "visit", "visit_id", keys)}
