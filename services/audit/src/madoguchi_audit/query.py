"""Auditors' queries over the log: filters, keyset pagination by position, exports.

Every record comes with its position, its hash, the hash before it and the exact header that was
hashed, so an auditor can recompute `sha256(prev_hash || header || data)` on their own. A result
is paired with the signed checkpoint that covers its last record (the first checkpoint at or
after it), which anchors the hashes to a signature made outside the database.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from madoguchi_shared import db
from madoguchi_shared.events.audit import QueryFilters

from madoguchi_audit import chain
from madoguchi_audit.schema import READER

MAX_PAGE = 1000
MAX_EXPORT = 100_000
# An export is streamed in parts read by keyset (position): the first part is small, so the first byte leaves
# after one short index walk whatever the log's size and the export's; each part is recorded as read before it is
# sent (api.export), and memory holds one part, not the whole export.
FIRST_PART = 100
PART = 2_000
COUNT_CAP = 1_000  # a page's total is exact up to this many matches (20 pages of 50)
# A time filter's runs of positions closer than this are walked as one interval (the index walk only meets the
# municipality's records in the gap, at most this many positions' worth).
SPAN_MERGE = 10_000

_SELECT = f"""SELECT position, stream, stream_seq, subject, parsed, event_id, type, occurred_at, municipality,
    ward, desk, actor_id, actor_role, device_id, correlation_id, data, prev_hash, hash,
    convert_from({chain.HEADER_SQL}, 'UTF8') AS header"""


@dataclass(frozen=True)
class Scope:
    """Who asks: their municipality and, for a ward-scoped auditor, their wards."""

    municipality: str
    wards: tuple[str, ...] = ()


ROUTINE_TYPES = ("device.heartbeat",)


# Each page's transaction: the reading role, and the generic plan of the (cached, prepared) statement. The log has
# a partition a day, each with its indexes: planning a page anew costs more than running it (~7 ms against ~1 ms at
# 100 k records in 38 partitions), a generic plan is made once per statement and connection and reused; every
# filter's generic plan still walks its index (test_audit_query_plan.py checks both plans).
READING = f"SET LOCAL ROLE {READER}; SET LOCAL plan_cache_mode = force_generic_plan"


def build(schema: str, filters: QueryFilters, scope: Scope, limit: int | None) -> tuple[str, list[Any]]:
    """The SQL and arguments for one page (positions ascending after `filters.after`, or newest
    first before `filters.before`); `limit=None` counts the matching records instead."""
    args: list[Any] = [scope.municipality, filters.after or 0]
    where = ["municipality = $1", "position > $2"]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.replace("?", f"${len(args)}"))

    if scope.wards:
        add("ward = ANY(?)", list(scope.wards))
    if filters.ward:
        add("ward = ?", filters.ward)
    if filters.desk:
        add("desk = ?", filters.desk)
    if filters.device:
        add("device_id = ?", filters.device)
    if filters.actor:
        add("actor_id = ?", filters.actor)
    if filters.event_type:
        if filters.event_type.endswith("."):
            add("type LIKE ?", filters.event_type.replace("_", r"\_") + "%")
        else:
            add("type = ?", filters.event_type)
    if filters.correlation_id:
        add("correlation_id = ?", filters.correlation_id)
    if filters.time_from:
        add("occurred_at >= ?", filters.time_from)
    if filters.time_to:
        add("occurred_at < ?", filters.time_to)
    timed = bool(filters.time_from or filters.time_to)
    if timed:
        # The runs of positions of the hours asked for (hour_span, kept by the writer; a late record is a run of
        # its own), merged where they are within SPAN_MERGE of each other: each interval is walked from its start
        # by the filter's index (position BETWEEN iv.lo AND iv.hi), so a page never walks the days between an
        # hour and a record of it that arrived late.
        hours = ["municipality = $1"]
        if filters.time_from:
            args.append(_utc_hour(filters.time_from))
            hours.append(f"hour >= ${len(args)}")
        if filters.time_to:
            args.append(_utc_hour(filters.time_to - timedelta(microseconds=1)))
            hours.append(f"hour <= ${len(args)}")
        intervals = f"""WITH s AS (SELECT first_position AS lo, last_position AS hi FROM "{schema}".hour_span
                       WHERE {" AND ".join(hours)}),
            o AS (SELECT lo, hi, max(hi) OVER (ORDER BY lo ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
                  FROM s),
            g AS (SELECT lo, hi, sum(CASE WHEN reach IS NULL OR lo > reach + {SPAN_MERGE} THEN 1 ELSE 0 END)
                      OVER (ORDER BY lo) AS grp FROM o),
            iv AS (SELECT min(lo) AS lo, max(hi) AS hi FROM g GROUP BY grp)
            """
    if filters.position_from:
        add("position >= ?", filters.position_from)
    if filters.position_to:
        add("position <= ?", filters.position_to)
    if filters.hide_routine:
        add("type <> ALL(?)", list(ROUTINE_TYPES))
    if filters.before:
        add("position < ?", filters.before)
    if limit is None:  # count up to COUNT_CAP + 1 matches: a page never walks every match of a national log
        args.append(COUNT_CAP + 1)
        cap = f"${len(args)}"
        if timed:
            return (
                f'{intervals}SELECT count(*) FROM (SELECT 1 FROM iv CROSS JOIN LATERAL (SELECT 1 FROM "{schema}".log '
                f"WHERE {' AND '.join(where)} AND position BETWEEN iv.lo AND iv.hi LIMIT {cap}) l LIMIT {cap}) matches"
            ), args
        return (
            f'SELECT count(*) FROM (SELECT 1 FROM "{schema}".log WHERE {" AND ".join(where)} LIMIT {cap}) matches'
        ), args
    args.append(limit)
    order = "DESC" if filters.newest_first else ""
    if timed:
        inner = (
            f'{_SELECT} FROM "{schema}".log WHERE {" AND ".join(where)} AND position BETWEEN iv.lo AND iv.hi '
            f"ORDER BY position {order} LIMIT ${len(args)}"
        )
        return (
            f"{intervals}SELECT l.* FROM iv CROSS JOIN LATERAL ({inner}) l ORDER BY l.position {order} LIMIT ${len(args)}",
            args,
        )
    sql = f'{_SELECT} FROM "{schema}".log WHERE {" AND ".join(where)} ORDER BY position {order} LIMIT ${len(args)}'
    return sql, args


def _utc_hour(t: datetime) -> datetime:
    return (t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)).replace(minute=0, second=0, microsecond=0)


async def count(conn: db.Connection, schema: str, filters: QueryFilters, scope: Scope) -> int:
    """How many records match the filters (all pages), up to COUNT_CAP + 1 (more than COUNT_CAP: "at least")."""
    sql, args = build(schema, filters.model_copy(update={"after": None, "before": None}), scope, None)
    async with conn.transaction(readonly=True):
        await conn.execute(READING)
        return await db.fetch_int(conn, sql, *args)


def _data_fields(data: bytes, parsed: bool) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(data).decode(), "event": None}
    event = None
    if parsed:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
    return {"data": text, "event": event}


def record_json(row: asyncpg.Record) -> dict[str, Any]:
    """One record for the API: position, source, envelope columns, hashes, header, exact data."""
    out = {
        "position": row["position"],
        "stream": row["stream"],
        "stream_seq": row["stream_seq"],
        "subject": row["subject"],
        "event_id": str(row["event_id"]) if row["event_id"] else None,
        "type": row["type"],
        "occurred_at": row["occurred_at"].isoformat() if row["occurred_at"] else None,
        "ward": row["ward"],
        "desk": row["desk"],
        "actor_id": row["actor_id"],
        "actor_role": row["actor_role"],
        "device_id": row["device_id"],
        "correlation_id": str(row["correlation_id"]) if row["correlation_id"] else None,
        "prev_hash": bytes(row["prev_hash"]).hex(),
        "hash": bytes(row["hash"]).hex(),
        "header": row["header"],
    }
    out.update(_data_fields(bytes(row["data"]), row["parsed"]))
    return out


async def fetch_page(
    conn: db.Connection, schema: str, filters: QueryFilters, scope: Scope, limit: int
) -> list[asyncpg.Record]:
    sql, args = build(schema, filters, scope, limit)
    async with conn.transaction(readonly=True):
        await conn.execute(READING)
        return await conn.fetch(sql, *args)


async def export_parts(
    pool: asyncpg.Pool, schema: str, filters: QueryFilters, scope: Scope, limit: int
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """An export's records in log order, up to `limit`, as parts (FIRST_PART records, then PART), each one page by
    keyset after the last, on a pooled connection taken for that page only (a slow download holds none); the last
    part may be empty (an export that matches nothing yields one empty part)."""
    page = filters.model_copy(update={"newest_first": False, "before": None})
    done, want = 0, min(FIRST_PART, limit)
    while True:
        async with pool.acquire() as conn:
            got = await fetch_page(conn, schema, page, scope, want)
        done += len(got)
        yield got
        if len(got) < want or done >= limit:
            return
        page = page.model_copy(update={"after": got[-1]["position"]})
        want = min(PART, limit - done)


async def fetch_one(conn: db.Connection, schema: str, position: int, scope: Scope) -> asyncpg.Record | None:
    filters = QueryFilters(position_from=position, position_to=position)
    rows = await fetch_page(conn, schema, filters, scope, 1)
    return rows[0] if rows else None


async def covering_checkpoint(conn: db.Connection, schema: str, position: int | None) -> dict | None:
    """The signed checkpoint at or after `position` (the one whose chain includes it)."""
    if position is None:
        return None
    raw = await conn.fetchval(
        f'SELECT event FROM "{schema}".checkpoint WHERE position >= $1 ORDER BY position LIMIT 1', position
    )
    return json.loads(bytes(raw)) if raw is not None else None


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "position",
    "stream",
    "stream_seq",
    "subject",
    "event_id",
    "type",
    "occurred_at",
    "ward",
    "desk",
    "actor_id",
    "actor_role",
    "device_id",
    "correlation_id",
    "prev_hash",
    "hash",
    "header",
    "data",
)


def _csv_cell(value: Any) -> Any:
    # Spreadsheet formula injection: a cell starting with = + - @ is data, not a formula.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def jsonl_lines(records: Iterable[dict]) -> bytes:
    """Records as JSON Lines (one line each, kind "record")."""
    return "".join(json.dumps({"kind": "record", **rec}, ensure_ascii=False) + "\n" for rec in records).encode()


def jsonl_head(meta: dict) -> bytes:
    return (json.dumps({"kind": "export", **meta}, ensure_ascii=False) + "\n").encode()


def jsonl_tail(checkpoint: dict | None, summary: dict) -> bytes:
    """After the records: the summary (count, the query id of each part) and the covering checkpoint, last."""
    return (
        json.dumps({"kind": "summary", **summary}, ensure_ascii=False)
        + "\n"
        + json.dumps({"kind": "checkpoint", "checkpoint": checkpoint}, ensure_ascii=False)
        + "\n"
    ).encode()


def csv_text(records: Iterable[dict], header: bool = False) -> str:
    """Records as CSV rows (CSV_COLUMNS), formula-looking cells made inert; with the column names first if asked."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for rec in records:
        row = [rec.get(c) for c in CSV_COLUMNS]
        if rec.get("data") is None:
            row[-1] = "base64:" + rec.get("data_base64", "")
        writer.writerow([_csv_cell(v) for v in row])
    return text.getvalue()


class _Sink(io.RawIOBase):
    """Where a streamed zip is written: the bytes are taken away part by part (not seekable: zipfile then writes
    data descriptors after each member)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.chunks.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


class CsvZip:
    """A zip written as it goes: records.csv (UTF-8 with BOM, for Excel) part by part, then checkpoint.json,
    public_keys.json, export.json and README.txt once the records are all there."""

    def __init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED)
        self._csv = self._zip.open("records.csv", "w", force_zip64=True)
        self._csv.write("\ufeff".encode() + csv_text((), header=True).encode())

    def records(self, records: Iterable[dict]) -> bytes:
        self._csv.write(csv_text(records).encode())
        return self._sink.take()

    def close(self, checkpoint: dict | None, meta: dict, public_keys: dict[str, str]) -> bytes:
        self._csv.close()
        self._zip.writestr("checkpoint.json", json.dumps(checkpoint, ensure_ascii=False, indent=2))
        self._zip.writestr("public_keys.json", json.dumps(public_keys, indent=2))
        self._zip.writestr("export.json", json.dumps(meta, ensure_ascii=False, indent=2))
        self._zip.writestr("README.txt", README_TXT)
        self._zip.close()
        return self._sink.take()


README_TXT = """Madoguchi audit log export / 操作ログの抽出結果

records.csv     one row per log record. hash = sha256(prev_hash || header || data), with
                prev_hash as raw bytes (hex in the file), header and data as UTF-8 bytes.
                (Cells beginning with = + - @ are prefixed with ' to keep spreadsheets from
                running them; remove that prefix before hashing.)
checkpoint.json the signed checkpoint covering the last record: Ed25519 over the text
                "madoguchi-audit-checkpoint/1\\n{log_id}\\n{position}\\n{head}\\n{signed_at}\\n{key_id}\\n{previous_position}\\n"
                (signed_at as YYYY-MM-DDTHH:MM:SS.ffffffZ).
public_keys.json the trusted public keys by key id (raw 32-byte Ed25519, hex).
The records between the last exported record and the checkpoint are not in the export; ask the
audit service to verify the whole chain (madoguchi audit verify) to link them.
"""


def meta(filters: QueryFilters, generated_at: datetime, query_id: UUID) -> dict:
    """What an export says first: its (first part's) query id, when, and the filters; the count comes at the end."""
    return {
        "query_id": str(query_id),
        "generated_at": generated_at.isoformat(),
        "filters": json.loads(filters.model_dump_json(exclude_none=True)),
    }
