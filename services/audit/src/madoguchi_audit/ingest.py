"""The log writer: every message of every log stream, once, into audit.log, hash-chained.

Shape (ARCHITECTURE "Measured ceilings": raw pull + COPY is the fast path):

- one `RawPuller` per stream (MG_DESK, MG_CALLS, MG_DEVICE, MG_AUDIT, MG_ADMIN, MG_REPORT; not
  the DLQ): an ack-less ephemeral consumer started after the stream sequence stored for that
  stream, read with raw `$JS.API.CONSUMER.MSG.NEXT` requests kept two deep and a core
  subscription callback that only appends to one in-memory buffer;
- one writer loop drains the buffer in arrival order: that order, fixed by the writer, is the
  merge of the streams. Per batch, in ONE transaction as `audit_writer`: COPY the chained rows,
  move every stream's stored sequence and the chain head. Positions are head+1.. assigned inside
  that transaction, so they are gap-free and never reused (a failed transaction assigns none).
- Exactly once: a message whose sequence is at or below its stream's stored sequence is
  skipped, so a restart, a re-created consumer or a redelivery writes nothing twice. A session
  advisory lock makes a second replica wait as a standby instead of interleaving.
- Duplicate event ids (an outbox resend after the dedup window) are recorded: the log records
  what the bus holds, in bus order, and the auditors can see the resend (same event_id twice);
  dropping them here would make the log disagree with the stream it vouches for. Projections
  skip them by event id where it matters.
- Malformed messages are recorded too (parsed = false, envelope columns empty): the audit log
  is the one consumer that must not look away from bad input.

After committing, the writer signs a checkpoint every N records or T seconds (checkpoints.py),
in the same transaction as the batch that reaches it, and exports it (file, JetStream) after.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError

from madoguchi_shared import bus
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.audit import CheckpointSigned
from madoguchi_shared.logging import get_logger

from madoguchi_audit import chain, checkpoints
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.schema import WRITER

log = get_logger(__name__)

CHECKPOINT_TYPE = "audit.checkpoint_signed"


def filter_subjects(stream: str, municipalities: list[str]) -> list[str]:
    context = stream.removeprefix("MG_").lower()
    if not municipalities:
        return [f"mg.{context}.>"]
    return [f"mg.{context}.{m}.>" for m in municipalities]


class RawPuller:
    """An ack-less pull consumer on one stream, read with raw MSG.NEXT requests.

    The core subscription callback parses the stream sequence from the reply subject and hands
    (stream, seq, subject, data) to `sink`. Requests are kept `depth` deep while not paused.
    """

    def __init__(self, nc: NATS, stream: str, start_seq: int, subjects: list[str],
                 sink: Callable[[chain.Message], None], *, batch: int = 1000, depth: int = 2, expires: float = 1.0):
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.subjects = subjects
        self.sink = sink
        self.batch = batch
        self.depth = depth
        self.expires = expires
        self.last_seq = start_seq - 1  # the last sequence handed to the sink
        self.pending = 0  # messages the server still holds for us, as of the last delivery
        self.consumer_seq = 0  # the consumer's delivery count as of the last message handled
        self.consumer: str | None = None
        self.paused = False
        self._requests: collections.deque[int] = collections.deque()
        self._sub = None
        self._inbox = ""
        self._last_activity = time.monotonic()

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self._create_consumer()
        await self._fill()

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone
                pass
            self._sub = None
        if self.consumer:
            try:
                await self.js.delete_consumer(self.stream, self.consumer)
            except Exception:  # noqa: BLE001 - ephemeral anyway (inactive_threshold)
                pass

    async def _create_consumer(self) -> None:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, self.last_seq + 1),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
            filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
            filter_subjects=self.subjects if len(self.subjects) > 1 else None,
        )
        info = await self.js.add_consumer(self.stream, config)
        self.consumer = info.name
        self.consumer_seq = 0
        self._requests.clear()

    async def _fill(self) -> None:
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        while not self.paused and len(self._requests) < self.depth and self._sub is not None:
            payload = json.dumps({"batch": self.batch, "expires": int(self.expires * 1e9)}).encode()
            self._requests.append(self.batch)
            await self.nc.publish(subject, payload, reply=self._inbox)

    async def resume(self) -> None:
        self.paused = False
        await self._fill()

    async def _on_msg(self, msg) -> None:
        self._last_activity = time.monotonic()
        reply = msg.reply
        if reply and reply.startswith("$JS.ACK."):
            tokens = reply.split(".")
            if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
                seq, cseq, pending = int(tokens[5]), int(tokens[6]), int(tokens[8])
            else:  # $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>...
                seq, cseq, pending = int(tokens[7]), int(tokens[8]), int(tokens[10])
            self.pending = pending
            self.consumer_seq = max(self.consumer_seq, cseq)
            if seq > self.last_seq:
                self.last_seq = seq
                self.sink(chain.Message(self.stream, seq, msg.subject, msg.data))
            if self._requests:
                self._requests[0] -= 1
                if self._requests[0] <= 0:
                    self._requests.popleft()
                    await self._fill()
            return
        status = (msg.headers or {}).get("Status", "")
        if self._requests:
            self._requests.popleft()  # 404 no messages, 408 expired, 409 ...: that request is over
        if status == "409" and "Deleted" in (msg.headers or {}).get("Description", ""):
            self.consumer = None
            return
        if status in ("404", "408"):
            self.pending = 0
        await self._fill()

    async def watchdog(self) -> None:
        """Re-create a consumer that vanished (a nats-server restart) or re-prime lost requests."""
        if time.monotonic() - self._last_activity < self.expires * 3 or self.paused:
            return
        self._last_activity = time.monotonic()
        try:
            if self.consumer is None:
                raise NotFoundError
            await self.js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            log.warning("audit.consumer_recreated", stream=self.stream, after=self.last_seq)
            await self._create_consumer()
        self._requests.clear()
        await self._fill()

    async def drained(self) -> bool:
        """True when the server holds nothing more for us and everything it sent has been handled."""
        info = await self.js.consumer_info(self.stream, self.consumer)
        return not info.num_pending and (info.delivered.consumer_seq or 0) <= self.consumer_seq


@dataclass
class _Prepared:
    """A batch chained in memory, ready for its transaction."""

    rows: list[tuple]
    position: int
    head: bytes
    moved: dict[str, int]  # stream -> last sequence after this batch
    news: int  # records that are not our own checkpoints
    checkpoint: CheckpointSigned | None


class Ingest:
    """The single writer of one log. `run()` until `stop()`; `wait_idle()` for tests and tools.

    Pipelined: while batch k's transaction runs in PostgreSQL, batch k+1 is chained in Python
    (from the head batch k will leave). Transactions still commit one after the other on one
    connection; if one fails, everything in flight is dropped and the writer starts over from
    what the database holds (positions, stream sequences), so nothing is skipped or doubled.
    """

    HIGH_WATER = 50_000

    def __init__(self, settings: AuditSettings, nc: NATS, pool: asyncpg.Pool, key: checkpoints.SigningKey,
                 *, on_commit: Callable[[int], None] | None = None):
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.pool = pool
        self.key = key
        self.on_commit = on_commit
        self.schema = settings.schema_name
        self.buffer: collections.deque[chain.Message] = collections.deque()
        self.pullers: list[RawPuller] = []
        # committed state
        self.position = 0
        self.head = chain.GENESIS
        self.stream_seq: dict[str, int] = {}
        self.last_cp_position = 0
        self.last_cp_time = time.monotonic()
        self.pending_news = 0  # records since the last checkpoint that are not checkpoints themselves
        # chained but not yet committed (the pipeline's view)
        self._spec_position = 0
        self._spec_head = chain.GENESIS
        self._spec_seq: dict[str, int] = {}
        self._spec_cp_position = 0
        self.written = 0
        self.restarts = 0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._running = asyncio.Event()
        self._inflight: asyncio.Task | None = None

    # ---------------------------------------------------------------- state
    def _q(self, table: str) -> str:
        return f'"{self.schema}".{table}'

    async def _load_state(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await self._read_state(conn)

    async def _read_state(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {self._q('chain_head')}(log_id, position, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            self.settings.log_id, chain.GENESIS,
        )
        row = await conn.fetchrow(f"SELECT position, hash FROM {self._q('chain_head')} WHERE log_id = $1",
                                  self.settings.log_id)
        self.position, self.head = row["position"], bytes(row["hash"])
        self.stream_seq = {r["stream"]: r["last_seq"] for r in await conn.fetch(
            f"SELECT stream, last_seq FROM {self._q('ingest_checkpoint')}")}
        cp = await conn.fetchval(f"SELECT max(position) FROM {self._q('checkpoint')}")
        self.last_cp_position = cp or 0
        self.pending_news = self.position - self.last_cp_position
        self.last_cp_time = time.monotonic()
        self._spec_position, self._spec_head = self.position, self.head
        self._spec_seq = dict(self.stream_seq)
        self._spec_cp_position = self.last_cp_position

    # ---------------------------------------------------------------- running
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _sink(self, msg: chain.Message) -> None:
        self.buffer.append(msg)
        if len(self.buffer) >= self.HIGH_WATER:
            for p in self.pullers:
                p.paused = True
        self._wake.set()

    async def run(self) -> None:
        """Write until stopped; after a failure (database or bus gone), start over from the stored state."""
        while not self._stop.is_set():
            try:
                await self._run_once()
            except Exception as exc:  # noqa: BLE001 - never leave the log unwritten: retry from what is stored
                self.restarts += 1
                log.error("audit.ingest_failed", error=f"{type(exc).__name__}: {exc}", restarts=self.restarts)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=min(30.0, 0.5 * self.restarts))
                except TimeoutError:
                    pass

    async def _run_once(self) -> None:
        """Take the writer lock (standby until free), then pull and write until stopped."""
        async with self.pool.acquire() as conn:
            lock_key = f"audit-ingest:{self.schema}:{self.settings.log_id}"
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock_key):
                if self._stop.is_set():
                    return
                await asyncio.sleep(1.0)
            try:
                self.buffer.clear()
                await self._load_state(conn)
                await self._export(conn)
                for stream in bus.LOG_STREAMS:
                    puller = RawPuller(self.nc, stream, self.stream_seq.get(stream, 0) + 1,
                                       filter_subjects(stream, self.settings.municipalities), self._sink)
                    self.pullers.append(puller)
                    await puller.start()
                self._running.set()
                log.info("audit.ingest_started", schema=self.schema, position=self.position,
                         streams=self.stream_seq)
                await self._loop(conn)
            finally:
                self._running.clear()
                if self._inflight is not None and not self._inflight.done():
                    self._inflight.cancel()
                    with contextlib.suppress(BaseException):
                        await self._inflight
                self._inflight = None
                for p in self.pullers:
                    await p.stop()
                self.pullers.clear()
                self.buffer.clear()
                if not conn.is_closed():
                    with contextlib.suppress(Exception):  # cancelled mid-transaction: the pool resets it
                        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)

    async def _settle(self) -> None:
        """Wait for the transaction in flight (raises what it raised)."""
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            await task

    async def _loop(self, conn: asyncpg.Connection) -> None:
        last_watch = time.monotonic()
        while not self._stop.is_set():
            if not self.buffer:
                await self._settle()
                self._wake.clear()
                if not self.buffer:
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                    except TimeoutError:
                        pass
            if self.buffer:
                n = min(len(self.buffer), self.settings.ingest_batch)
                prepared = self._prepare([self.buffer.popleft() for _ in range(n)])
                await self._settle()  # batch k commits while batch k+1 was being chained
                if prepared is not None:
                    self._inflight = asyncio.create_task(self._commit(conn, prepared))
                    await asyncio.sleep(0)  # let it send its COPY before we chain the next batch
                if len(self.buffer) < self.HIGH_WATER // 2:
                    for p in self.pullers:
                        if p.paused:
                            await p.resume()
                continue
            now = time.monotonic()
            if self.pending_news > 0 and now - self.last_cp_time >= self.settings.checkpoint_seconds:
                await self.checkpoint_now(conn)
            if now - last_watch > 1.0:
                last_watch = now
                await self._export(conn)
                for p in self.pullers:
                    await p.watchdog()
        await self._settle()
        if self.pending_news > 0:  # a clean stop signs the tail, so cutting it is detected too
            await self.checkpoint_now(conn)

    def _prepare(self, batch: list[chain.Message]) -> _Prepared | None:
        """Chain a batch after the pipeline's head (exactly once: skip what is at or below a stream's position)."""
        fresh: list[chain.Message] = []
        seen = self._spec_seq
        moved: dict[str, int] = {}
        for msg in batch:
            if msg.seq > seen.get(msg.stream, 0):
                seen[msg.stream] = moved[msg.stream] = msg.seq
                fresh.append(msg)
        if not fresh:
            return None
        rows, position, head = chain.chain_records(fresh, self._spec_position, self._spec_head)
        news = sum(1 for r in rows if r[6] != CHECKPOINT_TYPE)
        cp = None
        if position - self._spec_cp_position >= self.settings.checkpoint_every:
            cp = self._sign(position, head, self._spec_cp_position)
            self._spec_cp_position = position
        self._spec_position, self._spec_head = position, head
        return _Prepared(rows, position, head, moved, news, cp)

    async def _commit(self, conn: asyncpg.Connection, p: _Prepared) -> None:
        """One batch, one transaction as audit_writer: records, stream positions, head, maybe a checkpoint."""
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await conn.copy_records_to_table("log", schema_name=self.schema, records=p.rows, columns=chain.COLUMNS)
            ok = await conn.fetchval(
                f"""WITH c AS (
                        INSERT INTO {self._q('ingest_checkpoint')} AS ic (stream, last_seq, updated_at)
                        SELECT s, q, now() FROM unnest($4::text[], $5::bigint[]) AS u(s, q)
                        ON CONFLICT (stream) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()
                        WHERE ic.last_seq < EXCLUDED.last_seq
                        RETURNING 1)
                    UPDATE {self._q('chain_head')} SET position = $2, hash = $3
                    WHERE log_id = $1 AND position = $6 RETURNING (SELECT count(*) FROM c)""",
                self.settings.log_id, p.position, p.head, list(p.moved), list(p.moved.values()),
                p.rows[0][0] - 1,
            )
            if ok is None:
                raise RuntimeError("audit chain head moved under the writer: another writer without the lock?")
            if p.checkpoint is not None:
                await self._insert_checkpoint(conn, p.checkpoint)
        self.position, self.head = p.position, p.head
        self.stream_seq.update(p.moved)
        self.written += len(p.rows)
        self.pending_news += p.news
        if p.checkpoint is not None:
            self._checkpointed(p.checkpoint)
            await self._export(conn)
        if self.on_commit:
            self.on_commit(p.position)

    # ---------------------------------------------------------------- checkpoints
    def _sign(self, position: int, head: bytes, previous: int) -> CheckpointSigned:
        return checkpoints.sign(self.key, municipality=self.settings.municipality, log_id=self.settings.log_id,
                                position=position, head=head, previous_position=previous)

    async def _insert_checkpoint(self, conn: asyncpg.Connection, cp: CheckpointSigned) -> None:
        await conn.execute(
            f"""INSERT INTO {self._q('checkpoint')}
                (position, log_id, head, signed_at, key_id, previous_position, event)
                VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            cp.position, cp.log_id, bytes.fromhex(cp.head), cp.signed_at, cp.key_id, cp.previous_position,
            cp.model_dump_json().encode(),
        )

    def _checkpointed(self, cp: CheckpointSigned) -> None:
        self.last_cp_position = cp.position
        self.last_cp_time = time.monotonic()
        self.pending_news = 0

    async def checkpoint_now(self, conn: asyncpg.Connection) -> CheckpointSigned | None:
        """Sign the committed head now (the timer, a clean stop). Only with nothing in flight."""
        await self._settle()
        if self.position == 0 or self.position == self.last_cp_position:
            return None
        cp = self._sign(self.position, self.head, self.last_cp_position)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await self._insert_checkpoint(conn, cp)
        self._checkpointed(cp)
        self._spec_cp_position = cp.position
        await self._export(conn)
        return cp

    async def _export(self, conn: asyncpg.Connection) -> None:
        """Copy checkpoints not yet exported to the file, then to JetStream; then mark them."""
        rows = await conn.fetch(
            f"SELECT position, event FROM {self._q('checkpoint')} WHERE NOT exported ORDER BY position")
        if not rows:
            return
        events = [parse_event(bytes(r["event"])) for r in rows]
        checkpoints.append_to_file(self.settings.resolved_checkpoint_file, events)
        try:
            for event in events:
                await bus.append(self.js, event)
        except Exception as exc:  # noqa: BLE001 - the bus is down: the file has them, retry later
            log.warning("audit.checkpoint_publish_failed", error=str(exc))
            return
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await conn.execute(f"UPDATE {self._q('checkpoint')} SET exported = true WHERE position = ANY($1)",
                               [r["position"] for r in rows])

    # ---------------------------------------------------------------- for tests and tools
    async def wait_running(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._running.wait(), timeout)

    async def caught_up(self) -> bool:
        if self.buffer or self._inflight is not None or not self._running.is_set():
            return False
        for p in self.pullers:
            if not await p.drained() or p.last_seq > self.stream_seq.get(p.stream, 0):
                return False
        return not self.buffer and self._inflight is None

    async def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until everything the streams hold (for our filters) is written."""
        deadline = time.monotonic() + timeout
        await self.wait_running(timeout)
        while time.monotonic() < deadline:
            if await self.caught_up():
                return
            await asyncio.sleep(0.05)
        state = {p.stream: (p.last_seq, self.stream_seq.get(p.stream, 0), await p.drained()) for p in self.pullers}
        raise TimeoutError(f"audit ingest did not catch up: buffer {len(self.buffer)}, inflight {self._inflight}, "
                           f"running {self._running.is_set()}, streams (pulled, written, drained) {state}")
