"""One call's row in the reporting tables (and its callbacks'), and what a call contributes to its
line-day's counters."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

from madoguchi_shared import db
from madoguchi_shared.figures import Family as F
from madoguchi_shared.figures import Fig, family

from madoguchi_reporting.projections.store import joined, load_rows, local

CALL_COLUMNS = (
    "municipality",
    "call_id",
    "line",
    "day",
    "received_at",
    "within_hours",
    "connection",
    "missed_reason",
    "wait_s",
    "overflow",
    "categories",
    "resolution",
    "provider_category",
    "guided_ward",
    "duration_s",
    "notes",
    "opinions",
    "callback_status",
    "offer_choice",
    "reference",
    "repeat_of",
)
CALL_TYPES = (
    "text",
    "uuid",
    "text",
    "date",
    "timestamptz",
    "bool",
    "text",
    "text",
    "int4",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text",
    "jsonb",
    "text",
    "text",
    "text",
    "text",
)
CALLBACK_COLUMNS = ("municipality", "callback_id", "call_id", "line", "opened_day", "reason", "needs_city", "status")
CALLBACK_TYPES = ("text", "uuid", "uuid", "text", "date", "text", "bool", "text")


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
    offer_choice: str | None = None  # wait | callback | call_again (the caller's choice at an offer)
    reference: str | None = None  # the reference the caller was given (cl.call_reference)
    repeat_of: str | None = None  # the reference of the caller's earlier call, when this call repeats it

    def as_row(self) -> tuple:
        """The call_record table's row (categories comma-joined, see `store.upsert`)."""
        return tuple(joined(self.categories) if c == "categories" else getattr(self, c) for c in CALL_COLUMNS)


# the families a call counts in ("by_hour." + "09"), spelled once in madoguchi_shared.figures
BY_HOUR, OFFER, RESOLUTION, CATEGORY, PROVIDER, GUIDED, OPINION_KIND, STEP = (
    family(f, "")
    for f in (
        F.by_hour,
        F.offer_choices,
        F.by_resolution,
        F.by_category,
        F.by_provider,
        F.guided_ward,
        F.opinions_by_kind,
        F.difficulties_by_step,
    )
)


def call_figures(c: CallRow | None) -> Counter[str]:
    """What one call contributes to its line-day's counters (REP-2)."""
    out: Counter[str] = Counter()
    if c is None:
        return out
    out[Fig.received] += 1
    out[f"{BY_HOUR}{local(c.received_at).hour:02d}"] += 1
    if c.within_hours:
        out[Fig.received_in_hours] += 1
    if c.connection != "pending":
        out[c.connection] += 1  # the figure it counts in: answered | missed | abandoned | out_of_hours
    if c.connection == Fig.missed and c.missed_reason == "callback_chosen":
        out[Fig.missed_callback_chosen] += 1
    if c.overflow == "out_of_hours":
        out[Fig.after_hours_guided] += 1  # guidance given while the line was closed
    elif c.overflow:
        out[Fig.overflow_offered] += 1  # every seat busy: wait, callback or call again
    if c.offer_choice:
        out[OFFER + c.offer_choice] += 1
    if c.repeat_of:
        out[Fig.repeat_calls] += 1
    if c.resolution is not None:
        out[Fig.closed] += 1
        out[RESOLUTION + c.resolution] += 1
        for cat in c.categories or ():
            out[CATEGORY + cat] += 1
        if c.provider_category:
            out[PROVIDER + c.provider_category] += 1
        if c.guided_ward:
            out[GUIDED + c.guided_ward] += 1
        if c.resolution == "escalated_callback":
            out[Fig.escalations] += 1
        for op in json.loads(c.opinions or "[]"):
            out[Fig.opinions] += 1
            out[OPINION_KIND + op["kind"]] += 1
            if op.get("step"):
                out[STEP + op["step"]] += 1
    return out


async def load_calls(conn: db.Connection, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], CallRow]:
    return {
        (r["municipality"], r["call_id"]): CallRow(**r) for r in await load_rows(conn, "call_record", "call_id", keys)
    }


async def load_callbacks(conn: db.Connection, keys: set[tuple[str, UUID]]) -> dict[tuple[str, UUID], dict]:
    return {(r["municipality"], r["callback_id"]): r for r in await load_rows(conn, "callback", "callback_id", keys)}
