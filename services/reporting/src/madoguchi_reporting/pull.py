"""A faster reader for `madoguchi_shared.projection.Projection`: the raw pull.

The shared runner reads with nats-py's `fetch`, which costs a task and a timer per message and
returns small batches (about 75 messages here), so a projection pays a transaction per 75 events.
ARCHITECTURE's ceilings table names the remedy: a raw pull ($JS.API.CONSUMER.MSG.NEXT requests
of 1,000 kept two deep, AckNone, a core subscription callback). This subclass replaces only
how messages arrive; applying them exactly once is still the shared `Projection.handle`
(position checked and stored in the batch's transaction; bad messages dead-lettered).

Backpressure: a new pull request is only sent while fewer than two batches wait in memory.
A request lost to a reconnect is replaced after a quiet spell; any unexpected status (the
consumer deleted, ...) ends `run` with an error and the service's supervisor restarts it from the
stored position.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque

from nats.js import api

from madoguchi_shared.logging import get_logger
from madoguchi_shared.projection import Projection

log = get_logger(__name__)

EXPIRES_NS = 1_000_000_000  # a pull request waits at most 1 s for messages (then 408)


class _Seq:
    __slots__ = ("stream",)

    def __init__(self, stream: int):
        self.stream = stream


class _Meta:
    __slots__ = ("sequence", "num_pending")

    def __init__(self, seq: int, pending: int):
        self.sequence = _Seq(seq)
        self.num_pending = pending


class RawMsg:
    """What `Projection.handle` reads from a message: subject, data, metadata.sequence.stream."""

    __slots__ = ("subject", "data", "metadata")

    def __init__(self, subject: str, data: bytes, seq: int, pending: int):
        self.subject = subject
        self.data = data
        self.metadata = _Meta(seq, pending)


class PullFailed(RuntimeError):
    pass


class RawPullProjection(Projection):
    fill_wait: float = 0.02  # seconds a partial batch waits for more when the stream has more

    async def _fill(self, buf: list[RawMsg], arrived: asyncio.Event) -> None:
        """Let a partial batch grow while the stream says more is pending: a transaction per
        1,000 events instead of per network read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fill_wait
        while len(buf) < self.batch and buf[-1].metadata.num_pending > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                return

    async def run(self, nc, pool, *, from_seq: int | None = None) -> None:
        js = nc.jetstream()
        async with pool.acquire() as conn:
            self.position = await self.stored_position(conn)
        start = from_seq if from_seq is not None else self.position + 1
        name = f"{self.name}-{uuid.uuid4().hex[:12]}"
        filters = list(self.filter_subjects)
        await js.add_consumer(self.stream, api.ConsumerConfig(
            name=name, deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start),
            ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0, max_waiting=8,
            filter_subject=filters[0] if len(filters) == 1 else None,
            filter_subjects=filters if len(filters) > 1 else None,
        ))
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{name}"
        request = json.dumps({"batch": self.batch, "expires": EXPIRES_NS}).encode()
        inbox = nc.new_inbox()
        buf: list[RawMsg] = []
        budgets: deque[int] = deque()  # messages still due on each request in flight (oldest first)
        arrived = asyncio.Event()
        failure: list[str] = []

        async def top_up() -> None:
            while len(budgets) < 2 and len(buf) < 2 * self.batch:
                budgets.append(self.batch)
                await nc.publish(next_subject, request, reply=inbox)

        heard = [asyncio.get_running_loop().time()]  # when the server last said anything to this inbox

        async def on_msg(msg) -> None:
            heard[0] = asyncio.get_running_loop().time()
            if msg.reply:
                # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
                t = msg.reply.split(".")
                buf.append(RawMsg(msg.subject, msg.data, int(t[5]), int(t[8])))
                if budgets:
                    budgets[0] -= 1
                    if budgets[0] <= 0:
                        budgets.popleft()
                        await top_up()
                arrived.set()
                return
            status = (msg.headers or {}).get("Status", "")
            if status == "100":  # heartbeat
                return
            if status in ("404", "408"):  # no messages / request expired: that request is over
                if budgets:
                    budgets.popleft()
                await top_up()
                return
            failure.append(f"{status} {(msg.headers or {}).get('Description', '')}".strip())
            arrived.set()

        sub = await nc.subscribe(inbox, cb=on_msg)
        log.info("projection.started", projection=self.name, position=self.position, start=start, reader="raw-pull")
        try:
            await top_up()
            while not self._stop.is_set():
                if failure:
                    raise PullFailed(f"pull consumer of {self.name}: {failure[0]}")
                if not buf:
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), 0.5)
                    except TimeoutError:
                        pass
                if buf:
                    await self._fill(buf, arrived)
                    msgs = buf[: self.batch]
                    del buf[: self.batch]
                    await top_up()
                    last = msgs[-1].metadata
                    self.stream_last_seq = max(self.stream_last_seq, last.sequence.stream + last.num_pending)
                    await self.handle(nc, pool, msgs)
                else:
                    await self._refresh_last_seq(js)
                    self._idle.set()
                    now = asyncio.get_running_loop().time()
                    if now - heard[0] > 3 * EXPIRES_NS / 1e9:  # not even a 408: requests were lost (reconnect)
                        heard[0] = now
                        budgets.clear()
                        await top_up()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await js.delete_consumer(self.stream, name)
            log.info("projection.stopped", projection=self.name, position=self.position)
