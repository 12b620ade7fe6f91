"""The consumer runner for projections: exactly-once effects (ARCHITECTURE.md rule 3), poison isolated.

A projection reads one stream with the one reader (`madoguchi_shared.reader`: an ack-less pull
from just after the position it stored); it applies a batch and stores the new position in the
same PostgreSQL transaction. A message at or below the stored position is skipped, so restarts and
replays never double-count.

Two kinds of failure, told apart (`is_transient`):

- **transient** (the database is down or restarting, a connection was lost, a serialization
  failure, a lock to wait for): the batch is retried with backoff (0.5 s doubling to 30 s),
  nothing is dead-lettered, the position does not move;
- **poison** (anything else: a value the tables cannot hold, a constraint, a bug in one handler):
  the batch is bisected inside the transaction (a savepoint per half) until the failing event(s)
  are found; the rest is applied; each failing event goes to the dead-letter stream with its
  reason, is recorded in ``projection_dead_letter`` and the position moves past it in the same
  transaction, and an HQ alert (`audit.alert_raised`, rule ``projection_dead_letter``) goes out.
  Never a restart loop.

The stored position can go back behind what the runner committed: a batch's commit may be
asynchronous (the reporting projections' is), and a database killed with -9 loses its last commits,
each with its own position and effects (one transaction). The runner notices (the next batch's claim
finds the stored position behind its own, or the idle check does every 2 s) and reads again from the
stored position (`PositionLost`); it never claims from the stored position a batch that starts after it.
A rebuild also puts the stored position behind a live runner's: while it runs, `rebuild_guard` (a live
batch's check for the rebuild's lock) raises a `Transient` and the runner waits, reading nothing again;
the rebuild ends at or past the runner's position. Reading again is right in both cases (the stored
position is always that of the tables), waiting during a rebuild only spares reading the stream twice.

Duplicates by event id (ARCHITECTURE rule 8): a desk laptop's outbox may send an event again after
the stream's duplicate window (a kill -9 between the ack and the delete, then a night off), and the
stream then holds it twice under two sequences. Every batch records the event ids it applies in
``projection_applied_event`` (one INSERT .. ON CONFLICT DO NOTHING RETURNING per batch, in the
transaction that stores the position) and applies only the ids that were new: a re-send counts once.
The ids are kept `dedupe_days` (by the UUIDv7's own time, pruned while the projection is caught up),
which must exceed the longest time an event can wait in an outbox.

A message that is not a valid event is a dead letter at once (the reason never echoes content).
Dead letters can be replayed after a fix (`madoguchi dlq replay`): a request on
``mg.dlq.replay.<projection>`` makes the runner apply the original message from the stream of
record again (see `replay_pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from madoguchi_shared import db
from madoguchi_shared import subjects
from madoguchi_shared.bus import Stored
from madoguchi_shared.events import Event
from madoguchi_shared.dlq import ALERT_RULE, dead_letter, describe_error, raise_alert
from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import jetstream
from madoguchi_shared.projection_store import (
    APPLIED_EVENTS_SQL,
    CLAIM_SQL,
    DEAD_LETTERS_SQL,
    Transient,
    forget_applied,
    is_transient,
    replay_pending,
    store_position,
    uuid7_floor,
)
from madoguchi_shared.projection_batch import Prepared, parse
from madoguchi_shared.reader import Reader, StoredMessage

log = get_logger(__name__)


Apply = Callable[[db.Connection, Sequence[Stored]], Awaitable[None]]
Guard = Callable[[db.Connection], Awaitable[None]]

BACKOFF_MAX = 30.0
DEDUPE_DAYS = 62.0  # applied event ids kept (by event time): longer than any outbox waits
PRUNE_EVERY = 600.0  # seconds between prunes of old applied ids (only while caught up)


class PositionLost(Exception):
    """The stored position is behind the one this runner committed last: commits it made were lost
    (an asynchronous commit and a database crash, a restored backup), or a rebuild that no longer runs
    left it there. Read again from the stored position."""

    def __init__(self, stored: int, committed: int):
        super().__init__(f"stored position {stored} behind the committed {committed}")
        self.stored = stored
        self.committed = committed


@dataclass
class Projection:
    """One projection: a name, the stream and filters it reads, and how it applies a batch.

    `apply` gets the batch's parsed events (already de-duplicated against the stored position),
    in stream order, inside the transaction that will store the position. `schema` holds
    projection_checkpoint and projection_dead_letter. `rebuild_guard` (a live projection's) raises a
    `Transient` while a rebuild holds the projection's tables.
    """

    name: str
    stream: str
    filter_subjects: Sequence[str]
    apply: Apply
    schema: str
    batch: int = 1000
    lag_threshold: int = 10_000  # /readyz: more than this behind the stream is "behind"
    dedupe_days: float = DEDUPE_DAYS
    rebuild_guard: Guard | None = None
    # runtime state
    position: int = 0
    stream_last_seq: int = 0
    applied: int = 0
    dead_lettered: int = 0
    transient_failures: int = 0
    duplicates: int = 0  # events skipped because their event id was applied before (an outbox re-send)
    positions_lost: int = 0  # times the stored position went back behind this runner's and it read again
    last_error: str | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _replay_checked: float = 0.0
    _pruned: float = 0.0

    @property
    def lag(self) -> int:
        """Messages in the stream past the stored position (all subjects of the stream)."""
        return max(0, self.stream_last_seq - self.position)

    def health(self) -> dict[str, Any]:
        """What /readyz shows: ok, or why not (behind the stream, dead letters since start)."""
        status = "ok"
        if self.lag > self.lag_threshold:
            status = "behind"
        elif self.dead_lettered:
            status = "dead_lettered"
        return {
            "status": status,
            "position": self.position,
            "behind": self.lag,
            "dead_lettered": self.dead_lettered,
            "transient_failures": self.transient_failures,
            "duplicates": self.duplicates,
            "positions_lost": self.positions_lost,
        }

    def _q(self, table: str) -> str:
        return f'"{self.schema}".{table}'

    async def stored_position(self, conn: db.Connection) -> int:
        row = await conn.fetchval(f"SELECT last_seq FROM {self._q('projection_checkpoint')} WHERE name = $1", self.name)
        return row or 0

    async def reset(self, conn: db.Connection) -> None:
        """Forget the position and the dead letters (a rebuild replays everything)."""
        await conn.execute(
            f"DELETE FROM {self._q('projection_checkpoint')} WHERE name = $1 OR name = $2",
            self.name,
            self.replay_checkpoint,
        )
        await conn.execute(f"DELETE FROM {self._q('projection_dead_letter')} WHERE name = $1", self.name)
        await forget_applied(conn, self.schema, self.name)
        self.position = 0

    @property
    def replay_checkpoint(self) -> str:
        return f"{self.name}.replay"

    def stop(self) -> None:
        self._stop.set()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the projection has caught up with the stream (for tests and rebuilds)."""
        self._idle.clear()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def ensure_tables(self, conn: db.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"dead-letters:{self.schema}")
            await conn.execute(DEAD_LETTERS_SQL.format(schema=self.schema))
            await conn.execute(APPLIED_EVENTS_SQL.format(schema=self.schema))

    async def target(self, js: JetStreamContext) -> int:
        """The last sequence this projection must reach: the stream's last message on its filters."""
        info = await js.stream_info(self.stream)
        last = info.state.last_seq
        if list(self.filter_subjects) == [subjects.stream_filter(self.stream)]:
            return last
        best = 0
        for f in self.filter_subjects:
            try:
                msg = await js.get_last_msg(self.stream, f, direct=True)
                best = max(best, msg.seq or 0)
            except Exception:  # noqa: BLE001 - nothing on the filter
                pass
        return best

    # ------------------------------------------------------------------ running
    async def run(self, nc: NATS, pool: asyncpg.Pool, *, from_seq: int | None = None) -> None:
        """Run until stop(). `from_seq` forces a start (a replay); the stored position still rules."""
        while True:
            try:
                await self._run(nc, pool, from_seq=from_seq)
                return
            except PositionLost as exc:  # commits lost with a database crash: read them again
                self.positions_lost += 1
                log.warning(
                    "projection.position_lost", projection=self.name, stored=exc.stored, committed=exc.committed
                )
                from_seq = None

    async def _run(self, nc: NATS, pool: asyncpg.Pool, *, from_seq: int | None) -> None:
        async with pool.acquire() as conn:
            await self.ensure_tables(conn)
            self.position = await self.stored_position(conn)
        start = from_seq if from_seq is not None else self.position + 1
        log.info("projection.started", projection=self.name, position=self.position, start=start)
        # Batches are committed one after the other, in stream order; the next batch is read and
        # parsed while the database works on the one before (`committing`).
        committing: asyncio.Task[None] | None = None
        try:
            async with Reader(
                nc, self.stream, self.filter_subjects, start_seq=max(1, start), batch=self.batch
            ) as reader:
                prepared = self.position
                while not self._stop.is_set():
                    msgs = await reader.next_batch(timeout=0.5)
                    if msgs:
                        self.stream_last_seq = max(self.stream_last_seq, msgs[-1].seq + msgs[-1].pending)
                        batch = await parse(msgs, max(prepared, self.position))
                        if batch is not None:
                            prepared = batch.last
                            if committing is not None:
                                await committing
                            committing = asyncio.create_task(self._retrying(partial(self.commit, nc, pool, batch)))
                        continue
                    if committing is not None:
                        committing, done = None, committing
                        await done
                        continue  # the stop flag and the stream again, then idle
                    await self._refresh_last_seq(nc)
                    if time.monotonic() - self._replay_checked > 2.0:
                        self._replay_checked = time.monotonic()
                        await self._retrying(lambda: self._check_position(pool))
                        await self._retrying(lambda: replay_pending(self, nc, pool))
                    if time.monotonic() - self._pruned > PRUNE_EVERY:
                        self._pruned = time.monotonic()
                        await self._retrying(lambda: self.prune_applied(pool))
                    self._idle.set()  # nothing left for this filter: caught up
                if committing is not None:
                    await committing
        finally:
            if committing is not None and not committing.done():  # cancelled, or an error raised already
                committing.cancel()  # its transaction rolls back, as the batch of a killed process does
                await asyncio.gather(committing, return_exceptions=True)
            log.info("projection.stopped", projection=self.name, position=self.position)

    async def _check_position(self, pool: asyncpg.Pool) -> None:
        """PositionLost when the stored position went back behind this runner's and no rebuild runs (noticed
        while idle: no next batch's claim would notice it)."""
        async with pool.acquire() as conn, conn.transaction():
            stored = await self.stored_position(conn)
            if stored < self.position:
                try:
                    await self._behind(conn, stored)
                except Transient:
                    return  # a rebuild runs: look again later

    async def _behind(self, conn: db.Connection, stored: int) -> None:
        """The stored position is behind this runner's: a Transient while a rebuild runs (it ends at or past
        this runner's position), else PositionLost."""
        if self.rebuild_guard is not None:
            await self.rebuild_guard(conn)
        raise PositionLost(stored, self.position)

    async def _refresh_last_seq(self, nc: NATS) -> None:
        # The last message on this projection's filter, not the stream's: a projection of part of a
        # stream (the deliverables, a slice of MG_REPORT) is not behind the messages it never reads
        # (its /readyz said "behind 4442", and "behind" past lag_threshold, on a quiet system).
        try:
            self.stream_last_seq = await self.target(jetstream(nc))
        except Exception:  # noqa: BLE001
            pass

    async def _retrying(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` until it succeeds, waiting out transient failures with backoff; never on stop."""
        delay = 0.5
        while True:
            try:
                await step()
                self.last_error = None
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.transient_failures += 1
                self.last_error = describe_error(exc)
                log.warning(
                    "projection.transient_failure", projection=self.name, error=self.last_error[:300], retry_in=delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    raise  # stopping: the batch is left for the next start
                delay = min(BACKOFF_MAX, delay * 2)

    async def commit(self, nc: NATS, pool: asyncpg.Pool, batch: Prepared) -> None:
        """Apply a prepared batch exactly once, storing the position with it; a batch that fails for
        a reason other than a transient one is applied again isolating the poison (`_isolate`)."""
        async with pool.acquire() as conn:
            try:
                done = await self._transaction(nc, conn, batch, isolate=False)
            except Exception as exc:
                if is_transient(exc) or isinstance(exc, PositionLost):
                    raise
                log.warning(
                    "projection.batch_failed",
                    projection=self.name,
                    events=len(batch.good),
                    error=describe_error(exc)[:300],
                )
                done = await self._transaction(nc, conn, batch, isolate=True)
        if done is None:
            return  # another replica got there first
        applied, dead, skipped = done
        self.position = batch.last
        self.applied += applied
        self.dead_lettered += dead
        self.duplicates += skipped

    async def _transaction(
        self, nc: NATS, conn: db.Connection, batch: Prepared, *, isolate: bool
    ) -> tuple[int, int, int] | None:
        """One transaction: claim the position (locking it) and the batch's event ids, skip what is
        applied (by position, by event id), apply (isolating poison), dead-letter. The position is
        stored in the same transaction. None when the stored position was past the batch."""
        good, bad, last = batch.good, batch.bad, batch.last
        async with conn.transaction():
            # duplicates by event id (an outbox re-send): the ids this projection never applied
            first: dict[UUID, Stored] = {}
            for s in good:
                first.setdefault(s.event.event_id, s)
            claim = CLAIM_SQL.format(schema=self.schema)
            row = await conn.fetchrow(claim, self.name, self.position, last, db.json_rows(list(first)))
            if row is None or not row["claimed"]:  # the first batch, or another replica moved the position
                lock = f"SELECT last_seq FROM {self._q('projection_checkpoint')} WHERE name = $1 FOR UPDATE"
                stored = await conn.fetchval(lock, self.name)
                if stored is None:  # a row to lock, so a second replica waits here instead of racing
                    await store_position(conn, self.schema, self.name, 0)
                    stored = await conn.fetchval(lock, self.name)
                if stored < self.position:  # commits lost (or a rebuild): this batch would start too late
                    await self._behind(conn, stored)
                if stored >= last:
                    self.position = stored
                    return None
                if stored > self.position:
                    good = [s for s in good if s.seq > stored]
                    bad = [b for b in bad if b[0].seq > stored]
                    first = {}
                    for s in good:
                        first.setdefault(s.event.event_id, s)
                row = await conn.fetchrow(claim, self.name, stored, last, db.json_rows(list(first)))  # locked: claimed
            seen: set[UUID] = set(row["seen"]) if row is not None else set()
            total = len(good)
            if seen or len(first) < total:
                good = [s for s in good if s.event.event_id not in seen and first[s.event.event_id] is s]
                log.warning("projection.duplicate_events_skipped", projection=self.name, skipped=total - len(good))
            failed: list[tuple[Stored, BaseException]] = []
            if good and not isolate:
                await self.apply(conn, good)
            elif good:
                await self._isolate(conn, good, failed)
            dead = bad + [(batch.message(s.seq), s.event, exc) for s, exc in failed]
            for msg, event, exc in sorted(dead, key=lambda d: d[0].seq):
                await self._dead_letter(nc, conn, msg, event, exc)
            return len(good) - len(failed), len(dead), total - len(good)

    async def prune_applied(self, pool: asyncpg.Pool) -> int:
        """Forget applied event ids older than `dedupe_days` (by the id's own time)."""
        async with pool.acquire() as conn:
            done = await conn.execute(
                f"DELETE FROM {self._q('projection_applied_event')} WHERE name = $1 AND event_id < $2",
                self.name,
                uuid7_floor(time.time() - self.dedupe_days * 86400),
            )
        return int(done.split()[-1])

    async def _isolate(
        self, conn: db.Connection, items: list[Stored], failed: list[tuple[Stored, BaseException]]
    ) -> None:
        """Apply `items`, bisecting (a savepoint per part) down to the events that fail on their own."""
        try:
            async with conn.transaction():
                await self.apply(conn, items)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(items) == 1:
                failed.append((items[0], exc))
                return
            mid = len(items) // 2
            await self._isolate(conn, items[:mid], failed)
            await self._isolate(conn, items[mid:], failed)

    async def _dead_letter(
        self, nc: NATS, conn: db.Connection, msg: StoredMessage, event: Event | None, exc: BaseException
    ) -> None:
        reason = describe_error(exc)
        await dead_letter(nc, self.name, msg.subject, msg.seq, msg.data, exc)
        await conn.execute(
            f"""INSERT INTO {self._q("projection_dead_letter")}(name, seq, stream, subject, reason)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, seq) DO UPDATE
                SET reason = EXCLUDED.reason, dead_at = now(), replayed_at = NULL""",
            self.name,
            msg.seq,
            msg.stream,
            msg.subject,
            reason,
        )
        await raise_alert(nc, self.name, msg, event, reason)


from madoguchi_shared.projection_health import ProjectionMetrics, install_health  # noqa: E402 - re-exported

__all__ = [
    "Projection",
    "PositionLost",
    "forget_applied",
    "uuid7_floor",
    "APPLIED_EVENTS_SQL",
    "Prepared",
    "ProjectionMetrics",
    "install_health",
    "Stored",
    "Transient",
    "is_transient",
    "describe_error",
    "dead_letter",
    "raise_alert",
    "DEAD_LETTERS_SQL",
    "ALERT_RULE",
]
