"""The projection runner's own tables and the replays of dead letters (`madoguchi_shared.projection`).

Per schema: ``projection_checkpoint`` (the position, stored with the effects), ``projection_dead_letter``
(what was dead-lettered, with its reason) and ``projection_applied_event`` (the event ids applied, for
duplicates by event id). `replay_pending` applies the dead letters an operator asked to replay.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from nats.aio.client import Client as NATS

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.bus import Stored
from madoguchi_shared.dlq import describe_error
from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import jetstream
from madoguchi_shared.read_events import read_event
from madoguchi_shared.reader import read_all

if TYPE_CHECKING:
    from madoguchi_shared.projection import Projection

log = get_logger(__name__)

DEAD_LETTERS_SQL = """
CREATE TABLE IF NOT EXISTS "{schema}".projection_dead_letter (
    name text NOT NULL,
    seq bigint NOT NULL,
    stream text NOT NULL,
    subject text NOT NULL,
    reason text NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    PRIMARY KEY (name, seq)
)"""

APPLIED_EVENTS_SQL = """
CREATE TABLE IF NOT EXISTS "{schema}".projection_applied_event (
    name text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (name, event_id)
)"""


def uuid7_floor(epoch_seconds: float) -> UUID:
    """The smallest UUIDv7 of a moment: every UUIDv7 made before it sorts below it."""
    ms = max(0, int(epoch_seconds * 1000))
    return UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))


async def forget_applied(conn: db.Connection, schema: str, name: str | None = None) -> None:
    """Forget the applied event ids (of one projection, or all in `schema`) for a rebuild."""
    await conn.execute(APPLIED_EVENTS_SQL.format(schema=schema))
    if name is None:
        await conn.execute(f'TRUNCATE "{schema}".projection_applied_event')
    else:
        await conn.execute(f'DELETE FROM "{schema}".projection_applied_event WHERE name = $1', name)


# The runner's first statement of a batch, in one round trip: move the position from $2 (the one
# this runner stored last) to $3, which locks its row, and record the batch's event ids $4 (a JSON
# array, `db.json_rows`: asyncpg's uuid[] encoding is element by element in Python),
# returning those applied before (an outbox re-send; usually none). Nothing is done (claimed is
# false) when the stored position is not $2 (the first batch, another replica): the runner then
# locks the row and claims from the stored position. When it is, no other transaction can have
# recorded ids this statement's snapshot misses: any that did moved the position too (the UPDATE
# waited for the row lock, then found last_seq changed).
CLAIM_SQL = """
WITH ids AS (SELECT u::uuid AS u FROM jsonb_array_elements_text(convert_from($4::bytea, 'UTF8')::jsonb) AS t(u)),
     ck AS (UPDATE "{schema}".projection_checkpoint SET last_seq = $3, updated_at = now()
            WHERE name = $1 AND last_seq = $2 RETURNING 1),
     seen AS (SELECT event_id FROM "{schema}".projection_applied_event
              WHERE name = $1 AND event_id = ANY(ARRAY(SELECT u FROM ids))),
     ins AS (INSERT INTO "{schema}".projection_applied_event (name, event_id)
             SELECT $1, u FROM ids
             WHERE EXISTS (SELECT 1 FROM ck) AND u NOT IN (SELECT event_id FROM seen))
SELECT EXISTS (SELECT 1 FROM ck) AS claimed, array(SELECT event_id FROM seen) AS seen"""


async def store_position(conn: db.Connection, schema: str, name: str, last: int) -> None:
    await conn.execute(
        f"""INSERT INTO "{schema}".projection_checkpoint(name, last_seq, updated_at) VALUES ($1, $2, now())
            ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()""",
        name,
        last,
    )


class Transient(Exception):
    """Raised by an apply for a condition that passes (e.g. a rebuild holds the tables): retried."""


_TRANSIENT_SQLSTATE = ("08", "40", "53", "55", "57", "58")  # connection, rollback, resources, locks, shutdown


def is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the events: retry the batch, never dead-letter it."""
    if isinstance(exc, Transient | asyncpg.InterfaceError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", None) or "")[:2] in _TRANSIENT_SQLSTATE
    return False


def _table(p: Projection, table: str) -> str:
    """`table` of the projection's schema, quoted as the runner quotes it."""
    return f'"{p.schema}".{table}'


async def replay_pending(p: Projection, nc: NATS, pool: asyncpg.Pool) -> int:
    """Apply the dead letters an operator asked to replay (`madoguchi dlq replay`), once each."""
    async with pool.acquire() as conn:
        after = (
            await conn.fetchval(
                f"SELECT last_seq FROM {_table(p, 'projection_checkpoint')} WHERE name = $1", p.replay_checkpoint
            )
            or 0
        )
    done = 0
    js = jetstream(nc)
    if await bus.last_sequence(js, subjects.dlq_replay_subject(p.name)) <= after:
        return 0  # no request since the last look (one direct get, no consumer)
    async for req in read_all(nc, subjects.dlq_replay_subject(p.name), after + 1, stream="MG_DLQ", timeout=1.0):
        seq = int(json.loads(req.data)["seq"])
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""SELECT seq FROM {_table(p, "projection_dead_letter")} WHERE name = $1 AND seq = $2
                    AND replayed_at IS NULL FOR UPDATE""",
                p.name,
                seq,
            )
            if row is not None:
                original = await js.get_msg(p.stream, seq, direct=True)
                try:
                    async with conn.transaction():
                        await p.apply(conn, [Stored(seq, read_event(original.data or b""))])
                    await conn.execute(
                        f"""UPDATE {_table(p, "projection_dead_letter")} SET replayed_at = now()
                                           WHERE name = $1 AND seq = $2""",
                        p.name,
                        seq,
                    )
                    done += 1
                    log.info("projection.dead_letter_replayed", projection=p.name, seq=seq)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    await conn.execute(
                        f"""UPDATE {_table(p, "projection_dead_letter")} SET reason = $3
                                           WHERE name = $1 AND seq = $2""",
                        p.name,
                        seq,
                        "replay failed: " + describe_error(exc),
                    )
                    log.warning("projection.replay_failed", projection=p.name, seq=seq, error=describe_error(exc)[:300])
            await conn.execute(
                f"""INSERT INTO {_table(p, "projection_checkpoint")}(name, last_seq, updated_at) VALUES ($1, $2, now())
                    ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()""",
                p.replay_checkpoint,
                req.seq,
            )
    return done
