"""The offline outbox: a local SQLite journal drained to JetStream.

Every event is committed here (WAL, synchronous=FULL: the commit is on disk when put() returns)
before anything is sent. The sender publishes the oldest rows pipelined with `publish_async`,
Nats-Msg-Id = event_id, and deletes a row only after its acknowledgement. So:

- a lost link: rows wait, the sender retries after reconnecting;
- `kill -9` or a power cut between the ack and the delete: the row is sent again after restart,
  and JetStream's duplicate window (MG_DEVICE keeps one hour) drops the repeat: nothing is lost,
  nothing is doubled in the stream (consumers also skip event ids they applied);
- an ack that never comes (link dropped mid-batch): the future times out, the row stays.

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


class Outbox:
    """The journal. Methods are synchronous: a commit takes well under a millisecond here, and
    the agent writes a few events a second, so they run on the event loop's thread."""

    def __init__(self, path: Path, max_bytes: int = 256 * 1024 * 1024):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA cache_size=-1024")  # 1 MiB: rows are read once, in order
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- writing -----------------------------------------------------------------------------

    def put(self, event: Event) -> None:
        self.put_many((event,))

    def put_many(self, events: Iterable[Event]) -> int:
        """Commit events in one transaction; returns how many were new (a repeated id is ignored)."""
        now = time.time()
        rows = [(str(e.event_id), e.subject, e.type, dump_event(e), now) for e in events]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, subject, type, data, created_at) VALUES (?, ?, ?, ?, ?)", rows
            )
            added = cur.rowcount
            db.execute("COMMIT")
        except BaseException:
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
        """Remove acknowledged rows (one transaction, one update of the counts)."""
        if not rows:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany("DELETE FROM outbox WHERE id = ?", [(r.id,) for r in rows])
            if cur.rowcount == len(rows):
                db.execute("UPDATE outbox_stats SET depth = depth - ?, bytes = bytes - ? WHERE one = 1",
                           (len(rows), sum(len(r.data) for r in rows)))
            else:  # some rows were already gone: count again
                db.execute(_RECOUNT)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def bury(self, row: Row, reason: str) -> None:
        """Move a row the server refuses for good aside (kept, counted, never silently lost)."""
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


async def _publish(js: JetStreamContext, outbox: Outbox, rows: list[Row]) -> tuple[list[tuple[Row, asyncio.Future]], bool]:
    """Publish rows pipelined; (row, ack future) pairs, and False when the link broke on the way."""
    sent: list[tuple[Row, asyncio.Future]] = []
    for row in rows:
        try:
            fut = await js.publish_async(row.subject, row.data, headers=headers_for(row))
        except nats.errors.MaxPayloadError as exc:
            log.error("outbox.row_refused", event_id=row.event_id, type=row.type, error=type(exc).__name__)
            outbox.bury(row, type(exc).__name__)
            continue
        except Exception as exc:  # link dropped while publishing: keep the rest for later
            log.info("outbox.publish_interrupted", error=type(exc).__name__)
            return sent, False
        sent.append((row, fut))
    return sent, True


async def drain_once(
    js: JetStreamContext, outbox: Outbox, batch: int = 2000, ack_timeout: float = 10.0, limit: int | None = None,
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
        if sent:
            _, pending = await asyncio.wait([f for _, f in sent], timeout=ack_timeout)
            for fut in pending:
                fut.cancel()  # releases nats-py's in-flight slot; a late ack is then ignored
        acked = [row for row, fut in sent if fut.done() and not fut.cancelled() and fut.exception() is None]
        outbox.delete(acked)
        acked_total += len(acked)
        failed = len(rows) - len(acked)
        if failed:
            errors = {type(f.exception()).__name__ for _, f in sent if f.done() and not f.cancelled() and f.exception()}
            log.info("outbox.batch_incomplete", acked=len(acked), failed=failed, errors=sorted(errors))
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
