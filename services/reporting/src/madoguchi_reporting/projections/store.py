"""The small store every projection writes through: counters summed per key, set-based upserts,
notes, and the first statement of every live batch.

A batch is folded in memory first (ARCHITECTURE: summing a batch in Python is ~12x faster than a
counter upsert per event); `Acc` holds the batch's counter deltas per (day, figure) and which
report days it touched, and `write_counts` writes them all with one upsert.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID
from zoneinfo import ZoneInfo

from madoguchi_shared import db

from madoguchi_shared.projection import Transient

from madoguchi_reporting.schema import SCHEMA

TOKYO = ZoneInfo("Asia/Tokyo")
REBUILD_LOCK = 0x5245504F  # "REPO": held exclusively by a rebuild, shared by every live batch

DayKey = tuple[str, str, str, dt.date]  # municipality, channel, scope, day
NoteKey = tuple[str, str, str, dt.date, str, str]  # municipality, channel, scope, day, kind, ref


def to_ms(seconds: float) -> int:
    """Durations are kept as integer milliseconds, so sums and means are exact."""
    return round(seconds * 1000)


def local(t: dt.datetime) -> dt.datetime:
    return t.astimezone(TOKYO)


@dataclass
class Acc:
    """A batch's counter deltas and the report days it touched."""

    # (m, channel, scope, day, figure) -> delta (a defaultdict: a new key costs no Python call, as a Counter's does)
    counts: defaultdict[tuple[str, str, str, dt.date, str], int] = field(default_factory=lambda: defaultdict(int))
    affected: dict[DayKey, str | None] = field(default_factory=dict)  # -> ward (desk) / line id

    def add(self, key: DayKey, figure: str, n: int = 1, ward: str | None = None) -> None:
        if n:
            self.counts[(*key, figure)] += n
        if self.affected.get(key) is None:  # `touch`, written out: this runs for most events
            self.affected[key] = ward

    def touch(self, key: DayKey, ward: str | None = None) -> None:
        if self.affected.get(key) is None:
            self.affected[key] = ward

    def add_all(self, key: DayKey, figures: Mapping[str, int], sign: int, ward: str | None) -> None:
        counts = self.counts
        for figure, n in figures.items():
            if n:
                counts[(*key, figure)] += sign * n
        self.touch(key, ward)

    def add_change(self, key: DayKey, before: Mapping[str, int], after: Mapping[str, int], ward: str | None) -> None:
        """A row's contribution moved from `before` to `after` (nothing when they are equal)."""
        if before != after:
            self.add_all(key, after, +1, ward)
            self.add_all(key, before, -1, ward)


COUNT_COLUMNS = (
    ("municipality", "text"),
    ("channel", "text"),
    ("scope", "text"),
    ("day", "date"),
    ("figure", "text"),
    ("n", "int8"),
)


class Writes:
    """A batch's writes as ONE statement: each upsert a data-modifying CTE (its rows one JSON
    parameter, `db.rows_from`), so a batch costs one round trip to PostgreSQL however many tables it touches.

    A text[] column travels as one comma-joined text (`expr` splits it back). Each table may appear once (rows unique per key).
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[bytes] = []  # one JSON array of rows per statement part (`db.json_rows`)
        self.after: list[tuple[str, list]] = []  # statements that must see the upserts (run next)

    def upsert(
        self,
        table: str,
        cols: Sequence[tuple[str, str]],
        rows: Sequence[tuple],
        conflict: str,
        action: str,
        expr: dict[str, str] | None = None,
    ) -> None:
        if not rows:
            return
        names = [c for c, _t in cols]
        select = ", ".join((expr or {}).get(c, c) for c in names)
        self.params.append(db.json_rows(rows))
        self.parts.append(f"""INSERT INTO "{SCHEMA}".{table} ({", ".join(names)}) SELECT {select}
            FROM {db.rows_from(f"${len(self.params)}", cols)} ON CONFLICT ({conflict}) DO {action}""")

    def rows(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[tuple], conflict: str
    ) -> None:
        """Upsert whole rows: every column after the key (`conflict`) is replaced."""
        keys = len(conflict.split(","))
        self.upsert(
            table,
            list(zip(columns, types, strict=True)),
            rows,
            conflict,
            "UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[keys:]),
            ARRAY_EXPR,
        )

    def counts(self, acc: Acc) -> None:
        """The batch's counter deltas, summed per (day, figure), added to day_count."""
        items = [(*k, n) for k, n in acc.counts.items() if n]
        self.upsert(
            "day_count",
            COUNT_COLUMNS,
            items,
            "municipality, channel, scope, day, figure",
            "UPDATE SET n = day_count.n + EXCLUDED.n",
        )
        negative = [k[:5] for k in items if k[5] < 0]
        if negative:
            # A figure that went back to zero is removed, so the table equals a rebuild's (which
            # never writes a zero) and a checksum can compare them.
            self.after.append(
                (
                    f"""DELETE FROM "{SCHEMA}".day_count d USING {db.rows_from("$1", COUNT_COLUMNS[:5])}
                    WHERE d.municipality = u.municipality AND d.channel = u.channel AND d.scope = u.scope
                      AND d.day = u.day AND d.figure = u.figure AND d.n = 0""",
                    [db.json_rows(negative)],
                )
            )

    def notes(self, notes: dict[NoteKey, dict], updates: Sequence[tuple[NoteKey, dict]] = ()) -> None:
        """The batch's new notes, then status updates (in order) to notes of earlier batches."""
        remote: dict[NoteKey, dict] = {}
        for key, change in updates:
            (notes[key] if key in notes else remote.setdefault(key, {})).update(change)
        self.upsert(
            "note",
            NOTE_COLUMNS,
            [(*k, n["at"], n["category"], n["step"], n["text"], n["status"], n["detail"]) for k, n in notes.items()],
            "municipality, channel, scope, day, kind, ref",
            "UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c, _t in NOTE_COLUMNS[6:]),
        )
        self.note_changes([c for c, _t in NOTE_COLUMNS[:6]], list(remote.items()))

    def note_changes(self, match: Sequence[str], changes: Sequence[tuple[tuple, dict]]) -> None:
        """Changes to notes of earlier batches (one per note, merged in order), found by the columns
        `match`: status, detail and step, each set only where the change names it."""
        if not changes:
            return
        types = dict(NOTE_COLUMNS)
        cols = [(c, types[c]) for c in match]
        for c in NOTE_CHANGES:
            cols += [(f"set_{c}", "bool"), (c, "text")]
        sets = ", ".join(f"{c} = CASE WHEN u.set_{c} THEN u.{c} ELSE n.{c} END" for c in NOTE_CHANGES)
        rows = [(*key, *(v for c in NOTE_CHANGES for v in (c in ch, ch.get(c)))) for key, ch in changes]
        self.params.append(db.json_rows(rows))
        self.parts.append(f"""UPDATE "{SCHEMA}".note n SET {sets}
            FROM {db.rows_from(f"${len(self.params)}", cols)}
            WHERE {" AND ".join(f"n.{c} = u.{c}" for c in match)}""")

    async def run(self, conn: db.Connection) -> None:
        """One statement for every upsert; it also makes the commit asynchronous (see `live_batch_guard`)."""
        ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(self.parts))
        await conn.execute(
            f"{'WITH ' + ctes if ctes else ''} SELECT set_config('synchronous_commit', 'off', true)", *self.params
        )
        for sql, args in self.after:
            await conn.execute(sql, *args)


NOTE_COLUMNS = (
    ("municipality", "text"),
    ("channel", "text"),
    ("scope", "text"),
    ("day", "date"),
    ("kind", "text"),
    ("ref", "text"),
    ("at", "timestamptz"),
    ("category", "text"),
    ("step", "text"),
    ("text", "text"),
    ("status", "text"),
    ("detail", "text"),
)


NOTE_CHANGES = ("status", "detail", "step")  # what a later event changes in a note


class RebuildInProgress(Transient):
    """A live batch found a rebuild running: it rolls back, the projection retries later."""


async def live_batch_guard(conn: db.Connection, live: bool) -> None:
    """A live batch's first statement: it never waits for a rebuild's lock.

    This transaction already holds the checkpoint row, which the rebuild must delete (waiting
    would deadlock); it fails and is retried. A rebuild's own batches need no statement here.
    Every batch's commit is asynchronous (`Writes.run`; not one that queued report events, which go out as
    soon as it commits: `outbox.write_outbox`): a batch lost to a crash loses its
    checkpoint with it (one transaction), and the runner, finding the stored position behind its
    own, reads again from it (`madoguchi_shared.projection.PositionLost`); waiting for the WAL
    flush buys nothing here. A live projection's `rebuild_guard` is this check too: while a rebuild
    runs, a stored position behind the runner's is the rebuild's, not commits lost.
    """
    if live and not await conn.fetchval("SELECT pg_try_advisory_xact_lock_shared($1)", REBUILD_LOCK):
        raise RebuildInProgress("a rebuild of the reporting projections is running")


ARRAY_EXPR = {"purposes": "string_to_array(u.purposes, ',')", "categories": "string_to_array(u.categories, ',')"}


def joined(values: list[str] | None) -> str | None:
    """A text[] column travels as one comma-joined text (see `Writes`)."""
    return None if values is None else ",".join(values)


async def load_rows(conn: db.Connection, table: str, id_column: str, keys: set[tuple[str, UUID]]) -> list[dict]:
    """The rows of `table` whose (municipality, `id_column`) is one of `keys`."""
    if not keys:
        return []
    rows = await conn.fetch(
        f"""SELECT t.* FROM "{SCHEMA}".{table} t JOIN {db.rows_from("$1", (("m", "text"), ("id", "uuid")), "k")}
            ON t.municipality = k.m AND t.{id_column} = k.id""",
        db.json_rows(list(keys)),
    )
    return [dict(r) for r in rows]


def note(
    at: dt.datetime, category: str | None, text: str, *, step: str | None = None, status: str | None = None
) -> dict:
    return {"at": at, "category": category, "step": step, "text": text, "status": status, "detail": None}
