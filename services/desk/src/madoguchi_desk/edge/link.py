"""The edge's link to HQ: drain the journal, pull what HQ decided, merge by the written rules (EDGE.md).

- drain: pending rows in local order, each published with `Nats-Msg-Id = event_id` and the subject's
  expected last sequence at HQ; a row is marked sent only on its acknowledgement (a duplicate's
  acknowledgement names the first copy's sequence, so it counts as sent too);
- conflict: HQ holds events of the subject the edge has not seen: they are read and mirrored into
  the journal (an event of our own found there, sent before a lost acknowledgement, is marked sent:
  idempotent beyond the duplicate window), the merge rules run, the drain goes on;
- pull: the city calendar and today's desk-day are read after what the edge knows, on every change
  HQ announces (a core subscription) and at least every few seconds;
- heartbeat: `mg.edge.<m>.<desk>` (core NATS, not stored) with the pending count, so HQ can show the
  desk offline since the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from madoguchi_desk import domain as d
from madoguchi_desk.edge.journal import Row
from madoguchi_desk.edge.service import EdgeDeskService
from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import dump_event
from madoguchi_shared.events import desk as ev
from madoguchi_shared.logging import get_logger
from madoguchi_shared.sealed import TextVault
from madoguchi_shared.subjects import aggregate_subject

log = get_logger(__name__)

PUBLISH_TIMEOUT = 2.0
PULL_EVERY = 3.0


def heartbeat_subject(municipality: str, desk: str) -> str:
    return subjects.edge_subject(municipality, desk)


class EdgeLink:
    def __init__(
        self,
        service: EdgeDeskService,
        url: str,
        *,
        connect_options: dict[str, Any] | None = None,
        heartbeat_seconds: float = 2.0,
    ):
        self.service = service
        self.journal = service.journal
        self.url = url
        self.connect_options = connect_options or {}
        self.heartbeat_seconds = heartbeat_seconds
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sync_task: asyncio.Task | None = None
        self._sub = None
        self._failing = False
        self._stopping = False
        self._last_pull = 0.0
        self._last_beat = 0.0
        # the outage timeline: wall-clock (monotonic) instants and counts, plus the desk's clock for people
        self.offline_since: datetime | None = None
        self.outages: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self.sent = 0
        service.link = self

    # --- state ---------------------------------------------------------------------------------

    def _hq(self) -> tuple[NATS, JetStreamContext]:
        """The connection to HQ: what talks to HQ runs online only, after _connect set it."""
        if self.nc is None or self.js is None:
            raise ConnectionError("the edge has not connected to HQ")
        return self.nc, self.js

    @property
    def online(self) -> bool:
        return self.nc is not None and self.nc.is_connected and not self._failing

    def decided(self) -> None:
        """A command was recorded in the journal (counted for the outage timeline while offline)."""
        if self._current is not None and self._current.get("online_at") is None:
            self._current["commands"] += 1
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def view(self) -> dict[str, Any]:
        """What the desk screen shows about the link (「オフライン：N件 未送信」 → 「送信済み」)."""
        pending = self.journal.depth()
        online = self.online
        if not online:
            label = f"オフライン：{pending}件 未送信"
        elif pending:
            label = f"送信中：{pending}件"
        else:
            label = "送信済み"
        since = self.offline_since
        return {
            "device": self.service.device_id,
            "online": online,
            "pending": pending,
            "label_ja": label,
            "offline_since": since.isoformat() if since and not online else None,
            "offline_since_hm": since.astimezone(TOKYO).strftime("%H:%M") if since and not online else None,
            "outages": self.outages[-5:],
        }

    def _went_offline(self, why: str) -> None:
        if self._current is not None and self._current.get("online_at") is None:
            return
        self.offline_since = self.service.clock()
        self._current = {
            "offline_at": time.monotonic(),
            "offline_since": self.offline_since.isoformat(),
            "pending_at_cut": self.journal.depth(),
            "commands": 0,
            "online_at": None,
        }
        log.warning("edge.offline", desk=self.service.desk.id, why=why, pending=self._current["pending_at_cut"])

    def _came_online(self) -> None:
        cur = self._current
        if cur is None or cur.get("online_at") is not None:
            return
        cur["online_at"] = time.monotonic()
        self._last_pull = 0.0  # what HQ decided meanwhile is read (and merged) before anything is sent
        cur["queued"] = self.journal.depth()
        cur["offline_seconds"] = round(cur["online_at"] - cur["offline_at"], 3)
        log.info("edge.online", desk=self.service.desk.id, queued=cur["queued"], offline_seconds=cur["offline_seconds"])

    def _drained(self) -> None:
        cur = self._current
        if cur is None or cur.get("online_at") is None or cur.get("drained_at") is not None:
            return
        cur["drained_at"] = time.monotonic()
        cur["seconds_to_converge"] = round(cur["drained_at"] - cur["online_at"], 3)
        self.outages.append({k: v for k, v in cur.items() if k not in ("offline_at", "online_at", "drained_at")})
        self.offline_since = None
        self._current = None
        log.info("edge.drained", desk=self.service.desk.id, **self.outages[-1])

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="desk-edge-link")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 2.0)

    async def _connect(self) -> bool:
        async def disconnected() -> None:
            if self._stopping:
                return
            self._went_offline("disconnected")
            if self._sync_task is not None and not self._sync_task.done():
                self._sync_task.cancel()  # a publish in flight would wait out its timeout for an ack that cannot come

        async def reconnected() -> None:
            self._failing = False
            self.wake()

        async def quiet(exc: Exception) -> None:
            if "permission" in str(exc).lower():  # a credential without this desk: say so, it will not heal
                log.error("edge.permission_violation", error=str(exc)[:300])

        try:
            self.nc = await asyncio.wait_for(
                nats.connect(
                    [u.strip() for u in self.url.split(",") if u.strip()],
                    name=f"madoguchi-desk-edge-{self.service.desk.id}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=quiet,
                    allow_reconnect=True,
                    **self.connect_options,
                ),
                5.0,
            )
        except Exception as exc:  # noqa: BLE001 - unreachable at start: work offline, try again
            self._went_offline(type(exc).__name__)
            await self.attach_if_needed()
            return False
        self.js = self.nc.jetstream()
        self.service.nc, self.service.js = self.nc, self.js
        self.service.vault = TextVault(self.js)

        m = self.service.m.code
        ours = aggregate_subject("desk", m, "deskday", f"{self.service.desk.id}_")

        async def hq_changed(msg) -> None:
            # a subject token cannot be matched by prefix: every desk-day is heard, ours are kept
            if not (msg.subject.startswith(ours) or msg.subject.endswith(".calendar.city")):
                return
            if self.journal.holds((msg.headers or {}).get("Nats-Msg-Id", "")):
                return  # our own append coming back
            self._last_pull = 0.0
            self.wake()

        await self.nc.subscribe(aggregate_subject("desk", m, "calendar", "city"), cb=hq_changed)
        await self.nc.subscribe(subjects.pattern("desk", m, "deskday"), cb=hq_changed)
        log.info("edge.connected", desk=self.service.desk.id)
        return True

    async def _run(self) -> None:
        while True:
            if self.nc is None and not await self._connect():
                await asyncio.sleep(1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)
            self._wake.clear()
            if self.nc is None or not self.nc.is_connected:  # (None: _connect set it)
                self._went_offline("disconnected")
                continue
            self._sync_task = asyncio.create_task(self.sync(), name="desk-edge-sync")
            try:
                await self._sync_task
                self._failing = False
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    self._sync_task.cancel()
                    raise
                # the link dropped mid-sync: the rows stay pending and are sent again (idempotent)
            except Exception as exc:  # noqa: BLE001 - a dropped link mid-sync: the rows stay, tried again
                if not self._failing:
                    log.warning("edge.sync_failed", error_type=type(exc).__name__, error=str(exc)[:200])
                self._failing = True
                self._went_offline(type(exc).__name__)
                await asyncio.sleep(0.5)

    # --- sync ------------------------------------------------------------------------------------

    async def sync(self) -> None:
        self._came_online()
        now = time.monotonic()
        if now - self._last_pull >= PULL_EVERY:
            await self.pull(self.service.calendar_subject)
            await self.pull(self.service.today_subject())
            self._last_pull = now
        await self.attach_if_needed()
        await self.drain()
        if self.journal.depth() == 0:
            self._drained()
        if now - self._last_beat >= self.heartbeat_seconds:
            await self.heartbeat()
            self._last_beat = now

    async def attach_if_needed(self) -> None:
        """Hold today's desk-day (also after midnight, and when started offline)."""
        if (await self.service.deskday(self.service.desk, self.service.today())).state.edge != self.service.device_id:
            await self.service.attach()

    async def heartbeat(self) -> None:
        status = await self.service.deskday(self.service.desk, self.service.today())
        beat = {
            "device": self.service.device_id,
            "desk": self.service.desk.id,
            "pending": self.journal.depth(),
            "at": self.service.clock().isoformat(),
            "every": self.heartbeat_seconds,
            "waiting": len(status.state.waiting()),
        }
        nc, _ = self._hq()
        await nc.publish(heartbeat_subject(self.service.m.code, self.service.desk.id), json.dumps(beat).encode())

    async def adopt(self, subject: str) -> None:
        """A subject the journal does not hold yet: mirror what HQ has of it (online only; a visit
        of another desk is left alone)."""
        if not self.online:
            return
        try:
            stored = await asyncio.wait_for(bus.load(self._hq()[0], subject), 3.0)
        except Exception:  # noqa: BLE001 - the link dropped: the subject stays unknown for now
            return
        if stored and ".visit." in subject and stored[0].event.desk != self.service.desk.id:
            return
        await self._mirror(subject, stored)
        self.service.forget(subject)

    async def pull(self, subject: str) -> None:
        stored = await asyncio.wait_for(bus.load(self._hq()[0], subject, after=self.journal.hq_last(subject)), 5.0)
        await self._mirror(subject, stored)

    async def _mirror(self, subject: str, stored: list[bus.Stored]) -> None:
        if not stored:
            return
        new, confirmed = self.journal.mirror(subject, [(s.seq, dump_event(s.event), s.event) for s in stored])
        if new:
            self.service.forget(subject)
            log.info("edge.mirrored", subject=subject, events=len(new), ours_confirmed=confirmed)
            await self._merge(new)

    async def drain(self) -> None:
        while self.online:
            rows = self.journal.pending(500)
            if not rows:
                return
            for row in rows:
                if not await self._send(row):
                    break  # the subject moved at HQ: mirrored and merged; read the pending rows again

    async def _send(self, row: Row) -> bool:
        event = row.event()
        sealed = await self.service.vault.seal_event(event)
        data = row.data if sealed is event else dump_event(sealed)
        headers = {"Nats-Msg-Id": row.event_id, "Mg-Type": row.type}
        if ".calendar." not in row.subject:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(self.journal.hq_last(row.subject))
        _, js = self._hq()
        for attempt in range(bus.RETRY_ATTEMPTS):
            try:
                ack = await js.publish(row.subject, data, headers=headers, timeout=PUBLISH_TIMEOUT)
                break
            except APIError as exc:
                if exc.err_code in bus.CONFLICT_CODES:
                    log.info(
                        "edge.conflict",
                        subject=row.subject,
                        expected=headers.get("Nats-Expected-Last-Subject-Sequence"),
                    )
                    await self.pull(row.subject)
                    return False
                if exc.err_code not in bus.RETRY_CODES or attempt == bus.RETRY_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(min(0.01 * 2**attempt, 0.25))
        self.journal.mark_sent(row.seq, ack.seq, None if data is row.data else data)
        self.sent += 1
        return True

    # --- merge rules (EDGE.md) ----------------------------------------------------------------

    async def _merge(self, new: list[Row]) -> None:
        for row in new:
            event = row.event()
            if self.journal.merged(row.event_id):
                continue
            learned_at = self.service.clock()
            match event:
                case ev.OpeningSuspended() | ev.OpeningDelayed():
                    if event.desks and self.service.desk.id not in event.desks:
                        pass
                    else:
                        end = event.end if isinstance(event, ev.OpeningSuspended) else event.until
                        until = min(learned_at, end) if end is not None else learned_at
                        await self._mark(
                            "during_suspension",
                            event.start,
                            learned_at,
                            lambda r, at, s=event.start, u=until: s <= at < u,
                            event.instruction_id,
                        )
                case ev.DayEnded() if event.desk == self.service.desk.id:
                    # the confirmation did not see what the desk had not sent yet: those records are marked
                    await self._mark(
                        "after_day_end",
                        event.occurred_at,
                        learned_at,
                        lambda r, at: r.hq_seq is None,
                        None,
                        day_subject=row.subject,
                    )
            self.journal.note_merged(row.event_id, learned_at.isoformat())

    async def _mark(
        self,
        rule: ev.EdgeMarkRule,
        decided_at: datetime,
        learned_at: datetime,
        within,
        instruction_id: str | None,
        day_subject: str | None = None,
    ) -> None:
        """Keep the edge's records that fall under HQ's decision, and mark them on the desk-day."""
        day_subject = day_subject or self.service.today_subject()
        day_rows = self.journal.edge_rows([day_subject])
        visit_subjects = [
            aggregate_subject("desk", self.service.m.code, "visit", str(e.visit_id))
            for e in (r.event() for r in day_rows if r.type == "desk.ticket_called")
            if isinstance(e, ev.TicketCalled)
        ]
        tickets: list[int] = []
        visits: list = []
        for r in day_rows:
            e = r.event()
            if isinstance(e, ev.TicketIssued) and within(r, e.occurred_at):
                tickets.append(e.ticket_no)
        for r in self.journal.edge_rows(visit_subjects):
            e = r.event()
            if isinstance(e, ev.VisitStarted) and within(r, e.occurred_at):
                visits.append(e.visit_id)
        if not tickets and not visits:
            return
        _, day = ev.parse_deskday_id(day_subject.rsplit(".", 1)[1])
        cmd = d.MarkEdgeRecords(
            self.service.device_id, rule, decided_at, learned_at, tuple(tickets), tuple(visits), instruction_id
        )
        await self.service.deskday_command(self.service.desk, day, cmd, self.service.actor)
        log.warning(
            "edge.records_marked", rule=rule, tickets=len(tickets), visits=len(visits), instruction=instruction_id
        )
