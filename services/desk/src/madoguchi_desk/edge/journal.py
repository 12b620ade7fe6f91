"""The desk edge's journal: every event of the desk, in local order, on the laptop's disk (EDGE.md).

SQLite in WAL mode with `synchronous=FULL`: a command's events are on disk when its answer leaves
(the agent's outbox rules). Rows are either decided here (`origin = 'edge'`, pending until HQ holds
them: `hq_seq` NULL) or mirrored from HQ (`origin = 'hq'`, with their HQ stream sequence). The local
`seq` is the order the edge folded them in and the version its API answers with.

Client command ids (`Idempotency-Key`) are stored in the same transaction as the events they made,
so a repeated command is answered from here and never decided twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madoguchi_shared.events import Event, dump_event, parse_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('edge', 'hq')),
    hq_seq INTEGER,
    command TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_subject ON journal (subject, seq);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (seq) WHERE hq_seq IS NULL;
CREATE TABLE IF NOT EXISTS commands (
    key TEXT PRIMARY KEY,
    status INTEGER,
    body BLOB,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS merged (
    event_id TEXT PRIMARY KEY,
    learned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class LocalConflict(Exception):
    def __init__(self, subject: str, expected: int | None, actual: int):
        super().__init__(f"{subject}: expected {expected}, journal at {actual}")
        self.subject = subject
        self.expected = expected
        self.actual = actual


def _inserted(cur: sqlite3.Cursor) -> int:
    """The seq of the row an INSERT just made (sqlite3 leaves lastrowid None only when none was made)."""
    if cur.lastrowid is None:
        raise sqlite3.DatabaseError("the INSERT made no row")
    return cur.lastrowid


@dataclass(frozen=True)
class Row:
    seq: int
    event_id: str
    subject: str
    type: str
    data: bytes
    origin: str
    hq_seq: int | None

    def event(self) -> Event:
        return parse_event(self.data)


_COLUMNS = "seq, event_id, subject, type, data, origin, hq_seq"


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA secure_delete=ON")  # replaced free text is overwritten, not left in free pages
        self.db.executescript(SCHEMA)
        self.path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    # --- reading -------------------------------------------------------------------------

    def rows(self, subject: str, after: int = 0) -> list[Row]:
        cur = self.db.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE subject = ? AND seq > ? ORDER BY seq", (subject, after)
        )
        return [Row(*r) for r in cur.fetchall()]

    def holds(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM journal WHERE event_id = ?", (event_id,)).fetchone() is not None

    def knows(self, subject: str) -> bool:
        return self.db.execute("SELECT 1 FROM journal WHERE subject = ? LIMIT 1", (subject,)).fetchone() is not None

    def last_seq(self, subject: str) -> int:
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM journal WHERE subject = ?", (subject,)).fetchone()[0]

    def hq_last(self, subject: str) -> int:
        """HQ's last sequence of the subject as far as the edge knows (0: HQ holds nothing of it)."""
        return self.db.execute("SELECT coalesce(max(hq_seq), 0) FROM journal WHERE subject = ?", (subject,)).fetchone()[
            0
        ]

    def pending(self, limit: int = 1000) -> list[Row]:
        cur = self.db.execute(f"SELECT {_COLUMNS} FROM journal WHERE hq_seq IS NULL ORDER BY seq LIMIT ?", (limit,))
        return [Row(*r) for r in cur.fetchall()]

    def depth(self) -> int:
        return self.db.execute("SELECT count(*) FROM journal WHERE hq_seq IS NULL").fetchone()[0]

    def edge_rows(self, subjects: Iterable[str]) -> list[Row]:
        subjects = list(subjects)
        if not subjects:
            return []
        marks = ",".join("?" * len(subjects))
        cur = self.db.execute(
            f"SELECT {_COLUMNS} FROM journal WHERE origin = 'edge' AND subject IN ({marks}) ORDER BY seq", subjects
        )
        return [Row(*r) for r in cur.fetchall()]

    def subjects_like(self, prefix: str) -> list[str]:
        cur = self.db.execute(
            "SELECT DISTINCT subject FROM journal WHERE subject >= ? AND subject < ?", (prefix, prefix + "\uffff")
        )
        return [r[0] for r in cur.fetchall()]

    # --- writing -------------------------------------------------------------------------

    def append(self, events: list[Event], expected: dict[str, int], command: str | None = None) -> list[int]:
        """Commit a command's events at once, each subject at the local sequence it was decided on
        (else LocalConflict, nothing written). Returns their local sequences."""
        seqs: list[int] = []
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            checked: set[str] = set()
            for event in events:
                subject = event.subject
                if subject in expected and subject not in checked:
                    actual = self.last_seq(subject)
                    if actual != expected[subject]:
                        raise LocalConflict(subject, expected[subject], actual)
                    checked.add(subject)
                cur = self.db.execute(
                    "INSERT INTO journal (event_id, subject, type, data, origin, hq_seq, command, created_at) "
                    "VALUES (?, ?, ?, ?, 'edge', NULL, ?, ?)",
                    (str(event.event_id), subject, event.type, dump_event(event), command, now),
                )
                seqs.append(_inserted(cur))
            if command is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO commands (key, status, body, created_at) VALUES (?, NULL, NULL, ?)",
                    (command, now),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return seqs

    def mirror(self, subject: str, stored: list[tuple[int, bytes, Event]]) -> tuple[list[Row], int]:
        """Take HQ's events of a subject (seq, raw data, event): an event of ours gets its HQ sequence,
        another is stored as mirrored. Returns (the new mirrored rows, how many of ours were confirmed)."""
        new: list[int] = []
        confirmed = 0
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for hq_seq, data, event in stored:
                row = self.db.execute(
                    "SELECT seq, hq_seq FROM journal WHERE event_id = ?", (str(event.event_id),)
                ).fetchone()
                if row is not None:
                    if row[1] is None:
                        self.db.execute("UPDATE journal SET hq_seq = ?, data = ? WHERE seq = ?", (hq_seq, data, row[0]))
                        confirmed += 1
                    continue
                cur = self.db.execute(
                    "INSERT INTO journal (event_id, subject, type, data, origin, hq_seq, command, created_at) "
                    "VALUES (?, ?, ?, ?, 'hq', ?, NULL, ?)",
                    (str(event.event_id), subject, event.type, data, hq_seq, now),
                )
                new.append(_inserted(cur))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if not new:
            return [], confirmed
        marks = ",".join("?" * len(new))
        rows = [
            Row(*r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM journal WHERE seq IN ({marks}) ORDER BY seq", new)
        ]
        return rows, confirmed

    def mark_sent(self, seq: int, hq_seq: int, data: bytes | None = None) -> None:
        """HQ holds the row (the sealed form replaces the plain one: the laptop keeps no free text)."""
        if data is None:
            self.db.execute("UPDATE journal SET hq_seq = ? WHERE seq = ?", (hq_seq, seq))
        else:
            self.db.execute("UPDATE journal SET hq_seq = ?, data = ? WHERE seq = ?", (hq_seq, data, seq))

    # --- command ids -----------------------------------------------------------------------

    def answer(self, key: str) -> tuple[bool, int | None, bytes | None]:
        """(known, status, body) of a client command id."""
        row = self.db.execute("SELECT status, body FROM commands WHERE key = ?", (key,)).fetchone()
        return (False, None, None) if row is None else (True, row[0], row[1])

    def store_answer(self, key: str, status: int, body: bytes) -> None:
        self.db.execute(
            "INSERT INTO commands (key, status, body, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET status = excluded.status, body = excluded.body",
            (key, status, body, time.time()),
        )

    def forget_answers(self, older_than: float) -> int:
        """Drop stored answers older than `older_than` seconds (they may quote free text in the clear);
        the key stays, so a late repeat is still one command, answered from its events (sealed by then)."""
        cur = self.db.execute(
            "UPDATE commands SET body = NULL WHERE body IS NOT NULL AND created_at < ?", (time.time() - older_than,)
        )
        return cur.rowcount

    def command_events(self, key: str) -> list[Row]:
        cur = self.db.execute(f"SELECT {_COLUMNS} FROM journal WHERE command = ? ORDER BY seq", (key,))
        return [Row(*r) for r in cur.fetchall()]

    # --- merge bookkeeping and small facts ------------------------------------------------------

    def merged(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM merged WHERE event_id = ?", (event_id,)).fetchone() is not None

    def note_merged(self, event_id: str, learned_at: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO merged (event_id, learned_at) VALUES (?, ?)", (event_id, learned_at))

    def fact(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_fact(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO facts (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )
