"""One visit's row in the reporting tables and what it contributes to its desk-day's counters."""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from uuid import UUID

from madoguchi_shared import db
from madoguchi_shared.figures import Family as F
from madoguchi_shared.figures import Fig, family
from madoguchi_shared.figures import Stored as S

from madoguchi_reporting.projections.store import joined
from madoguchi_reporting.schema import SCHEMA

VISIT_COLUMNS = (
    "municipality",
    "visit_id",
    "desk",
    "ward",
    "day",
    "ticket_no",
    "arrival_hour",
    "started_at",
    "waited_ms",
    "gender",
    "age_band",
    "purposes",
    "support_needed",
    "support_given",
    "payment_service",
    "outcome",
    "reason",
    "service_ms",
    "ended_at",
    "corrections",
)
VISIT_TYPES = (
    "text",
    "uuid",
    "text",
    "text",
    "date",
    "int4",
    "int2",
    "timestamptz",
    "int8",
    "text",
    "text",
    "text",
    "bool",
    "bool",
    "text",
    "text",
    "text",
    "int8",
    "timestamptz",
    "int4",
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

    def as_row(self) -> tuple:
        """The visit table's row (purposes comma-joined, see `store.upsert`)."""
        row = _ROW(self)
        return (*row[:_PURPOSES], joined(self.purposes), *row[_PURPOSES + 1 :])


_ROW = operator.attrgetter(*VISIT_COLUMNS)  # a visit's columns, read in C
_PURPOSES = VISIT_COLUMNS.index("purposes")


# the families a visit counts in ("by_hour." + "09"), spelled once in madoguchi_shared.figures
BY_HOUR, BY_GENDER, BY_AGE_BAND, BY_PURPOSE = (
    family(f, "") for f in (F.by_hour, F.by_gender, F.by_age_band, F.by_purpose)
)
PAYMENT, REASON, OUTCOME_BY = (family(f, "") for f in (S.payment_service, S.not_completed_reason, S.outcome_by_purpose))


def visit_figures(v: VisitRow | None) -> dict[str, int]:
    """What one visit contributes to its desk-day's counters (REP-1); a plain dict, built and
    compared in C (a Counter's missing keys and equality run Python code, per visit per batch)."""
    if v is None or v.day is None:
        return {}
    out: dict[str, int] = {Fig.visitors: 1}
    get = out.get
    if v.arrival_hour is not None:
        out[f"{BY_HOUR}{v.arrival_hour:02d}"] = 1
    if v.gender is not None:
        out[S.details_n] = 1
        out[BY_GENDER + v.gender] = 1
        out[f"{BY_AGE_BAND}{v.age_band}"] = 1
        if v.support_needed:
            out[Fig.support_needed] = 1
        if v.support_given:
            out[Fig.support_given] = 1
        for p in v.purposes or ():
            out[BY_PURPOSE + p] = get(BY_PURPOSE + p, 0) + 1
        if v.payment_service:
            out[PAYMENT + v.payment_service] = 1
    if v.outcome is not None:
        out[v.outcome] = get(v.outcome, 0) + 1  # completed | not_completed (Fig)
        if v.reason:
            out[REASON + v.reason] = 1
        for p in v.purposes or ():
            k = f"{OUTCOME_BY}{p}.{v.outcome}"
            out[k] = get(k, 0) + 1
    if v.corrections:
        out[Fig.visit_corrections] = get(Fig.visit_corrections, 0) + v.corrections
    return out


Visits = dict[tuple[str, UUID], VisitRow]
Tickets = dict[tuple[str, str, dt.date, int], dt.datetime]  # (municipality, desk, day, number) -> issued at


async def load_visits(
    conn: db.Connection, visit_keys: set[tuple[str, UUID]], ticket_keys: set[tuple[str, str, dt.date, int]]
) -> tuple[Visits, Tickets]:
    """The visit rows and ticket issue times a batch needs, in one round trip: a ticket travels as
    a visit-shaped row (`is_ticket`; its issue time in `started_at`)."""
    if not visit_keys and not ticket_keys:
        return {}, {}
    ticket_cols = ", ".join(
        {
            "municipality": "t.municipality",
            "desk": "t.desk",
            "day": "t.day",
            "ticket_no": "t.ticket_no",
            "started_at": "t.issued_at",
        }.get(c, "NULL")
        for c in VISIT_COLUMNS
    )
    rows = await conn.fetch(
        f"""SELECT false AS is_ticket, {", ".join("v." + c for c in VISIT_COLUMNS)} FROM "{SCHEMA}".visit v
              JOIN {db.rows_from("$1", (("m", "text"), ("id", "uuid")), "k")}
              ON v.municipality = k.m AND v.visit_id = k.id
            UNION ALL
            SELECT true, {ticket_cols} FROM "{SCHEMA}".ticket t
              JOIN {db.rows_from("$2", (("m", "text"), ("desk", "text"), ("day", "date"), ("no", "int4")), "k")}
              ON t.municipality = k.m AND t.desk = k.desk AND t.day = k.day AND t.ticket_no = k.no""",
        db.json_rows(list(visit_keys)),
        db.json_rows(list(ticket_keys)),
    )
    visits: Visits = {}
    issued: Tickets = {}
    for r in rows:
        if r["is_ticket"]:
            issued[(r["municipality"], r["desk"], r["day"], r["ticket_no"])] = r["started_at"]
        else:
            visits[(r["municipality"], r["visit_id"])] = VisitRow(*tuple(r)[1:])
    return visits, issued
