"""The desk service's command handling for one desk, over the laptop's journal (EDGE.md).

`EdgeDeskService` is the HQ `DeskService` with its two I/O points moved onto the laptop: `load`
folds the journal instead of reading the stream, `_append` commits to the journal instead of
JetStream. Deciding is unchanged (the same `domain` functions, with `on_edge`), so the desk's rules
hold online and offline alike; the link (`link.py`) carries the journal to HQ.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from madoguchi_desk import domain as d
from madoguchi_desk.edge.journal import Journal, LocalConflict
from madoguchi_desk.service import Appended, DeskService, Lazy, Loaded
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared.errors import DomainError, NotFound, Refused, Unavailable
from madoguchi_shared import bus
from madoguchi_shared.events import Actor, Event, Role
from madoguchi_shared.events import desk as ev
from madoguchi_shared.logging import get_logger
from madoguchi_shared.municipality import Desk, Municipality

if TYPE_CHECKING:
    from madoguchi_desk.edge.link import EdgeLink

log = get_logger(__name__)

# The client's command id (Idempotency-Key) of the request being handled: stored with its events.
COMMAND_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("edge_command_key", default=None)


class EdgeDeskService(DeskService):
    on_edge = True

    def __init__(
        self,
        municipality: Municipality,
        desk: Desk,
        device_id: str,
        journal: Journal,
        clock: Clock = utc_clock,
        on_appended: Callable[[list[Appended]], None] | None = None,
    ):
        super().__init__(None, None, municipality, clock, on_appended)  # type: ignore[arg-type]  # the link connects
        self.desk = desk
        self.device_id = device_id
        self.actor = Actor(id=device_id, role=Role.device)
        self.journal = journal
        self.link: EdgeLink | None = None  # set by the link
        self._adopted: set[str] = set()  # subjects looked up at HQ once
        self._own_visits: set[str] = set()  # visit subjects of tickets this edge called

    # --- one desk only -------------------------------------------------------------------------

    def deskday_subject(self, desk: str, day: date) -> str:
        if desk != self.desk.id:
            raise NotFound(f"この端末は窓口 {self.desk.id} 専用です（{desk} は本部の画面で操作してください）。")
        return super().deskday_subject(desk, day)

    async def calendar_command(self, cmd: Any, actor: Actor, *, correlation_id=None) -> list[Appended]:
        raise Refused(
            "市の指示（休止・延長など）は本部で登録してください。窓口の端末には接続時に届きます。", code="hq_only"
        )

    async def staffing_sweep(self) -> list[Appended]:
        """DESK-5 for this desk only: HQ's timer leaves a desk-day held by its edge alone."""
        try:
            return await self.deskday_command(self.desk, None, d.CheckStaffing(), self.actor)
        except DomainError:
            return []

    async def attach(self) -> list[Appended]:
        """Take today's desk-day (one writer per desk-day); nothing if already taken."""
        return await self.deskday_command(self.desk, None, d.AttachEdge(self.device_id), self.actor)

    def today_subject(self) -> str:
        return self.deskday_subject(self.desk.id, self.today())

    # --- the journal instead of the stream -------------------------------------------------------

    async def load(
        self, subject: str, initial: Any, evolve: Callable[[Any, Event], Any], *, fresh: bool = True
    ) -> Loaded:
        if self.link is not None and subject not in self._adopted and not self.journal.knows(subject):
            # e.g. a visit HQ started before the edge took the desk over; a visit this edge called is
            # its own and new, so the command path does not wait on the link for it
            if subject in self._own_visits:
                self._adopted.add(subject)
            elif self.link.online:
                await self.link.adopt(subject)
                self._adopted.add(subject)
        cached = self._cache.get(subject)
        seq, state = (cached.seq, cached.state) if cached else (0, Lazy.resolve(initial))
        for row in self.journal.rows(subject, after=seq):
            state = evolve(state, row.event())
            seq = row.seq
        loaded = Loaded(seq, state)
        self._cache[subject] = loaded
        self._cache.move_to_end(subject)
        while len(self._cache) > 2000:
            self._cache.popitem(last=False)
        return loaded

    def forget(self, subject: str) -> None:
        """Mirrored rows came in: fold the subject again from the journal next time."""
        self._cache.pop(subject, None)
        if subject == self.calendar_subject:
            self._calendar = None

    async def city_calendar(self) -> Loaded:
        return await self.load(self.calendar_subject, d.CityCalendar(), d.evolve_calendar)

    async def _append(self, events: list[Event], expected: dict[str, int]) -> list[Appended]:
        try:
            seqs = self.journal.append(list(events), expected, COMMAND_KEY.get())
        except LocalConflict as exc:
            raise bus.ConcurrencyConflict(exc.subject, exc.expected, f"(now at {exc.actual})") from None
        for event in events:
            if isinstance(event, ev.TicketCalled):
                self._own_visits.add(self.visit_subject(event.visit_id))
        if self.link is not None:
            self.link.decided()
        return [Appended(seq, event) for seq, event in zip(seqs, events, strict=True)]

    async def training_missing(self, staff_id: str) -> tuple[str, ...]:
        """ORG-4 from HQ when reachable (remembered); offline, what was last known of the person."""
        if self.link is not None and self.link.online:
            try:
                missing = await asyncio.wait_for(super().training_missing(staff_id), 3.0)
            except Exception as exc:  # noqa: BLE001 - the link dropped meanwhile: fall back to what is known
                log.warning("edge.training_unreadable", staff=staff_id, error=type(exc).__name__)
            else:
                self.journal.set_fact(f"training:{staff_id}", list(missing))
                return missing
        known = self.journal.fact(f"training:{staff_id}")
        if known is None:
            raise Unavailable(
                "本部に接続できないため研修の修了を確認できません。接続が戻ってから従事を開始してください。",
                code="offline_unknown_staff",
                part=None,
            )
        return tuple(known)

    # --- reads ---------------------------------------------------------------------------------

    async def status(self, desk: Desk, day: date | None = None) -> dict[str, Any]:
        calendar = await self.calendar()
        now = self.clock()
        day = day or calendar.local_date(now)
        loaded = await self.deskday(desk, day)
        out = d.desk_status(loaded.state, desk, calendar.hours(day, desk.id), self.m, now)
        if self.link is not None and self.link.online:
            try:  # sealed summaries shown decrypted when HQ's keys are reachable; plain ones as they are
                await asyncio.wait_for(
                    self.vault.reveal_all(self.m.code, out.get("escalations", []), "summary", "outcome"), 2.0
                )
            except Exception:  # noqa: BLE001 - the link dropped meanwhile
                pass
        out["version"] = loaded.seq
        out["edge_link"] = self.link.view() if self.link is not None else None
        return out
