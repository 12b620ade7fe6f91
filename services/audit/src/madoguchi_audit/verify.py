"""The verifier: recompute the chain and hold it against the signed checkpoints.

One core (`ChainCheck`) serves the database path (`verify_db`, a server-side cursor in a
read-only snapshot, PostgreSQL building each record's header) and the in-memory path
(`verify_rows`, the tampering trials). The fast loop does one sha256 and a few compares per
record and stops at the first record that does not fit; `diagnose` then works out what is wrong
there:

- ``deleted``   a gap in the positions, or a record whose predecessor no longer exists
                (a row deleted and the later ones renumbered);
- ``edited``    a record whose content, envelope columns or stored prev_hash changed;
- ``reordered`` a record that is intact but chained after a record at a later position
                (swapped or moved rows);
- ``inserted``  intact records that chain from a record further back (forged rows slipped in);
- ``chain_replaced`` the chain is consistent but its head at a signed checkpoint differs: the
                records were rewritten with recomputed hashes. The checkpoints only bound where:
                the first position not vouched for by an earlier checkpoint is reported, with
                the checkpoint that disagrees as the end of the range;
- ``truncated`` the table ends before the last signed checkpoint (the tail was cut);
- ``bad_signature`` a checkpoint whose signature does not verify;
- ``untrusted_key`` a checkpoint signed by a key that is not in the log's key chain (keys.py);
- ``copies_disagree`` the stream, file and database copies of the checkpoints differ.

`verify_all` (the CLI and the API) adds the key chain from the stream of record, the three copies
of the checkpoints, and the reconciliation with the streams (reconcile.py): ``missing``,
``extra``, ``altered``, ``reordered``, ``duplicate`` records named by stream, stream sequence and
log position — which also locates a rebuilt chain at its first altered record.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from asyncpg import Record

from madoguchi_shared import db
from madoguchi_shared.events import audit as audit_events
from madoguchi_shared.events.audit import CheckpointSigned

from madoguchi_audit import chain
from madoguchi_audit.checkpoints import signature_ok
from madoguchi_audit.reconcile import LogIndex, Reconciliation
from madoguchi_audit.schema import READER

SLICE = 500  # rows hashed between two looks at the socket


# the faults a verification run records, and a record the streams of record hold twice (recorded as "extra")
FaultKind = audit_events.Fault | Literal["duplicate"]


@dataclass
class Fault:
    kind: FaultKind
    position: int
    detail: str
    upto: int | None = None  # the end of the range a chain_replaced fault is known to lie in
    stream: str | None = None  # where the streams of record locate it (reconciliation)
    stream_seq: int | None = None

    def event_fault(self) -> audit_events.Fault:
        """The kind as the audit.verification_run event records it."""
        return "extra" if self.kind == "duplicate" else self.kind


@dataclass
class Report:
    log_id: str
    ok: bool = False
    records: int = 0
    from_position: int = 0
    to_position: int = 0
    head: str | None = None
    checkpoints_checked: int = 0
    last_checkpoint: int | None = None
    fault: Fault | None = None
    checkpoint_faults: list[Fault] = field(default_factory=list)
    # records whose envelope columns or subject do not say what their bytes and the stream say, in the stretch
    # no signed checkpoint vouches for (the tail, a rebuilt range), and a chain_head that is not the last record
    record_faults: list[Fault] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    key_chain: list[str] = field(default_factory=list)
    reconciliation: Reconciliation | None = None
    redacted: int = 0  # free texts erased by destroying their keys (admin.text_erased): redacted, not tampered

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def _recon_faults(self) -> tuple[Fault | None, Fault | None]:
        """The reconciliation's first exactly located discrepancy, and its first missing message (whose
        position is a bound: it belongs somewhere after the record named)."""
        exact = missing = None
        if self.reconciliation is not None:
            for d in sorted(self.reconciliation.discrepancies, key=lambda d: d.sort_key):
                if d.kind == "missing":
                    missing = missing or Fault(
                        d.kind, (d.position or 0) + 1, d.line(), stream=d.stream, stream_seq=d.stream_seq
                    )
                else:
                    exact = exact or Fault(d.kind, d.position or 0, d.line(), stream=d.stream, stream_seq=d.stream_seq)
        return exact, missing

    @property
    def first_fault(self) -> Fault | None:
        """The first bad record: the earliest exactly located finding of the chain, the checkpoints and the
        reconciliation; a missing message only where nothing exact comes first.

        A rebuilt chain is known from the checkpoints only to a range; the streams locate its first altered record.
        """
        exact, missing = self._recon_faults()
        chain_fault = self.fault
        if chain_fault is not None and chain_fault.kind == "chain_replaced":
            inside = [
                f
                for f in (exact, missing, *self.record_faults)
                if f is not None and chain_fault.position <= f.position <= (chain_fault.upto or f.position)
            ]
            if inside:
                located = min(inside, key=lambda f: f.position)
                chain_fault = Fault(
                    "chain_replaced",
                    located.position,
                    f"{chain_fault.detail}; the first rewritten record: {located.detail}",
                    stream=located.stream,
                    stream_seq=located.stream_seq,
                )
        elif chain_fault is not None and chain_fault.kind == "deleted" and self.reconciliation is not None:
            # The record is gone from the table; the streams of record name the message that was there.
            gone = [
                d
                for d in self.reconciliation.discrepancies
                if d.kind == "missing" and (d.position or 0) + 1 == chain_fault.position
            ]
            if gone:
                first = min(gone, key=lambda d: d.stream_seq)
                chain_fault = Fault(
                    "deleted",
                    chain_fault.position,
                    f"{chain_fault.detail}; {first.line()}",
                    stream=first.stream,
                    stream_seq=first.stream_seq,
                )
        found = [f for f in (chain_fault, exact) if f is not None] + self.checkpoint_faults + self.record_faults
        if found:
            return min(found, key=lambda f: (f.position == 0, f.position))  # an unlocated fault (0) after a located one
        return missing

    def as_dict(self) -> dict:
        data = asdict(self)
        data["reconciliation"] = self.reconciliation.as_dict() if self.reconciliation else None
        data["first_bad"] = asdict(self.first_fault) if self.first_fault else None
        data["rate"] = round(self.rate)
        return data

    def lines(self) -> list[str]:
        out = self._chain_lines()
        if self.reconciliation is not None:
            out[-1:-1] = self.reconciliation.lines()
        if self.key_chain:
            out[-1:-1] = ["    " + line for line in self.key_chain]
        if self.redacted:
            out[-1:-1] = [
                f"    redacted: {self.redacted} free text(s) erased by key destruction (admin.text_erased); "
                "their records keep the ciphertext, the chain is intact — redacted, not tampered"
            ]
        return out

    def _chain_lines(self) -> list[str]:
        if self.ok:
            out = [
                f"OK  log {self.log_id}: {self.records:,} records, positions {self.from_position}..{self.to_position}",
                f"    head {self.head}",
                f"    {self.checkpoints_checked} signed checkpoints verified"
                + (f", the last at position {self.last_checkpoint}" if self.last_checkpoint else ""),
            ]
        else:
            fault = self.first_fault
            assert fault is not None
            where = f"position {fault.position}" + (
                f" (somewhere in {fault.position}..{fault.upto})" if fault.upto else ""
            )
            if fault.stream:
                where += f" ({fault.stream} seq {fault.stream_seq})"
            out = [
                f"BAD log {self.log_id}: first bad {where}: {fault.kind}",
                f"    {fault.detail}",
                f"    chain: checked {self.records:,} records"
                + (f"; first break at position {self.fault.position}: {self.fault.kind}" if self.fault else ", intact")
                + f"; {self.checkpoints_checked} signed checkpoints matched",
            ]
            out += [
                f"    also: checkpoint {f.position}: {f.kind}: {f.detail}"
                for f in self.checkpoint_faults
                if f is not fault
            ]
            out += [
                f"    also: position {f.position}: {f.kind}: {f.detail}"
                for f in self.record_faults[:20]
                if f is not fault
            ]
        out += [f"    note: {n}" for n in self.notes]
        out.append(f"    {self.seconds:.2f} s, {self.rate:,.0f} records/s")
        return out


def trusted_checkpoints(
    cps: Iterable[CheckpointSigned], keyring: dict, log_id: str
) -> tuple[dict[int, bytes], list[Fault]]:
    """Checkpoints of this log whose signature verifies (position -> head), and faults for the rest."""
    good: dict[int, bytes] = {}
    faults: list[Fault] = []
    seen: set[tuple[int, str, str]] = set()
    for cp in cps:
        if cp.log_id != log_id or (cp.position, cp.head, cp.signature) in seen:
            continue
        seen.add((cp.position, cp.head, cp.signature))
        if not signature_ok(cp, keyring):
            if cp.key_id not in keyring:
                faults.append(
                    Fault(
                        "untrusted_key",
                        cp.position,
                        f"checkpoint at {cp.position} is signed by "
                        f"unknown key {cp.key_id}, which was never introduced nor rotated to",
                    )
                )
            else:
                faults.append(
                    Fault("bad_signature", cp.position, f"checkpoint at {cp.position}: the signature does not verify")
                )
            continue
        head = bytes.fromhex(cp.head)
        if cp.position in good and good[cp.position] != head:
            faults.append(
                Fault(
                    "bad_signature",
                    cp.position,
                    f"two validly signed checkpoints disagree at {cp.position} (key compromised?)",
                )
            )
            continue
        good[cp.position] = head
    return good, faults


# What the fast loop hashes, built by PostgreSQL: prev_hash || header || data. Two things the hash alone cannot see are
# made to break the link instead (the stored prev_hash left out, so the payload no longer starts with the hash before
# it, and diagnose() names the record): an envelope column holding the header's mark of an empty value (E'\x1e' reads
# as NULL to the chain, so a superuser could turn NULL into \x1e, or back, with every hash intact), and a NULL
# prev_hash or data (a superuser dropped NOT NULL: the whole payload was NULL and the verifier stopped, unable to run).
PAYLOAD_SQL = (
    "coalesce(CASE WHEN E'\\x1e' IN (type, municipality, ward, desk, actor_id, actor_role, device_id) THEN NULL "
    f"ELSE prev_hash END, '\\x'::bytea) || {chain.HEADER_SQL} || coalesce(data, '\\x'::bytea)"
)


class ChainCheck:
    """The fast loop. Feed rows (position, prev_hash || header || data, hash) in position order."""

    def __init__(self, start_position: int, prev: bytes, checkpoints: dict[int, bytes]):
        self.expected = start_position
        self.run = prev
        self.cps = checkpoints
        self._cp_positions = sorted(p for p in checkpoints if p >= start_position)
        self._cp_index = 0
        self.vouched = start_position - 1  # the last position a matching checkpoint covers
        self.checked = 0
        self.checkpoints_matched = 0
        self.failure: tuple[str, int] | None = None  # (what, position)

    @property
    def next_cp(self) -> int:
        return self._cp_positions[self._cp_index] if self._cp_index < len(self._cp_positions) else 0

    def feed(self, rows: Iterable[Sequence[Any] | Record]) -> bool:
        """Check rows; False once a row does not fit (see self.failure)."""
        sha = hashlib.sha256
        expected, run, next_cp = self.expected, self.run, self.next_cp
        checked = 0
        failure = None
        for row in rows:
            position = row[0]
            payload = row[1]
            if position != expected:
                failure = ("gap", position)
                break
            if not payload.startswith(run):  # the stored prev_hash is not the hash before it
                failure = ("link", position)
                break
            new = sha(payload).digest()
            if new != row[2]:
                failure = ("hash", position)
                break
            run = new
            expected += 1
            checked += 1
            if position == next_cp:
                if run != self.cps[position]:
                    failure = ("checkpoint", position)
                    break
                self.vouched = position
                self.checkpoints_matched += 1
                self._cp_index += 1
                next_cp = self.next_cp
        self.expected, self.run, self.checked = expected, run, self.checked + checked
        self.failure = failure
        return failure is None


def payloads(rows: Iterable[chain.Row]) -> list[tuple[int, bytes, bytes]]:
    """Rows in the fast loop's shape: what is hashed is prev_hash || header || data."""
    return [(r.position, r.prev_hash + r.header + r.data, r.hash) for r in rows]


class Probe(Protocol):
    """Random access for diagnosing one failure (a query or two, never on the fast path)."""

    async def position_of(self, digest: bytes) -> int | None: ...

    async def row(self, position: int) -> chain.Row | None: ...


async def diagnose(check: ChainCheck, probe: Probe) -> Fault:
    """Say what is wrong at the row the fast loop stopped on."""
    assert check.failure is not None
    kind, position = check.failure
    expected, run = check.expected, check.run
    row = await probe.row(position)
    assert row is not None
    if kind == "gap":
        if row.position > expected:
            return Fault(
                "deleted",
                expected,
                f"records {expected}..{row.position - 1} are missing"
                if row.position - 1 > expected
                else f"record {expected} is missing",
            )
        return Fault("reordered", expected, f"position {row.position} appears where {expected} belongs")
    if kind == "checkpoint":
        signed = check.cps[row.position]
        moved_to = await probe.position_of(signed)
        if moved_to is not None and moved_to > row.position:
            # The signed record is still there, further down: records were slipped in before it.
            moved = await probe.row(moved_to)
            origin = await probe.position_of(moved.prev_hash) if moved else None
            if origin is not None and check.vouched <= origin < moved_to:
                return Fault(
                    "inserted",
                    origin + 1,
                    f"records {origin + 1}..{moved_to - 1} do not belong: the "
                    f"record signed at {row.position} now sits at {moved_to}",
                )
        return Fault(
            "chain_replaced",
            check.vouched + 1,
            f"the chain is self-consistent but its head at {row.position} differs from the signed "
            f"checkpoint: records after {check.vouched} were rewritten",
            upto=row.position,
        )
    if kind == "hash":
        return Fault("edited", row.position, "the record's content or envelope columns changed")
    # kind == "link": the row's stored prev_hash is not the hash of the record before it
    if row.prev_hash is None or row.data is None:
        return Fault("edited", row.position, "the record's stored prev_hash or data was emptied (NULL)")
    intact = chain.link(row.prev_hash, row.header, row.data) == row.hash
    if intact and row.prev_hash == run:  # (PAYLOAD_SQL left the prev_hash out)
        return Fault(
            "edited",
            row.position,
            "an envelope column holds the header's mark of an empty value (\\x1e), which the hash cannot tell from empty",
        )
    if not intact:
        return Fault(
            "edited",
            row.position,
            "the stored prev_hash changed"
            if chain.link(run, row.header, row.data) == row.hash
            else "the record's content and its link changed",
        )
    if row.prev_hash == chain.GENESIS:
        return Fault("reordered", row.position, "the first record of the log appears here")
    origin = await probe.position_of(row.prev_hash)
    if origin is None:
        return Fault(
            "deleted",
            row.position,
            "the record this one was chained after no longer exists (deleted, later records renumbered)",
        )
    if origin > row.position:
        return Fault("reordered", row.position, f"this record was chained after the record now at {origin}")
    return Fault(
        "inserted",
        origin + 1,
        f"records {origin + 1}..{row.position - 1} do not belong: position {row.position} was chained after {origin}",
    )


def finish(report: Report, check: ChainCheck, last_position: int | None, cps: dict[int, bytes]) -> None:
    report.records = check.checked
    report.to_position = check.expected - 1
    report.head = check.run.hex() if check.checked or report.from_position > 1 else None
    report.checkpoints_checked = check.checkpoints_matched
    report.last_checkpoint = check.vouched if check.vouched >= report.from_position else None
    if report.fault is None and cps:
        top = max(cps)
        end = last_position or 0
        if top > end:
            report.fault = Fault(
                "truncated", end + 1, f"the table ends at {end} but a checkpoint was signed at {top}: the tail was cut"
            )
    report.ok = (
        report.fault is None
        and not report.checkpoint_faults
        and (report.reconciliation is None or report.reconciliation.ok)
    )


# --------------------------------------------------------------------------------------------
# In memory (tests, archives)
# --------------------------------------------------------------------------------------------


class _MemoryProbe:
    def __init__(self, rows: Sequence[chain.Row]):
        self.by_hash = {r.hash: r.position for r in rows}
        self.by_position = {r.position: r for r in rows}

    async def position_of(self, digest: bytes) -> int | None:
        return self.by_hash.get(digest)

    async def row(self, position: int) -> chain.Row | None:
        return self.by_position.get(position)


class _TableProbe:
    def __init__(self, conn: db.Connection, table: str):
        self.conn, self.table = conn, table

    async def position_of(self, digest: bytes) -> int | None:
        return await self.conn.fetchval(f"SELECT position FROM {self.table} WHERE hash = $1 LIMIT 1", digest)

    async def row(self, position: int) -> chain.Row | None:
        r = await self.conn.fetchrow(
            f"SELECT position, {chain.HEADER_SQL}, data, prev_hash, hash FROM {self.table} WHERE position = $1",
            position,
        )
        return chain.Row(*r) if r else None


async def verify_rows(
    rows: Sequence[chain.Row],
    checkpoints: Iterable[CheckpointSigned],
    keyring: dict,
    log_id: str,
    *,
    start_position: int = 1,
    prev: bytes = chain.GENESIS,
) -> Report:
    """Verify a list of rows the same way verify_db verifies the table."""
    t0 = time.perf_counter()
    cps, cp_faults = trusted_checkpoints(checkpoints, keyring, log_id)
    report = Report(log_id=log_id, from_position=start_position, checkpoint_faults=cp_faults)
    check = ChainCheck(start_position, prev, cps)
    if not check.feed(payloads(rows)):
        report.fault = await diagnose(check, _MemoryProbe(rows))
    finish(report, check, rows[-1].position if rows else start_position - 1, cps)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


async def verify_db(
    conn: db.Connection,
    schema: str,
    log_id: str,
    checkpoints: Iterable[CheckpointSigned],
    keyring: dict,
    *,
    from_checkpoint: bool | int = False,
    chunk: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
    index: LogIndex | None = None,
    archives: set[int] | None = None,
) -> Report:
    """Verify the table `schema`.log against signed checkpoints.

    archives: the last positions of the archives the stream of record announced (audit.archive_made); a table
    that starts after an archive row of its own that is not among them is not vouched for (a superuser can
    delete the head of the log and insert an archive row). None: the table's archive rows are taken as they are.

    from_checkpoint: False = from the start (or the archive boundary after retention); True = from
    the newest signed checkpoint the table reaches; an int = from the signed checkpoint at it.
    progress(done, total) is called after every chunk. Given an `index`, every record read also
    goes into it for the reconciliation, and the table is read to its end even past a break.
    """
    t0 = time.perf_counter()
    q = f'"{schema}"'
    cps, cp_faults = trusted_checkpoints(checkpoints, keyring, log_id)
    report = Report(log_id=log_id, checkpoint_faults=cp_faults)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        first, last = await db.fetch_one(conn, f"SELECT min(position), max(position) FROM {q}.log")
        start, prev = 1, chain.GENESIS
        if from_checkpoint is not False:
            candidates = sorted(p for p in cps if last is not None and p <= last)
            if from_checkpoint is not True:
                candidates = [p for p in candidates if p == from_checkpoint]
                if not candidates:
                    raise ValueError(f"no signed checkpoint at {from_checkpoint} within the table")
            if candidates:
                start, prev = candidates[-1] + 1, cps[candidates[-1]]
                report.notes.append(f"started after the signed checkpoint at {candidates[-1]}")
        elif first is not None and first > 1:
            boundary = await conn.fetchrow(
                f"SELECT archive_id, to_position FROM {q}.archive WHERE to_position = $1 AND verified "
                "AND deleted_at IS NOT NULL",
                first - 1,
            )
            if boundary is not None and (first - 1) in cps and (archives is None or first - 1 in archives):
                start, prev = first, cps[first - 1]
                report.notes.append(f"positions 1..{first - 1} are in archive {boundary['archive_id']}")
            else:
                start = 1  # nothing vouches for the missing head: the gap is reported as deleted
        report.from_position = start
        check = ChainCheck(start, prev, cps)
        total = max(0, (last or 0) - start + 1)
        extra = ", stream, stream_seq, coalesce(octet_length(data), 0)" if index is not None else ""
        cursor = await conn.cursor(
            f"SELECT position, {PAYLOAD_SQL}, hash{extra} FROM {q}.log WHERE position >= $1 ORDER BY position",
            start,
        )
        # Keep the next chunk in flight while hashing this one, in slices that let the event loop
        # read the socket: PostgreSQL builds headers on one core while Python hashes on the other.
        done = 0
        pending = asyncio.ensure_future(cursor.fetch(chunk))
        while True:
            rows = await pending
            if not rows:
                break
            pending = asyncio.ensure_future(cursor.fetch(chunk))
            ok = check.failure is None
            for i in range(0, len(rows), SLICE):
                piece = rows[i : i + SLICE]
                if index is not None:
                    index.add_rows(piece)
                if ok and not check.feed(piece):
                    ok = False
                    if index is None:
                        break
                await asyncio.sleep(0)
            done += len(rows)
            if progress:
                progress(done, total)
            if not ok and index is None:
                await pending
                break

        if check.failure is not None:
            report.fault = await diagnose(check, _TableProbe(conn, f"{q}.log"))
            if report.fault.kind in ("edited", "reordered", "inserted"):  # the record is there: its stream position
                where = await conn.fetchrow(
                    f"SELECT stream, stream_seq FROM {q}.log WHERE position = $1", report.fault.position
                )
                if where is not None:
                    report.fault.stream, report.fault.stream_seq = where["stream"], where["stream_seq"]
    finish(report, check, last, cps)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------------------
# The table in parallel: one day's partition per worker, the links across partitions checked after
# --------------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """One partition's run of positions, checked from the prev_hash its first record stores."""

    day: date
    first: int
    last: int
    first_prev: bytes = b""
    run: bytes = b""
    checked: int = 0
    checkpoints_matched: int = 0
    vouched: int = 0
    failed: bool = False
    index: LogIndex | None = None


async def _check_segment(
    conn: db.Connection, snapshot: str, q: str, seg: _Segment, cps: dict[int, bytes], chunk: int, with_index: bool
) -> None:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        await conn.execute(f"SET LOCAL ROLE {READER}")
        first_prev = await conn.fetchval(f"SELECT prev_hash FROM {q}.log WHERE position = $1", seg.first)
        seg.first_prev = bytes(first_prev) if first_prev is not None else b""
        check = ChainCheck(seg.first, seg.first_prev, cps)
        extra = ", stream, stream_seq, coalesce(octet_length(data), 0)" if with_index else ""
        index = LogIndex() if with_index else None
        # Through the parent, pruned to the partition by its day (the reader may read only the parent).
        cursor = await conn.cursor(
            f"SELECT position, {PAYLOAD_SQL}, hash{extra} FROM {q}.log WHERE day = $1 ORDER BY position",
            seg.day,
        )
        pending = asyncio.ensure_future(cursor.fetch(chunk))
        while True:
            rows = await pending
            if not rows:
                break
            pending = asyncio.ensure_future(cursor.fetch(chunk))
            for i in range(0, len(rows), SLICE):
                piece = rows[i : i + SLICE]
                if index is not None:
                    index.add_rows(piece)
                if not check.feed(piece):
                    seg.failed = True
                    break
                await asyncio.sleep(0)
            if seg.failed:
                await pending
                break
    seg.run, seg.checked = check.run, check.checked
    seg.checkpoints_matched, seg.vouched = check.checkpoints_matched, check.vouched
    seg.failed = seg.failed or check.checked != seg.last - seg.first + 1
    seg.index = index


def _partition_day(name: str) -> date | None:
    """The day of a partition named log_YYYYMMDD; None for any other name."""
    if not re.fullmatch(r"log_[0-9]{8}", name):
        return None
    try:
        return datetime.strptime(name[4:], "%Y%m%d").date()
    except ValueError:
        return None


async def verify_db_parallel(
    conn: db.Connection,
    connect: Callable[[], Awaitable[db.Connection]],
    schema: str,
    log_id: str,
    checkpoints: Iterable[CheckpointSigned],
    keyring: dict,
    *,
    jobs: int = 2,
    chunk: int = 10_000,
    index: LogIndex | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report | None:
    """The full verification, one partition (a day: a run of consecutive positions) per worker, each on its own
    connection in the same snapshot; then the links across partitions: each partition's first record must chain
    from the last record of the partition before it, and the positions must run on without a gap or overlap.

    A clean log gives the same Report as verify_db. None when anything does not fit (a break, a gap, a link
    across partitions, partitions whose positions interleave, a log that starts after an archive): the caller
    runs verify_db, which diagnoses and locates the first bad record exactly.
    """
    t0 = time.perf_counter()
    q = f'"{schema}"'
    cps, cp_faults = trusted_checkpoints(checkpoints, keyring, log_id)
    workers: list[db.Connection] = []
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = str(await conn.fetchval("SELECT pg_export_snapshot()"))
            await conn.execute(f"SET LOCAL ROLE {READER}")
            # Each day's partition and its first and last position (a look at both ends of its key).
            # (a partition not named log_YYYYMMDD, renamed or attached by hand, is read by the one pass: to_date()
            # of its name failed, and the verifier stopped, unable to run)
            names = await conn.fetch(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = $1::regclass""",
                f"{q}.log",
            )
            named = [_partition_day(r["relname"]) for r in names]
            days = [d for d in named if d is not None]
            if len(days) != len(named):
                return None
            segments = []
            for day in days:
                ends = await conn.fetchrow(
                    f"SELECT min(position) AS first, max(position) AS last FROM {q}.log WHERE day = $1", day
                )
                if ends is not None and ends["first"] is not None:
                    segments.append(_Segment(day, ends["first"], ends["last"]))
            segments.sort(key=lambda s: s.first)
            if not segments or segments[0].first != 1:
                return None
            for a, b in zip(segments, segments[1:], strict=False):
                if b.first != a.last + 1:
                    return None  # interleaved or a gap: verify_db says where
            last = segments[-1].last
            workers = [await connect() for _ in range(max(1, min(jobs, len(segments))))]
            queue = sorted(segments, key=lambda s: s.first - s.last)  # the longest first
            done = 0

            async def work(c: db.Connection) -> None:
                nonlocal done
                while queue:
                    seg = queue.pop(0)
                    await _check_segment(c, snapshot, q, seg, cps, chunk, index is not None)
                    done += seg.checked
                    if progress:
                        progress(done, last)

            await asyncio.gather(*(work(c) for c in workers))
    finally:
        for c in workers:
            await c.close()
    if any(s.failed for s in segments):
        return None
    run = chain.GENESIS
    for seg in segments:
        if seg.first_prev != run:
            return None  # the link across two partitions (or a first record not chained from the genesis)
        run = seg.run
    report = Report(log_id=log_id, checkpoint_faults=cp_faults, from_position=1)
    check = ChainCheck(1, chain.GENESIS, cps)
    check.expected, check.run = last + 1, run
    check.checked = sum(s.checked for s in segments)
    check.checkpoints_matched = sum(s.checkpoints_matched for s in segments)
    check.vouched = max(s.vouched for s in segments)
    if index is not None:
        for seg in segments:
            assert seg.index is not None
            index.extend(seg.index)
    report.notes.append(f"verified in parallel: {len(segments)} partitions, {len(workers)} connections")
    finish(report, check, last, cps)
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------------------
# Everything an auditor runs: keys, copies of the checkpoints, the chain, the streams
# --------------------------------------------------------------------------------------------


def compare_copies(
    copies: dict[str, list[CheckpointSigned]], db_exported: dict[int, bool]
) -> tuple[list[Fault], list[str]]:
    """The stream, file and database copies of the checkpoints must agree.

    The file is written before the stream and the database before both, so normally
    stream ⊆ file ⊆ database; only the newest checkpoints may still wait to be published.
    """
    faults: list[Fault] = []
    notes: list[str] = []
    by: dict[str, dict[int, CheckpointSigned]] = {}
    for name, cps in copies.items():
        seen: dict[int, CheckpointSigned] = {}
        for cp in cps:
            other = seen.get(cp.position)
            if other is not None and (other.head, other.signature) != (cp.head, cp.signature):
                faults.append(
                    Fault(
                        "copies_disagree",
                        cp.position,
                        f"the {name} copy holds two different checkpoints at {cp.position}",
                    )
                )
            seen.setdefault(cp.position, cp)
        by[name] = seen
    names = list(by)
    positions = sorted(set().union(*[set(v) for v in by.values()])) if by else []
    stream_top = max(by.get("stream", {}) or [0])
    for p in positions:
        present = {n: by[n][p] for n in names if p in by[n]}
        values = {(cp.head, cp.key_id, cp.signature) for cp in present.values()}
        if len(values) > 1:
            faults.append(
                Fault(
                    "copies_disagree",
                    p,
                    f"the checkpoint at {p} differs between the "
                    + " and ".join(f"{n} copy" for n in present)
                    + " (a copy was edited)",
                )
            )
            continue
        absent = [n for n in names if n not in present]
        for n in absent:
            if n == "stream" and p > stream_top:
                notes.append(f"the checkpoint at {p} is not on the stream yet")
                continue
            if n == "file" and "stream" in present:
                faults.append(
                    Fault("copies_disagree", p, f"the checkpoint at {p} is on the stream but not in the file")
                )
            elif n == "database" and ("stream" in present or "file" in present):
                faults.append(Fault("copies_disagree", p, f"the checkpoint at {p} is missing from the database copy"))
            elif n == "stream":
                faults.append(
                    Fault(
                        "copies_disagree",
                        p,
                        f"the checkpoint at {p} is missing from the stream copy although later ones are there",
                    )
                )
            elif n == "file" and db_exported.get(p, False):  # signed after the flags were read: not yet
                faults.append(Fault("copies_disagree", p, f"the checkpoint at {p} was exported but is not in the file"))
    return faults, notes


async def verify_all(
    conn: db.Connection,
    nc,
    settings,
    *,
    from_checkpoint: bool | int = False,
    reconcile_streams: bool = True,
    progress: Callable[[int, int], None] | None = None,
    grace_seconds: float | None = None,
    jobs: int = 1,
    connect: Callable[[], Awaitable[db.Connection]] | None = None,
) -> Report:
    """`madoguchi audit verify` and POST /v1/audit/verify: the key chain (stream of record), the three
    copies of the checkpoints, the chain, and the reconciliation with the streams of record.

    jobs > 1 with `connect` (a new connection of the same login): a full run checks the day partitions in
    parallel (verify_db_parallel); anything that does not fit is verified again in one pass to locate it.

    nc None: no bus at hand — the local key statements and checkpoint copies only, no reconciliation.
    """
    from madoguchi_audit import checkpoints as cps_mod
    from madoguchi_audit import keys, reconcile

    t0 = time.perf_counter()
    chain_of_keys, key_notes = await keys.load_chain(settings, nc)
    # Read in the reverse of the writer's order (database, then file, then stream, then `exported`), so a
    # checkpoint signed while this runs can never look like a copy that went missing: the `exported` flags
    # before any copy, then the stream before the file before the database (gather_copies).
    exported = {
        p: e
        for p, e in (
            await conn.fetch(
                f'SELECT position, exported FROM "{settings.schema_name}".checkpoint WHERE log_id = $1', settings.log_id
            )
        )
    }
    copies = await cps_mod.gather_copies(settings, conn, nc)
    copy_faults, copy_notes = compare_copies(copies, exported)
    found = [cp for cps in copies.values() for cp in cps]
    index = reconcile.LogIndex() if (nc is not None and reconcile_streams) else None
    cut: dict[str, int] = {}
    at = None
    if index is not None and nc is not None:
        at = reconcile.cutoff_time(settings.reconcile_grace_seconds if grace_seconds is None else grace_seconds)
        cut = await reconcile.cutoff(nc, list(reconcile.stream_filters(settings.municipalities)), at)
    streams = reconcile.stream_filters(settings.municipalities)
    reading = None
    if (
        index is not None
        and nc is not None
        and from_checkpoint is False
        and not await conn.fetchval(
            f'SELECT true FROM "{settings.schema_name}".archive WHERE deleted_at IS NOT NULL LIMIT 1'
        )
    ):
        reading = asyncio.ensure_future(reconcile.collect(nc, streams, cut))  # beside the pass over the table
    try:
        report = None
        if jobs > 1 and connect is not None and from_checkpoint is False:
            report = await verify_db_parallel(
                conn,
                connect,
                settings.schema_name,
                settings.log_id,
                found,
                chain_of_keys.ring,
                jobs=jobs,
                index=index,
                progress=progress,
            )
            if report is None and index is not None:
                index = reconcile.LogIndex()  # the one pass below fills it again
        if report is None:
            report = await verify_db(
                conn,
                settings.schema_name,
                settings.log_id,
                found,
                chain_of_keys.ring,
                from_checkpoint=from_checkpoint,
                progress=progress,
                index=index,
                archives=await stream_archives(nc, settings) if nc is not None else None,
            )
    except BaseException:
        if reading is not None:
            reading.cancel()
        raise
    report.key_chain = chain_of_keys.lines()
    for fault in chain_of_keys.faults:
        report.checkpoint_faults.append(Fault("untrusted_key", 0, f"key chain: {fault}"))
    if not chain_of_keys.keys and found:
        report.checkpoint_faults.append(Fault("untrusted_key", 0, "no signing key was ever introduced for this log"))
    report.checkpoint_faults += copy_faults
    report.notes += key_notes + copy_notes[:3]
    report.notes.append("checkpoints from " + ", ".join(f"the {n} ({len(v)})" for n, v in copies.items()))
    if index is not None and nc is not None and at is not None:  # (index: nc and at are set)
        collected = await reading if reading is not None else None
        after = None
        if report.from_position > 1:  # incremental, or after an archive: compare from where the table is read
            after = {}
            for stream in streams:
                after[stream] = await conn.fetchval(
                    f'SELECT stream_seq FROM "{settings.schema_name}".log WHERE stream = $1 AND position < $2 '
                    "ORDER BY position DESC LIMIT 1",
                    stream,
                    report.from_position,
                )
        report.reconciliation = await reconcile.reconcile(
            nc, index, streams, cut, at, after=after, collected=collected if after is None else None
        )
    elif nc is None:
        report.notes.append(
            "not reconciled with the streams of record (no bus): a cut tail after the last checkpoint would not be seen"
        )
    report.redacted = (
        await conn.fetchval(
            # through (municipality, type, position): each municipality the log holds (hour_span names them)
            f'SELECT count(*) FROM "{settings.schema_name}".log WHERE municipality = ANY(ARRAY('
            f'SELECT DISTINCT municipality FROM "{settings.schema_name}".hour_span)) '
            "AND type = $1 AND position BETWEEN $2 AND $3",
            "admin.text_erased",
            report.from_position,
            report.to_position,
        )
        or 0
    )
    report.record_faults = await check_unvouched_records(conn, nc, settings, report, found, chain_of_keys.ring)
    report.ok = (
        report.fault is None
        and not report.checkpoint_faults
        and not report.record_faults
        and (report.reconciliation is None or report.reconciliation.ok)
    )
    report.seconds = time.perf_counter() - t0
    return report


async def stream_archives(nc, settings) -> set[int]:
    """The last positions of this log's archives as the stream of record announced them (audit.archive_made)."""
    from madoguchi_shared import subjects
    from madoguchi_shared.events import parse_event
    from madoguchi_shared.reader import read_all

    out: set[int] = set()
    async for m in read_all(nc, subjects.context_filter("audit", settings.municipality, "archive")):
        try:
            made = parse_event(m.data)
        except ValueError:
            continue
        if isinstance(made, audit_events.ArchiveMade) and made.log_id == settings.log_id:
            out.add(made.to_position)
    return out


async def check_unvouched_records(
    conn: db.Connection, nc, settings, report: Report, found: Sequence[CheckpointSigned], keyring: dict
) -> list[Fault]:
    """What the chain and the reconciliation leave open where no signed checkpoint vouches for the records.

    The reconciliation compares a record's bytes with the stream's message, but not the columns hashed beside
    them (subject, ward, desk, actor, type, ...): after the last signed checkpoint (a crashed writer's tail) an
    attacker may rewrite a column and recompute the chain to the head, and inside a signed range that was
    rebuilt the checkpoint only bounds where. There, each record's header is derived again from its bytes
    (`chain.envelope`, as the writer derived it) and its subject from the stream's message; and the table's
    chain_head must be its last record (the writer keeps the two in one transaction)."""
    q = f'"{settings.schema_name}"'
    faults: list[Fault] = []
    head = await conn.fetchrow(
        f"SELECT h.position, l.hash IS NOT DISTINCT FROM h.hash AS same, l.position IS NULL AS gone, "
        f"(SELECT max(position) FROM {q}.log) AS last FROM {q}.chain_head h "
        f"LEFT JOIN {q}.log l ON l.position = h.position WHERE h.log_id = $1",
        settings.log_id,
    )
    if head is not None and head["last"] is not None and head["position"] > 0:
        last, at = head["last"], head["position"]
        if at > last:
            faults.append(
                Fault("truncated", last + 1, f"chain_head says the log reaches {at}, but the table ends at {last}")
            )
        elif head["gone"] or not head["same"]:
            faults.append(Fault("edited", at, f"chain_head's hash at {at} is not the hash of the record there"))
        elif last > at:
            faults.append(
                Fault(
                    "inserted", at + 1, f"records {at + 1}..{last} follow chain_head ({at}): not written by the writer"
                )
            )
    trusted, _ = trusted_checkpoints(found, keyring, settings.log_id)
    end = report.to_position if report.fault is None else await conn.fetchval(f"SELECT max(position) FROM {q}.log")
    spans: list[tuple[int, int]] = []
    if end:
        vouched = max((p for p in trusted if p <= end), default=report.from_position - 1)
        if vouched < end:
            spans.append((max(vouched + 1, report.from_position), end))
    if report.fault is not None and report.fault.kind == "chain_replaced":
        spans.append((report.fault.position, report.fault.upto or report.fault.position))
    for lo, hi in spans:
        faults += await _check_headers(conn, nc, q, lo, hi)
    if end:
        faults += await _check_time_index(conn, q, report.from_position, end)
    return faults


async def _check_time_index(conn: db.Connection, q: str, lo: int, hi: int) -> list[Fault]:
    """The auditors' time filter finds records through hour_span (query.build): a run deleted or shrunk there hides
    records from every query by time, while each record and link stays intact. Every record with a municipality and
    a time must lie in a run of its (municipality, UTC hour), as the writer keeps it in the record's transaction."""
    sql = f"""SELECT l.position, count(*) OVER () AS n FROM {q}.log l
               WHERE l.position BETWEEN $1 AND $2 AND l.municipality IS NOT NULL AND l.occurred_at IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM {q}.hour_span s WHERE s.municipality = l.municipality
                       AND s.hour = date_trunc('hour', l.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                       AND l.position BETWEEN s.first_position AND s.last_position)
               ORDER BY l.position LIMIT 1"""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        row = await conn.fetchrow(sql, lo, hi)
    if row is None:
        return []
    return [
        Fault(
            "edited",
            row["position"],
            f"the auditors' time index (hour_span) leaves out {row['n']} record(s) from here on: a query by time "
            "would not show them (the index was edited)",
        )
    ]


async def _check_headers(conn: db.Connection, nc, q: str, lo: int, hi: int) -> list[Fault]:
    faults: list[Fault] = []
    js = nc.jetstream() if nc is not None else None
    cursor_sql = (
        f"SELECT {', '.join(chain.COLUMNS[:16])} FROM {q}.log WHERE position BETWEEN $1 AND $2 ORDER BY position"
    )
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL ROLE {READER}")
        async for r in conn.cursor(cursor_sql, lo, hi):
            position, stream, seq, subject = r[0], r[1], r[2], r[3]
            if r[15] is None:  # (the data emptied: the chain names the record; nothing to derive a header from)
                faults.append(
                    Fault("edited", position, "the record's data was emptied (NULL)", stream=stream, stream_seq=seq)
                )
                continue
            data = bytes(r[15])
            stored = chain.header(stream, seq, subject, tuple(r[4:15]))
            if stored != chain.header(stream, seq, subject, chain.envelope(data)):
                faults.append(
                    Fault(
                        "edited",
                        position,
                        "the record's envelope columns differ from its bytes (a column rewritten, the chain recomputed)",
                        stream=stream,
                        stream_seq=seq,
                    )
                )
                continue
            if js is not None:
                try:
                    msg = await js.get_msg(stream, seq, direct=True)
                except Exception:  # noqa: BLE001 - a message the stream lacks is the reconciliation's to report
                    continue
                if msg.subject != subject:
                    faults.append(
                        Fault(
                            "edited",
                            position,
                            "the record's subject differs from the stream's message (the chain recomputed)",
                            stream=stream,
                            stream_seq=seq,
                        )
                    )
    return faults


async def last_verified_checkpoint(conn: db.Connection, nc, settings) -> int | None:
    """Incremental verification: the newest trusted signed checkpoint at or below the end of the last
    successful run of this log (audit.verification_run on the stream of record). None: verify in full."""
    from madoguchi_shared import subjects
    from madoguchi_shared.events import parse_event
    from madoguchi_shared.events.audit import VerificationRun
    from madoguchi_shared.reader import read_all

    from madoguchi_audit import checkpoints as cps_mod
    from madoguchi_audit import keys

    upto = None
    async for m in read_all(nc, subjects.context_filter("audit", settings.municipality, "verification")):
        try:
            run = parse_event(m.data)
        except ValueError:
            continue
        if isinstance(run, VerificationRun) and run.log_id == settings.log_id and run.result == "ok":
            upto = run.to_position
    if not upto:
        return None
    chain_of_keys, _ = await keys.load_chain(settings, nc)
    found = (await cps_mod.gather_copies(settings, None, nc)).get("stream", [])
    trusted, _ = trusted_checkpoints(found, chain_of_keys.ring, settings.log_id)
    candidates = [p for p in trusted if p <= upto]
    return max(candidates) if candidates else None
