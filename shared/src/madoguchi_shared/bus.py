"""The bus: JetStream streams, appending events, reading an aggregate back.

Rules (ARCHITECTURE.md):
1. every publish carries Nats-Msg-Id = event_id, so a retry never makes a second event;
2. a command's append carries the aggregate subject's expected last sequence, so a stale
   writer gets ConcurrencyConflict instead of a silent overwrite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from madoguchi_shared import reader, subjects
from madoguchi_shared.errors import BusUnreachable, Unavailable
from madoguchi_shared.events import Event, dump_event, parse_event
from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import (
    ack_of,
    add_stream,
    api_prefix,
    client_of,
    publish_async,
    send,
    subscribe_inbox,
    update_stream,
)
from madoguchi_shared.nats_typed import publish as jetstream_publish
from madoguchi_shared.nats_typed import connect as nats_connect
from madoguchi_shared.settings import redact_url

log = get_logger(__name__)

# JetStream's answers to an expected-last-subject-sequence that does not hold. A single server says
# 10071 ("wrong last sequence: N"); a replicated stream often says 10164 ("wrong last sequence",
# JSStreamWrongLastSequenceConstantErr) when another write to the subject is still in flight.
# Both mean another writer won: a conflict (HTTP 409), which a command may retry after re-reading.
WRONG_LAST_SEQUENCE = 10071
WRONG_LAST_SEQUENCE_CONSTANT = 10164
CONFLICT_CODES = frozenset({WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_CONSTANT})
# Not an answer yet: the expected-sequence check is briefly unavailable on a new stream leader
# (10163, JSStreamExpectedLastSeqPerSubjectNotReady) or this very message id is still in process
# (10158, JSStreamDuplicateMessageConflict). The same publish is repeated (Nats-Msg-Id makes that safe).
RETRY_CODES = frozenset({10163, 10158})
RETRY_ATTEMPTS = 20
# A stream leader election in a cluster (a node killed or restarting) leaves a publish without an
# answer for a few seconds: no responders, a timeout, a 503 "JetStream system temporarily unavailable",
# or the connection dropped by the node that went away. A command waits that out for up to
# ELECTION_GRACE, repeating the same publish (Nats-Msg-Id makes a repeat safe) with ATTEMPT_TIMEOUT per
# try, instead of failing; only past the grace is it a 503. A repeat whose earlier try was stored after
# all meets its own write as a "wrong last sequence": `_stored_as` recognises it as success.
ELECTION_GRACE = 15.0
ATTEMPT_TIMEOUT = 3.0
# One server has no election to wait out: a server that does not answer within SINGLE_SERVER_GRACE is
# frozen or overloaded, and a desk user is told so (503, send again) after a few seconds, not after
# ELECTION_GRACE (a frozen server made a command wait ~16 s). The short pauses a single server does
# have (JetStream starting, a message id still in process) are over well within it.
SINGLE_SERVER_GRACE = 4.0


def grace_of(nc: NATS) -> float:
    """How long a publish or read waits for an answer: a cluster's election, or one server's short pause."""
    return ELECTION_GRACE if len(getattr(nc, "_server_pool", ())) > 1 else SINGLE_SERVER_GRACE


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    log: bool = True  # a log of record: deny delete and purge
    duplicate_window: float = 120.0  # seconds


# One stream per context. The device stream keeps a longer dedup window because an agent's
# outbox may resend after a long offline spell (its consumers still skip what they applied).
STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("MG_DESK", (subjects.everything("desk"),)),
    StreamSpec("MG_CALLS", (subjects.everything("calls"),)),
    StreamSpec("MG_DEVICE", (subjects.everything("device"),), duplicate_window=3600.0),
    StreamSpec("MG_AUDIT", (subjects.everything("audit"),)),
    StreamSpec("MG_ADMIN", (subjects.everything("admin"),)),
    StreamSpec("MG_REPORT", (subjects.everything("report"),)),
    StreamSpec("MG_DLQ", (subjects.everything("dlq"),), log=False),
)
STREAM_OF_CONTEXT = {spec.subjects[0].split(".")[1]: spec.name for spec in STREAMS}
LOG_STREAMS = tuple(spec.name for spec in STREAMS if spec.log)


class ConcurrencyConflict(Exception):
    """Another writer appended to the aggregate since it was read (HTTP 409)."""

    def __init__(self, subject: str, expected: int | None, detail: str = ""):
        super().__init__(f"concurrent change on {subject} (expected last sequence {expected}) {detail}".strip())
        self.subject = subject
        self.expected = expected


class BusDown(Unavailable, nats_errors.ConnectionReconnectingError):
    """The connection to NATS is down (the server restarting): nothing was published. HTTP 503 with
    Retry-After at the web boundary; a worker retries it like any other connection error."""

    def __init__(self) -> None:
        super().__init__(part="bus")


# How long a command waits for a lost connection to come back before it is refused (BusDown).
# Publishing while disconnected would only buffer the message: the caller could not know whether
# it will be stored, so a command is never published on a connection that is down.
RECONNECT_GRACE = 1.0


async def _connected(js: JetStreamContext, deadline: float | None = None) -> None:
    nc = client_of(js)
    if nc.is_connected:
        return
    if deadline is None:
        # one server: it is restarting, say so at once; a cluster: another node takes over in a moment
        grace = RECONNECT_GRACE if len(getattr(nc, "_server_pool", ())) <= 1 else ELECTION_GRACE
        deadline = asyncio.get_running_loop().time() + grace
    while not nc.is_closed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        if nc.is_connected:
            return
    raise BusDown()


def stream_for(subject: str) -> str:
    return STREAM_OF_CONTEXT[subject.split(".")[1]]


async def _quiet(_exc: Exception) -> None:
    """Connection errors while waiting for the first connect: said once, by BusUnreachable."""


async def _log_error(exc: Exception) -> None:
    """A connection error of a long-lived client (the server restarting): one log line, no traceback."""
    log.warning("bus.connection_error", error_type=type(exc).__name__, error=str(exc)[:200])


def _resuming_ordered_consumers(
    holder: list[NATS], then: Callable[[], Awaitable[None]] | None = None
) -> Callable[[], Awaitable[None]]:
    """After a reconnect, re-create every ordered consumer of the connection from where it was.

    An ordered consumer is an ephemeral, in-memory consumer: a restarted nats-server no longer has
    it, and the client would notice only after two missed heartbeats (10 s and more) that its live
    view stopped. Re-creating it at once (nats-py's own reset, from the last stream sequence seen)
    makes a live view follow the stream again as soon as the bus is back.
    """

    async def reconnected() -> None:
        for nc in holder:
            for sub in list(nc._subs.values()):  # pyright: ignore[reportPrivateUsage] - nats-py lists no subscriptions publicly
                jsi = getattr(sub, "_jsi", None)
                if jsi is not None and getattr(jsi, "_ordered", False):
                    try:
                        await jsi.reset_ordered_consumer(jsi._sseq + 1)
                    except Exception as exc:  # noqa: BLE001 - its heartbeat check tries again
                        log.warning("bus.ordered_consumer_not_resumed", subject=sub.subject, error=str(exc)[:200])
        if then is not None:
            await then()

    return reconnected


def _reset_from_sequence_only() -> None:
    """nats-py re-creates an ordered consumer (after a reconnect, or missed heartbeats when its node died)
    from the next stream sequence, but keeps the `opt_start_time` it was first made with: the server refuses
    that pair (10094, "deliver by start sequence, but optional start time is also set") on every try, and a
    live view that started by time (the desk's notices, the agent's visits) stops for good after a failover."""
    # nats-py's ordered-consumer state class is private and untyped: patched as Any
    jsi: Any = JetStreamContext._JSI  # pyright: ignore[reportPrivateUsage]
    original = jsi.reset_ordered_consumer
    if getattr(original, "_from_sequence_only", False):
        return

    async def reset_ordered_consumer(self: Any, sseq: int) -> Any:
        self._ccreq.opt_start_time = None
        return await original(self, sseq)

    reset_ordered_consumer._from_sequence_only = True  # pyright: ignore[reportFunctionMemberAccess] - the mark of the patch
    jsi.reset_ordered_consumer = reset_ordered_consumer


_reset_from_sequence_only()

_SPACE = re.compile(r"\s")  # on a str: the characters str.isspace() holds


def _parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's `Client._parse_header_lines`, line for line, but for its test of a name's characters:
    `any(c.isspace() for c in key)` ran a generator over every character of every header of every
    message (the calls view reads each event with three to eight headers; the profile of a calls command
    showed it among the top entries), here one regex search over the same characters (re's \\s on a str
    is str.isspace). shared/tests/test_bus_append.py compares the two on every ASCII character and on
    crafted header blocks."""
    out: dict[str, str] = {}
    names = _header_names
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = names.get(name, _UNSEEN)
        if key is _UNSEEN:
            key = _header_name(name)
        if key is None:
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


_UNSEEN = object()
_header_names: dict[bytes, Any] = {}  # a header's name as sent -> its key (None: not one), remembered
_HEADER_NAMES_KEPT = 256  # a handful of names comes on every message (Nats-Msg-Id, Mg-Type, ...)


def _header_name(name: bytes) -> str | None:
    """The key nats-py makes of a header's name (None: the line is skipped), remembered for the next
    message while few names have come: the same three to eight names come with every event, and
    their strip, decode and whitespace search were a third of the parse."""
    try:
        key = name.strip().decode("ascii")
    except UnicodeDecodeError:
        key = None
    if key is not None and _SPACE.search(key):
        key = None
    if len(_header_names) < _HEADER_NAMES_KEPT:
        _header_names[name] = key
    return key


def _faster_header_parse() -> None:
    """Install `_parse_header_lines` on nats-py's client (kept as `_original_parse_header_lines` for the test)."""
    client: Any = NATS
    current = client.__dict__.get("_parse_header_lines")
    if current is None or getattr(current, "__func__", None) is _parse_header_lines:
        return  # another nats-py (no such method: its own parse stays) or installed already
    client._original_parse_header_lines = current
    client._parse_header_lines = staticmethod(_parse_header_lines)


_faster_header_parse()


def _quiet_tls_close(record: logging.LogRecord) -> bool:
    """asyncio says "returning true from eof_received() has no effect when using ssl" each time a
    TLS connection to NATS closes (nats-py's protocol): noise on every operator command."""
    return "eof_received()" not in record.getMessage()


def _tls_from_settings(kwargs: dict[str, Any]) -> None:
    """TLS as configured (MADOGUCHI_NATS_TLS_CA / _CERT / _KEY / _HOSTNAME) unless the caller passed
    its own `tls=`: every service and tool gets server verification without each passing it."""
    if "tls" in kwargs:
        return
    from madoguchi_shared.settings import Settings

    settings = Settings()
    context = settings.nats_tls()
    if context is not None:
        kwargs["tls"] = context
        if settings.nats_tls_hostname:
            kwargs.setdefault("tls_hostname", settings.nats_tls_hostname)


async def connect(url: str, name: str, *, first_connect_timeout: float | None = None, **kwargs: Any) -> NATS:
    """Connect with reconnects forever: a service outlives a restarting nats-server.

    `url` may list several servers separated by commas (a cluster). A service waits for the
    first connect as long as it takes; with `first_connect_timeout` (command-line tools: see
    `connect_tool`) an unreachable bus is BusUnreachable, a clear message, instead of retries without end.
    With a TLS CA configured (settings) the servers are verified against it and a server without
    TLS is refused; `tls=None` connects without TLS whatever the settings say.
    """
    servers = [u.strip() for u in url.split(",") if u.strip()]
    _tls_from_settings(kwargs)
    if kwargs.get("tls") is not None and _quiet_tls_close not in logging.getLogger("asyncio").filters:
        logging.getLogger("asyncio").addFilter(_quiet_tls_close)
    holder: list[NATS] = []
    kwargs["reconnected_cb"] = _resuming_ordered_consumers(holder, kwargs.get("reconnected_cb"))
    options: dict[str, Any] = dict(name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **kwargs)
    if first_connect_timeout is None:
        options.setdefault("error_cb", _log_error)
        holder.append(await nats_connect(servers, options))
        return holder[0]
    options.setdefault("error_cb", _quiet)
    options.setdefault("connect_timeout", max(1, int(first_connect_timeout)))
    try:
        holder.append(await asyncio.wait_for(nats_connect(servers, options), first_connect_timeout))
        return holder[0]
    except (TimeoutError, OSError, nats_errors.Error) as exc:
        raise BusUnreachable(
            f"cannot reach NATS at {redact_url(url)} within {first_connect_timeout:g} s: is the system running (`make run`), "
            "and do MADOGUCHI_NATS_URL / MADOGUCHI_NATS_PORT name its address?"
        ) from exc


async def connect_tool(url: str, name: str, *, timeout: float | None = None, **kwargs: Any) -> NATS:
    """`connect` for a command-line tool: it gives up with BusUnreachable after `timeout` seconds, by
    default the setting MADOGUCHI_NATS_CONNECT_TIMEOUT (10 s)."""
    from madoguchi_shared.settings import Settings

    return await connect(url, name, first_connect_timeout=timeout or Settings().nats_connect_timeout, **kwargs)


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update every stream (idempotent)."""
    for spec in STREAMS:
        config = api.StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            storage=api.StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=spec.duplicate_window,
            deny_delete=spec.log,
            deny_purge=spec.log,
            allow_direct=True,
            allow_atomic=True,  # group commit (append_batch): a batch of appends stored all or nothing
            max_age=0 if spec.log else 30 * 24 * 3600.0,
        )
        try:
            await add_stream(js, config)
        except BadRequestError as exc:
            if exc.err_code != 10058:  # stream name already in use with a different configuration
                raise
            try:
                await update_stream(js, config)
            except (nats_errors.TimeoutError, NoStreamResponseError):
                if not spec.log:
                    raise
                # A service may not change a stream of record (natsauth: the server drops the request);
                # `madoguchi streams` (run by `madoguchi run` first) brings it up to date as the tools' identity.
                log.warning("bus.stream_update_refused", stream=spec.name)


def _headers(event: Event, expected: int | None) -> dict[str, str]:
    headers = {"Nats-Msg-Id": str(event.event_id), "Mg-Type": event.type}
    if expected is not None:
        headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
    return headers


_ELECTION_ERRORS = (
    nats_errors.TimeoutError,
    nats_errors.NoRespondersError,
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.StaleConnectionError,
    NoStreamResponseError,
    ServiceUnavailableError,
)


async def _stored_as(js: JetStreamContext, stream: str, subject: str, msg_id: str, expected: int) -> api.PubAck | None:
    """After a try whose answer was lost: the ack of our own message if it is the one stored right after
    `expected` on its subject (the try was stored after all), else None (another writer won)."""
    try:
        msg = await js.get_msg(stream, seq=expected + 1, subject=subject, next=True, direct=True)
    except NotFoundError:
        return None
    if (msg.headers or {}).get("Nats-Msg-Id") != msg_id:  # pyright: ignore[reportUnknownMemberType] - nats-py: an untyped Dict
        return None
    return api.PubAck(stream=stream, seq=msg.seq or 0, duplicate=True)


async def _publish(
    js: JetStreamContext, subject: str, data: bytes, headers: dict[str, str], expected: int | None, stream: str
) -> api.PubAck:
    """One publish with its Nats-Msg-Id, waiting out an election within ELECTION_GRACE (see above)."""
    await _connected(js)
    loop = asyncio.get_running_loop()
    grace = grace_of(client_of(js))
    deadline = loop.time() + grace
    retries = 0
    unanswered = False  # a try may have been stored without its answer reaching us
    while True:
        try:
            wait = max(0.5, min(ATTEMPT_TIMEOUT, deadline - loop.time()))
            return await jetstream_publish(js, subject, data, headers, wait)
        except APIError as exc:
            if exc.err_code in CONFLICT_CODES:
                if unanswered and expected is not None:
                    mine = await _stored_as(js, stream, subject, headers["Nats-Msg-Id"], expected)
                    if mine is not None:
                        return mine
                raise ConcurrencyConflict(subject, expected) from exc
            if exc.err_code in RETRY_CODES:
                retries += 1
                if retries >= RETRY_ATTEMPTS:
                    raise
                await asyncio.sleep(min(0.01 * 2**retries, 0.25))
                continue
            if not isinstance(exc, ServiceUnavailableError):
                raise
            failure: Exception = exc
        except _ELECTION_ERRORS as exc:
            failure = exc
            unanswered = unanswered or not isinstance(exc, NoStreamResponseError | nats_errors.NoRespondersError)
        if loop.time() >= deadline:
            log.warning("bus.append_gave_up", subject=subject, error=type(failure).__name__, grace=grace)
            raise failure
        log.info("bus.append_waiting", subject=subject, error=type(failure).__name__)
        await asyncio.sleep(0.2)
        await _connected(js, deadline)


async def append(
    js: JetStreamContext, event: Event, expected: int | None = None, *, data: bytes | None = None
) -> api.PubAck:
    """Append one event. `expected` is the aggregate subject's last sequence (0 = must be new);
    `data`: the event as dump_event(event) gives it, when the caller has it already."""
    subject = event.subject
    payload = dump_event(event) if data is None else data
    return await _publish(js, subject, payload, _headers(event, expected), expected, stream_for(subject))


async def publish_new(js: JetStreamContext, subject: str, data: bytes, *, stream: str, msg_id: str) -> api.PubAck:
    """Publish the first message of a subject that must be empty (a key made once), like `append`:
    deduplicated by `msg_id`, waiting out an election; ConcurrencyConflict when the subject holds another."""
    headers = {"Nats-Msg-Id": msg_id, "Nats-Expected-Last-Subject-Sequence": "0", "Nats-Expected-Stream": stream}
    return await _publish(js, subject, data, headers, 0, stream)


async def append_all(js: JetStreamContext, events: Sequence[Event], expected: int | None = None) -> list[int]:
    """Append a command's events in order; each one's expectation chains on the previous append.

    Events of one aggregate chain their expected sequence; an event on another subject is
    appended without an expectation (it is a consequence, e.g. an alert). Several events all on
    one subject are pipelined on a single server (`_append_chain`): one round trip, the same guarantee.

    Not an atomic batch (`append_batch`): tried for the calls command (two events), it ran at a
    third of the rate of two awaited appends under 4 concurrent clients (47 against 141 commands/s).
    """
    if len(events) > 1 and grace_of(client_of(js)) == SINGLE_SERVER_GRACE:
        first = events[0].subject
        if all(e.subject == first for e in events[1:]):
            return await _append_chain(js, events, expected, first)
    seqs: list[int] = []
    last: dict[str, int | None] = {}
    for event in events:
        subject = event.subject
        if subject in last:
            exp = last[subject]
        elif subject == events[0].subject:
            exp = expected
        else:
            exp = None
        ack = await append(js, event, exp)
        last[subject] = ack.seq
        seqs.append(ack.seq)
    return seqs


# JetStream's refusal of a publish whose Nats-Expected-Last-Msg-Id is not the stream's last message id.
WRONG_LAST_MSG_ID = 10070


async def _append_chain(js: JetStreamContext, events: Sequence[Event], expected: int | None, subject: str) -> list[int]:
    """Several events of one aggregate, published back to back without waiting for each one's ack.

    The first carries the subject's expected last sequence; each next one carries
    Nats-Expected-Last-Msg-Id = the event before it: JetStream stores it only if the stream's last
    message is that event, i.e. it was stored and nothing at all came between them, which is more
    than the expected subject sequence it would otherwise carry (the previous event's, known only
    from its ack). Its refusal stores nothing: a first event refused (another writer won) takes all
    the others with it, a ConcurrencyConflict as before. Another writer's message anywhere in the
    stream between two of them (another subject, another process) refuses the rest; they are then
    appended one by one with the expected sequence of the one before them, as without a pipeline,
    and so is everything after a lost answer (a stored try is recognised by `_stored_as`).

    One server only (append_all): on a cluster's replicated stream (nats-server 2.15.1, R3) one
    refused Nats-Expected-Last-Msg-Id left the stream answering no publish at all for the rest of the
    grace (tried: every next append timed out), so a cluster chains the awaited appends as before."""
    stream = stream_for(subject)
    await _connected(js)
    wait = min(ATTEMPT_TIMEOUT, grace_of(client_of(js)))
    answers: list[asyncio.Future[Msg]] = []
    previous: str | None = None
    try:
        for event in events:
            msg_id = str(event.event_id)
            headers = {"Nats-Msg-Id": msg_id, "Mg-Type": event.type}
            if previous is not None:
                headers["Nats-Expected-Last-Msg-Id"] = previous
            elif expected is not None:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
            previous = msg_id
            answers.append(await send(js, subject, dump_event(event), headers, wait))
    except _ELECTION_ERRORS:
        pass  # the unsent ones go one by one below
    seqs: list[int] = []
    for i, event in enumerate(events):
        failure: Exception | None = None
        if i < len(answers):
            try:
                seqs.append(ack_of(await answers[i]).seq)
                continue
            except APIError as exc:
                if i == 0 and exc.err_code in CONFLICT_CODES:
                    raise ConcurrencyConflict(subject, expected) from exc
                if exc.err_code != WRONG_LAST_MSG_ID and not isinstance(exc, ServiceUnavailableError):
                    raise
                failure = exc
            except _ELECTION_ERRORS as exc:
                failure = exc
        # the rest one by one, each expecting the sequence of the one before it
        maybe_stored = failure is not None and not isinstance(failure, APIError | NoStreamResponseError)
        exp = seqs[-1] if seqs else expected
        seqs.append((await _append_after(js, event, exp, stream, maybe_stored)).seq)
    return seqs


async def _append_after(
    js: JetStreamContext, event: Event, expected: int | None, stream: str, maybe_stored: bool
) -> api.PubAck:
    """`append`, for an event whose pipelined try may have been stored (its answer lost): a conflict
    that is that very event stored after `expected` is its success."""
    try:
        return await append(js, event, expected)
    except ConcurrencyConflict:
        if maybe_stored and expected is not None:
            mine = await _stored_as(js, stream, event.subject, str(event.event_id), expected)
            if mine is not None:
                return mine
        raise


class AtomicBatchUnsupported(Exception):
    """The stream does not take atomic batches (a server before 2.12, or allow_atomic off)."""


# JetStream's refusals of an atomic batch as such (ADR-50): publishing disabled on the stream (10174),
# batch limits (10175-10179, 10199-10201): none stored anything; the caller appends one by one instead.
ATOMIC_REFUSALS = frozenset({10174, 10175, 10176, 10177, 10178, 10179, 10199, 10200, 10201})
MAX_BATCH = 1000


async def append_batch(js: JetStreamContext, events: Sequence[Event], expected: dict[str, int]) -> list[int]:
    """Append several events as one atomic batch (stored all or none) and return their sequences.

    The first event of each subject listed in `expected` carries that subject's expected last
    sequence; nothing can come between the batch's own events, so one check per subject is the
    whole guarantee (ARCHITECTURE rule 2). A per-message pipeline cannot give it: an event's
    expectation would have to name the sequence its predecessor gets, unknown before its ack. One
    round trip for the whole batch. A conflict raises ConcurrencyConflict with nothing stored.
    """
    if not events:
        return []
    if len(events) == 1:
        event = events[0]
        return [(await append(js, event, expected.get(event.subject))).seq]
    if len(events) > MAX_BATCH:
        raise ValueError(f"an atomic batch holds at most {MAX_BATCH} events")
    nc = client_of(js)
    await _connected(js)
    batch_id = uuid.uuid4().hex
    checked: set[str] = set()
    messages: list[tuple[str, bytes, dict[str, str]]] = []
    for i, event in enumerate(events, 1):
        headers = {
            "Nats-Msg-Id": str(event.event_id),
            "Mg-Type": event.type,
            "Nats-Batch-Id": batch_id,
            "Nats-Batch-Sequence": str(i),
        }
        if event.subject in expected and event.subject not in checked:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected[event.subject])
            checked.add(event.subject)
        messages.append((event.subject, dump_event(event), headers))
    messages[-1][2]["Nats-Batch-Commit"] = "1"
    first_subject = next(iter(expected), events[0].subject)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_of(nc)
    unanswered = False  # a try may have been stored without its answer reaching us (an election)
    attempt = 0
    while True:
        try:
            for subject, data, headers in messages[:-1]:
                await nc.publish(subject, data, headers=headers)
            subject, data, headers = messages[-1]
            wait = max(0.5, min(ATTEMPT_TIMEOUT, deadline - loop.time()))
            msg = await nc.request(subject, data, timeout=wait, headers=headers)
        except _ELECTION_ERRORS as exc:  # wait the election out, as `append` does
            if asyncio.get_running_loop().time() >= deadline:
                raise
            unanswered = unanswered or not isinstance(exc, nats_errors.NoRespondersError)
            await asyncio.sleep(0.2)
            await _connected(js, deadline)
            batch_id = uuid.uuid4().hex
            for _, _, headers in messages:
                headers["Nats-Batch-Id"] = batch_id
            continue
        answer = json.loads(msg.data)
        error = answer.get("error")
        if not error:
            last = int(answer["seq"])
            count = int(answer.get("count", len(events)))
            if count != len(events):
                raise RuntimeError(f"atomic batch stored {count} of {len(events)} events")
            return list(range(last - count + 1, last + 1))  # a batch is stored in one piece, in order
        code = error.get("err_code")
        if code in CONFLICT_CODES:
            if unanswered and first_subject in expected:  # an earlier try stored the whole batch after all?
                k = next(i for i, e in enumerate(events) if e.subject == first_subject)
                mine = await _stored_as(
                    js, stream_for(first_subject), first_subject, str(events[k].event_id), expected[first_subject]
                )
                if mine is not None:
                    return list(range(mine.seq - k, mine.seq - k + len(events)))
            raise ConcurrencyConflict(first_subject, expected.get(first_subject), error.get("description", ""))
        if code in ATOMIC_REFUSALS:
            raise AtomicBatchUnsupported(error.get("description", ""))
        attempt += 1
        busy = error.get("code") == 503 and asyncio.get_running_loop().time() < deadline  # JetStream away a moment
        if not busy and (code not in RETRY_CODES or attempt == RETRY_ATTEMPTS):
            APIError.from_error(error)  # raises the matching nats-py error
        await asyncio.sleep(0.2 if busy else min(0.01 * 2**attempt, 0.25))
        batch_id = uuid.uuid4().hex
        for _, _, headers in messages:
            headers["Nats-Batch-Id"] = batch_id


async def publish_many(js: JetStreamContext, events: Iterable[Event], window: int = 2000) -> int:
    """Pipelined publish for bulk (simulation, outbox drain). Returns how many were acknowledged."""
    futures: list[asyncio.Future[api.PubAck]] = []
    count = 0
    for event in events:
        futures.append(await publish_async(js, event.subject, dump_event(event), _headers(event, None)))
        if len(futures) >= window:
            for fut in futures:
                await fut
            count += len(futures)
            futures.clear()
    for fut in futures:
        await fut
    return count + len(futures)


class Stored(msgspec.Struct, frozen=True, gc=False):
    """An event with its stream sequence (a Struct: a projection makes one per event it reads, and a
    frozen dataclass's __init__ costs thirty times as much; never in a cycle, so no work for the collector)."""

    seq: int
    event: Event


class _NoAnswer(Exception):
    """A read the cluster did not answer (a node gone, an election): repeated within ELECTION_GRACE."""


R = TypeVar("R")


async def _within_grace(read: Callable[[], Awaitable[R]], what: str, nc: NATS) -> R:
    """Run `read()` again while the bus gives no answer (timeout, no responders, 503), up to `grace_of(nc)`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_of(nc)
    while True:
        try:
            return await read()
        except (_NoAnswer, nats_errors.TimeoutError, nats_errors.NoRespondersError, ServiceUnavailableError) as exc:
            if loop.time() >= deadline:
                if isinstance(exc, _NoAnswer):
                    raise nats_errors.TimeoutError from exc
                raise
            log.info("bus.read_waiting", what=what, error=type(exc).__name__)
            await asyncio.sleep(0.2)


async def last_sequence(js: JetStreamContext, subject: str) -> int:
    """The subject's last stream sequence, 0 if it holds nothing."""

    async def read() -> int:
        try:
            msg = await js.get_last_msg(stream_for(subject), subject, direct=True)
        except NotFoundError:
            return 0
        return msg.seq or 0

    return await _within_grace(read, subject, client_of(js))


class _StreamState(msgspec.Struct):
    last_seq: int = 0


class _StreamInfo(msgspec.Struct):
    """What `stream_last_sequence` reads of JetStream's stream info."""

    state: _StreamState | None = None
    error: dict[str, Any] | None = None


class _StoredMessage(msgspec.Struct):
    seq: int = 0


class _MessageGot(msgspec.Struct):
    """What `next_sequence` reads of JetStream's answer to a message get."""

    message: _StoredMessage | None = None
    error: dict[str, Any] | None = None


_stream_info = msgspec.json.Decoder(_StreamInfo)
_message_got = msgspec.json.Decoder(_MessageGot)
NO_MESSAGE = 10037  # JetStream's "no message found" to a message get


async def _api(js: JetStreamContext, api_subject: str, payload: bytes) -> bytes:
    """One JetStream API request (to the stream's leader: no replica that may lag behind answers it)."""
    msg = await client_of(js).request(f"{api_prefix(js)}.{api_subject}", payload, timeout=ATTEMPT_TIMEOUT)
    return msg.data


async def stream_last_sequence(js: JetStreamContext, stream: str) -> int:
    """The stream's last sequence (0 if it holds nothing), from its state: the same cost however many
    subjects it holds. The last message of a wildcard filter (`js.get_last_msg(stream, "mg.calls.m.>")`)
    is looked up among every subject the filter matches: on the calls stream, a subject per call for
    ever, it took 8 ms of nats-server CPU a read at 100,000 calls (0.06 ms here)."""

    async def read() -> int:
        info = _stream_info.decode(await _api(js, f"STREAM.INFO.{stream}", b""))
        if info.error:
            APIError.from_error(info.error)  # raises the matching nats-py error
        return info.state.last_seq if info.state else 0

    return await _within_grace(read, stream, client_of(js))


async def next_sequence(js: JetStreamContext, stream: str, filter_subject: str, start: int) -> int | None:
    """The sequence of the stream's first message at or after `start` on `filter_subject` (wildcards
    allowed), None if there is none: a scan forward from `start`, cheap when `start` is near the end."""

    async def read() -> int | None:
        request = json.dumps({"seq": max(start, 1), "next_by_subj": filter_subject}).encode()
        got = _message_got.decode(await _api(js, f"STREAM.MSG.GET.{stream}", request))
        if got.error:
            if got.error.get("err_code") == NO_MESSAGE:
                return None
            APIError.from_error(got.error)
        return got.message.seq if got.message else None

    return await _within_grace(read, filter_subject, client_of(js))


class Loaded(list[Stored]):
    """The events `load` read, and the subject's last sequence read (an unreadable message, skipped,
    still counts: the next append expects it)."""

    last_seq: int = 0


async def load(nc: NATS, subject: str, after: int = 0, batch: int = 1000) -> Loaded:
    """Read every event of one aggregate subject, in order, after sequence `after`.

    Uses JetStream batched direct get (server 2.11+): one request returns up to `batch` messages,
    ended by a 204 status message; repeated while more remain. A request the cluster does not
    answer (a node killed, an election) is repeated from the last message read, within ELECTION_GRACE.
    """
    out = Loaded()
    out.last_seq = after
    await _within_grace(lambda: _load_into(nc, subject, out.last_seq, batch, out), subject, nc)
    return out


async def _load_into(nc: NATS, subject: str, after: int, batch: int, out: Loaded) -> None:
    stream = stream_for(subject)
    seq = after + 1
    inbox = nc.new_inbox()  # one per try: a late answer to an earlier try never mixes in
    sub = await subscribe_inbox(nc, inbox)
    try:
        while True:
            req = json.dumps({"seq": seq, "next_by_subj": subject, "batch": batch}).encode()
            await nc.publish(f"$JS.API.DIRECT.GET.{stream}", req, reply=inbox)
            got = 0
            more = False
            while True:
                msg = await sub.next_msg(timeout=ATTEMPT_TIMEOUT)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status:
                    if status in ("404", "408"):
                        break
                    if status == "204":  # end of batch
                        more = headers.get("Nats-Num-Pending", "0") not in ("0", "") and got == batch
                        break
                    if status == "503":  # no responders: the stream has no leader or replica answering yet
                        raise _NoAnswer(status)
                    raise RuntimeError(f"direct get failed: {status} {headers.get('Description', '')}")
                s = int(headers["Nats-Sequence"])
                try:
                    out.append(Stored(s, parse_event(msg.data)))
                except ValueError as exc:  # (JSON, UTF-8 and validation errors alike)
                    # A message that is no event (written by hand, a broken client) never happened
                    # for the projections (they dead-letter it); the aggregate reads past it.
                    log.warning("bus.unreadable_event_skipped", subject=subject, seq=s, error=type(exc).__name__)
                out.last_seq = s
                seq = s + 1
                got += 1
            if not more:
                return
    finally:
        await sub.unsubscribe()


S = TypeVar("S")


def fold(evolve: Callable[[S, Event], S], stored: Iterable[Stored], state: S, seq: int = 0) -> tuple[S, int]:
    """An aggregate's state and last sequence: its stored events (bus.load) folded into `state`, the
    initial state, or a fold already made up to `seq` (a cache) that the events continue."""
    for item in stored:
        state = evolve(state, item.event)
        seq = item.seq
    if isinstance(stored, Loaded):
        seq = max(seq, stored.last_seq)
    return state, seq


async def load_filter(
    js: JetStreamContext, filter_subject: str, start_seq: int = 1, timeout: float = 2.0
) -> AsyncIterator[tuple[int, str, bytes, dict[str, str]]]:
    """Yield (seq, subject, data, headers) of every stored message matching a filter, then stop.

    The tuple form of `reader.read_all` (the one reader), kept for the write-side services' tests
    and tools; new code reads `reader.StoredMessage`s directly.
    """
    async for m in reader.read_all(client_of(js), filter_subject, start_seq, timeout=timeout):
        yield m.seq, m.subject, m.data, m.headers or {}


__all__ = [
    "STREAMS",
    "LOG_STREAMS",
    "StreamSpec",
    "ConcurrencyConflict",
    "BusDown",
    "Stored",
    "Loaded",
    "connect",
    "ensure_streams",
    "BusUnreachable",
    "connect_tool",
    "append",
    "append_all",
    "append_batch",
    "AtomicBatchUnsupported",
    "publish_new",
    "publish_many",
    "last_sequence",
    "stream_last_sequence",
    "next_sequence",
    "load",
    "fold",
    "load_filter",
    "stream_for",
    "subjects",
]
