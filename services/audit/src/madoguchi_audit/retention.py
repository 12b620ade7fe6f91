"""Retention: old ranges of the log go to an archive file with their checkpoints, never silently.

The city sets the retention period (MADOGUCHI_AUDIT_RETENTION_DAYS). A run:

1. picks the range from the table's first position to the newest signed checkpoint older than
   the period (ranges always end on a signed checkpoint, so the table's new first record chains
   from a head that a signature vouches for);
2. writes every record of the range and every checkpoint in it to
   `<archive_dir>/<log_id>-<from>-<to>.jsonl.gz` (fsynced), reads the file back and verifies it
   with the same verifier as the table, ending on the signed checkpoint;
3. records the archive (table row + `audit.archive_made` event);
4. only when asked to (`delete=True`) and only after 2.-3., removes the range AS THE OWNER ROLE, in one
   transaction: every day partition of the log (a day of writing, schema.PARTITION_BY_DAY_SQL) older than
   the retention whose records all lie in the archived range (or that holds none) is dropped whole, which
   costs nothing per record; what is left of the range (in the partition the range ends in) is deleted
   with the retention flag set, which the append-only trigger lets through for exactly the rows a
   verified archive covers and refuses for everything else. The records removed must add up to the
   archive's, else nothing is removed. Then `audit.archived_records_deleted`. The table's new first
   record chains from the archive's closing signed checkpoint either way, so the chain verifies across
   the cut as before.

The application role (audit_writer) can never delete; the person running retention needs the
owner role, which is the point: deletion is a deliberate, recorded act.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg

from madoguchi_shared import db
from madoguchi_shared import bus
from madoguchi_shared.events import parse_event
from madoguchi_shared.logging import get_logger
from madoguchi_shared.events.audit import ArchivedRecordsDeleted, ArchiveMade, CheckpointSigned

from madoguchi_audit import chain, checkpoints, verify
from madoguchi_audit.checkpoints import SERVICE_ACTOR
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.schema import OWNER, READER, RETENTION_FLAG

log = get_logger(__name__)


@dataclass
class ArchiveResult:
    archive_id: str
    path: Path
    from_position: int
    to_position: int
    records: int
    report: verify.Report
    deleted: bool = False
    partitions_dropped: tuple[str, ...] = ()  # day partitions removed whole


def _row_json(r: asyncpg.Record) -> dict:
    return {
        "position": r["position"],
        "stream": r["stream"],
        "stream_seq": r["stream_seq"],
        "subject": r["subject"],
        "parsed": r["parsed"],
        "event_id": str(r["event_id"]) if r["event_id"] else None,
        "type": r["type"],
        "occurred_at": r["occurred_at"].isoformat() if r["occurred_at"] else None,
        "municipality": r["municipality"],
        "ward": r["ward"],
        "desk": r["desk"],
        "actor_id": r["actor_id"],
        "actor_role": r["actor_role"],
        "device_id": r["device_id"],
        "correlation_id": str(r["correlation_id"]) if r["correlation_id"] else None,
        "data": base64.b64encode(bytes(r["data"])).decode(),
        "prev_hash": bytes(r["prev_hash"]).hex(),
        "hash": bytes(r["hash"]).hex(),
    }


def row_from_json(d: dict) -> chain.Row:
    """An archived record back as a verifier Row (the header rebuilt from its columns)."""
    values = (
        d["position"],
        d["stream"],
        d["stream_seq"],
        d["subject"],
        d["parsed"],
        UUID(d["event_id"]) if d["event_id"] else None,
        d["type"],
        datetime.fromisoformat(d["occurred_at"]) if d["occurred_at"] else None,
        d["municipality"],
        d["ward"],
        d["desk"],
        d["actor_id"],
        d["actor_role"],
        d["device_id"],
        UUID(d["correlation_id"]) if d["correlation_id"] else None,
        base64.b64decode(d["data"]),
        bytes.fromhex(d["prev_hash"]),
        bytes.fromhex(d["hash"]),
    )
    return chain.row_from_columns(values)


def read_archive(path: Path) -> tuple[dict, list[chain.Row], list[CheckpointSigned]]:
    manifest: dict = {}
    rows: list[chain.Row] = []
    cps: list[CheckpointSigned] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            kind = item.pop("kind")
            if kind == "archive":
                manifest = item
            elif kind == "record":
                rows.append(row_from_json(item))
            elif kind == "checkpoint":
                cp = parse_event(item["event"])
                if not isinstance(cp, CheckpointSigned):  # a ValueError, as a line that is not JSON
                    raise ValueError(f"{path}: a checkpoint line holds a {cp.type} event")
                cps.append(cp)
    return manifest, rows, cps


async def verify_archive(path: Path, keyring: dict, log_id: str) -> verify.Report:
    """Verify an archive file on its own: chain from its start head to its closing signed checkpoint."""
    manifest, rows, cps = read_archive(path)
    prev = bytes.fromhex(manifest["start_prev_hash"])
    report = await verify.verify_rows(rows, cps, keyring, log_id, start_position=manifest["from_position"], prev=prev)
    if report.ok and report.last_checkpoint != manifest["to_position"]:
        report.ok = False
        report.fault = verify.Fault(
            "truncated", manifest["to_position"], "the archive does not end on a matching signed checkpoint"
        )
    if report.ok and manifest["from_position"] > 1:
        trusted, _ = verify.trusted_checkpoints(cps, keyring, log_id)
        if trusted.get(manifest["from_position"] - 1) != prev:
            report.ok = False
            report.fault = verify.Fault(
                "chain_replaced",
                manifest["from_position"],
                "the archive's start is not vouched for by a signed checkpoint",
            )
    return report


async def archive(
    conn: db.Connection,
    settings: AuditSettings,
    js=None,
    *,
    now: datetime | None = None,
    delete: bool = False,
    retention_days: int | None = None,
) -> ArchiveResult | None:
    """Archive (and optionally delete) what is older than the retention period. None = nothing to do."""
    days = settings.retention_days if retention_days is None else retention_days
    if days <= 0:
        return None
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    q = f'"{settings.schema_name}"'
    keyring = checkpoints.load_keyring(settings)
    found = await checkpoints.gather(settings, conn)
    trusted, _ = verify.trusted_checkpoints(found, keyring, settings.log_id)
    first = await conn.fetchval(f"SELECT min(position) FROM {q}.log")
    if first is None:
        return None
    ends = await conn.fetch(
        f"SELECT position, signed_at FROM {q}.checkpoint WHERE position >= $1 AND signed_at < $2 "
        "ORDER BY position DESC",
        first,
        cutoff,
    )
    end = next((r["position"] for r in ends if r["position"] in trusted), None)
    if end is None:
        return None
    start_prev = chain.GENESIS if first == 1 else trusted.get(first - 1)
    if start_prev is None:
        raise RuntimeError(f"the table starts at {first} but no signed checkpoint vouches for {first - 1}")

    archive_id = f"{settings.log_id}-{first}-{end}"
    folder = settings.resolved_archive_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{settings.log_id}-{first:012d}-{end:012d}.jsonl.gz"
    in_range = [cp for cp in found if cp.log_id == settings.log_id and first - 1 <= cp.position <= end]
    unique = {(cp.position, cp.signature): cp for cp in in_range}
    count = 0
    tmp = path.with_suffix(".tmp")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "kind": "archive",
                        "log_id": settings.log_id,
                        "from_position": first,
                        "to_position": end,
                        "start_prev_hash": start_prev.hex(),
                        "created_at": now.isoformat(),
                        "retention_days": days,
                    }
                )
                + "\n"
            )
            cursor = await conn.cursor(
                f"SELECT * FROM {q}.log WHERE position BETWEEN $1 AND $2 ORDER BY position", first, end
            )
            while rows := await cursor.fetch(10_000):
                for r in rows:
                    f.write(json.dumps({"kind": "record", **_row_json(r)}) + "\n")
                count += len(rows)
            for cp in sorted(unique.values(), key=lambda c: c.position):
                f.write(json.dumps({"kind": "checkpoint", "event": json.loads(cp.model_dump_json())}) + "\n")
    with open(tmp, "rb") as f:  # noqa: ASYNC230 - fsync of the local file just written, before the rename
        os.fsync(f.fileno())
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    report = await verify_archive(path, keyring, settings.log_id)
    result = ArchiveResult(archive_id, path, first, end, count, report)
    if not report.ok or count != end - first + 1:
        return result  # never delete what did not verify; the caller reports it
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {OWNER}")
        await conn.execute(
            f"""INSERT INTO {q}.archive (archive_id, from_position, to_position, records, checkpoint_position,
                    checkpoint_head, file_name, file_sha256, verified)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true) ON CONFLICT (archive_id) DO NOTHING""",
            archive_id,
            first,
            end,
            count,
            end,
            trusted[end],
            path.name,
            digest,
        )
    if js is not None:
        await bus.append(
            js,
            ArchiveMade(
                municipality=settings.municipality,
                actor=SERVICE_ACTOR,
                archive_id=archive_id,
                log_id=settings.log_id,
                from_position=first,
                to_position=end,
                records=count,
                checkpoint_position=end,
                checkpoint_head=trusted[end].hex(),
                file_name=path.name,
                file_sha256=digest,
                retention_days=days,
                older_than=cutoff,
            ),
        )
    if delete:
        try:
            result.partitions_dropped = await _remove(conn, q, archive_id, (first, end), count, cutoff)
            result.deleted = True
        except _Mismatch as exc:
            log.error("audit.retention_not_deleted", detail=str(exc))
            return result
        if js is not None:
            await bus.append(
                js,
                ArchivedRecordsDeleted(
                    municipality=settings.municipality,
                    actor=SERVICE_ACTOR,
                    archive_id=archive_id,
                    log_id=settings.log_id,
                    from_position=first,
                    to_position=end,
                    records=count,
                ),
            )
    return result


class _Mismatch(Exception):
    """The records about to be removed are not exactly the archive's: the transaction is rolled back."""


_PARTITION = re.compile(r"log_([0-9]{8})")


async def _remove(
    conn: db.Connection, q: str, archive_id: str, span: tuple[int, int], count: int, cutoff: datetime
) -> tuple[str, ...]:
    """Remove the archived range [first, end] as the owner: whole day partitions older than the cutoff that hold
    only archived records (or none) are dropped, the rest of the range is deleted row by row through the trigger.
    Returns the partitions dropped; raises _Mismatch (nothing removed) unless exactly `count` records went."""
    first, end = span
    dropped: list[str] = []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {OWNER}")
        await conn.execute(f"SET LOCAL {RETENTION_FLAG} = 'verified-archive'")
        removed = 0
        parts = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = $1::regclass ORDER BY c.relname",
            f"{q}.log",
        )
        for part in parts:
            name = part["relname"]
            m = _PARTITION.fullmatch(name)
            if m is None or datetime.strptime(m.group(1), "%Y%m%d").date() >= cutoff.astimezone(UTC).date():
                continue
            low, high, n = await db.fetch_one(conn, f'SELECT min(position), max(position), count(*) FROM {q}."{name}"')
            if n == 0 or (low >= first and high <= end):
                await conn.execute(f'DROP TABLE {q}."{name}"')
                dropped.append(name)
                removed += n
        status = await conn.execute(f"DELETE FROM {q}.log WHERE position BETWEEN $1 AND $2", first, end)
        removed += int(status.split()[-1])
        if removed != count:
            raise _Mismatch(f"{removed} records would go for an archive of {count}")
        await conn.execute(f"UPDATE {q}.archive SET deleted_at = now() WHERE archive_id = $1", archive_id)
    return tuple(dropped)
