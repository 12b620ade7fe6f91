"""The live state of the phone line, per municipality, held in memory (no table to keep in step).

A `LineView` replays the municipality's calls events (``mg.calls.<m>.>``) with an ordered
consumer when first needed, then follows new ones as they are stored. It answers what the
line's screens and checks need across aggregates: who sits where, which calls are in progress,
the callback queue, today's alerts, the day's counts (CALL-3's never-connected share, CALL-5),
and the FAQ index. Decisions still load their own aggregate from the stream and append with the
expected sequence; the view only supplies facts (is a seat free, how many calls today) and
`wait_for(seq)` gives read-your-writes after an append.

Alert texts are Japanese (shown to people); they are built here from the events' codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from madoguchi_calls import domain as d
from madoguchi_calls.faq import FaqIndex
from madoguchi_shared import bus, subjects
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event, parse_event
from madoguchi_shared.events import calls as ev
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

STREAM = "MG_CALLS"


def local_day(t: datetime) -> date:
    return t.astimezone(TOKYO).date()


@dataclass
class DayStats:
    """One line's day in numbers (CALL-3, CALL-5, REP-2)."""

    received: int = 0
    within_hours: int = 0
    answered: int = 0
    missed: int = 0
    abandoned: int = 0
    out_of_hours: int = 0
    callback_chosen: int = 0  # of the missed: the caller left a callback request instead of waiting
    overflow_offered: int = 0
    closed: int = 0
    wait_seconds: int = 0
    talk_seconds: int = 0
    callbacks_requested: int = 0
    escalations: int = 0  # calls closed as escalated for callback (CALL-4)
    resolutions: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    providers: Counter = field(default_factory=Counter)
    opinions: int = 0
    per_hour: Counter = field(default_factory=Counter)

    @property
    def never_connected(self) -> int:
        return self.missed + self.abandoned + self.out_of_hours

    @property
    def never_connected_share(self) -> float | None:
        return round(self.never_connected / self.received, 4) if self.received else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "within_hours": self.within_hours,
            "answered": self.answered,
            "missed": self.missed,
            "abandoned": self.abandoned,
            "out_of_hours": self.out_of_hours,
            "callback_chosen": self.callback_chosen,
            "overflow_offered": self.overflow_offered,
            "closed": self.closed,
            "never_connected": self.never_connected,
            "never_connected_share": self.never_connected_share,
            "average_wait_seconds": round(self.wait_seconds / self.answered, 1) if self.answered else None,
            "average_talk_seconds": round(self.talk_seconds / self.closed, 1) if self.closed else None,
            "callbacks_requested": self.callbacks_requested,
            "escalations": self.escalations,
            "resolutions": dict(self.resolutions),
            "categories": dict(self.categories),
            "payment_provider_categories": dict(self.providers),
            "opinions": self.opinions,
            "per_hour": {f"{h:02d}": n for h, n in sorted(self.per_hour.items())},
        }


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str  # info | warning | critical
    at: datetime
    line: str | None
    message_ja: str
    ref: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "at": self.at.isoformat(),
            "line": self.line,
            "message_ja": self.message_ja,
            "ref": self.ref,
        }


def _hm(t: datetime) -> str:
    return t.astimezone(TOKYO).strftime("%H:%M")


def _mdhm(t: datetime) -> str:
    return t.astimezone(TOKYO).strftime("%m/%d %H:%M")


def alert_for(event: Event, view: LineView) -> Alert | None:
    """The alert an event raises, if any (Japanese text for the screens)."""
    at = event.occurred_at
    match event:
        case ev.NoOperatorSeated():
            return Alert(
                "no_operator_seated",
                "critical",
                at,
                event.line,
                f"電話回線「{event.line}」: 受付時間中に着席しているオペレーターがいません（{_hm(event.since)}から）。",
                event.line_day,
            )
        case ev.SeatCoverageRestored():
            return Alert(
                "seat_coverage_restored",
                "info",
                at,
                event.line,
                f"電話回線「{event.line}」: オペレーターが着席しました（不在 {event.gap_seconds // 60} 分）。",
                event.line_day,
            )
        case ev.CapacityThresholdCrossed():
            if event.level == "approaching":
                text = (
                    f"本日の入電が {event.count} 件になり、想定最大 {event.expected_max} 件の "
                    f"{event.percent}% に達しました。"
                )
                severity = "info"
            elif event.level == "reached":
                text = f"本日の入電が想定最大 {event.expected_max} 件に達しました。"
                severity = "warning"
            else:
                text = (
                    f"本日の入電が {event.count} 件となり、想定最大 {event.expected_max} 件を大幅に超えています"
                    f"（{event.percent}%）。委託者への報告・協議を検討してください。"
                )
                severity = "critical"
            return Alert(f"capacity_{event.level}", severity, at, event.line, text, event.line_day)
        case ev.CallbackOverdue():
            cb = view.callbacks.get(event.callback_id)
            line = cb.line if cb else None
            return Alert(
                "callback_overdue",
                "warning",
                at,
                line,
                f"折り返しの期限（{_mdhm(event.due_at)}）を過ぎています。至急対応してください。",
                str(event.callback_id),
            )
        case ev.CallbackEscalatedToCity():
            cb = view.callbacks.get(event.callback_id)
            return Alert(
                "callback_escalated",
                "info",
                at,
                cb.line if cb else None,
                "折り返し案件を委託者（市）へ確認中です。",
                str(event.callback_id),
            )
        case ev.CallbackFailed():
            cb = view.callbacks.get(event.callback_id)
            return Alert(
                "callback_failed",
                "warning",
                at,
                cb.line if cb else None,
                f"折り返しが {event.attempts} 回つながらず、終了しました。",
                str(event.callback_id),
            )
    return None


def _stream_sequence(msg) -> int:
    """The stream sequence of a delivered JetStream message, read off its reply subject
    ($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>) without
    the rest of nats-py's Metadata (a datetime and five objects per message); any other form of the
    subject is read by nats-py."""
    tokens = msg.reply.split(".") if msg.reply else ()
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5])
    return msg.metadata.sequence.stream


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class LineView:
    """The live state of one municipality's phone line(s)."""

    def __init__(self, municipality: str, *, alert_limit: int = 200):
        self.municipality = municipality
        self.position = 0
        self.line_days: dict[tuple[str, date], d.LineDay] = {}
        self.calls: dict[UUID, d.Call] = {}  # in progress: ringing, waiting, answered
        self.stats: dict[tuple[str, date], DayStats] = {}
        self.callbacks: dict[UUID, d.Callback] = {}  # open, or ended but the contact not yet erased
        self.callback_totals: Counter = Counter()
        self.faq = FaqIndex()
        self.alerts: deque[Alert] = deque(maxlen=alert_limit)
        self.busy: dict[str, UUID] = {}  # operator -> the call they are on
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # (sequence, tie-break, future), a heap
        self._waiter_ids = itertools.count()
        self._subscribers: set[asyncio.Queue] = set()
        self._sub = None
        self._js: JetStreamContext | None = None
        self.ready = asyncio.Event()
        self._next_read: asyncio.Future[int] | None = None  # the shared last_stored() read callers wait for
        self._reader: asyncio.Task | None = None
        # events this process is appending, by Nats-Msg-Id (= event id): when the stream delivers one,
        # the object itself is applied instead of parsing its bytes back (they are its own dump)
        self._own: dict[str, Event] = {}
        self._own_last = 0  # the last stream sequence this process's own appends were acknowledged at

    # --- following the stream ----------------------------------------------------------------

    @property
    def filter(self) -> str:
        return subjects.context_filter("calls", self.municipality)

    async def start(self, nc: NATS) -> None:
        self._js = nc.jetstream()
        last = await bus.stream_last_sequence(self._js, STREAM)
        self._sub = await self._js.subscribe(
            self.filter, cb=self._on_msg, ordered_consumer=True, stream=STREAM, deliver_policy=api.DeliverPolicy.ALL
        )
        await self.wait_for(await self._target(last, timeout=60), timeout=60)
        self.ready.set()

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def last_stored(self) -> int:
        """The stream sequence the view must reach to have applied every event of the municipality
        stored so far (0 if none)."""
        if self._js is None:
            raise RuntimeError("the live view reads the stream once started")
        return await self._target(await bus.stream_last_sequence(self._js, STREAM))

    async def _target(self, last: int, timeout: float = bus.ELECTION_GRACE) -> int:
        """The municipality's last stored sequence at or before the stream's last sequence `last`.

        Not the last message of the view's filter (`mg.calls.<m>.>`): nats-server finds that among
        every subject the filter matches, a subject per call for ever (8 ms of its CPU a read at
        100,000 calls, bus.stream_last_sequence). The stream's last sequence costs the same at any
        size; it is the municipality's own when this process appended it (its ack seen), when the view
        has it already, or when a read of the first message at `last` on the filter finds it there.
        Otherwise (another municipality's, or any other subject of the stream) the view's filter is
        read forward from the view's position up to `last`, each message found waited for in turn."""
        assert self._js is not None
        if last <= self.position or last == self._own_last:
            return last
        if await bus.next_sequence(self._js, STREAM, self.filter, last) == last:
            return last
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await bus.next_sequence(self._js, STREAM, self.filter, self.position + 1)
            if found is None or found > last:
                return self.position  # every message of the filter up to `last` is applied
            await self.wait_for(found, max(0.1, deadline - asyncio.get_running_loop().time()))

    def acked(self, keys: Sequence[str], events: Sequence[Event], seqs: Sequence[int]) -> None:
        """This process's `events` (`keys`: what `appending` returned for them) were stored at `seqs`, in order. Each one stored right
        after the view's position is applied now, as the stream holds it (nothing can come between the
        two: the stream sequence after the position is its own), and its delivery, later, is passed
        over; the others wait for their delivery. A command of this process waits for its predecessors'
        acks then, not for their round trip back through the view's consumer."""
        for key, event, seq in zip(keys, events, seqs, strict=True):
            self._own_last = max(self._own_last, seq)
            if seq == self.position + 1:
                self._own.pop(key, None)
                self._applied(event, seq)

    async def catch_up(self, timeout: float = bus.ELECTION_GRACE) -> None:
        """Wait until everything stored so far has been applied (for cross-aggregate facts). In a cluster the
        view's consumer is re-created after its node dies (missed heartbeats): a command waits that out like
        an append waits out a leader election, instead of a 503."""
        await self.wait_for(await self.latest(), timeout)

    async def latest(self) -> int:
        """last_stored(), one read for every command waiting at the same time: a caller joins the next
        read that starts after it came (never one already in flight, which could miss what was
        stored just before it asked). Under load one round trip serves a whole wave of commands."""
        if self._next_read is None:
            self._next_read = asyncio.get_running_loop().create_future()
            self._next_read.add_done_callback(_retrieve)  # a failed read nobody waits for any more
            if self._reader is None:
                self._reader = asyncio.create_task(self._read_latest(), name=f"calls-view-latest {self.municipality}")
        return await asyncio.shield(self._next_read)

    async def _read_latest(self) -> None:
        try:
            while self._next_read is not None:
                answer, self._next_read = self._next_read, None
                try:
                    answer.set_result(await self.last_stored())
                except Exception as exc:  # noqa: BLE001 - every waiter of this read gets the failure
                    answer.set_exception(exc)
        finally:
            self._reader = None

    async def wait_for(self, seq: int, timeout: float = 5.0) -> None:
        if self.position >= seq:
            return
        # one future per waiter, woken only when the view reaches its sequence (a condition woke
        # every waiting command on every event: quadratic under load)
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._waiter_ids), waiter))
        await asyncio.wait_for(waiter, timeout)  # a timed-out waiter is cancelled, dropped by _wake later

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.position:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)

    def appending(self, events: Iterable[Event]) -> list[str]:
        """This process is appending `events` (as dumped by bus.append): apply them as they are.
        Returns their keys (message ids) for `forget`."""
        keys = []
        for event in events:
            key = str(event.event_id)
            self._own[key] = event
            keys.append(key)
        return keys

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._own.pop(key, None)

    async def _on_msg(self, msg) -> None:
        seq = _stream_sequence(msg)
        if seq <= self.position:
            return
        event = self._own.pop((msg.headers or {}).get("Nats-Msg-Id", ""), None) if self._own else None
        if event is None:
            try:
                event = parse_event(msg.data)
            except Exception as exc:  # noqa: BLE001 - a bad message must not stop the live view
                log.warning("live.unreadable_event", subject=msg.subject, seq=seq, error=type(exc).__name__)
        self._applied(event, seq, msg.subject)

    def _applied(self, event: Event | None, seq: int, subject: str | None = None) -> None:
        """The stream's message at `seq` (an event, or None if unreadable) applied: the view is there."""
        alert = None
        if event is not None:
            try:
                alert = self.apply(event)
            except Exception:
                log.exception("live.apply_failed", subject=subject or event.subject, seq=seq, type=event.type)
        self.position = seq
        self._wake()
        if event is not None and self._subscribers:
            for queue in list(self._subscribers):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait((event, alert))

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    # --- applying events -------------------------------------------------------------------

    def _stats(self, line: str, day: date) -> DayStats:
        stats = self.stats.get((line, day))
        if stats is None:  # (not setdefault: its default, four Counters, was built for every call and dropped)
            stats = self.stats[(line, day)] = DayStats()
        return stats

    def apply(self, event: Event) -> Alert | None:
        """Fold one event into the view; returns the alert it raised, if any."""
        alert = alert_for(event, self)
        if alert is not None:
            self.alerts.append(alert)
        self._apply(event)
        return alert

    def _apply(self, event: Event) -> None:
        match event:
            case (
                ev.OperatorSignedIn()
                | ev.OperatorSignedOut()
                | ev.NoOperatorSeated()
                | ev.SeatCoverageRestored()
                | ev.CapacityThresholdCrossed()
            ):
                key = (event.line, event.day)
                self.line_days[key] = d.evolve_line(self.line_days.get(key), event)
            case ev.CallReceived():
                call = d.evolve_call(None, event)
                self.calls[call.call_id] = call
                stats = self._stats(call.line, local_day(call.received_at))
                stats.received += 1
                stats.within_hours += int(call.within_hours)
                stats.per_hour[call.received_at.astimezone(TOKYO).hour] += 1
            case (
                ev.OverflowOffered()
                | ev.CallAnswered()
                | ev.CallMissed()
                | ev.CallAbandoned()
                | ev.CallOutOfHours()
                | ev.CallClosed()
            ):
                self._apply_call(event)
            case ev.CallbackRequested():
                self.callbacks[event.callback_id] = d.evolve_callback(None, event)
                self.callback_totals["requested"] += 1
                self._stats(event.line, local_day(event.occurred_at)).callbacks_requested += 1
            case ev.FaqEntryCreated() | ev.FaqEntryRevised() | ev.FaqEntryRetired():
                self.faq.apply(event)
            case _ if event.type.startswith("calls.callback_") or event.type == "calls.city_answered":
                cb = self.callbacks.get(event.callback_id)  # type: ignore[attr-defined]
                if cb is None:
                    return
                cb = d.evolve_callback(cb, event)
                if isinstance(event, ev.CallbackCompleted | ev.CallbackFailed | ev.CallbackCancelled):
                    self.callback_totals[cb.status] += 1
                if cb.erased:
                    del self.callbacks[cb.callback_id]
                else:
                    self.callbacks[cb.callback_id] = cb

    def _apply_call(self, event: Event) -> None:
        call = self.calls.get(event.call_id)  # type: ignore[attr-defined]
        if call is None:
            return
        call = d.evolve_call(call, event)
        stats = self._stats(call.line, local_day(call.received_at))
        match event:
            case ev.OverflowOffered():
                stats.overflow_offered += 1
            case ev.CallAnswered():
                stats.answered += 1
                stats.wait_seconds += event.wait_seconds
                self.busy[event.operator] = call.call_id
            case ev.CallMissed():
                stats.missed += 1
                stats.callback_chosen += int(event.reason == "callback_chosen")
            case ev.CallAbandoned():
                stats.abandoned += 1
            case ev.CallOutOfHours():
                stats.out_of_hours += 1
            case ev.CallClosed():
                stats.closed += 1
                stats.talk_seconds += event.duration_seconds
                stats.resolutions[event.resolution] += 1
                stats.escalations += int(event.resolution == "escalated_callback")
                stats.categories.update(event.categories)
                if event.provider_category:
                    stats.providers[event.provider_category] += 1
                stats.opinions += len(event.opinions)
                if call.operator and self.busy.get(call.operator) == call.call_id:
                    del self.busy[call.operator]
        if call.status in d.IN_PROGRESS:
            self.calls[call.call_id] = call
        else:
            self.calls.pop(call.call_id, None)

    # --- questions -------------------------------------------------------------------------

    def line_day(self, line: str, day: date) -> d.LineDay | None:
        return self.line_days.get((line, day))

    def seats(self, line: str, day: date) -> dict[str, str]:
        state = self.line_days.get((line, day))
        return dict(state.seats) if state else {}

    def free_seats(self, line: str, day: date) -> int:
        return sum(1 for op in self.seats(line, day).values() if op not in self.busy)

    def day_stats(self, line: str, day: date) -> DayStats:
        stats = self.stats.get((line, day))
        return DayStats() if stats is None else stats

    def open_callbacks(self, line: str | None = None) -> list[d.Callback]:
        items = [cb for cb in self.callbacks.values() if not cb.ended and (line is None or cb.line == line)]
        return sorted(items, key=lambda cb: cb.due_at)

    def snapshot(self, line: str, now: datetime, *, open_now: bool) -> dict[str, Any]:
        """The live line state (seats, calls in progress, callback queue, alerts) for screens and SSE."""
        day = local_day(now)
        state = self.line_days.get((line, day))
        seats = []
        for seat, operator in sorted((state.seats if state else {}).items()):
            seats.append(
                {
                    "seat": seat,
                    "operator": operator,
                    "since": since.isoformat() if (since := state and state.seated_since.get(seat)) else None,
                    "on_call": str(self.busy[operator]) if operator in self.busy else None,
                }
            )
        calls = [
            {
                "call_id": str(c.call_id),
                "status": c.status,
                "received_at": c.received_at.isoformat(),
                "seat": c.seat,
                "operator": c.operator,
                "overflow": c.overflow,
            }
            for c in sorted(self.calls.values(), key=lambda c: c.received_at)
            if c.line == line
        ]
        queue = [callback_dict(cb, now) for cb in self.open_callbacks(line)]
        alerts = [a.as_dict() for a in self.alerts if (a.line in (line, None)) and local_day(a.at) == day]
        return {
            "municipality": self.municipality,
            "line": line,
            "day": day.isoformat(),
            "now": now.isoformat(),
            "open_now": open_now,
            "seats": seats,
            "calls_in_progress": calls,
            "callback_queue": queue,
            "alerts": alerts,
            "breach_open": bool(state and state.breach_since),
            "today": self.day_stats(line, day).as_dict(),
            "position": self.position,
        }


def callback_dict(cb: d.Callback, now: datetime | None = None) -> dict[str, Any]:
    return {
        "callback_id": str(cb.callback_id),
        "call_id": str(cb.call_id),
        "line": cb.line,
        "reason": cb.reason,
        "status": cb.status,
        "requested_at": cb.requested_at.isoformat(),
        "due_at": cb.due_at.isoformat(),
        "window_start": cb.window_start.isoformat() if cb.window_start else None,
        "window_end": cb.window_end.isoformat() if cb.window_end else None,
        "needs_city": cb.needs_city,
        "city_answered": cb.city_answered,
        "failed_attempts": cb.failed_attempts,
        "max_attempts": cb.max_attempts,
        "overdue": bool(now and not cb.ended and now > cb.due_at),
        "ready_to_call": cb.ready_to_call,
        "contact_erased": cb.erased,
    }


class Views:
    """One LineView per municipality, started on first use."""

    def __init__(self, nc: NATS):
        self.nc = nc
        self._views: dict[str, LineView] = {}
        self._lock = asyncio.Lock()

    async def get(self, municipality: str) -> LineView:
        view = self._views.get(municipality)
        if view is not None and view.ready.is_set():
            return view
        async with self._lock:
            view = self._views.get(municipality)
            if view is None:
                view = LineView(municipality)
                await view.start(self.nc)
                self._views[municipality] = view
        return view

    def all(self) -> list[LineView]:
        return list(self._views.values())

    async def close(self) -> None:
        for view in self._views.values():
            await view.stop()
        self._views.clear()
