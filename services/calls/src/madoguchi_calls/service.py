"""The calls service shell: load an aggregate, decide (domain.py), append with the expected
sequence, wait for the live view to see it. Also the periodic checks (seat coverage, overdue
callbacks, the phone store's reconciliation and sweep).

Every use case takes the municipality and the actor from the caller (the API's principal), so
one process serves any number of municipalities; time comes from an injectable clock.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from nats.aio.client import Client as NATS

from madoguchi_calls import categories as cat
from madoguchi_calls import domain as d
from madoguchi_calls import schedule
from madoguchi_calls.live import LineView, Views, local_day
from madoguchi_calls.phone_store import PhoneStore, normalize_phone
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared.errors import DomainError, Forbidden, Gone, Invalid, NotFound, Refused
from madoguchi_shared import bus, subjects, training
from madoguchi_shared.calendar import Calendar
from madoguchi_shared.events import SYSTEM, Actor, Event, new_id
from madoguchi_shared.sealed import TextVault
from madoguchi_shared.events import calls as ev
from madoguchi_shared.logging import get_logger
from madoguchi_shared.municipality import Municipality, MunicipalityNotFound, load_municipality
from madoguchi_shared.settings import Settings

log = get_logger(__name__)

DEFAULT_LINES = ("main",)  # one line unless configured otherwise (settings.extra["calls_lines"])
ORPHAN_GRACE = timedelta(minutes=10)  # a stored number whose task never got created
CACHE_SIZE = 5000  # aggregate folds kept per process (CallsService.load)


class PhoneGone(Gone):
    def __init__(self) -> None:
        super().__init__("この折り返しの電話番号は既に消去されています。")


@dataclass
class CheckReport:
    breaches: list[str] = field(default_factory=list)
    overdue: list[UUID] = field(default_factory=list)
    erased: list[UUID] = field(default_factory=list)
    orphans_destroyed: int = 0
    dead_rows_left: int = 0


class CallsService:
    def __init__(
        self,
        settings: Settings,
        nc: NATS,
        store: PhoneStore | None,
        *,
        clock: Clock = utc_clock,
        policy: schedule.CallbackPolicy | None = None,
    ):
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.vault = TextVault(self.js)
        self.store = store
        self.clock = clock
        self.policy = policy or schedule.CallbackPolicy()
        self.views = Views(nc)
        self.tree = cat.load_tree(settings.extra.get("calls_categories_file"))
        self.category_codes = cat.codes(self.tree)
        lines = settings.extra.get("calls_lines", "")
        self.lines = tuple(x.strip() for x in lines.split(",") if x.strip()) or DEFAULT_LINES
        self._cache: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    # --- configuration -----------------------------------------------------------------------

    def config(self, municipality: str) -> Municipality:
        return _load_config(municipality, str(self.settings.config_file or self.settings.municipality))

    def calendar(self, municipality: str) -> Calendar:
        return _phone_calendar(municipality, str(self.settings.config_file or self.settings.municipality))

    def check_line(self, line: str) -> str:
        if line not in self.lines:
            raise NotFound(f"電話回線「{line}」は登録されていません。", field="line")
        return line

    async def view(self, municipality: str) -> LineView:
        return await self.views.get(municipality)

    # --- plumbing ----------------------------------------------------------------------------

    def ctx(self, municipality: str, actor: Actor, correlation_id: UUID | None = None) -> d.Ctx:
        return d.Ctx(municipality=municipality, actor=actor, at=self.clock(), correlation_id=correlation_id)

    async def load(self, subject: str, evolve, *, fresh: bool = True) -> tuple[Any, int]:
        """The aggregate's state and last sequence. With fresh=False a fold this process cached is
        used as it is (no read): a command decided on it appends with its sequence as the
        expectation, so a stale one costs a conflict and a refresh, never a wrong write."""
        cached = self._cache.get(subject)
        if cached is not None and not fresh:
            return cached
        loaded = bus.fold(evolve, await bus.load(self.nc, subject), None)
        self._cache[subject] = loaded
        self._cache.move_to_end(subject)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return loaded

    async def append(
        self, municipality: str, events: Sequence[Event], expected: int | None, *, settle: bool = True
    ) -> list[int]:
        """Append, and (`settle`) wait until the live view has applied the events. Without it the
        command is answered on the acks alone: every read of the view catches up first (LineView.
        catch_up), so the caller still reads its own write."""
        if not events:
            return []
        # free text goes out sealed, its key outside the event log (madoguchi_shared.sealed)
        events = [await self.vault.seal_event(e) for e in events]
        view = await self.view(municipality)
        keys = view.appending(events)  # the view applies these objects, not their bytes parsed back
        try:
            seqs = await bus.append_all(self.js, events, expected)
            view.acked(keys, events, seqs)
            if settle:
                await view.wait_for(seqs[-1])
        except BaseException:
            view.forget(keys)
            raise
        if settle:
            view.forget(keys)  # (unsettled, the view takes each one out as it applies it)
        return seqs

    async def decide_and_append(self, subject: str, evolve, decide, cmd, ctx: d.Ctx, *, retries: int = 0):
        """Load, decide, append with the expected sequence; retry on a conflict `retries` times
        (system checks retry: their decision is re-made on the new state, so it stays once-only).

        The first try is decided on the fold this process cached, if any (e.g. the line-day that
        every incoming call is counted on, usually with nothing to append); a conflict or a refusal
        on it is decided again on the current state before it counts."""
        fresh = False
        attempt = 0
        while True:
            state, seq = await self.load(subject, evolve, fresh=fresh)
            try:
                events = decide(state, cmd, ctx)
            except DomainError:
                if fresh:
                    raise
                fresh = True
                continue
            if events:
                self._cache.pop(subject, None)  # folded again from the stream by the next command
            try:
                await self.append(ctx.municipality, events, seq)
                return state, events
            except bus.ConcurrencyConflict:
                if not fresh:
                    fresh = True
                    continue
                if attempt == retries:
                    raise
                attempt += 1

    @staticmethod
    def subject(municipality: str, aggregate: str, aggregate_id: str | UUID) -> str:
        return subjects.aggregate_subject("calls", municipality, aggregate, str(aggregate_id))

    def line_subject(self, municipality: str, line: str, day) -> str:
        return self.subject(municipality, "line", ev.line_day_id(line, day))

    # --- seats (CALL-1) ----------------------------------------------------------------------

    async def training_missing(self, municipality: str, staff_id: str) -> tuple[str, ...]:
        """ORG-4: what keeps the person from phone duty under the municipality's training plan, in
        Japanese (empty = cleared), read from their records on the admin stream."""
        stored = await bus.load(self.nc, subjects.aggregate_subject("admin", municipality, "staff", staff_id))
        return training.status(self.config(municipality).training, (s.event for s in stored)).missing_labels("phone")

    async def sign_in(
        self, municipality: str, actor: Actor, line: str, seat: str, cid: UUID | None = None
    ) -> list[Event]:
        self.check_line(line)
        missing = await self.training_missing(municipality, actor.id)
        if missing:
            raise Forbidden(f"研修が完了していないため電話対応に従事できません（未了: {'、'.join(missing)}）。")
        ctx = self.ctx(municipality, actor, cid)
        day = local_day(ctx.at)
        _, events = await self.decide_and_append(
            self.line_subject(municipality, line, day),
            d.evolve_line,
            d.decide_line,
            d.SignIn(line=line, day=day, seat=seat, operator=actor.id),
            ctx,
        )
        return events

    async def sign_out(
        self,
        municipality: str,
        actor: Actor,
        line: str,
        seat: str,
        reason: str = "end_of_shift",
        cid: UUID | None = None,
        operator: str | None = None,
    ) -> list[Event]:
        self.check_line(line)
        ctx = self.ctx(municipality, actor, cid)
        day = local_day(ctx.at)
        view = await self.view(municipality)
        who = operator or actor.id
        cmd = d.SignOut(
            line=line,
            day=day,
            seat=seat,
            operator=who,
            within_hours=self.calendar(municipality).is_open(ctx.at),
            reason=reason,  # type: ignore[arg-type]
            on_call=who in view.busy,
        )
        _, events = await self.decide_and_append(
            self.line_subject(municipality, line, day), d.evolve_line, d.decide_line, cmd, ctx
        )
        return events

    # --- calls (CALL-2 … CALL-5) -------------------------------------------------------------

    async def receive_call(
        self, municipality: str, actor: Actor, line: str, cid: UUID | None = None
    ) -> tuple[UUID, list[Event]]:
        """A call comes in: record it, route it (ring / overflow / out of hours), count it."""
        self.check_line(line)
        view = await self.view(municipality)
        await view.catch_up()
        ctx = self.ctx(municipality, actor, cid)
        cal = self.calendar(municipality)
        day = local_day(ctx.at)
        within = cal.is_open(ctx.at)
        call_id = new_id()
        cmd = d.ReceiveCall(
            call_id=call_id,
            line=line,
            within_hours=within,
            seats_signed_in=len(view.seats(line, day)),
            seats_free=view.free_seats(line, day),
            next_opening=None if within else cal.next_open_at(ctx.at),
        )
        events = d.decide_call(None, cmd, ctx)
        seqs = await self.append(municipality, events, 0, settle=False)
        await self._count(municipality, line, day, call_id, events[0], seqs[-1])
        return call_id, events

    async def _count(self, municipality: str, line: str, day, call_id: UUID, received: Event, stored: int) -> None:
        """CALL-1: raise the day's volume thresholds (once each: the line-day's concurrency check).
        The count is the live view's once it has applied the call (stored at stream sequence
        `stored`). Before that wait: the view's count now plus every message between its position
        and `stored` (were each one a call of this line-day) is the most the count can be then; when
        even that raises nothing, the call is not waited for (the common case: far below the
        thresholds, or past them all)."""
        view = await self.view(municipality)
        config = self.config(municipality)
        cmd = d.CountCalls(
            line=line,
            day=day,
            count=view.day_stats(line, day).received + max(0, stored - view.position),
            call_id=call_id,
            expected_max=config.phone.expected_max_calls_per_day,
            percents=_percents(config.capacity_thresholds),
        )
        subject = self.line_subject(municipality, line, day)
        cached, _ = await self.load(subject, d.evolve_line, fresh=False)
        if not d.counts_to_raise(cached, cmd):
            return  # what decide_and_append would decide on this fold: nothing
        await view.wait_for(stored)
        cmd = replace(cmd, count=view.day_stats(line, day).received)
        if not d.counts_to_raise(cached, cmd):
            return  # (the same, on the count itself)
        ctx = d.Ctx(municipality, SYSTEM, self.clock(), received.correlation_id or received.event_id)
        await self.decide_and_append(subject, d.evolve_line, d.decide_line, cmd, ctx, retries=5)

    async def get_call(self, municipality: str, call_id: UUID) -> tuple[d.Call | None, list[Event]]:
        stored = await bus.load(self.nc, self.subject(municipality, "call", call_id))
        state, _ = bus.fold(d.evolve_call, stored, None)
        return state, [item.event for item in stored]

    async def _call_command(self, municipality: str, actor: Actor, call_id: UUID, cmd, cid: UUID | None) -> list[Event]:
        _, events = await self.decide_and_append(
            self.subject(municipality, "call", call_id),
            d.evolve_call,
            d.decide_call,
            cmd,
            self.ctx(municipality, actor, cid),
        )
        return events

    async def answer(
        self, municipality: str, actor: Actor, call_id: UUID, seat: str, cid: UUID | None = None
    ) -> list[Event]:
        view = await self.view(municipality)
        await view.catch_up()
        call, _ = await self.get_call(municipality, call_id)
        line = call.line if call else self.lines[0]
        day = local_day(self.clock())
        cmd = d.AnswerCall(
            seat=seat,
            operator=actor.id,
            operator_seated=view.seats(line, day).get(seat) == actor.id,
            operator_busy=actor.id in view.busy,
        )
        return await self._call_command(municipality, actor, call_id, cmd, cid)

    async def mark_missed(self, municipality: str, actor: Actor, call_id: UUID, cid: UUID | None = None) -> list[Event]:
        return await self._call_command(municipality, actor, call_id, d.MarkMissed(), cid)

    async def record_offer_choice(
        self, municipality: str, actor: Actor, call_id: UUID, choice: ev.OverflowOption, cid: UUID | None = None
    ) -> list[Event]:
        return await self._call_command(municipality, actor, call_id, d.RecordOfferChoice(choice), cid)

    async def link_repeat_call(
        self, municipality: str, actor: Actor, call_id: UUID, reference: str, cid: UUID | None = None
    ) -> list[Event]:
        return await self._call_command(municipality, actor, call_id, d.LinkRepeatCall(reference), cid)

    async def mark_abandoned(
        self, municipality: str, actor: Actor, call_id: UUID, cid: UUID | None = None
    ) -> list[Event]:
        return await self._call_command(municipality, actor, call_id, d.MarkAbandoned(), cid)

    async def close_call(
        self,
        municipality: str,
        actor: Actor,
        call_id: UUID,
        *,
        by_manager: bool = False,
        cid: UUID | None = None,
        **fields: Any,
    ) -> list[Event]:
        view = await self.view(municipality)
        refs = tuple(fields.pop("faq_used", ()) or ())
        unknown = tuple(r.faq_id for r in refs if not (e := view.faq.get(r.faq_id)) or r.revision > e.revision)
        wards = frozenset(w.id for w in self.config(municipality).wards)
        cmd = d.CloseCall(
            operator=actor.id,
            known_categories=self.category_codes,
            known_wards=wards,
            faq_used=refs,
            unknown_faq=unknown,
            by_manager=by_manager,
            **fields,
        )
        return await self._call_command(municipality, actor, call_id, cmd, cid)

    # --- callbacks (CALL-3, CALL-4) ----------------------------------------------------------

    async def request_callback(
        self,
        municipality: str,
        actor: Actor,
        call_id: UUID,
        phone: str,
        *,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        needs_city: bool | None = None,
        topic: str | None = None,
        cid: UUID | None = None,
    ) -> list[Event]:
        """Open the call's callback task; the number goes to the phone store, never to an event."""
        normalize_phone(phone)  # refuse a malformed number before anything is stored
        if topic is not None and topic not in self.category_codes:
            raise Invalid(f"問い合わせ分類が登録されていません: {topic}", field="topic")
        call_subject = self.subject(municipality, "call", call_id)
        cb_subject = self.subject(municipality, "callback", call_id)
        call, call_seq = await self.load(call_subject, d.evolve_call)
        callback, _ = await self.load(cb_subject, d.evolve_callback)
        ctx = self.ctx(municipality, actor, cid)
        due = schedule.first_due(self.calendar(municipality), self.policy, ctx.at, window_start, window_end)
        cmd = d.RequestCallback(
            callback_id=call_id,
            due_at=due,
            max_attempts=self.policy.max_attempts,
            window_start=window_start,
            window_end=window_end,
            needs_city=needs_city,
            topic=topic,
        )
        events = d.decide_request_callback(call, callback, cmd, ctx)
        assert self.store is not None
        await self.store.put(municipality, call_id, phone)
        try:
            call_events = [e for e in events if e.aggregate == "call"]
            if call_events:
                await self.append(municipality, call_events, call_seq)
            await self.append(municipality, [e for e in events if e.aggregate == "callback"], 0)
        except BaseException:
            await self.store.destroy(call_id)  # nothing stored for a task that does not exist
            raise
        return events

    async def get_callback(self, municipality: str, callback_id: UUID) -> tuple[d.Callback | None, list[Event]]:
        stored = await bus.load(self.nc, self.subject(municipality, "callback", callback_id))
        state, _ = bus.fold(d.evolve_callback, stored, None)
        return state, [item.event for item in stored]

    async def _callback_command(
        self, municipality: str, actor: Actor, callback_id: UUID, cmd, cid: UUID | None = None, retries: int = 0
    ) -> tuple[d.Callback | None, list[Event]]:
        subject = self.subject(municipality, "callback", callback_id)
        state, events = await self.decide_and_append(
            subject, d.evolve_callback, d.decide_callback, cmd, self.ctx(municipality, actor, cid), retries=retries
        )
        if any(isinstance(e, ev.CallbackCompleted | ev.CallbackFailed | ev.CallbackCancelled) for e in events):
            events = [*events, *await self.erase_contact(municipality, callback_id, events[-1])]
        return state, events

    async def erase_contact(self, municipality: str, callback_id: UUID, cause: Event | None = None) -> list[Event]:
        """The task ended: destroy its number (key overwritten and deleted, ciphertext deleted,
        tables vacuumed) and record that it is gone."""
        assert self.store is not None
        had = await self.store.destroy(callback_id)
        ctx = d.Ctx(municipality, SYSTEM, self.clock(), (cause.correlation_id or cause.event_id) if cause else None)
        _, events = await self.decide_and_append(
            self.subject(municipality, "callback", callback_id),
            d.evolve_callback,
            d.decide_callback,
            d.EraseContact(had_contact=had),
            ctx,
            retries=5,
        )
        return events

    async def escalate_to_city(
        self,
        municipality: str,
        actor: Actor,
        callback_id: UUID,
        question: str,
        channel: str = "phone",
        cid: UUID | None = None,
    ) -> list[Event]:
        _, events = await self._callback_command(
            municipality,
            actor,
            callback_id,
            d.EscalateToCity(question=question, channel=channel),  # type: ignore[arg-type]
            cid,
        )
        return events

    async def record_city_answer(
        self, municipality: str, actor: Actor, callback_id: UUID, answer: str, cid: UUID | None = None
    ) -> list[Event]:
        due = schedule.after_city_answer_due(self.calendar(municipality), self.policy, self.clock())
        _, events = await self._callback_command(
            municipality, actor, callback_id, d.RecordCityAnswer(answer=answer, due_at=due), cid
        )
        return events

    async def read_number(self, municipality: str, actor: Actor, callback_id: UUID, cid: UUID | None = None) -> str:
        """The number, for the staff member about to call back; the read itself is an event."""
        assert self.store is not None
        state, _ = await self.get_callback(municipality, callback_id)
        if state is not None and state.ended:
            raise PhoneGone() if state.erased else Refused("この折り返しは既に終了しています。")
        await self._callback_command(municipality, actor, callback_id, d.ReadNumber(), cid)
        number = await self.store.get(municipality, callback_id)
        if number is None:
            raise PhoneGone()
        return number

    async def record_attempt(
        self,
        municipality: str,
        actor: Actor,
        callback_id: UUID,
        *,
        reached: bool,
        failure: str | None = None,
        cid: UUID | None = None,
        **fields: Any,
    ) -> list[Event]:
        if fields.get("categories"):
            unknown = [c for c in fields["categories"] if c not in self.category_codes]
            if unknown:
                raise Invalid(f"問い合わせ分類が登録されていません: {', '.join(unknown)}", field="categories")
        now = self.clock()
        next_due = None if reached else schedule.next_attempt_due(self.calendar(municipality), self.policy, now)
        cmd = d.RecordAttempt(reached=reached, failure=failure, next_due_at=next_due, **fields)  # type: ignore[arg-type]
        _, events = await self._callback_command(municipality, actor, callback_id, cmd, cid)
        return events

    async def cancel_callback(
        self, municipality: str, actor: Actor, callback_id: UUID, reason: str, cid: UUID | None = None
    ) -> list[Event]:
        _, events = await self._callback_command(municipality, actor, callback_id, d.CancelCallback(reason=reason), cid)  # type: ignore[arg-type]
        return events

    # --- FAQ ---------------------------------------------------------------------------------

    async def create_faq(
        self,
        municipality: str,
        actor: Actor,
        *,
        question: str,
        answer: str,
        categories: Sequence[str] = (),
        keywords: Sequence[str] = (),
        cid: UUID | None = None,
    ) -> list[Event]:
        faq_id = new_id()
        cmd = d.CreateFaq(
            faq_id=faq_id,
            question=question,
            answer=answer,
            categories=tuple(categories),
            keywords=tuple(keywords),
            known_categories=self.category_codes,
        )
        _, events = await self.decide_and_append(
            self.subject(municipality, "faq", faq_id),
            d.evolve_faq,
            d.decide_faq,
            cmd,
            self.ctx(municipality, actor, cid),
        )
        return events

    async def revise_faq(
        self,
        municipality: str,
        actor: Actor,
        faq_id: UUID,
        *,
        question: str,
        answer: str,
        categories: Sequence[str] = (),
        keywords: Sequence[str] = (),
        expected_revision: int | None = None,
        cid: UUID | None = None,
    ) -> list[Event]:
        cmd = d.ReviseFaq(
            question=question,
            answer=answer,
            categories=tuple(categories),
            keywords=tuple(keywords),
            expected_revision=expected_revision,
            known_categories=self.category_codes,
        )
        _, events = await self.decide_and_append(
            self.subject(municipality, "faq", faq_id),
            d.evolve_faq,
            d.decide_faq,
            cmd,
            self.ctx(municipality, actor, cid),
        )
        return events

    async def retire_faq(
        self,
        municipality: str,
        actor: Actor,
        faq_id: UUID,
        *,
        reason: str = "outdated",
        expected_revision: int | None = None,
        cid: UUID | None = None,
    ) -> list[Event]:
        cmd = d.RetireFaq(reason=reason, expected_revision=expected_revision)  # type: ignore[arg-type]
        _, events = await self.decide_and_append(
            self.subject(municipality, "faq", faq_id),
            d.evolve_faq,
            d.decide_faq,
            cmd,
            self.ctx(municipality, actor, cid),
        )
        return events

    # --- periodic checks ---------------------------------------------------------------------

    async def run_checks(self, municipality: str, now: datetime | None = None) -> CheckReport:
        """Seat coverage (CALL-1), overdue callbacks (CALL-4), the phone store kept clean."""
        now = now or self.clock()
        report = CheckReport()
        view = await self.view(municipality)
        await view.catch_up()
        cal = self.calendar(municipality)
        day = local_day(now)
        hours = cal.hours(day)
        for line in self.lines:
            state = view.line_day(line, day)
            if not hours.is_open_at(now) or (state and (state.seats or state.breach_since)):
                continue
            opens = next(s for s, e in hours.intervals if s <= now < e)
            ctx = d.Ctx(municipality, SYSTEM, now)
            _, events = await self.decide_and_append(
                self.line_subject(municipality, line, day),
                d.evolve_line,
                d.decide_line,
                d.CheckCoverage(line=line, day=day, within_hours=True, opens_at=opens),
                ctx,
                retries=5,
            )
            if events:
                report.breaches.append(line)
        for cb in view.open_callbacks():
            if cb.status == "open" and now > cb.due_at and cb.overdue_for != cb.due_at:
                _, events = await self.decide_and_append(
                    self.subject(municipality, "callback", cb.callback_id),
                    d.evolve_callback,
                    d.decide_callback,
                    d.CheckOverdue(),
                    d.Ctx(municipality, SYSTEM, now),
                    retries=5,
                )
                if events:
                    report.overdue.append(cb.callback_id)
        for cb in list(view.callbacks.values()):
            if cb.ended and not cb.erased:  # ended, but the process stopped before erasing
                await self.erase_contact(municipality, cb.callback_id)
                report.erased.append(cb.callback_id)
        if self.store is not None:
            report.orphans_destroyed = await self._destroy_orphans(municipality, view)
            if self.store.dirty:
                report.dead_rows_left = await self.store.sweep()
        return report

    async def _destroy_orphans(self, municipality: str, view: LineView) -> int:
        """Numbers stored for a task that was never created (or is over) are destroyed."""
        count = 0
        for callback_id, owner, age in await self.store.entries():  # type: ignore[union-attr]
            if owner is None:  # a key without a ciphertext opens nothing: just remove it
                await self.store.destroy(callback_id, sweep=False)  # type: ignore[union-attr]
                count += 1
                continue
            if owner != municipality or callback_id in view.callbacks:
                continue
            if age < ORPHAN_GRACE:
                continue  # a request in flight
            state, _ = await self.get_callback(municipality, callback_id)
            if state is not None and not state.ended:
                continue
            await self.store.destroy(callback_id, sweep=False)  # type: ignore[union-attr]
            count += 1
        return count

    async def checks_forever(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for view in self.views.all():
                try:
                    await self.run_checks(view.municipality)
                except Exception:  # one municipality's trouble must not stop the others
                    log.exception("checks.failed", municipality=view.municipality)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


@lru_cache(maxsize=1024)
def _load_config(municipality: str, template: str) -> Municipality:
    """The municipality's configuration; a municipality without a file of its own runs on the
    deployment's default configuration under its own code."""
    try:
        return load_municipality(municipality)
    except MunicipalityNotFound:
        return load_municipality(template, code=municipality)


@lru_cache(maxsize=64)
def _percents(thresholds: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(round(t * 100) for t in thresholds)


@lru_cache(maxsize=1024)
def _phone_calendar(municipality: str, template: str) -> Calendar:
    return _load_config(municipality, template).phone_calendar()
