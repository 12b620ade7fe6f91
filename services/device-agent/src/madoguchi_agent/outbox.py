"""The offline outbox: a local SQLite journal drained to JetStream.

Every event is committed here (WAL, synchronous=FULL: the commit is on disk when put() returns)
before anything is sent. The sender publishes the oldest rows pipelined with `publish_async`,
Nats-Msg-Id = event_id, and deletes each row as soon as its own acknowledgement arrives (the rows
acknowledged since the last delete, one small transaction; not once per batch). So:

- a lost link: rows wait, the sender retries after reconnecting;
- `kill -9` or a power cut between an ack and its delete: only the rows acknowledged in that
  instant are sent again after restart; JetStream's duplicate window (MG_DEVICE keeps one hour)
  drops the repeat, and after the window the consumers skip event ids they applied (rule 8);
- an ack that never comes (link dropped mid-batch): the future times out, the row stays.

Deletes commit with synchronous=NORMAL: in WAL mode a delete lost to a power cut (never to a
kill) only sends the row again, which the event id makes harmless; inserts stay FULL.

**A full disk** (issue 18 §4). The journal keeps a reserve: a file of `reserve_bytes` next to it,
written when there is room. When SQLite says the disk is full (SQLITE_FULL), the WAL is first
checkpointed with RESTART (its file is kept and the next write starts it again from its beginning,
in space the journal already owns) and the write retried; failing that, the reserve is given back
to the file system and the write tried once more. The agent writes only what must never be lost
(violations, card alerts, lifecycle, the alarm saying "critical") while the disk is full, and
refuses low-value events (counted). Deleting sent rows then needs no new space: a delete rewrites
pages the database file already has, and its WAL frames, in chunks of DELETE_CHUNK rows each
followed by a RESTART checkpoint, go where the last ones were (the full-disk test checks that the
free space does not shrink while the journal drains). wal_autocheckpoint keeps the WAL's unchecked
pages under half the reserve, so the one checkpoint that may grow the database fits in it. Once
the disk has room, the reserve is written again (`restore_reserve`, which ends the "critical"
state); an empty journal then gives its free pages back (incremental vacuum: no VACUUM, which
would need a copy of the file).

Row counts and bytes are kept in `outbox_stats` in the same transactions (a trigger on insert, one
update per acknowledged batch on delete), so depth() is O(1) and right even while another process
(the `notice` command at a staff login) writes into the journal.
A row the server can never take (larger than its max payload) moves to `outbox_dead`, kept on
disk and counted, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext

from madoguchi_shared.events import Event, dump_event
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_stats (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    depth INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO outbox_stats (one, depth, bytes) VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS outbox_counted_in AFTER INSERT ON outbox BEGIN
    UPDATE outbox_stats SET depth = depth + 1, bytes = bytes + length(NEW.data) WHERE one = 1;
END;
DROP TRIGGER IF EXISTS outbox_counted_out;
CREATE TABLE IF NOT EXISTS outbox_dead (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


_RECOUNT = (
    "UPDATE outbox_stats SET depth = (SELECT count(*) FROM outbox), "
    "bytes = (SELECT coalesce(sum(length(data)), 0) FROM outbox) WHERE one = 1"
)


@dataclass(frozen=True)
class Row:
    id: int
    event_id: str
    subject: str
    type: str
    data: bytes


class OutboxFull(Exception):
    """The disk is full and the reserve is spent (or not to be used for this write)."""


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    )


RESERVE_BYTES = 2 * 1024 * 1024
DELETE_CHUNK = 200  # rows per delete transaction on a full disk (about 25 pages of WAL)


class Outbox:
    """The journal. Methods are synchronous: a commit takes well under a millisecond here, and
    the agent writes a few events a second, so they run on the event loop's thread."""

    def __init__(self, path: Path, max_bytes: int = 256 * 1024 * 1024, reserve_bytes: int = RESERVE_BYTES):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.reserve_path = path.with_name(path.name + ".reserve")
        # True from the moment the disk was full until the reserve is written again
        self.disk_full = False
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        # before the first table: free pages can then go back to the file system without a VACUUM
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA cache_size=-1024")  # 1 MiB: rows are read once, in order
        # the WAL's unchecked pages stay under half the reserve: a checkpoint on a full disk fits
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._db.execute(f"PRAGMA wal_autocheckpoint={max(16, min(1000, reserve_bytes // page // 2))}")
        self._db.executescript(SCHEMA)
        if not self.reserve_path.exists():
            self.restore_reserve()

    def close(self) -> None:
        self._db.close()

    # -- the reserve for a full disk -----------------------------------------------------------

    def restore_reserve(self) -> bool:
        """Write the reserve file when the disk has room for it (and a little more); True when it
        is in place. Ends the disk-full state."""
        if self.reserve_bytes <= 0:
            self.disk_full = False
            return True
        try:
            if self.reserve_path.stat().st_size >= self.reserve_bytes:
                self.disk_full = False
                return True
        except FileNotFoundError:
            pass
        try:
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < self.reserve_bytes * 2:
                return False
            tmp = self.reserve_path.with_name(self.reserve_path.name + ".tmp")
            with open(tmp, "wb") as f:
                block = b"\0" * 65536
                for _ in range(0, self.reserve_bytes, len(block)):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.reserve_path)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve_path.with_name(self.reserve_path.name + ".tmp").unlink()
            return False
        if self.disk_full and self.depth()[0] == 0:
            self.compact()
        self.disk_full = False
        return True

    def _release_reserve(self) -> bool:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.critical("outbox.disk_full_reserve_used", reserve_bytes=self.reserve_bytes)
        return True

    def _write(self, work, may_use_reserve: bool = True):
        """Run one write transaction. On a full disk: checkpoint the WAL and try again (its file
        is then written from its beginning again, in space the journal already has); failing that,
        give back the reserve, checkpoint and try once more."""
        try:
            return work()
        except sqlite3.Error as exc:
            if not is_full(exc):
                raise
            self.disk_full = True
        if self._restart_wal():
            try:
                return work()
            except sqlite3.Error as exc:
                if not is_full(exc):
                    raise
        if not may_use_reserve or not self._release_reserve():
            raise OutboxFull("the disk is full")
        self._restart_wal()
        try:
            return work()
        except sqlite3.Error as exc:
            if is_full(exc):
                raise OutboxFull("the disk is full, the reserve spent") from exc
            raise

    def _restart_wal(self) -> bool:
        """Copy the WAL into the database and have the next write start the WAL file from its
        beginning (RESTART keeps the file: its space stays the journal's). True when complete. The
        database grows here by at most the WAL's unchecked pages, which wal_autocheckpoint keeps
        under half the reserve."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error:
            return False
        return not busy

    # -- writing -----------------------------------------------------------------------------

    def put(self, event: Event) -> None:
        self.put_many((event,))

    def put_many(self, events: Iterable[Event], may_use_reserve: bool = True) -> int:
        """Commit events in one transaction; returns how many were new (a repeated id is ignored).
        On a full disk: OutboxFull, unless the reserve could be used (`may_use_reserve`)."""
        now = time.time()
        rows = [(str(e.event_id), e.subject, e.type, dump_event(e), now) for e in events]
        return self._write(lambda: self._insert(rows), may_use_reserve)

    def _insert(self, rows: list[tuple]) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, subject, type, data, created_at) VALUES (?, ?, ?, ?, ?)", rows
            )
            added = cur.rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                db.execute("ROLLBACK")
            raise
        return added

    # -- reading and acknowledging -----------------------------------------------------------

    def peek(self, limit: int, after: int = 0) -> list[Row]:
        """The oldest rows (with id > after)."""
        cur = self._db.execute(
            "SELECT id, event_id, subject, type, data FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [Row(*r) for r in cur.fetchall()]

    def delete(self, rows: list[Row]) -> None:
        """Remove acknowledged rows (one update of the counts per transaction). On a full disk,
        in transactions of DELETE_CHUNK rows, each followed by a WAL restart: a delete only
        rewrites pages the file already has, and its WAL frames go where the last ones were, so the
        journal drains with no new space (beyond the reserve, given back once)."""
        if not rows:
            return
        step = DELETE_CHUNK if self.disk_full else len(rows)
        for i in range(0, len(rows), step):
            chunk = rows[i : i + step]
            self._write(lambda chunk=chunk: self._delete(chunk))
            if self.disk_full:
                self._restart_wal()

    def _delete(self, rows: list[Row]) -> None:
        db = self._db
        db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring: a lost delete only resends
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany("DELETE FROM outbox WHERE id = ?", [(r.id,) for r in rows])
            if cur.rowcount == len(rows):
                db.execute(
                    "UPDATE outbox_stats SET depth = depth - ?, bytes = bytes - ? WHERE one = 1",
                    (len(rows), sum(len(r.data) for r in rows)),
                )
            else:  # some rows were already gone: count again
                db.execute(_RECOUNT)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                db.execute("ROLLBACK")
            raise
        finally:
            db.execute("PRAGMA synchronous=FULL")

    def compact(self) -> None:
        """Give the journal's free pages and the WAL back to the file system (no copy of the file)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("PRAGMA incremental_vacuum").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def bury(self, row: Row, reason: str) -> None:
        """Move a row the server refuses for good aside (kept, counted, never silently lost)."""
        self._write(lambda: self._bury(row, reason))

    def _bury(self, row: Row, reason: str) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO outbox_dead SELECT id, event_id, subject, type, data, created_at, ? "
                "FROM outbox WHERE id = ?",
                (reason[:200], row.id),
            )
            db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
            db.execute(_RECOUNT)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                db.execute("ROLLBACK")
            raise

    def depth(self) -> tuple[int, int]:
        """(rows waiting, bytes waiting)."""
        depth, size = self._db.execute("SELECT depth, bytes FROM outbox_stats WHERE one = 1").fetchone()
        return depth, size

    def dead_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox_dead").fetchone()[0]

    def level(self) -> str:
        """The alarm level for the current size (see device.OutboxSizeAlarm)."""
        return level_for(self.depth()[1], self.max_bytes)


# Alarm thresholds, as fractions of the cap: "long before it is reached".
WARNING_AT = 0.25
CRITICAL_AT = 0.75
LEVELS = ("ok", "warning", "critical", "shedding")


def level_for(size: int, cap: int) -> str:
    if size >= cap:
        return "shedding"
    if size >= cap * CRITICAL_AT:
        return "critical"
    if size >= cap * WARNING_AT:
        return "warning"
    return "ok"


# ---------------------------------------------------------------------------------------------
# The sender
# ---------------------------------------------------------------------------------------------


def headers_for(row: Row) -> dict[str, str]:
    # The same headers as madoguchi_shared.bus.append: Nats-Msg-Id makes a resend a no-op.
    return {"Nats-Msg-Id": row.event_id, "Mg-Type": row.type}


async def _publish(
    js: JetStreamContext, outbox: Outbox, rows: list[Row]
) -> tuple[list[tuple[Row, asyncio.Future]], bool]:
    """Publish rows pipelined; (row, ack future) pairs, and False when the link broke on the way."""
    sent: list[tuple[Row, asyncio.Future]] = []
    for row in rows:
        try:
            fut = await js.publish_async(row.subject, row.data, headers=headers_for(row))
        except nats.errors.MaxPayloadError as exc:
            log.error("outbox.row_refused", event_id=row.event_id, type=row.type, error=type(exc).__name__)
            outbox.bury(row, type(exc).__name__)
            continue
        except Exception as exc:  # noqa: BLE001 - link dropped while publishing: keep the rest for later
            log.info("outbox.publish_interrupted", error=type(exc).__name__)
            return sent, False
        sent.append((row, fut))
    return sent, True


async def _acked_as_they_come(
    outbox: Outbox, sent: list[tuple[Row, asyncio.Future]], timeout: float
) -> tuple[int, set[str]]:
    """Wait for the acks of `sent`, deleting each row as soon as its own ack is in (the rows whose
    acks arrived since the last delete, together); (rows acknowledged, error names)."""
    ready: list[Row] = []
    arrived = asyncio.Event()
    done = 0

    def on_done(row: Row, fut: asyncio.Future) -> None:
        nonlocal done
        done += 1
        if not fut.cancelled() and fut.exception() is None:
            ready.append(row)
        arrived.set()

    for row, fut in sent:
        fut.add_done_callback(lambda f, row=row: on_done(row, f))
    deadline = asyncio.get_running_loop().time() + timeout
    deleted: set[int] = set()

    def delete(rows: list[Row]) -> None:
        outbox.delete(rows)
        deleted.update(r.id for r in rows)

    try:
        while done < len(sent):
            if ready:
                rows, ready[:] = list(ready), []
                delete(rows)
                continue  # acks kept coming while the delete committed
            arrived.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)
    finally:
        for _, fut in sent:
            if not fut.done():
                fut.cancel()  # releases nats-py's in-flight slot; a late ack is then ignored
    # a done future's callback may not have run yet: the last rows from the futures themselves
    rest = [
        row for row, f in sent if row.id not in deleted and f.done() and not f.cancelled() and f.exception() is None
    ]
    if rest:
        delete(rest)
    acked = len(deleted)
    errors = {type(f.exception()).__name__ for _, f in sent if f.done() and not f.cancelled() and f.exception()}
    return acked, errors


async def drain_once(
    js: JetStreamContext,
    outbox: Outbox,
    batch: int = 2000,
    ack_timeout: float = 10.0,
    limit: int | None = None,
) -> tuple[int, int]:
    """Send the oldest rows (up to `limit`, default one batch); delete each one once acknowledged.

    Two batches are kept in flight: while the acks of one come back, the next is on the wire.
    Returns (acknowledged, not acknowledged); rows not acknowledged stay for the next try.
    """
    limit = batch if limit is None else limit
    after, taken, acked_total, failed_total = 0, 0, 0, 0
    in_flight: list[tuple[list[Row], list[tuple[Row, asyncio.Future]]]] = []
    healthy = True
    while True:
        while healthy and len(in_flight) < 2 and taken < limit:
            rows = outbox.peek(min(batch, limit - taken), after)
            if not rows:
                break
            after, taken = rows[-1].id, taken + len(rows)
            sent, healthy = await _publish(js, outbox, rows)
            in_flight.append((rows, sent))
        if not in_flight:
            return acked_total, failed_total
        rows, sent = in_flight.pop(0)
        acked, errors = await _acked_as_they_come(outbox, sent, ack_timeout) if sent else (0, set())
        acked_total += acked
        failed = len(rows) - acked
        if failed:
            log.info("outbox.batch_incomplete", acked=acked, failed=failed, errors=sorted(errors))
            healthy = False  # stop feeding; what is in flight still gets its chance
        failed_total += failed


async def run_sender(
    get_js: Callable[[], JetStreamContext | None],
    outbox: Outbox,
    wake: asyncio.Event,
    stop: asyncio.Event,
    batch: int = 2000,
    ack_timeout: float = 10.0,
    on_drained: Callable[[int], None] | None = None,
) -> None:
    """Drain the journal whenever there is a link; sleep until woken (new event, reconnect) or 1 s."""
    backoff = 0.2
    while not stop.is_set():
        js = get_js()
        depth = outbox.depth()[0]
        if js is None or depth == 0:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=1.0)
            continue
        try:
            acked, failed = await drain_once(js, outbox, batch, ack_timeout, limit=batch * 10)
        except OutboxFull:
            log.critical("outbox.disk_full", depth=outbox.depth()[0])
            acked, failed = 0, 1
        except sqlite3.Error:
            log.exception("outbox.journal_error")
            acked, failed = 0, 1
        if acked and on_drained:
            on_drained(acked)
        if failed:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            backoff = 0.2
