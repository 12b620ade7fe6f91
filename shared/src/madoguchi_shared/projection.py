"""The consumer runner for projections: exactly-once effects (ARCHITECTURE.md rule 3).

A projection reads a stream in batches with an ack-less pull consumer started just after the
position it stored; it applies a batch and stores the new position in the same PostgreSQL
transaction. A redelivered or replayed message at or below the stored position is skipped, so
restarts and replays never double-count. A message that is not a valid event goes to the
dead-letter stream with the reason, and the position moves past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import api
from pydantic import ValidationError

from madoguchi_shared import subjects
from madoguchi_shared.bus import Stored
from madoguchi_shared.events import Event, parse_event
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

Apply = Callable[[asyncpg.Connection, Sequence[Stored]], Awaitable[None]]


@dataclass
class Projection:
    """One projection: a name, the stream and filters it reads, and how it applies a batch.

    `apply` gets the batch's parsed events (already de-duplicated against the stored position)
    inside the transaction that will store the position. `schema` holds projection_checkpoint.
    """

    name: str
    stream: str
    filter_subjects: Sequence[str]
    apply: Apply
    schema: str
    batch: int = 1000
    accepts: Callable[[Event], bool] = lambda _e: True
    # runtime state
    position: int = 0
    stream_last_seq: int = 0
    applied: int = 0
    dead_lettered: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def lag(self) -> int:
        """Messages in the stream past the stored position (all subjects of the stream)."""
        return max(0, self.stream_last_seq - self.position)

    async def stored_position(self, conn: asyncpg.Connection) -> int:
        row = await conn.fetchval(
            f'SELECT last_seq FROM "{self.schema}".projection_checkpoint WHERE name = $1', self.name
        )
        return row or 0

    async def reset(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f'DELETE FROM "{self.schema}".projection_checkpoint WHERE name = $1', self.name)
        self.position = 0

    def stop(self) -> None:
        self._stop.set()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the projection has caught up with the stream (for tests and rebuilds)."""
        self._idle.clear()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self, nc: NATS, pool: asyncpg.Pool, *, from_seq: int | None = None) -> None:
        """Run until stop(). `from_seq` forces a start (a replay); the stored position still rules."""
        js = nc.jetstream()
        async with pool.acquire() as conn:
            self.position = await self.stored_position(conn)
        start = from_seq if from_seq is not None else self.position + 1
        psub = await self._subscribe(js, start)
        log.info("projection.started", projection=self.name, position=self.position, start=start)
        try:
            while not self._stop.is_set():
                try:
                    msgs = await psub.fetch(self.batch, timeout=0.5)
                except TimeoutError:
                    msgs = []
                except Exception as exc:  # a lost connection: nats-py reconnects; try again
                    log.warning("projection.fetch_failed", projection=self.name, error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                if msgs:
                    self.stream_last_seq = max(
                        self.stream_last_seq, msgs[-1].metadata.sequence.stream + msgs[-1].metadata.num_pending
                    )
                    await self.handle(nc, pool, msgs)
                else:
                    await self._refresh_last_seq(js)
                    self._idle.set()  # nothing left for this filter: caught up
        finally:
            try:
                await psub.unsubscribe()
            except Exception:  # noqa: BLE001 - shutting down, the server may be gone
                pass
            log.info("projection.stopped", projection=self.name, position=self.position)

    async def _refresh_last_seq(self, js) -> None:
        try:
            info = await js.stream_info(self.stream)
            self.stream_last_seq = info.state.last_seq
        except Exception:  # noqa: BLE001
            pass

    async def _subscribe(self, js, start: int):
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=60.0,
            filter_subjects=list(self.filter_subjects) if len(self.filter_subjects) > 1 else None,
            filter_subject=self.filter_subjects[0] if len(self.filter_subjects) == 1 else None,
            max_waiting=1,
        )
        return await js.pull_subscribe(self.filter_subjects[0], stream=self.stream, config=config)

    async def handle(self, nc: NATS, pool: asyncpg.Pool, msgs) -> None:
        """Apply one fetched batch exactly once: parse, dead-letter the bad, apply, store position."""
        good: list[Stored] = []
        last = self.position
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if seq <= self.position:
                continue  # already applied: a redelivery or a replay
            last = max(last, seq)
            try:
                event = parse_event(msg.data)
            except Exception as exc:  # noqa: BLE001 - any parse failure is a dead letter
                await dead_letter(nc, self.name, msg.subject, seq, msg.data, exc)
                self.dead_lettered += 1
                continue
            if self.accepts(event):
                good.append(Stored(seq, event))
        if last == self.position:
            return
        async with pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                f'SELECT last_seq FROM "{self.schema}".projection_checkpoint WHERE name = $1 FOR UPDATE', self.name
            )
            if stored is not None and stored >= last:
                self.position = stored  # another replica got there first
                return
            if stored is not None and stored > self.position:
                good = [s for s in good if s.seq > stored]
            if good:
                await self.apply(conn, good)
            await conn.execute(
                f"""INSERT INTO "{self.schema}".projection_checkpoint(name, last_seq, updated_at)
                    VALUES ($1, $2, now())
                    ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()""",
                self.name,
                last,
            )
        self.position = last
        self.applied += len(good)


def describe_error(exc: Exception) -> str:
    """A reason that never echoes the message's content (it may hold text we refused to store)."""
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:10]]
        return ("ValidationError: " + "; ".join(parts))[:2000]
    return f"{type(exc).__name__}: {exc}"[:500]


async def dead_letter(nc: NATS, consumer: str, subject: str, seq: int, data: bytes, exc: Exception) -> None:
    """Publish a message that could not be read to mg.dlq.<consumer>, with the reason (deduplicated)."""
    reason = describe_error(exc)
    headers = {
        "Nats-Msg-Id": f"{consumer}:{seq}",
        "Mg-Reason": reason.replace("\n", " ").replace("\r", " "),
        "Mg-Original-Subject": subject,
        "Mg-Original-Seq": str(seq),
        "Mg-Dead-At": str(time.time()),
    }
    await nc.jetstream().publish(subjects.dlq_subject(consumer), data, headers=headers)
    log.warning("projection.dead_letter", consumer=consumer, subject=subject, seq=seq, reason=reason[:200])
