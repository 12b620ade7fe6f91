"""The one reader of the streams of record: an ack-less pull from a stored position.

Every read-side consumer (projections, the audit ingest, replays, tools, bench, tests) reads
through this module. The technique is the ceiling measured in ARCHITECTURE ("Measured ceilings"):

- an ephemeral consumer with AckNone, started at the first sequence wanted (the stored position
  + 1), filtered by subjects built with `madoguchi_shared.subjects`;
- raw `$JS.API.CONSUMER.MSG.NEXT` requests of `batch` messages kept `depth` deep;
- the deliveries are framed straight off the socket (`framing._FastParser`, installed on the connection:
  nats-py's parser with a bulk path for the readers' inboxes), so a chunk of the socket becomes a
  list of typed `StoredMessage`s in one go — no nats-py `Msg`, no per-message queue or task; the
  stream sequence and the pending count come from the reply subject
  (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`). They go to a buffer,
  to the owner's `sink` (one message at a time) or `batch_sink` (a list per socket read: the
  fastest, e.g. the audit reconciliation reading a million messages).

No acknowledgements: the position a consumer stores with its effects is the truth; a redelivery
(a new consumer, a replay) is skipped by whoever applies, by sequence.

Backpressure: with the built-in buffer, new requests are sent only while fewer than
`2 * batch` messages wait; with a `sink`, the owner calls `pause()` / `resume()`.
Recovery: a request lost in a reconnect, or a consumer gone with a restarted server, is noticed
after a quiet spell of three `expires` (`watchdog`), and the consumer is re-created just after
the last sequence handed out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import NotFoundError

from madoguchi_shared.framing import Delivery, fast_parser, parse_ack_reply, parse_headers, sid_of
from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import add_consumer, jetstream, subscribe

log = get_logger(__name__)


class StoredMessage(msgspec.Struct, gc=False):
    """One message as the stream stores it (a Struct: built in C, one per event read).

    `pending` is how many more messages the consumer's filter matched in the stream when this one
    was delivered (0: this was the last one there was). `headers` is read from the header block
    the first time it is asked for (most readers never look).
    """

    stream: str
    seq: int
    subject: str
    raw_headers: dict[str, str] | bytes | None
    data: bytes
    pending: int = 0

    @property
    def headers(self) -> dict[str, str] | None:
        h = self.raw_headers
        if isinstance(h, bytes):
            h = self.raw_headers = parse_headers(h)
        return h


class Reader:
    """An ack-less pull over one stream from `start_seq`, filtered by `filters`.

    Use as `async with Reader(...) as r:` and `await r.next_batch()`; or give a `sink` that gets
    every message, or a `batch_sink` that gets them a list at a time, from the connection's read
    loop (neither may block), and drive `watchdog()`.
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        filters: Sequence[str],
        *,
        start_seq: int = 1,
        batch: int = 1000,
        depth: int = 2,
        expires: float = 1.0,
        sink: Callable[[StoredMessage], None] | None = None,
        batch_sink: Callable[[list[StoredMessage]], None] | None = None,
    ):
        if not filters:
            raise ValueError("a reader needs at least one filter subject")
        if sink is not None and batch_sink is not None:
            raise ValueError("give a sink or a batch_sink, not both")
        self.nc = nc
        self.js = jetstream(nc)
        self.stream = stream
        self.filters = list(filters)
        self.batch = batch
        self.depth = depth
        self.expires = expires
        self.sink = sink
        self.batch_sink = batch_sink
        self.last_seq = max(0, start_seq - 1)  # the last sequence handed out
        self.pending = 0  # what the server still held for us, as of the last delivery
        self.consumer_seq = 0
        self.consumer: str | None = None
        self._consumer_token: bytes | None = None  # the consumer's name as its deliveries' reply subjects carry it
        self.paused = False
        self.recreated = 0
        self.missed = 0  # times deliveries went missing (the consumer was re-created after them)
        self._buffer: collections.deque[StoredMessage] = collections.deque()
        self._requests: collections.deque[int] = collections.deque()  # messages still due per request
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._heard = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Reader:
        parser = fast_parser(self.nc)
        self._inbox = self.nc.new_inbox()
        # nats-py keeps the subscription (and re-subscribes it after a reconnect); its deliveries are framed
        # by the fast parser and handed over in bulk. The callback only sees one if the connection's previous
        # parser was mid-read when the fast one took over.
        self._sub = await subscribe(self.nc, self._inbox, self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        parser.bulk[sid_of(self._sub)] = self._on_deliveries
        await self._create_consumer()
        await self._top_up()
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            fast_parser(self.nc).bulk.pop(sid_of(self._sub), None)
            with contextlib.suppress(Exception):  # the connection may be gone
                await self._sub.unsubscribe()
            self._sub = None
        if self.consumer:
            with contextlib.suppress(Exception):  # ephemeral anyway (inactive_threshold)
                await self.js.delete_consumer(self.stream, self.consumer)
            self.consumer = self._consumer_token = None

    async def __aenter__(self) -> Reader:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _create_consumer(self) -> None:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
            filter_subject=self.filters[0] if len(self.filters) == 1 else None,
            filter_subjects=self.filters if len(self.filters) > 1 else None,
        )
        info = await add_consumer(self.js, self.stream, config)
        self.consumer = info.name
        self._consumer_token = info.name.encode()
        self.consumer_seq = 0
        self.pending = info.num_pending or 0
        self._requests.clear()

    # ------------------------------------------------------------------ the pull
    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def _top_up(self) -> None:
        if self.consumer is None or self._sub is None:
            return
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        owner_paces = self.sink is not None or self.batch_sink is not None
        while (
            not self.paused and len(self._requests) < self.depth and (owner_paces or len(self._buffer) < 2 * self.batch)
        ):
            self._requests.append(self.batch)
            payload = json.dumps({"batch": self.batch, "expires": int(self.expires * 1e9)}).encode()
            await self.nc.publish(subject, payload, reply=self._inbox)

    async def _on_msg(self, msg: Msg) -> None:
        """A delivery nats-py framed itself (the connection's previous parser was mid-read)."""
        await self._on_deliveries([(msg.subject.encode(), (msg.reply or "").encode(), msg.headers, msg.data)])

    async def _on_deliveries(self, deliveries: list[Delivery]) -> None:
        """A socket read's worth of deliveries (the fast parser's bulk path), handed over as one list
        (a status message in between: what came before it first).

        Only the current consumer's deliveries count (one given up may still answer requests it had).
        Its delivery sequence has no holes: a hole means deliveries were lost between the server and
        this reader, and nothing acknowledged would bring them back. What came before the hole is
        handed out, the rest dropped, and the consumer re-created just after the last sequence handed
        out (`watchdog`): nothing is skipped.
        """
        self._heard = time.monotonic()
        stream, last, token = self.stream, self.last_seq, self._consumer_token
        i, n = 0, len(deliveries)
        while i < n:  # a run of deliveries up to a status message or a hole, then what it calls for
            out: list[StoredMessage] = []
            counted, status, hole = 0, None, 0
            while i < n:
                subject, reply, hdr, data = deliveries[i]
                i += 1
                if reply[:8] != b"$JS.ACK.":  # a status message
                    status = (hdr if isinstance(hdr, dict) else parse_headers(hdr)) or {}
                    break
                t = reply.split(b".")  # $JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<n>.<sseq>.<cseq>.<ts>.<pending>
                k = 5 if len(t) == 9 else 7 if len(t) >= 12 else 0
                if not k or t[k - 2] != token:
                    continue
                seq, cseq, pending = int(t[k]), int(t[k + 1]), int(t[k + 3])
                counted += 1
                if cseq > self.consumer_seq + 1:
                    hole = cseq
                    break
                if cseq > self.consumer_seq:
                    self.consumer_seq = cseq
                self.pending = pending
                if seq > last:
                    last = seq
                    out.append(StoredMessage(stream, seq, subject.decode(), hdr, data, pending))
            self.last_seq = last
            if out:  # to the owner's sink, or the buffer
                if self.batch_sink is not None:
                    self.batch_sink(out)
                elif self.sink is not None:
                    for m in out:
                        self.sink(m)
                else:
                    self._buffer.extend(out)
                    self._arrived.set()
            if hole:
                self._missed(hole)  # before the accounting: no request goes to the consumer given up
            if counted:
                await self._account(counted)
            if status is not None:
                await self._status(status.get("Status", ""), status.get("Description", ""))
            token = self._consumer_token

    def _missed(self, cseq: int) -> None:
        """Deliveries `consumer_seq + 1 .. cseq - 1` never arrived: give the consumer up (the watchdog
        re-creates it after the last sequence handed out)."""
        log.warning(
            "reader.deliveries_missed",
            stream=self.stream,
            after=self.last_seq,
            missed=cseq - self.consumer_seq - 1,
        )
        self.missed += 1
        self.consumer = None
        self._consumer_token = None
        self._requests.clear()
        self._heard = 0.0  # the watchdog acts at its next call
        self._arrived.set()

    async def _account(self, delivered: int) -> None:
        """`delivered` messages of the outstanding requests arrived; ask for more once a request is done."""
        done = False
        while delivered and self._requests:
            take = min(delivered, self._requests[0])
            self._requests[0] -= take
            delivered -= take
            if self._requests[0] <= 0:
                self._requests.popleft()
                done = True
        if done:
            await self._top_up()

    async def _status(self, status: str, description: str) -> None:
        if status == "100":  # heartbeat
            return
        if self._requests:
            self._requests.popleft()  # 404 no messages, 408 expired, 409 ...: that request is over
        if status in ("404", "408"):
            self.pending = 0
            await self._top_up()
            return
        if status == "409" and "Deleted" in description:
            log.warning("reader.consumer_deleted", stream=self.stream, after=self.last_seq)
            self.consumer = self._consumer_token = None  # the watchdog re-creates it
            self._arrived.set()
            return
        if status == "503":  # no responders: no such consumer (a restarted server kept no memory-stored one)
            # Asking again would be answered 503 again at once, without end, and the reader, hearing
            # something all the time, would never re-create the consumer: the watchdog does, at its next call.
            log.warning("reader.consumer_gone", stream=self.stream, after=self.last_seq)
            self.consumer = self._consumer_token = None
            self._requests.clear()
            self._heard = 0.0
            self._arrived.set()
            return
        log.warning("reader.pull_status", stream=self.stream, status=status, description=description)
        await self._top_up()

    def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False
        await self._top_up()

    async def watchdog(self) -> None:
        """Re-create a vanished consumer (a restarted server) or re-prime requests lost in a reconnect."""
        if self.paused or (self.consumer is not None and time.monotonic() - self._heard < 3 * self.expires):
            return
        self._heard = time.monotonic()
        try:
            if self.consumer is None:
                raise NotFoundError
            await self.js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            log.warning("reader.consumer_recreated", stream=self.stream, after=self.last_seq)
            self.recreated += 1
            await self._create_consumer()
        self._requests.clear()
        await self._top_up()

    async def next_batch(
        self, limit: int | None = None, *, timeout: float = 0.5, fill_wait: float = 0.02
    ) -> list[StoredMessage]:
        """Up to `limit` (default `batch`) messages in stream order; [] after `timeout` with none.

        A partial batch waits up to `fill_wait` for more while the stream says more is pending,
        so a busy consumer pays one transaction per `batch` messages, not per network read.
        """
        limit = limit or self.batch
        if not self._buffer:
            if self.consumer is None:  # given up after missed deliveries: re-created at once
                await self.watchdog()
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
            if not self._buffer:
                await self.watchdog()
                return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + fill_wait
        while len(self._buffer) < limit and self._buffer[-1].pending > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        n = min(limit, len(self._buffer))
        out = [self._buffer.popleft() for _ in range(n)]
        await self._top_up()
        return out

    async def drained(self) -> bool:
        """True when the server holds nothing more for us and everything it sent has been handed out."""
        if self.consumer is None:
            return False
        info = await self.js.consumer_info(self.stream, self.consumer)
        delivered = info.delivered.consumer_seq if info.delivered is not None else None
        return not info.num_pending and (delivered or 0) <= self.consumer_seq


class ReadStalled(TimeoutError):
    """`read_all`: the server holds more of what was asked for but delivers none of it."""


async def _nothing_more(reader: Reader) -> bool:
    """True when the consumer holds nothing more for us (an empty batch at the true end); False while it
    does, or when it cannot tell (a consumer being re-created, a server between leaders)."""
    try:
        return await reader.drained()
    except Exception:  # noqa: BLE001 - asked again after the next batch
        return False


async def read_all(
    nc: NATS,
    filters: str | Sequence[str],
    start_seq: int = 1,
    *,
    stream: str | None = None,
    timeout: float = 2.0,
    batch: int = 1000,
) -> AsyncIterator[StoredMessage]:
    """Every stored message matching `filters` from `start_seq`, in stream order, then stop.

    What the stream holds when the call starts (a replay, a rebuild, a recount, a test's look).
    `timeout` bounds a wait for the next message that the server said was there: an empty batch is not the
    end (a pull answered 503 right after the consumer was made, as a cluster does before the consumer's
    interest has reached every node, gives one, and the consumer is re-created). The reading ends at the
    stream's last message as the call started, or when the consumer holds nothing more for us; nothing
    delivered for `timeout` while it still does is `ReadStalled`, never a silent short read (a recount, an
    erasure or an export reading less than the stream holds).
    """
    filters = [filters] if isinstance(filters, str) else list(filters)
    js = jetstream(nc)
    if stream is None:
        stream = await js.find_stream_name_by_subject(filters[0])
    info = await js.stream_info(stream)
    end = info.state.last_seq
    if end < start_seq:
        return
    async with Reader(nc, stream, filters, start_seq=start_seq, batch=batch) as reader:
        if reader.pending == 0:
            return
        loop = asyncio.get_running_loop()
        stalled_since: float | None = None
        while True:
            msgs = await reader.next_batch(timeout=timeout, fill_wait=0)
            if not msgs:
                if await _nothing_more(reader):
                    return
                now = loop.time()
                stalled_since = now if stalled_since is None else stalled_since
                if now - stalled_since >= timeout:
                    raise ReadStalled(
                        f"{stream}: nothing delivered for {timeout:.1f} s after sequence {reader.last_seq}, "
                        f"the stream holding messages up to {end} for {filters}"
                    )
                continue
            stalled_since = None
            for m in msgs:
                if m.seq > end:
                    return
                yield m
                if m.pending == 0 or m.seq == end:
                    return


__all__ = ["StoredMessage", "Reader", "ReadStalled", "read_all", "parse_ack_reply", "parse_headers", "fast_parser"]
