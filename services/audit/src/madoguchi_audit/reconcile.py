"""Reconciliation of the log with the streams of record (ARCHITECTURE rule 9).

The JetStream streams (delete and purge denied) are an independent copy of every event. Up to a
cut-off (per stream: the last message stored at least `grace` seconds before the run started),
every message of every recorded stream must appear in the log exactly once, in stream order,
with the same bytes (compared by sha256), and the log must hold nothing the streams do not.
This catches what the chain and the checkpoints cannot: a tail cut after the last signed
checkpoint, a live deletion, a chain rebuilt from some record on — each located precisely, by
stream, stream sequence and log position.

Shape, for speed: the verifier's single pass over the table (verify.verify_db) also fills a
`LogIndex` — per stream, the (stream sequence, log position, sha256 of the data) of every record
in log order, in flat arrays (about 48 bytes a record). Meanwhile each stream is read once with
the shared reader (ack-less raw pull) into flat arrays of (sequence, sha256) (`collect`), so the
reading overlaps PostgreSQL building the headers; then the two are compared stream by stream.
(An incremental run reads the streams after the pass, from where the table's read starts, and
compares in the reader's callback.)

Tolerated: the audit service's own bookkeeping on MG_AUDIT after the log's last record of that
stream (its checkpoints and the records of verification runs: a clean stop signs the tail and
that checkpoint is never logged; a verification run is published after the table was read).
Everything else missing at the end is reported: the writer is behind, stopped, or the tail was cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from nats.aio.client import Client as NATS

from madoguchi_shared import bus
from madoguchi_shared.reader import Reader, StoredMessage

# Subjects of MG_AUDIT that may trail the log: mg.audit.<m>.<aggregate>.<id>
_TRAILING = frozenset({"checkpoint", "verification"})
BATCH = 5000  # messages per pull request (three kept in flight per stream)


class StreamIndex:
    __slots__ = ("seqs", "positions", "digests")

    def __init__(self) -> None:
        self.seqs = array("q")
        self.positions = array("q")
        self.digests = bytearray()


class LogIndex:
    """Per stream, the records of the log in log order: sequence, position, sha256(data)."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamIndex] = {}
        self.records = 0
        self.first_position: int | None = None
        self.last_position = 0

    def add_rows(self, rows) -> None:
        """Rows as the verifier reads them: (position, prev_hash || header || data, hash, stream, stream_seq,
        octet_length(data)); the data is the payload's tail, hashed here (PostgreSQL's sha256() costs ten
        times as much per row)."""
        streams = self.streams
        sha = hashlib.sha256
        last_stream, s = None, StreamIndex()  # s: the index of last_stream (the first row names it)
        for row in rows:
            if row[3] != last_stream:
                last_stream = row[3]
                s = streams.get(last_stream)
                if s is None:
                    s = streams[last_stream] = StreamIndex()
            s.seqs.append(row[4])
            s.positions.append(row[0])
            payload = row[1]
            s.digests += sha(memoryview(payload)[len(payload) - row[5] :]).digest()
        if rows:
            if self.first_position is None:
                self.first_position = rows[0][0]
            self.last_position = rows[-1][0]
            self.records += len(rows)

    def extend(self, later: LogIndex) -> None:
        """Append the index of the records that follow (the parallel verifier's partitions, in position order)."""
        for name, part in later.streams.items():
            s = self.streams.get(name)
            if s is None:
                s = self.streams[name] = StreamIndex()
            s.seqs.extend(part.seqs)
            s.positions.extend(part.positions)
            s.digests += part.digests
        if later.records:
            if self.first_position is None:
                self.first_position = later.first_position
            self.last_position = later.last_position
            self.records += later.records


DiscrepancyKind = Literal["missing", "extra", "altered", "reordered", "duplicate"]


@dataclass
class Discrepancy:
    kind: DiscrepancyKind
    stream: str
    stream_seq: int
    position: int | None  # the log position of the record, or (missing) of the record it should follow
    detail: str

    @property
    def sort_key(self) -> tuple:
        return (self.position if self.position is not None else 0, self.stream, self.stream_seq)

    def line(self) -> str:
        where = f"log position {self.position}" if self.position is not None else "the start of the log"
        if self.kind == "missing":
            where = f"expected after {where}" if self.position is not None else "expected at the start of the log"
        return f"{self.stream} seq {self.stream_seq} ({where}): {self.kind}: {self.detail}"


@dataclass
class Reconciliation:
    cutoff_time: datetime
    cutoff: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    records: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    total_discrepancies: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.total_discrepancies == 0

    @property
    def first(self) -> Discrepancy | None:
        return min(self.discrepancies, key=lambda d: d.sort_key) if self.discrepancies else None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "cutoff_time": self.cutoff_time.isoformat(),
            "cutoff": self.cutoff,
            "messages": self.messages,
            "records": self.records,
            "discrepancies": self.total_discrepancies,
            "first": self.first.__dict__ if self.first else None,
            "listed": [d.__dict__ for d in self.discrepancies],
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        cut = ", ".join(f"{s} {q}" for s, q in self.cutoff.items())
        head = (
            f"reconciled with the streams of record up to the cut-off {self.cutoff_time.isoformat()} "
            f"(stream seqs {cut}): {self.messages:,} messages, {self.records:,} records"
        )
        if self.ok:
            out = [f"    {head}: every message once, in stream order, same bytes; nothing extra"]
        else:
            out = [f"    {head}: {self.total_discrepancies:,} discrepancies"]
            first = self.first
            if first is not None:
                out.append(f"    first: {first.line()}")
            out += [
                f"      {d.line()}" for d in sorted(self.discrepancies, key=lambda d: d.sort_key)[:20] if d is not first
            ]
        out += [f"    note: {n}" for n in self.notes]
        return out


def _trailing(stream: str, subject: str) -> bool:
    """The audit service's own bookkeeping on MG_AUDIT, which may trail the log (see the module docstring)."""
    if stream != "MG_AUDIT":
        return False
    parts = subject.split(".")
    return len(parts) == 5 and parts[3] in _TRAILING


class Collected:
    """One stream's messages up to the cut-off, read while the table is being verified: seq, sha256, trailing flag."""

    def __init__(self, stream: str, cut: int):
        self.stream = stream
        self.cut = cut
        self.seqs = array("q")
        self.digests = bytearray()
        self.trailing = bytearray()
        self.done = asyncio.Event()

    def feed(self, msgs: list[StoredMessage]) -> None:
        """The reader's batch sink: a socket read's worth of messages in stream order."""
        if self.done.is_set():
            return
        cut, seqs, digests, trailing, sha = self.cut, self.seqs, self.digests, self.trailing, hashlib.sha256
        audit = self.stream == "MG_AUDIT"
        for msg in msgs:
            seq = msg.seq
            if seq > cut:
                self.done.set()
                return
            seqs.append(seq)
            digests += sha(msg.data).digest()
            trailing.append(audit and _trailing(self.stream, msg.subject))
            if seq >= cut or msg.pending == 0:
                self.done.set()
                return


async def _read(
    nc: NATS, streams: dict[str, list[str]], starts: dict[str, int], cut: dict[str, int], sinks: dict
) -> None:
    """Read every stream from its start to its cut-off into its sink (an object with feed() and done)."""
    readers: list[Reader] = []
    try:
        for stream, filters in streams.items():
            sink = sinks[stream]
            start = starts.get(stream, 1)
            if cut.get(stream, 0) < start:
                sink.done.set()
                continue
            reader = Reader(nc, stream, filters, start_seq=start, batch=BATCH, depth=3, batch_sink=sink.feed)
            readers.append(reader)
            await reader.start()
            if reader.pending == 0:
                sink.done.set()
        waiting = dict(sinks)
        while waiting:
            for name, c in list(waiting.items()):
                if c.done.is_set():
                    del waiting[name]
            if not waiting:
                break
            await asyncio.wait(
                [asyncio.ensure_future(c.done.wait()) for c in waiting.values()],
                timeout=1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for r in readers:
                await r.watchdog()
    finally:
        for r in readers:
            await r.stop()


async def collect(nc: NATS, streams: dict[str, list[str]], cut: dict[str, int]) -> dict[str, Collected]:
    """Read every stream from its start to the cut-off (run beside the verifier's pass over the table)."""
    sinks = {s: Collected(s, cut.get(s, 0)) for s in streams}
    await _read(nc, streams, {}, cut, sinks)
    return sinks


class _Compare:
    """Compares one stream's messages, in order, with its records in the log; runs in the reader's callback."""

    LIMIT = 1000  # discrepancies kept per stream (all are counted)

    def __init__(self, stream: str, index: StreamIndex | None, cut: int, last_position: int):
        self.stream = stream
        self.cut = cut
        self.seqs = index.seqs if index else array("q")
        self.positions = index.positions if index else array("q")
        self.digests = index.digests if index else bytearray()
        self.n = len(self.seqs)
        self.i = 0
        self.last_position = last_position
        self.messages = 0
        self.found: list[Discrepancy] = []
        self.count = 0
        self.tolerated = 0  # the audit service's own messages past the log's last MG_AUDIT record
        self.done = asyncio.Event()
        self.last_seq = 0
        self._check_order()

    def _add(self, kind: DiscrepancyKind, seq: int, position: int | None, detail: str) -> None:
        self.count += 1
        if len(self.found) < self.LIMIT:
            self.found.append(Discrepancy(kind, self.stream, seq, position, detail))

    def _check_order(self) -> None:
        """The stream's records must be in stream order in the log; a swap or duplicate is named here."""
        seqs = self.seqs
        bad = [j for j in range(1, self.n) if seqs[j] <= seqs[j - 1]]
        if not bad:
            return
        if all(seqs[j] != seqs[j - 1] for j in bad):
            # A reordering (records swapped or moved, the chain perhaps recomputed over them): the first bad record
            # is the first whose sequence is not the one stream order puts there, which may precede the first
            # descent (a, d, c, b, e: d is out of place, the first descent is at c).
            ordered = sorted(seqs)
            first = next(j for j in range(self.n) if seqs[j] != ordered[j])
            if first < bad[0]:
                self._add(
                    "reordered",
                    seqs[first],
                    self.positions[first],
                    f"recorded where seq {ordered[first]} belongs: out of stream order",
                )
        for j in bad:
            kind = "duplicate" if seqs[j] in (seqs[j - 1],) else "reordered"
            self._add(
                kind,
                seqs[j],
                self.positions[j],
                "recorded twice"
                if kind == "duplicate"
                else f"recorded after seq {seqs[j - 1]} (log position {self.positions[j - 1]}): out of stream order",
            )
        # Match the rest by sequence: sort the records by (seq, position), keep the first of each seq.
        order = sorted(range(self.n), key=lambda j: (seqs[j], self.positions[j]))
        keep, last = [], None
        for j in order:
            if seqs[j] != last:
                keep.append(j)
                last = seqs[j]
        self.seqs = array("q", (seqs[j] for j in keep))
        self.positions = array("q", (self.positions[j] for j in keep))
        self.digests = bytearray(b"".join(bytes(self.digests[j * 32 : j * 32 + 32]) for j in keep))
        self.n = len(self.seqs)

    def _previous_position(self) -> int | None:
        return self.positions[self.i - 1] if self.i > 0 else None

    def feed(self, msgs: list[StoredMessage]) -> None:
        """The reader's batch sink: compare as the messages arrive."""
        for msg in msgs:
            if self.done.is_set():
                return
            if msg.seq > self.cut:
                self.done.set()
                return
            self.feed_digest(msg.seq, hashlib.sha256(msg.data).digest(), _trailing(self.stream, msg.subject))
            if msg.seq >= self.cut or msg.pending == 0:
                self.done.set()

    def feed_many(self, seqs: array, digests: bytearray, trailing: bytearray) -> None:
        """A stream's messages read in full beforehand: in bulk while they match the log one for one (the usual
        case: two array compares), message by message from the first that does not."""
        k = 0
        if self.i == 0:
            n = min(self.n, len(seqs))
            if self.seqs[:n] == seqs[:n] and self.digests[: 32 * n] == digests[: 32 * n]:
                k = n
            else:
                # Narrow down to the first difference by halves, so a late fault costs array compares, not a loop.
                lo, hi = 0, n
                while hi - lo > 1024:
                    mid = (lo + hi) // 2
                    if (
                        self.seqs[lo:mid] == seqs[lo:mid]
                        and self.digests[32 * lo : 32 * mid] == digests[32 * lo : 32 * mid]
                    ):
                        lo = mid
                    else:
                        hi = mid
                k = lo
            if k:
                self.i = k
                self.messages += k
                self.last_seq = seqs[k - 1]
        for j in range(k, len(seqs)):
            self.feed_digest(seqs[j], bytes(digests[32 * j : 32 * j + 32]), bool(trailing[j]))

    def feed_digest(self, seq: int, digest: bytes, tolerable: bool) -> None:
        self.messages += 1
        self.last_seq = seq
        seqs, i, n = self.seqs, self.i, self.n
        while i < n and seqs[i] < seq:
            self._add(
                "extra", seqs[i], self.positions[i], "the log holds a record of a stream message that does not exist"
            )
            i += 1
        if i < n and seqs[i] == seq:
            if digest != self.digests[i * 32 : i * 32 + 32]:
                self._add("altered", seq, self.positions[i], "the record's bytes differ from the stream's message")
            i += 1
        elif i >= n:
            self._tail_missing(seq, tolerable)
        else:
            self._add(
                "missing",
                seq,
                self._previous_position() if i > 0 else None,
                f"the stream's message is not in the log (the next record of {self.stream} is seq {seqs[i]} "
                f"at log position {self.positions[i]})",
            )
        self.i = i

    def _tail_missing(self, seq: int, tolerable: bool) -> None:
        if tolerable:
            self.tolerated += 1
            return
        self._add(
            "missing",
            seq,
            self.last_position,
            "the stream's message is not in the log: the log ends before it (tail cut, records deleted, "
            "or the writer is stopped or behind)",
        )

    def finish(self, stream_last: int | None = None) -> int:
        """Records after the last message up to the cut-off are extra, and so is any record of a sequence the
        stream has never reached (`stream_last`, read after the table). Returns the tolerated trailing messages."""
        i = self.i
        while i < self.n and self.seqs[i] <= self.cut:
            self._add(
                "extra",
                self.seqs[i],
                self.positions[i],
                "the log holds a record of a stream message that does not exist",
            )
            i += 1
        if stream_last is not None:
            for j in range(i, self.n):
                if self.seqs[j] > stream_last:
                    self._add(
                        "extra",
                        self.seqs[j],
                        self.positions[j],
                        f"the log holds a record of seq {self.seqs[j]}, but the stream ends at {stream_last}",
                    )
        self.i = i
        return self.tolerated


async def cutoff(nc: NATS, streams: list[str], at: datetime) -> dict[str, int]:
    """Per stream, the last sequence stored before `at` (JetStream direct get by start time)."""
    js = nc.jetstream()
    out: dict[str, int] = {}
    for stream in streams:
        info = await js.stream_info(stream)
        last = info.state.last_seq or 0
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            reply = await nc.request(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps({"start_time": stamp}).encode(), timeout=5
            )
        except Exception:  # noqa: BLE001 - fall back to the ordinary get below
            reply = None
        headers = (reply.headers or {}) if reply is not None else {}
        if reply is not None and "Nats-Sequence" in headers:
            out[stream] = int(headers["Nats-Sequence"]) - 1
        elif reply is not None and headers.get("Status") == "404":
            out[stream] = last  # nothing stored at or after `at`
        else:
            raise RuntimeError(f"could not find the cut-off of {stream}: {headers}")
    return out


async def reconcile(
    nc: NATS,
    index: LogIndex,
    streams: dict[str, list[str]],
    cut: dict[str, int],
    cutoff_time: datetime,
    *,
    after: dict[str, int | None] | None = None,
    collected: dict[str, Collected] | None = None,
) -> Reconciliation:
    """Compare every stream (name -> filter subjects) up to its cut-off with the log index.

    `after`: when the index starts past position 1 (incremental verification, archived records),
    per stream the last sequence recorded before that position (None: unknown, e.g. archived):
    messages up to it are not compared here.
    """
    t0 = time.perf_counter()
    result = Reconciliation(cutoff_time=cutoff_time, cutoff=dict(cut), records=index.records)
    compares = {s: _Compare(s, index.streams.get(s), cut.get(s, 0), index.last_position) for s in streams}
    if collected is not None:  # read already, beside the pass over the table
        for stream, c in compares.items():
            got = collected[stream]
            c.feed_many(got.seqs, got.digests, got.trailing)
    else:
        starts: dict[str, int] = {}
        for stream in streams:
            s_index = index.streams.get(stream)
            if after is not None:
                before = after.get(stream)
                if before is None and s_index is not None and len(s_index.seqs):
                    before = s_index.seqs[0] - 1  # archived: the first record left tells where the table starts
                starts[stream] = (before or 0) + 1
        await _read(nc, streams, starts, cut, compares)
    js = nc.jetstream()
    tolerated = 0
    for c in compares.values():
        last = (await js.stream_info(c.stream)).state.last_seq or 0  # read after the table: nothing recorded is newer
        tolerated += c.finish(last)
        result.messages += c.messages
        result.total_discrepancies += c.count
        result.discrepancies += c.found
    # Records of a stream that is no stream of record (MG_DLQ, a name made up): no stream vouches for them, and the
    # comparison above, which reads the streams of record, never looked at them. A superuser appending a forged record
    # of one to the unsigned tail, with the chain, chain_head and hour_span kept consistent, was verified OK.
    for name, s_index in index.streams.items():
        if name in streams or not len(s_index.seqs):
            continue
        result.total_discrepancies += len(s_index.seqs)
        result.discrepancies.append(
            Discrepancy(
                "extra",
                name,
                s_index.seqs[0],
                s_index.positions[0],
                f"the log holds {len(s_index.seqs)} record(s) of {name}, which is no stream of record",
            )
        )
    if after is not None:
        result.notes.append(
            "messages recorded before the first position read were not compared ("
            + ", ".join(f"{s} to seq {q}" for s, q in after.items() if q)
            + ")"
        )
    if tolerated:
        result.notes.append(
            f"{tolerated} of the audit service's own checkpoint / verification messages follow the "
            "log's last MG_AUDIT record (written after the writer stopped, or not yet ingested)"
        )
    result.seconds = time.perf_counter() - t0
    return result


def cutoff_time(grace_seconds: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(seconds=grace_seconds)


def stream_filters(municipalities: list[str]) -> dict[str, list[str]]:
    from madoguchi_audit.ingest import filter_subjects

    return {s: filter_subjects(s, municipalities) for s in bus.LOG_STREAMS}


__all__ = [
    "Collected",
    "Discrepancy",
    "LogIndex",
    "Reconciliation",
    "collect",
    "cutoff",
    "cutoff_time",
    "reconcile",
    "stream_filters",
]
