"""The log writer: every message of every log stream, once, into audit.log, hash-chained.

Shape (ARCHITECTURE "Measured ceilings": raw pull + COPY is the fast path):

- one shared `Reader` per stream (MG_DESK, MG_CALLS, MG_DEVICE, MG_AUDIT, MG_ADMIN, MG_REPORT;
  not the DLQ): an ack-less ephemeral consumer started after the stream sequence stored for that
  stream, whose subscription callback only appends to one in-memory buffer;
- one writer loop drains the buffer in arrival order: that order, fixed by the writer, is the
  merge of the streams. Per batch, in ONE transaction as `audit_writer`: COPY the chained rows,
  move every stream's stored sequence and the chain head. Positions are head+1.. assigned inside
  that transaction, so they are gap-free and never reused (a failed transaction assigns none).
- Exactly once: a message whose sequence is at or below its stream's stored sequence is
  skipped, so a restart, a re-created consumer or a redelivery writes nothing twice. A session
  advisory lock makes a second replica wait as a standby instead of interleaving.
- Duplicate event ids (an outbox resend after the dedup window) are recorded: the log records
  what the bus holds, in bus order, and the auditors can see the resend (same event_id twice);
  dropping them here would make the log disagree with the stream it vouches for. The batch's
  transaction names each such record in `duplicate` with the position that first carried the id
  (one indexed query per batch), so counts over the log (device activity, alert rules) take it once.
- Malformed messages are recorded too (parsed = false, envelope columns empty): the audit log
  is the one consumer that must not look away from bad input.

After committing, the writer signs a checkpoint every N records or T seconds (checkpoints.py),
in the same transaction as the batch that reaches it, and exports it (file, JetStream) after.

Fails closed (SEC-2): it signs only with the current key of the log's key chain (keys.py), and on
start and after every failure it checks the stored head against the last checkpoint it signed
itself (read back from the stream and the file, never from the database) and against what this
process committed: rows missing, a moved chain_head, a broken link since the checkpoint or a
per-stream position that no record backs stop the writer for good, with an urgent HQ alert and
no signature over it. Before each checkpoint it counts the records it is about to vouch for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from madoguchi_shared import db
from madoguchi_shared import bus, subjects
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.audit import AlertRaised, CheckpointSigned
from madoguchi_shared.logging import get_logger
from madoguchi_shared.reader import Reader, StoredMessage

from madoguchi_audit import alerts, chain, checkpoints, keys
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.schema import SPAN_GAP, WRITER

log = get_logger(__name__)

CHECKPOINT_TYPE = "audit.checkpoint_signed"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Records chained between two turns of the event loop: the transaction in flight (COPY, statements) and the
# readers go on while the next batch is chained, so PostgreSQL and Python work at the same time. Small: the COPY
# waits for a turn of the loop whenever the socket's buffer is full (with 1,000 a slice, the COPY of a batch was
# fed a socket buffer per slice and finished only after the next batch was chained).
CHAIN_SLICE = 200


def filter_subjects(stream: str, municipalities: list[str]) -> list[str]:
    """The subjects of one log stream the log records (every municipality, or the listed ones)."""
    context = {name: ctx for ctx, name in bus.STREAM_OF_CONTEXT.items()}[stream]
    if not municipalities:
        return [subjects.context_filter(context)]
    return [subjects.context_filter(context, m) for m in municipalities]


_HOUR = timedelta(hours=1)


def day_spans(rows: list[tuple]) -> dict[tuple[str, datetime], list[int]]:
    """Per (municipality, UTC hour of occurred_at), the first and last position of a batch's rows (COPY rows)."""
    by_hour: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        occurred, municipality = r[7], r[8]
        if occurred is None or municipality is None:
            continue
        # hours since the epoch (an aware datetime: the envelope refuses others; timedelta // timedelta is exact)
        key = (municipality, (occurred - _EPOCH) // _HOUR)
        span = by_hour.get(key)
        if span is None:
            by_hour[key] = [r[0], r[0]]
        else:
            span[1] = r[0]
    return {(m, _EPOCH + h * _HOUR): span for (m, h), span in by_hour.items()}


@dataclass
class _Prepared:
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


class Tampered(Exception):
    """The stored log does not follow from what the writer signed or wrote: stop, alert, never sign."""

    def __init__(self, detail: str, ja: str):
        super().__init__(detail)
        self.detail = detail
        self.ja = ja  # the reason in Japanese, for the HQ alert (no personal data: positions and names)


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
                await self._halt("untrusted_key", str(exc), "signing_key", self._key_alert(exc))
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

    def _key_alert(self, exc: keys.KeyRefused) -> tuple[str, str]:
        return (
            "監査ログの署名鍵が信頼されていません",
            "署名鍵ファイルの鍵は `madoguchi audit init` で導入された鍵でも、`madoguchi audit rotate-key` で"
            "引き継がれた鍵でもないため、チェックポイントへの署名と監査ログの書き込みを停止しました。"
            "無断で置き換えられた場合はインシデントとして扱い、正規の鍵をバックアップから戻してサービスを再起動してください。"
            "鍵を変更する場合は、正規の鍵を戻してから `madoguchi audit rotate-key` を実行してください。",
        )

    async def _halt(self, kind: str, detail: str, about: str, texts: tuple[str, str]) -> None:
        """Stop writing for good (until an operator restarts the service) and raise an urgent HQ alert."""
        self.halted = f"{kind}: {detail}"
        log.error("audit.writer_halted", kind=kind, detail=detail)
        title, message = texts
        municipality = self.settings.municipality
        about_id = alerts.about_key(self.settings.log_id, about, kind, alerts.stamp(datetime.now(UTC)))
        event = AlertRaised(
            municipality=municipality,
            actor=checkpoints.SERVICE_ACTOR,
            alert_id=alerts.alert_id_for(municipality, f"audit_{kind}", about_id),
            rule=f"audit_{kind}",
            severity="urgent",
            title=title,
            message=message,
            about=about_id,
        )
        try:
            await bus.append(self.js, event, expected=0)
        except Exception as exc:  # noqa: BLE001 - the log line above still says it
            log.error("audit.alert_failed", error=str(exc))

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

    async def _last_signed(self) -> CheckpointSigned | None:
        """The newest checkpoint this log's trusted keys signed, from the stream and the file (not the database)."""
        ring = keys.build_chain((await keys.stream_statements(self.nc, self.settings))[0], self.settings.log_id).ring
        found: list[CheckpointSigned] = []
        subject = subjects.aggregate_subject("audit", self.settings.municipality, "checkpoint", self.settings.log_id)
        try:
            msg = await self.js.get_last_msg(bus.stream_for(subject), subject, direct=True)
            event = parse_event(msg.data) if msg.data is not None else None
            if isinstance(event, CheckpointSigned):
                found.append(event)
        except NotFoundError:
            pass
        path = self.settings.resolved_checkpoint_file
        found += checkpoints.read_file(path, self.settings.log_id, self.settings.municipality)[-1:]
        good = [cp for cp in found if checkpoints.signature_ok(cp, ring)]
        bad = [cp for cp in found if cp not in good]
        if bad:
            raise Tampered(
                f"a copy of the last checkpoint ({bad[0].position}) does not carry a valid signature",
                f"最後のチェックポイント（位置 {bad[0].position}）の署名を検証できません",
            )
        return max(good, key=lambda cp: cp.position, default=None)

    async def _check_head(self, conn: db.Connection) -> None:
        """Fail closed: the stored log must follow from our last signed checkpoint and from what we committed."""
        cp = await self._last_signed()
        anchors: list[tuple[int, bytes, str]] = []
        if cp is not None:
            anchors.append((cp.position, bytes.fromhex(cp.head), "signed checkpoint"))
        if self._committed is not None:
            anchors.append((*self._committed, "record this writer committed"))
        log_t, head_t, seq_t = self._q("log"), self._q("chain_head"), self._q("ingest_checkpoint")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            last = await conn.fetchrow(f"SELECT position, hash FROM {log_t} ORDER BY position DESC LIMIT 1")
            end, end_hash = (last["position"], bytes(last["hash"])) if last else (0, chain.GENESIS)
            head = await conn.fetchrow(f"SELECT position, hash FROM {head_t} WHERE log_id = $1", self.settings.log_id)
            if head is not None and (head["position"], bytes(head["hash"])) != (end, end_hash):
                raise Tampered(
                    f"chain_head says {head['position']} but the log's last record is {end}",
                    f"chain_head（位置 {head['position']}）が最後の記録（位置 {end}）を指していません",
                )
            start, prev = 0, chain.GENESIS
            for position, digest, what in anchors:
                archived = await conn.fetchval(
                    f"SELECT checkpoint_head FROM {self._q('archive')} WHERE verified AND deleted_at IS NOT NULL "
                    "AND to_position = $1",
                    position,
                )
                if archived is not None and bytes(archived) == digest and (end == 0 or end >= position):
                    if position > start:  # retention deleted the range this checkpoint closes: the archive vouches
                        start, prev = position, digest
                    continue
                if end < position:
                    raise Tampered(
                        f"the log ends at {end} but the {what} is at {position}: records were removed",
                        f"記録が削除されています（ログは位置 {end} で終わり、位置 {position} まで記録済み）",
                    )
                stored = await conn.fetchval(f"SELECT hash FROM {log_t} WHERE position = $1", position)
                if stored is None or bytes(stored) != digest:
                    raise Tampered(
                        f"the record at {position} is not the {what}",
                        f"位置 {position} の記録が署名・記録済みの内容と一致しません",
                    )
                if position > start:
                    start, prev = position, digest
            # Every record after the anchor links to the one before it.
            rows = await conn.fetch(
                f"SELECT position, prev_hash, {chain.HEADER_SQL} AS header, data, hash, stream, stream_seq, subject "
                f"FROM {log_t} WHERE position > $1 ORDER BY position",
                start,
            )
            expected = start + 1
            for r in rows:
                if (
                    r["position"] != expected
                    or bytes(r["prev_hash"]) != prev
                    or chain.link(prev, bytes(r["header"]), bytes(r["data"])) != bytes(r["hash"])
                ):
                    raise Tampered(
                        f"the records after {start} do not follow from it (first at {expected})",
                        f"位置 {start} 以降の記録の連鎖が途切れています（位置 {expected}）",
                    )
                # nothing signed vouches for these yet: a column rewritten with the chain recomputed still links,
                # so each record's envelope is derived again from its bytes, as this writer derived it
                derived = chain.header(r["stream"], r["stream_seq"], r["subject"], chain.envelope(bytes(r["data"])))
                if derived != bytes(r["header"]):
                    raise Tampered(
                        f"the envelope columns of the record at {r['position']} differ from its bytes",
                        f"位置 {r['position']} の記録の列が記録内容と一致しません",
                    )
                prev = bytes(r["hash"])
                expected += 1
            # Every stream position the writer stored is backed by its record: the one at the position stored with it
            # (schema.STREAM_POSITION_SQL) is of that stream and sequence. A tail cut (chain_head moved back), a
            # record deleted and the rest renumbered, or the stream's last record edited away: not there.
            for r in await conn.fetch(f"SELECT stream, last_seq, last_position FROM {seq_t}"):
                at = r["last_position"]
                top = None
                if at is not None:
                    top = await conn.fetchrow(f"SELECT stream, stream_seq FROM {log_t} WHERE position = $1", at)
                if top is None or (top["stream"], top["stream_seq"]) != (r["stream"], r["last_seq"]):
                    found = f"{top['stream']} seq {top['stream_seq']}" if top is not None else "none"
                    raise Tampered(
                        f"{r['stream']} is stored as read to {r['last_seq']} at position {at} but the record there is "
                        f"{found}: records were removed",
                        f"{r['stream']} の記録が削除されています（読込位置 {r['last_seq']}、位置 {at} の記録がありません）",
                    )

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

    async def _prepare(self, batch: list[StoredMessage]) -> _Prepared | None:
        """Chain a batch after the pipeline's head (exactly once: skip what is at or below a stream's position).

        In slices of CHAIN_SLICE records with a turn of the event loop between them: the batch before is
        committing meanwhile (its COPY and statements go on), so PostgreSQL does not wait for Python."""
        fresh: list[StoredMessage] = []
        seen = self._spec_seq
        moved: dict[str, int] = {}
        moved_at: dict[str, int] = {}
        for msg in batch:
            if msg.seq > seen.get(msg.stream, 0):
                seen[msg.stream] = moved[msg.stream] = msg.seq
                fresh.append(msg)
                moved_at[msg.stream] = self._spec_position + len(fresh)
        if not fresh:
            return None
        rows: list[tuple] = []
        position, head = self._spec_position, self._spec_head
        for i in range(0, len(fresh), CHAIN_SLICE):
            part, position, head = chain.chain_records(fresh[i : i + CHAIN_SLICE], position, head)
            rows += part
            await asyncio.sleep(0)
        news = sum(1 for r in rows if r[6] != CHECKPOINT_TYPE)
        cp = None
        if position - self._spec_cp_position >= self.settings.checkpoint_every:
            cp = self._sign(position, head, self._spec_cp_position)
            self._spec_cp_position = position
        self._spec_position, self._spec_head = position, head
        return _Prepared(rows, position, head, moved, moved_at, news, cp, day_spans(rows), *event_ids(rows))

    def _batch_sql(self) -> str:
        """The batch's bookkeeping in one statement (one round trip): every stream's last sequence and the position of
        its record (the fail-closed check looks there, schema.STREAM_POSITION_SQL), the head (moved
        only if it still holds the position the batch was chained from), the auditors' hour runs and the
        duplicates. Returns the number of heads moved (1, or 0 when another writer moved it)."""
        q = self._q
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

    async def _commit(self, conn: db.Connection, p: _Prepared) -> None:
        """One batch, one transaction as audit_writer: records, stream positions, head, maybe a checkpoint.

        Six round trips (BEGIN; the role and the partitions; the COPY; the batch's event ids looked up in
        event_first; the COPY of the new ones into it; the bookkeeping statement) and COMMIT."""
        firsts, repeats = p.firsts, p.repeats
        span_keys, span_ends = list(p.spans), list(p.spans.values())
        async with conn.transaction():
            # The partition of the database's today and the next days exist (a look; made when the clock
            # reached a day without one: schema.PARTITION_BY_DAY_SQL), so the COPY never misses a partition.
            await conn.execute(f"SET LOCAL ROLE {WRITER}; SELECT {self._q('ensure_log_ahead')}()")
            await conn.copy_records_to_table("log", schema_name=self.schema, records=p.rows, columns=chain.COLUMNS)
            # Each event id's first position is in event_first (one row per id, schema.WRITER_COST_SQL): the ids
            # already there are duplicates of that record; the others go in (a plain COPY: one index insertion
            # each, and a unique violation, not a silent skip, if anything but this writer had put one there).
            known = await self._known_ids(conn, list(firsts))
            dups = [(pos, known[eid] if eid in known else firsts[eid]) for pos, eid in repeats]
            dups += [(firsts[eid], first) for eid, first in known.items()]
            new = [(eid, pos) for eid, pos in firsts.items() if eid not in known]
            if new:
                await conn.copy_records_to_table("event_first", schema_name=self.schema, records=new)
            moved = await conn.fetchval(
                self._batch_sql(),
                self.settings.log_id,
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
                await self._vouch(conn, p.checkpoint)
                await self._insert_checkpoint(conn, p.checkpoint)
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

    async def _known_ids(self, conn: db.Connection, ids: list[str]) -> dict[str, int]:
        """Of a batch's event ids, those event_first holds, with the position of the record that first carried each."""
        if not ids:
            return {}
        found = await conn.fetch(
            f"SELECT event_id::text, position FROM {self._q('event_first')} WHERE event_id = ANY($1::uuid[])", ids
        )
        return {r[0]: r[1] for r in found}

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

    async def _vouch(self, conn: db.Connection, cp: CheckpointSigned) -> None:
        """Before a checkpoint is stored: every record it vouches for since the last one is there, unchanged at both ends."""
        low = cp.previous_position
        count, low_hash, top_hash = await db.fetch_one(
            conn,
            f"""SELECT count(*), (SELECT hash FROM {self._q("log")} WHERE position = $1),
                       (SELECT hash FROM {self._q("log")} WHERE position = $2)
                FROM {self._q("log")} WHERE position > $1 AND position <= $2""",
            low,
            cp.position,
        )
        want_low = (
            await conn.fetchval(f"SELECT head FROM {self._q('checkpoint')} WHERE position = $1", low) if low else None
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

    async def _insert_checkpoint(self, conn: db.Connection, cp: CheckpointSigned) -> None:
        await conn.execute(
            f"""INSERT INTO {self._q("checkpoint")}
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
            await self._vouch(conn, cp)
            await self._insert_checkpoint(conn, cp)
        self._checkpointed(cp)
        self._spec_cp_position = cp.position
        await self._export(conn)
        return cp

    async def _export(self, conn: db.Connection) -> None:
        """Copy checkpoints not yet exported to the file, then to JetStream; then mark them."""
        rows = await conn.fetch(
            f"SELECT position, event FROM {self._q('checkpoint')} WHERE NOT exported ORDER BY position"
        )
        if not rows:
            return
        events = [parse_event(bytes(r["event"])) for r in rows]
        ring = {self.key.key_id: self.key.public} if self.key else {}
        ring |= keys.load_keyring(self.settings)
        signed: list[CheckpointSigned] = []
        for event in events:
            if not isinstance(event, CheckpointSigned) or not checkpoints.signature_ok(event, ring):
                raise Tampered(
                    f"the checkpoint outbox holds a checkpoint at {getattr(event, 'position', '?')} "
                    "that no trusted key signed",
                    "データベース内の未送信チェックポイントに正しい署名がありません",
                )
            signed.append(event)
        checkpoints.append_to_file(self.settings.resolved_checkpoint_file, signed)
        try:
            for event in signed:
                await bus.append(self.js, event)
        except Exception as exc:  # noqa: BLE001 - the bus is down: the file has them, retry later
            log.warning("audit.checkpoint_publish_failed", error=str(exc))
            return
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {WRITER}")
            await conn.execute(
                f"UPDATE {self._q('checkpoint')} SET exported = true WHERE position = ANY($1)",
                [r["position"] for r in rows],
            )

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
