"""Batch building: messages taken from the readers' buffer become chained COPY rows (exactly once, in the
writer's order) with what the batch's transaction needs beside them: each stream's new position, the hour runs
of the auditors' time filter, the batch's event ids and its own repeats."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from madoguchi_shared.events.audit import CheckpointSigned
from madoguchi_shared.reader import StoredMessage

from madoguchi_audit import chain

CHECKPOINT_TYPE = "audit.checkpoint_signed"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Records chained between two turns of the event loop: the transaction in flight (COPY, statements) and the
# readers go on while the next batch is chained, so PostgreSQL and Python work at the same time. Small: the COPY
# waits for a turn of the loop whenever the socket's buffer is full (with 1,000 a slice, the COPY of a batch was
# fed a socket buffer per slice and finished only after the next batch was chained).
CHAIN_SLICE = 200


_HOUR = timedelta(hours=1)


def day_spans(rows: list[tuple]) -> dict[tuple[str, datetime], list[int]]:
    """Per (municipality, UTC hour of occurred_at), the first and last position of a batch's rows (COPY rows)."""
    by_hour: dict[tuple[str, int], list[int]] = {}
    # each municipality's last hour [start, end) and its span: most records fall in their municipality's hour of
    # the record before (two comparisons instead of the hour's arithmetic and a tuple key)
    last: dict[str, tuple[datetime, datetime, list[int]]] = {}
    for r in rows:
        occurred, municipality = r[7], r[8]
        if occurred is None or municipality is None:
            continue
        hit = last.get(municipality)
        if hit is not None and hit[0] <= occurred < hit[1]:
            hit[2][1] = r[0]
            continue
        # hours since the epoch (an aware datetime: the envelope refuses others; timedelta // timedelta is exact)
        hour = (occurred - _EPOCH) // _HOUR
        key = (municipality, hour)
        span = by_hour.get(key)
        if span is None:
            span = by_hour[key] = [r[0], r[0]]
        else:
            span[1] = r[0]
        start = _EPOCH + hour * _HOUR
        last[municipality] = (start, start + _HOUR, span)
    return {(m, _EPOCH + h * _HOUR): span for (m, h), span in by_hour.items()}


@dataclass
class Prepared:
    """A batch chained in memory, ready for its transaction."""

    rows: list[tuple]
    position: int
    head: bytes
    moved: dict[str, int]  # stream -> last sequence after this batch
    moved_at: dict[str, int]  # stream -> the position of that stream's last record in this batch
    news: int  # records that are not our own checkpoints
    checkpoint: CheckpointSigned | None
    spans: dict[tuple[str, datetime], list[int]]  # (municipality, UTC hour of occurred_at) -> [first, last position]
    firsts: dict[str, int]  # event id -> the position of its first record in this batch
    repeats: list[tuple[int, str]]  # (position, event id) of the batch's own repeats of an event id


def event_ids(rows: list[tuple]) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """A batch's event ids at their first position in it, and its own repeats (COPY rows)."""
    firsts: dict[str, int] = {}
    repeats: list[tuple[int, str]] = []
    for r in rows:
        event_id = r[5]
        if event_id is not None:
            if event_id in firsts:
                repeats.append((r[0], event_id))
            else:
                firsts[event_id] = r[0]
    return firsts, repeats


async def prepare(batch: list[StoredMessage], seen: dict[str, int], position: int, head: bytes) -> Prepared | None:
    """Chain a batch after (position, head), exactly once: what is at or below a stream's position in `seen` is
    skipped, and `seen` moves to each stream's last sequence. No checkpoint yet (the writer decides and signs).

    In slices of CHAIN_SLICE records with a turn of the event loop between them: the batch before is
    committing meanwhile (its COPY and statements go on), so PostgreSQL does not wait for Python."""
    fresh: list[StoredMessage] = []
    moved: dict[str, int] = {}
    moved_at: dict[str, int] = {}
    for msg in batch:
        if msg.seq > seen.get(msg.stream, 0):
            seen[msg.stream] = moved[msg.stream] = msg.seq
            fresh.append(msg)
            moved_at[msg.stream] = position + len(fresh)
    if not fresh:
        return None
    rows: list[tuple] = []
    for i in range(0, len(fresh), CHAIN_SLICE):
        part, position, head = chain.chain_records(fresh[i : i + CHAIN_SLICE], position, head)
        rows += part
        await asyncio.sleep(0)
    news = sum(1 for r in rows if r[6] != CHECKPOINT_TYPE)
    return Prepared(rows, position, head, moved, moved_at, news, None, day_spans(rows), *event_ids(rows))
