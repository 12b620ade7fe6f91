"""The reader loop: the single writer of one log (`Ingest`) — the readers' buffer drained in arrival order, each
batch chained (batch.py) while the batch before commits (writer.py), the checkpoints signed on count and time, and
the fail-closed checks (failclosed.py) on start and after every failure. See the package's docstring."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable

import asyncpg
from nats.aio.client import Client as NATS

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events.audit import CheckpointSigned
from madoguchi_shared.logging import get_logger
from madoguchi_shared.reader import Reader, StoredMessage

from madoguchi_audit import chain, checkpoints, keys
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.ingest import failclosed, writer
from madoguchi_audit.ingest.batch import Prepared, prepare
from madoguchi_audit.ingest.failclosed import Tampered
from madoguchi_audit.schema import WRITER

log = get_logger(__name__)


def filter_subjects(stream: str, municipalities: list[str]) -> list[str]:
    """The subjects of one log stream the log records (every municipality, or the listed ones)."""
    context = {name: ctx for ctx, name in bus.STREAM_OF_CONTEXT.items()}[stream]
    if not municipalities:
        return [subjects.context_filter(context)]
    return [subjects.context_filter(context, m) for m in municipalities]


class Ingest:
    """The single writer of one log. `run()` until `stop()`; `wait_idle()` for tests and tools.

    Pipelined: while batch k's transaction runs in PostgreSQL, batch k+1 is chained in Python
    (from the head batch k will leave). Transactions still commit one after the other on one
    connection; if one fails, everything in flight is dropped and the writer starts over from
    what the database holds (positions, stream sequences), so nothing is skipped or doubled.
    """

    HIGH_WATER = 50_000

    def __init__(
        self,
        settings: AuditSettings,
        nc: NATS,
        pool: asyncpg.Pool,
        key: checkpoints.SigningKey | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ):
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.pool = pool
        self._configured_key = key  # None: the key file (or the setting), checked against the key chain
        self.key: checkpoints.SigningKey | None = None
        self._key_stamp: tuple | None = None
        self.halted: str | None = None  # why the writer stopped for good (tampering, an untrusted key)
        self._committed: tuple[int, bytes] | None = None  # the last (position, head) this process committed
        self.on_commit = on_commit
        self.schema = settings.schema_name
        self.buffer: collections.deque[StoredMessage] = collections.deque()
        self.pullers: list[Reader] = []
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

    async def _load_state(self, conn: db.Connection) -> None:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await self._read_state(conn)

    async def _read_state(self, conn: db.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {self._q('chain_head')}(log_id, position, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            self.settings.log_id,
            chain.GENESIS,
        )
        row = await db.fetch_one(
            conn, f"SELECT position, hash FROM {self._q('chain_head')} WHERE log_id = $1", self.settings.log_id
        )
        self.position, self.head = row["position"], bytes(row["hash"])
        self.stream_seq = {
            r["stream"]: r["last_seq"]
            for r in await conn.fetch(f"SELECT stream, last_seq FROM {self._q('ingest_checkpoint')}")
        }
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

    def _sink(self, msgs: list[StoredMessage]) -> None:
        """A socket read's worth of messages of one stream (the reader's batch_sink)."""
        self.buffer.extend(msgs)
        if len(self.buffer) >= self.HIGH_WATER:
            for p in self.pullers:
                p.pause()
        self._wake.set()

    async def run(self) -> None:
        """Write until stopped; after a failure (database or bus gone), start over from the stored state."""
        while not self._stop.is_set() and self.halted is None:
            try:
                await self._run_once()
            except keys.KeyRefused as exc:
                await self._halt("untrusted_key", str(exc), "signing_key", failclosed.KEY_ALERT)
            except Tampered as exc:
                await self._halt(
                    "tampered",
                    exc.detail,
                    "log",
                    (
                        "監査ログの改ざんを検知しました",
                        f"監査ログの書き込みと署名を停止しました。{exc.ja}。署名済みチェックポイントの上に署名することはありません。"
                        "`madoguchi audit verify` で確認し、インシデントとして対応してください。",
                    ),
                )
            except Exception as exc:  # noqa: BLE001 - never leave the log unwritten: retry from what is stored
                self.restarts += 1
                log.error("audit.ingest_failed", error=f"{type(exc).__name__}: {exc}", restarts=self.restarts)
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=min(30.0, 0.5 * self.restarts))
                except TimeoutError:
                    pass

    async def _halt(self, kind: str, detail: str, about: str, texts: tuple[str, str]) -> None:
        """Stop writing for good (until an operator restarts the service) and raise an urgent HQ alert."""
        self.halted = f"{kind}: {detail}"
        log.error("audit.writer_halted", kind=kind, detail=detail)
        await failclosed.raise_alert(self.js, self.settings, kind, about, texts)

    def _key_file_stamp(self) -> tuple | None:
        if self.settings.signing_key_hex.get_secret_value() or self._configured_key is not None:
            return None
        try:
            st = self.settings.resolved_signing_key_file.stat()
        except FileNotFoundError:
            return ("missing",)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def _check_key(self) -> None:
        """(Re)read the key and hold it against the key chain on the stream; KeyRefused when it may not sign."""
        self.key = await keys.signing_key(self.settings, self.nc, self._configured_key)
        self._key_stamp = self._key_file_stamp()

    async def _key_changed(self) -> None:
        """A key file touched while running (a rotation, or a replaced key) is checked again before the next signature."""
        if self._key_file_stamp() != self._key_stamp:
            await self._settle()
            await self._check_key()
            log.info("audit.signing_key_reloaded", key_id=self.key.key_id if self.key else None)

    async def _check_head(self, conn: db.Connection) -> None:
        """Fail closed (failclosed.check_head): from the last checkpoint signed and from what this process committed."""
        signed = await failclosed.last_signed(self.nc, self.js, self.settings)
        await failclosed.check_head(conn, self.schema, self.settings.log_id, signed, self._committed)

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
                await self._check_key()
                await self._check_head(conn)
                await self._load_state(conn)
                await self._export(conn)
                for stream in bus.LOG_STREAMS:
                    puller = Reader(
                        self.nc,
                        stream,
                        filter_subjects(stream, self.settings.municipalities),
                        start_seq=self.stream_seq.get(stream, 0) + 1,
                        batch_sink=self._sink,
                    )
                    self.pullers.append(puller)
                    await puller.start()
                self._running.set()
                log.info("audit.ingest_started", schema=self.schema, position=self.position, streams=self.stream_seq)
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

    async def _loop(self, conn: db.Connection) -> None:
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
                await self._key_changed()  # a stat: a key swapped under load is caught before it signs
                n = min(len(self.buffer), self.settings.ingest_batch)
                prepared = await self._prepare([self.buffer.popleft() for _ in range(n)])
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
                await self._key_changed()
                await self._export(conn)
                for p in self.pullers:
                    await p.watchdog()
        await self._settle()
        if self.pending_news > 0:  # a clean stop signs the tail, so cutting it is detected too
            await self.checkpoint_now(conn)

    async def _prepare(self, batch: list[StoredMessage]) -> Prepared | None:
        """Chain a batch after the pipeline's head (batch.prepare), and sign over it when a checkpoint is due."""
        p = await prepare(batch, self._spec_seq, self._spec_position, self._spec_head)
        if p is None:
            return None
        if p.position - self._spec_cp_position >= self.settings.checkpoint_every:
            p.checkpoint = self._sign(p.position, p.head, self._spec_cp_position)
            self._spec_cp_position = p.position
        self._spec_position, self._spec_head = p.position, p.head
        return p

    async def _commit(self, conn: db.Connection, p: Prepared) -> None:
        """The batch's transaction (writer.write_batch), then the committed state moves and a checkpoint is exported."""
        await writer.write_batch(conn, self.schema, self.settings.log_id, p)
        self.position, self.head = p.position, p.head
        self._committed = (p.position, p.head)
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
        if self.key is None:
            raise RuntimeError("no signing key: the writer reads it (_check_key) before it signs")
        return checkpoints.sign(
            self.key,
            municipality=self.settings.municipality,
            log_id=self.settings.log_id,
            position=position,
            head=head,
            previous_position=previous,
        )

    def _checkpointed(self, cp: CheckpointSigned) -> None:
        self.last_cp_position = cp.position
        self.last_cp_time = time.monotonic()
        self.pending_news = 0

    async def checkpoint_now(self, conn: db.Connection) -> CheckpointSigned | None:
        """Sign the committed head now (the timer, a clean stop). Only with nothing in flight."""
        await self._settle()
        if self.position == 0 or self.position == self.last_cp_position:
            return None
        await self._key_changed()
        cp = self._sign(self.position, self.head, self.last_cp_position)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await writer.vouch(conn, self.schema, cp)
            await writer.insert_checkpoint(conn, self.schema, cp)
        self._checkpointed(cp)
        self._spec_cp_position = cp.position
        await self._export(conn)
        return cp

    async def _export(self, conn: db.Connection) -> None:
        """Checkpoints not yet exported: to the file, then to JetStream; then marked (writer.export)."""
        await writer.export(conn, self.settings, self.js, self.key)

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
        raise TimeoutError(
            f"audit ingest did not catch up: buffer {len(self.buffer)}, inflight {self._inflight}, "
            f"running {self._running.is_set()}, streams (pulled, written, drained) {state}"
        )
