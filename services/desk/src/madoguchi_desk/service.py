"""The service shell: load an aggregate (bus.load + evolve, with a small cache), decide, append
with the aggregate's expected last sequence, retry or report a conflict.

Concurrency (ARCHITECTURE rule 2):
- every append carries the expected last sequence of the subject it was decided on;
- commands that only add to the day (issue a ticket, check in, raise an escalation, the DESK-5
  timer) are re-decided on fresh state when another writer got there first (`retry=True`);
  inside this process they are group-committed per subject: the commands waiting on one desk-day
  are decided in order on its cached state (each on the state the previous ones leave) and
  appended as one atomic batch carrying the subject's expected last sequence (bus.append_batch),
  one round trip for all of them; a conflict stores nothing and re-decides the batch on fresh
  state. A refusal is answered only once the batch it was decided in is stored (it may depend on
  the commands before it);
- commands whose meaning depends on what the user saw ("call next", visit edits) are not retried:
  the loser gets ConcurrencyConflict (HTTP 409). A client may also send the `version` it saw;
  a different current version is a 409 at once.
A command touching two aggregates (start a visit, a card left behind) appends the desk-day first
(with its expectation, the numbering and ordering live there) and the visit second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic_core import from_json

from madoguchi_desk import domain as d
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared.errors import DomainError, Refused
from madoguchi_shared import bus, training
from madoguchi_shared.calendar import TOKYO, Calendar
from madoguchi_shared.events import SYSTEM, Actor, Event, dump_event, new_id
from madoguchi_shared.sealed import TextVault
from madoguchi_shared.events import desk as ev
from madoguchi_shared.logging import get_logger
from madoguchi_shared.municipality import Desk, Municipality
from madoguchi_shared.subjects import aggregate_subject

log = get_logger(__name__)

MAX_ATTEMPTS = 25
CACHE_SIZE = 5000
MAX_GROUP = 100  # commands in one group commit (an atomic batch holds up to 1,000 events)


@dataclass(frozen=True)
class Lazy:
    """An aggregate's initial state, built only when no fold of it is cached (the common case skips it)."""

    build: Callable[..., Any]
    args: tuple[Any, ...] = ()

    @staticmethod
    def resolve(initial: Any) -> Any:
        return initial.build(*initial.args) if isinstance(initial, Lazy) else initial


@dataclass(frozen=True)
class Loaded:
    seq: int
    state: Any


@dataclass
class _Queued:
    """A command waiting for its group commit: its decision, and where its answer goes."""

    decide: Callable[[dict[str, Any], datetime], list[Event]]
    answer: asyncio.Future


@dataclass
class GroupStats:
    """What the group commits did, and how often a cached fold proved stale (for tests and the bench)."""

    batches: int = 0
    commands: int = 0
    largest: int = 0
    conflicts: int = 0
    stale_cache: int = 0  # a command decided on a cached fold that another process had overtaken


@dataclass(frozen=True)
class Appended:
    seq: int
    event: Event
    data: bytes | None = None  # the event as published (bus.dump_event), when the append had it

    def as_json(self) -> dict[str, Any]:
        # the published bytes parsed back: the same document as model_dump(mode="json"), a seventh of its cost
        return {
            "seq": self.seq,
            **(from_json(self.data) if self.data is not None else self.event.model_dump(mode="json")),
        }


class DeskService:
    on_edge = False  # the desk edge on a laptop decides as the desk's one writer (edge/, EDGE.md)

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        municipality: Municipality,
        clock: Clock = utc_clock,
        on_appended: Callable[[list[Appended]], None] | None = None,
    ):
        self.nc = nc
        self.js = js
        self.vault = TextVault(js)
        self.m = municipality
        self.clock = clock
        self.on_appended = on_appended
        self._cache: OrderedDict[str, Loaded] = OrderedDict()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._calendar: tuple[int, Calendar] | None = None
        self._calendar_watch = None
        self.edges: dict[str, dict[str, Any]] = {}  # desk -> the last heartbeat of its edge (EDGE.md)
        self._queues: dict[str, list[_Queued]] = {}  # subject -> commands waiting while a batch commits
        self.group_stats = GroupStats()
        self._drainers: set[asyncio.Task] = set()

    # --- subjects ------------------------------------------------------------------------

    @property
    def calendar_subject(self) -> str:
        return aggregate_subject("desk", self.m.code, "calendar", "city")

    def deskday_subject(self, desk: str, day: date) -> str:
        return aggregate_subject("desk", self.m.code, "deskday", ev.deskday_id(desk, day))

    def visit_subject(self, visit_id: UUID) -> str:
        return aggregate_subject("desk", self.m.code, "visit", str(visit_id))

    def staff_subject(self, staff_id: str) -> str:
        return aggregate_subject("admin", self.m.code, "staff", staff_id)

    # --- loading ---------------------------------------------------------------------------

    async def load(
        self, subject: str, initial: Any, evolve: Callable[[Any, Event], Any], *, fresh: bool = True
    ) -> Loaded:
        """The aggregate's state and last sequence: the cached fold plus whatever came after it.

        With fresh=False a cached fold is used as it is: a command decided on it appends with its
        sequence as the expectation, so a stale cache costs a conflict and a refresh, never a
        wrong write (ARCHITECTURE rule 2), and the common case costs no read at all.
        """
        cached = self._cache.get(subject)
        if cached is not None and not fresh:
            self._cache.move_to_end(subject)
            return cached
        seq, state = (cached.seq, cached.state) if cached else (0, Lazy.resolve(initial))
        state, seq = bus.fold(evolve, await bus.load(self.nc, subject, after=seq), state, seq)
        loaded = Loaded(seq, state)
        current = self._cache.get(subject)
        if current is None or current.seq <= seq:
            self._cache[subject] = loaded
            self._cache.move_to_end(subject)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return loaded

    async def city_calendar(self) -> Loaded:
        # The city's instructions change rarely and must take effect at once: the cached fold is
        # dropped whenever a message lands on the calendar subject (a core subscription sees every
        # JetStream publish), so a command reads the calendar only after it changed.
        if self._calendar_watch is None:

            async def invalidate(_msg) -> None:
                self._cache.pop(self.calendar_subject, None)

            self._calendar_watch = await self.nc.subscribe(self.calendar_subject, cb=invalidate)
            self._cache.pop(self.calendar_subject, None)
        return await self.load(self.calendar_subject, d.CityCalendar(), d.evolve_calendar, fresh=False)

    async def calendar(self) -> Calendar:
        """Configuration plus the city's run-time instructions (rebuilt only when they change)."""
        loaded = await self.city_calendar()
        if self._calendar is None or self._calendar[0] != loaded.seq:
            self._calendar = (loaded.seq, loaded.state.calendar(self.m))
        return self._calendar[1]

    async def deskday(self, desk: Desk, day: date) -> Loaded:
        return await self.load(self.deskday_subject(desk.id, day), d.DeskDay.empty(desk, day), d.evolve_deskday)

    async def visit(self, visit_id: UUID) -> Loaded:
        return await self.load(self.visit_subject(visit_id), None, d.evolve_visit)

    async def training_missing(self, staff_id: str) -> tuple[str, ...]:
        """ORG-4: what keeps the person from desk duty under the municipality's training plan, in
        Japanese (empty = cleared), read from their records on the admin stream."""
        stored = await bus.load(self.nc, self.staff_subject(staff_id))
        return training.status(self.m.training, (s.event for s in stored)).missing_labels("desk")

    def today(self, calendar: Calendar | None = None) -> date:
        return (calendar or self.m.calendar()).local_date(self.clock())

    # --- executing -------------------------------------------------------------------------

    async def execute(
        self,
        aggregates: dict[str, tuple[Any, Callable[[Any, Event], Any]]],
        decide: Callable[[dict[str, Loaded], datetime], list[Event]],
        *,
        retry: bool,
        versions: dict[str, int] | None = None,
    ) -> list[Appended]:
        """Load the aggregates, decide, append. The first aggregate listed is the primary one
        (its lock serialises retried commands in this process)."""
        primary = next(iter(aggregates))
        if retry and not versions and len(aggregates) == 1 and not self.on_edge:  # the edge is its desk's one writer
            return await self._grouped(primary, *aggregates[primary], decide)
        if retry and not versions:
            async with self._locks[primary]:
                return await self._attempts(aggregates, decide, retry=True, versions=None)
        return await self._attempts(aggregates, decide, retry=False, versions=versions)

    # --- group commit ----------------------------------------------------------------------

    async def settled(self, subject: str, timeout: float = 5.0) -> None:
        """Wait until no group commit of this process is storing on `subject`: a batch's messages
        reach core subscribers (the live view) as they are sent, before the batch is stored."""
        deadline = asyncio.get_running_loop().time() + timeout
        while subject in self._queues and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.002)

    async def _grouped(self, subject: str, initial: Any, evolve: Callable[[Any, Event], Any], decide) -> list[Appended]:
        """Run a retried one-aggregate command in the subject's group commit: alone at once when no
        batch is committing, else in the next batch (drained by one task per busy subject)."""
        queued = _Queued(decide, asyncio.get_running_loop().create_future())
        waiting = self._queues.get(subject)
        if waiting is not None:
            waiting.append(queued)
            return await queued.answer
        self._queues[subject] = waiting = []
        try:
            await self._commit(subject, initial, evolve, [queued])
        finally:
            if waiting:
                task = asyncio.create_task(self._drain(subject, initial, evolve), name=f"group-commit {subject}")
                self._drainers.add(task)  # a task nobody references may be collected mid-way
                task.add_done_callback(self._drainers.discard)
            else:
                del self._queues[subject]
        return queued.answer.result()

    async def _drain(self, subject: str, initial: Any, evolve) -> None:
        waiting = self._queues[subject]
        try:
            while waiting:
                batch, waiting[:] = waiting[:MAX_GROUP], waiting[MAX_GROUP:]
                await self._commit(subject, initial, evolve, batch)
        finally:
            del self._queues[subject]
            for queued in waiting:  # only if this task itself failed
                if not queued.answer.done():
                    queued.answer.set_exception(RuntimeError("group commit stopped"))

    async def _commit(self, subject: str, initial: Any, evolve, batch: list[_Queued]) -> None:
        """Decide the batch in order on the subject's state and append it in one atomic batch;
        every command gets its answer (its events, a refusal or the failure) through its future."""
        try:
            async with self._locks[subject]:  # two-aggregate commands on this desk-day wait their turn
                await self._commit_locked(subject, initial, evolve, batch)
        except BaseException as exc:
            answer = exc.conflict if isinstance(exc, _PartialConflict) else exc
            for queued in batch:
                if not queued.answer.done():
                    queued.answer.set_exception(answer if isinstance(answer, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise

    async def _commit_locked(self, subject: str, initial: Any, evolve, batch: list[_Queued]) -> None:
        fresh = False  # first try on the cached fold; a conflict refreshes it
        for attempt in range(MAX_ATTEMPTS + 1):
            loaded = await self.load(subject, initial, evolve, fresh=fresh)
            state = loaded.state
            decided: list[tuple[_Queued, list[Event]]] = []
            refused: list[tuple[_Queued, Exception]] = []
            for queued in batch:
                try:
                    events = queued.decide({subject: Loaded(loaded.seq, state)}, self.clock())
                except Exception as exc:  # noqa: BLE001 - a refusal, answered once the batch is stored
                    refused.append((queued, exc))
                    continue
                for event in events:
                    if event.subject == subject:
                        state = evolve(state, event)
                decided.append((queued, events))
            if refused and not decided and not fresh:
                fresh = (
                    True  # refused on the cached fold, nothing to prove it current: decide again on the current state
                )
                continue
            events = [e for _, evs in decided for e in evs]
            try:
                appended = await self._append_batch(events, subject, loaded.seq, len(decided))
            except bus.ConcurrencyConflict:
                self.group_stats.conflicts += 1
                self.group_stats.stale_cache += not fresh
                if attempt >= MAX_ATTEMPTS:
                    raise
                fresh = True
                continue
            self._stored(subject, loaded, evolve, decided, appended, state)
            for queued, exc in refused:
                queued.answer.set_exception(exc)
            self.group_stats.batches += 1
            self.group_stats.commands += len(batch)
            self.group_stats.largest = max(self.group_stats.largest, len(batch))
            return

    async def _append_batch(self, events: list[Event], subject: str, expected: int, commands: int) -> list[Appended]:
        """Several commands: one atomic batch. One command alone: `_append`, as before group commit
        (each event stored, and seen by core subscribers such as the live view, only after the one
        before it); also when the server takes no atomic batches."""
        if commands > 1:
            sealed = [await self.vault.seal_event(e) for e in events]  # free text sealed, key outside the log
            try:
                seqs = await bus.append_batch(self.js, sealed, {subject: expected})
            except bus.AtomicBatchUnsupported:
                pass
            else:
                return [Appended(seq, event) for seq, event in zip(seqs, sealed, strict=True)]
        return await self._append(events, {subject: expected})

    def _stored(
        self,
        subject: str,
        loaded: Loaded,
        evolve,
        decided: list[tuple[_Queued, list[Event]]],
        stored: list[Appended],
        decided_state: Any,
    ) -> None:
        """The batch is stored: fold it into the cache, answer each command with its own events.
        The state the batch was decided into is the fold when every event went out as decided
        (nothing sealed: the very objects); else the stored events are folded again."""
        flat = [e for _, events in decided for e in events]
        same = len(flat) == len(stored) and all(a.event is e for a, e in zip(stored, flat, strict=True))
        seq, state = loaded.seq, loaded.state
        position = 0
        for queued, events in decided:
            appended = stored[position : position + len(events)]
            position += len(events)
            for a in appended:
                if a.event.subject == subject:
                    seq = a.seq
                    if not same:
                        state = evolve(state, a.event)
                else:
                    self._cache.pop(a.event.subject, None)
            queued.answer.set_result(appended)
        if same:
            state = decided_state
        everything = stored
        current = self._cache.get(subject)
        if current is None or current.seq <= seq:
            self._cache[subject] = Loaded(seq, state)
            self._cache.move_to_end(subject)
        if everything and self.on_appended:
            self.on_appended(everything)
        for a in everything:
            log.info("desk.event", type=a.event.type, subject=a.event.subject, seq=a.seq)

    async def _attempts(self, aggregates, decide, *, retry: bool, versions: dict[str, int] | None) -> list[Appended]:
        fresh = False  # first try on the cached folds; a conflict refreshes them
        for attempt in range(MAX_ATTEMPTS + 1):
            loaded = {s: await self.load(s, init, evolve, fresh=fresh) for s, (init, evolve) in aggregates.items()}
            stale = [s for s, version in (versions or {}).items() if loaded[s].seq != version]
            if stale and not fresh:
                fresh = True
                loaded = {s: await self.load(s, init, evolve) for s, (init, evolve) in aggregates.items()}
                stale = [s for s, version in (versions or {}).items() if loaded[s].seq != version]
            if stale:
                subject = stale[0]
                raise bus.ConcurrencyConflict(subject, (versions or {})[subject], f"(now at {loaded[subject].seq})")
            try:
                events = decide(loaded, self.clock())
            except DomainError:
                if fresh:
                    raise
                fresh = True  # refused on the cached fold: only a refusal on the current state stands
                continue
            if not events:
                return []
            try:
                appended = await self._append(events, {s: lo.seq for s, lo in loaded.items()})
            except _PartialConflict as exc:
                raise exc.conflict from None
            except bus.ConcurrencyConflict:
                if not fresh:  # decided on a stale cache: refresh and decide again, as a first try
                    self.group_stats.stale_cache += 1
                    fresh = True
                    continue
                if not retry or attempt >= MAX_ATTEMPTS:
                    raise
                continue
            self._remember(loaded, aggregates, appended)
            if self.on_appended:
                self.on_appended(appended)
            for a in appended:
                log.info("desk.event", type=a.event.type, subject=a.event.subject, seq=a.seq)
            return appended
        raise AssertionError("unreachable")

    def _remember(self, loaded: dict[str, Loaded], aggregates, appended: list[Appended]) -> None:
        """Fold what this command appended into the cache: each append succeeded against the
        expected sequence, so nothing came in between and the fold is exact."""
        states = {s: [lo.seq, lo.state] for s, lo in loaded.items()}
        for a in appended:
            subject = a.event.subject
            if subject in states:
                states[subject][1] = aggregates[subject][1](states[subject][1], a.event)
                states[subject][0] = a.seq
            else:
                self._cache.pop(subject, None)
        for subject, (seq, state) in states.items():
            current = self._cache.get(subject)
            if current is None or current.seq <= seq:
                self._cache[subject] = Loaded(seq, state)

    async def _append(self, events: list[Event], expected: dict[str, int]) -> list[Appended]:
        last = dict(expected)
        out: list[Appended] = []
        for event in events:
            subject = event.subject
            event = await self.vault.seal_event(event)  # free text sealed, key outside the log
            data = dump_event(event)  # serialised once: published, and parsed back for the answer
            try:
                ack = await bus.append(self.js, event, last.get(subject), data=data)
            except bus.ConcurrencyConflict as exc:
                if out:  # part of the command is stored: never retry it blindly
                    raise _PartialConflict(exc) from exc
                raise
            last[subject] = ack.seq
            out.append(Appended(ack.seq, event, data))
        return out

    # --- commands ---------------------------------------------------------------------------

    async def deskday_command(
        self,
        desk: Desk,
        day: date | None,
        cmd: Any,
        actor: Actor,
        *,
        retry: bool = True,
        version: int | None = None,
        correlation_id: UUID | None = None,
    ) -> list[Appended]:
        calendar = await self.calendar()
        day = day or self.today(calendar)
        subject = self.deskday_subject(desk.id, day)
        hours = calendar.hours(day, desk.id)

        def decide(loaded: dict[str, Loaded], now: datetime) -> list[Event]:
            ctx = d.Ctx(self.m, now, actor, desk, hours, correlation_id, self.on_edge)
            return d.decide_deskday(loaded[subject].state, cmd, ctx)

        return await self.execute(
            {subject: (Lazy(d.DeskDay.empty, (desk, day)), d.evolve_deskday)},
            decide,
            retry=retry,
            versions={subject: version} if version is not None else None,
        )

    async def call_next(
        self,
        desk: Desk,
        staff_id: str,
        actor: Actor,
        *,
        expected_ticket: int | None = None,
        version: int | None = None,
        correlation_id: UUID | None = None,
        pinned: bool = True,
    ) -> list[Appended]:
        """DESK-3. Two supporters racing for the same ticket: one gets it, the other a 409.
        With `pinned=False` ("call whoever is next") the loser is re-decided on fresh state and
        gets the following ticket instead.

        The ticket to call is pinned to what the caller's screen (`expected_ticket`, `version`) or,
        failing that, the queue at the time of the request showed as next. A conflict caused by
        something else (a ticket issued meanwhile) is retried; one caused by another call of that
        same ticket ends in a 409 (Refused "stale_queue" or ConcurrencyConflict)."""
        if not pinned:
            return await self.deskday_command(
                desk, None, d.CallNext(staff_id, new_id(), None), actor, retry=True, correlation_id=correlation_id
            )
        if expected_ticket is None and version is None:
            waiting = (await self.deskday(desk, self.today(await self.calendar()))).state.waiting()
            expected_ticket = waiting[0].no if waiting else None
        cmd = d.CallNext(staff_id, new_id(), expected_ticket)
        return await self.deskday_command(
            desk, None, cmd, actor, retry=version is None, version=version, correlation_id=correlation_id
        )

    async def walk_in(
        self, desk: Desk, staff_id: str, actor: Actor, *, may_take_over: bool, correlation_id: UUID | None = None
    ) -> list[Appended]:
        """A visitor at a desk where no one waits: issue, call and start in one step."""
        current = (await self.deskday(desk, self.today(await self.calendar()))).state
        if current.waiting():
            raise Refused("お待ちの方がいます。番号札を発行し、順番にお呼びしてください。", code="queue_not_empty")
        issued = await self.deskday_command(desk, None, d.IssueTicket(), actor, correlation_id=correlation_id)
        ticket = issued[0].event
        assert isinstance(ticket, ev.TicketIssued)  # IssueTicket's first event
        ticket_no = ticket.ticket_no
        called = await self.call_next(desk, staff_id, actor, expected_ticket=ticket_no, correlation_id=correlation_id)
        started = await self.start_visit(
            desk, ticket_no, staff_id, actor, may_take_over=may_take_over, correlation_id=correlation_id
        )
        return [*issued, *called, *started]

    async def start_visit(
        self,
        desk: Desk,
        ticket_no: int,
        staff_id: str,
        actor: Actor,
        *,
        may_take_over: bool,
        correlation_id: UUID | None = None,
    ) -> list[Appended]:
        calendar = await self.calendar()
        day = self.today(calendar)
        day_subject = self.deskday_subject(desk.id, day)
        current = (await self.deskday(desk, day)).state
        ticket = current.tickets.get(ticket_no)
        if ticket is None or ticket.visit_id is None:
            raise Refused(f"番号札 {ticket_no} は呼び出されていません。", code="not_called")
        visit_subject = self.visit_subject(ticket.visit_id)
        hours = calendar.hours(day, desk.id)

        def decide(loaded: dict[str, Loaded], now: datetime) -> list[Event]:
            if loaded[visit_subject].seq != 0:
                raise Refused(f"番号札 {ticket_no} の対応はすでに始まっています。", code="visit_exists")
            ctx = d.Ctx(self.m, now, actor, desk, hours, correlation_id, self.on_edge)
            return d.decide_start_visit(
                loaded[day_subject].state, d.StartVisit(ticket_no, staff_id, may_take_over), ctx
            )

        return await self.execute(
            {day_subject: (d.DeskDay.empty(desk, day), d.evolve_deskday), visit_subject: (None, d.evolve_visit)},
            decide,
            retry=True,
        )

    async def visit_command(
        self, visit_id: UUID, cmd: Any, actor: Actor, *, version: int | None = None, correlation_id: UUID | None = None
    ) -> list[Appended]:
        """Visit edits are not retried: a stale edit is a 409 (ARCHITECTURE rule 2)."""
        subject = self.visit_subject(visit_id)

        def decide(loaded: dict[str, Loaded], now: datetime) -> list[Event]:
            return d.decide_visit(
                loaded[subject].state,
                cmd,
                d.Ctx(self.m, now, actor, correlation_id=correlation_id, on_edge=self.on_edge),
            )

        return await self.execute(
            {subject: (None, d.evolve_visit)},
            decide,
            retry=False,
            versions={subject: version} if version is not None else None,
        )

    async def card_left_behind(
        self, visit: d.Visit, actor: Actor, *, correlation_id: UUID | None = None
    ) -> list[Appended]:
        """DESK-9: the urgent incident on the desk-day first, then the visit's record."""
        desk = self.m.desk(visit.desk)
        _, day = ev.parse_deskday_id(visit.deskday_id)
        day_subject = self.deskday_subject(desk.id, day)
        visit_subject = self.visit_subject(visit.id)

        def decide(loaded: dict[str, Loaded], now: datetime) -> list[Event]:
            current = loaded[visit_subject].state
            ctx = d.Ctx(self.m, now, actor, desk, None, correlation_id, self.on_edge)
            return d.decide_card_left_behind(loaded[day_subject].state, current, ctx)

        return await self.execute(
            {day_subject: (d.DeskDay.empty(desk, day), d.evolve_deskday), visit_subject: (None, d.evolve_visit)},
            decide,
            retry=True,
        )

    async def calendar_command(self, cmd: Any, actor: Actor, *, correlation_id: UUID | None = None) -> list[Appended]:
        subject = self.calendar_subject

        def decide(loaded: dict[str, Loaded], now: datetime) -> list[Event]:
            return d.decide_calendar(
                loaded[subject].state,
                cmd,
                d.Ctx(self.m, now, actor, correlation_id=correlation_id, on_edge=self.on_edge),
            )

        return await self.execute({subject: (d.CityCalendar(), d.evolve_calendar)}, decide, retry=True)

    # --- DESK-5 timer ----------------------------------------------------------------------

    async def staffing_sweep(self) -> list[Appended]:
        """Evaluate DESK-5 at every desk now (called by the periodic timer in the lifespan)."""
        out: list[Appended] = []
        for desk in self.m.desks:
            try:
                out += await self.deskday_command(desk, None, d.CheckStaffing(), SYSTEM)
            except Exception as exc:  # noqa: BLE001 - one desk's failure must not stop the others
                log.error("desk.staffing_check_failed", desk=desk.id, error=str(exc))
        return out

    # --- reads ---------------------------------------------------------------------------------

    async def status(self, desk: Desk, day: date | None = None) -> dict[str, Any]:
        calendar = await self.calendar()
        now = self.clock()
        day = day or calendar.local_date(now)
        await self.settled(self.deskday_subject(desk.id, day))
        loaded = await self.deskday(desk, day)
        out = d.desk_status(loaded.state, desk, calendar.hours(day, desk.id), self.m, now)
        # summaries and outcomes are stored sealed: shown decrypted, or 「削除済み」 once erased
        await self.vault.reveal_all(self.m.code, out.get("escalations", []), "summary", "outcome")
        out["version"] = loaded.seq
        out["edge_link"] = self.edge_link(desk.id)
        return out

    # --- desk edges on the laptops (EDGE.md) ------------------------------------------------------

    def note_edge(self, data: bytes) -> None:
        """A heartbeat of a desk's edge (core NATS `mg.edge.<m>.<desk>`); anything malformed is ignored."""
        try:
            beat = json.loads(data)
            desk, pending, every = str(beat["desk"]), int(beat["pending"]), float(beat.get("every", 2.0))
            self.m.desk(desk)
        except (ValueError, KeyError, TypeError):
            return
        self.edges[desk] = {
            "device": str(beat.get("device", ""))[:64],
            "pending": pending,
            "every": max(0.5, min(every, 60.0)),
            "seen_at": self.clock(),
            "seen_mono": time.monotonic(),
            "waiting": beat.get("waiting"),
        }

    def edge_link(self, desk_id: str) -> dict[str, Any] | None:
        """HQ's view of a desk's edge: online, or offline since its last heartbeat (with the queue HQ
        last received from it, which the status shows)."""
        seen = self.edges.get(desk_id)
        if seen is None:
            return None
        silent = time.monotonic() - seen["seen_mono"] > 3 * seen["every"] + 1.0
        since = seen["seen_at"].astimezone(TOKYO)
        return {
            "device": seen["device"],
            "online": not silent,
            "pending_at_last_contact": seen["pending"],
            "offline_since": since.isoformat() if silent else None,
            "label_ja": f"オフライン（{since:%H:%M} から）" if silent else "オンライン",
        }


class _PartialConflict(Exception):
    def __init__(self, conflict: bus.ConcurrencyConflict):
        super().__init__(str(conflict))
        self.conflict = conflict
