"""The batch's transaction (as audit_writer): the chained rows COPY'd into the log, the event ids into event_first
(their duplicates named), every stream's position, the chain head and the auditors' hour runs in one statement,
and the checkpoint signed over the batch, vouched for and stored; then the export of the signed checkpoints to the
file and JetStream (the trusted copies)."""

from __future__ import annotations

import asyncio
import functools

from nats.js.client import JetStreamContext

from madoguchi_shared import bus, db
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.audit import CheckpointSigned
from madoguchi_shared.logging import get_logger

from madoguchi_audit import chain, checkpoints, keys
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.ingest.batch import Prepared
from madoguchi_audit.ingest.failclosed import Tampered
from madoguchi_audit.schema import SPAN_GAP, WRITER

log = get_logger(__name__)


def _q(schema: str, table: str) -> str:
    return f'"{schema}".{table}'


def batch_sql(schema: str) -> str:
    """The batch's bookkeeping in one statement (one round trip): every stream's last sequence and the position of
    its record (the fail-closed check looks there, schema.STREAM_POSITION_SQL), the head (moved
    only if it still holds the position the batch was chained from), the auditors' hour runs and the
    duplicates. Returns the number of heads moved (1, or 0 when another writer moved it)."""
    q = functools.partial(_q, schema)
    return f"""WITH
        c AS (INSERT INTO {q("ingest_checkpoint")} AS ic (stream, last_seq, last_position, updated_at)
              SELECT s, n, p, now() FROM unnest($4::text[], $5::bigint[], $14::bigint[]) AS u(s, n, p)
              ON CONFLICT (stream) DO UPDATE
              SET last_seq = EXCLUDED.last_seq, last_position = EXCLUDED.last_position, updated_at = now()
              WHERE ic.last_seq < EXCLUDED.last_seq
              RETURNING 1),
        h AS (UPDATE {q("chain_head")} SET position = $2, hash = $3
              WHERE log_id = $1 AND position = $6 RETURNING 1),
        -- The auditors' time filter: each hour's runs of positions (schema.HOUR_RUNS_SQL). The batch's span of
        -- an hour extends the hour's last run unless it starts more than SPAN_GAP after it (a late record):
        -- then it is a run of its own.
        sb AS (SELECT * FROM unnest($7::text[], $8::timestamptz[], $9::bigint[], $10::bigint[])
               AS b(municipality, hour, first_position, last_position)),
        cur AS (SELECT DISTINCT ON (s.municipality, s.hour) s.municipality, s.hour, s.first_position,
                       s.last_position
                FROM {q("hour_span")} s JOIN sb USING (municipality, hour)
                ORDER BY s.municipality, s.hour, s.first_position DESC),
        grown AS (UPDATE {q("hour_span")} s SET last_position = greatest(s.last_position, sb.last_position)
                  FROM sb JOIN cur USING (municipality, hour)
                  WHERE s.municipality = sb.municipality AND s.hour = sb.hour
                    AND s.first_position = cur.first_position
                    AND sb.first_position - cur.last_position <= $11
                  RETURNING s.municipality, s.hour),
        runs AS (INSERT INTO {q("hour_span")} (municipality, hour, first_position, last_position)
                 SELECT * FROM sb WHERE NOT EXISTS (
                     SELECT 1 FROM grown g WHERE g.municipality = sb.municipality AND g.hour = sb.hour)),
        -- Duplicates, found by _commit (the batch's ids looked up in event_first, and its own repeats): the
        -- record's position and the position that first carried its event id.
        dup AS (INSERT INTO {q("duplicate")} (position, first_position)
                SELECT * FROM unnest($12::bigint[], $13::bigint[]))
        SELECT (SELECT count(*) FROM h)"""


async def write_batch(conn: db.Connection, schema: str, log_id: str, p: Prepared) -> None:
    """One batch, one transaction as audit_writer: records, stream positions, head, maybe a checkpoint.

    Six round trips (BEGIN; the role and the partitions; the COPY; the batch's event ids looked up in
    event_first; the COPY of the new ones into it; the bookkeeping statement) and COMMIT."""
    firsts, repeats = p.firsts, p.repeats
    span_keys, span_ends = list(p.spans), list(p.spans.values())
    async with conn.transaction():
        # The partition of the database's today and the next days exist (a look; made when the clock
        # reached a day without one: schema.PARTITION_BY_DAY_SQL), so the COPY never misses a partition.
        await conn.execute(f"SET LOCAL ROLE {WRITER}; SELECT {_q(schema, 'ensure_log_ahead')}()")
        await conn.copy_records_to_table("log", schema_name=schema, records=p.rows, columns=chain.COLUMNS)
        # Each event id's first position is in event_first (one row per id, schema.WRITER_COST_SQL): the ids
        # already there are duplicates of that record; the others go in (a plain COPY: one index insertion
        # each, and a unique violation, not a silent skip, if anything but this writer had put one there).
        known = await known_ids(conn, schema, list(firsts))
        dups = [(pos, known[eid] if eid in known else firsts[eid]) for pos, eid in repeats]
        dups += [(firsts[eid], first) for eid, first in known.items()]
        new = [(eid, pos) for eid, pos in firsts.items() if eid not in known]
        if new:
            await conn.copy_records_to_table("event_first", schema_name=schema, records=new)
        moved = await conn.fetchval(
            batch_sql(schema),
            log_id,
            p.position,
            p.head,
            list(p.moved),
            list(p.moved.values()),
            p.rows[0][0] - 1,
            [k[0] for k in span_keys],
            [k[1] for k in span_keys],
            [e[0] for e in span_ends],
            [e[1] for e in span_ends],
            SPAN_GAP,
            [d[0] for d in dups],
            [d[1] for d in dups],
            [p.moved_at[stream] for stream in p.moved],
        )
        if not moved:
            raise RuntimeError("audit chain head moved under the writer: another writer without the lock?")
        if p.checkpoint is not None:
            await vouch(conn, schema, p.checkpoint)
            await insert_checkpoint(conn, schema, p.checkpoint)


async def known_ids(conn: db.Connection, schema: str, ids: list[str]) -> dict[str, int]:
    """Of a batch's event ids, those event_first holds, with the position of the record that first carried each."""
    if not ids:
        return {}
    found = await conn.fetch(
        f"SELECT event_id::text, position FROM {_q(schema, 'event_first')} WHERE event_id = ANY($1::uuid[])", ids
    )
    return {r[0]: r[1] for r in found}


async def vouch(conn: db.Connection, schema: str, cp: CheckpointSigned) -> None:
    """Before a checkpoint is stored: every record it vouches for since the last one is there, unchanged at both ends."""
    low = cp.previous_position
    count, low_hash, top_hash = await db.fetch_one(
        conn,
        f"""SELECT count(*), (SELECT hash FROM {_q(schema, "log")} WHERE position = $1),
                   (SELECT hash FROM {_q(schema, "log")} WHERE position = $2)
            FROM {_q(schema, "log")} WHERE position > $1 AND position <= $2""",
        low,
        cp.position,
    )
    want_low = (
        await conn.fetchval(f"SELECT head FROM {_q(schema, 'checkpoint')} WHERE position = $1", low) if low else None
    )
    if (
        count != cp.position - low
        or (top_hash is not None and bytes(top_hash).hex() != cp.head)
        or (low and (low_hash is None or want_low is None or bytes(low_hash) != bytes(want_low)))
    ):
        raise Tampered(
            f"records {low + 1}..{cp.position} are not all there ({count}) or the signed one changed",
            f"署名しようとした範囲（位置 {low + 1}〜{cp.position}）の記録が欠けているか変更されています",
        )


async def insert_checkpoint(conn: db.Connection, schema: str, cp: CheckpointSigned) -> None:
    await conn.execute(
        f"""INSERT INTO {_q(schema, "checkpoint")}
            (position, log_id, head, signed_at, key_id, previous_position, event)
            VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        cp.position,
        cp.log_id,
        bytes.fromhex(cp.head),
        cp.signed_at,
        cp.key_id,
        cp.previous_position,
        cp.model_dump_json().encode(),
    )


async def export(
    conn: db.Connection, settings: AuditSettings, js: JetStreamContext, key: checkpoints.SigningKey | None
) -> None:
    """Copy checkpoints not yet exported to the file, then to JetStream; then mark them."""
    rows = await conn.fetch(
        f"SELECT position, event FROM {_q(settings.schema_name, 'checkpoint')} WHERE NOT exported ORDER BY position"
    )
    if not rows:
        return
    events = [parse_event(bytes(r["event"])) for r in rows]
    ring = {key.key_id: key.public} if key else {}
    ring |= keys.load_keyring(settings)
    signed: list[CheckpointSigned] = []
    for event in events:
        if not isinstance(event, CheckpointSigned) or not checkpoints.signature_ok(event, ring):
            raise Tampered(
                f"the checkpoint outbox holds a checkpoint at {getattr(event, 'position', '?')} "
                "that no trusted key signed",
                "データベース内の未送信チェックポイントに正しい署名がありません",
            )
        signed.append(event)
    # fsynced in a worker thread: the event loop goes on meanwhile (the pulls, the next batch's chaining, the
    # API), where a disk's flush had stopped all of it for tens of milliseconds per checkpoint
    await asyncio.to_thread(checkpoints.append_to_file, settings.resolved_checkpoint_file, signed)
    try:
        for event in signed:
            await bus.append(js, event)
    except Exception as exc:  # noqa: BLE001 - the bus is down: the file has them, retry later
        log.warning("audit.checkpoint_publish_failed", error=str(exc))
        return
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {WRITER}")
        await conn.execute(
            f"UPDATE {_q(settings.schema_name, 'checkpoint')} SET exported = true WHERE position = ANY($1)",
            [r["position"] for r in rows],
        )
