"""The agent: one asyncio process per desk PC that writes every observation to its outbox.

Shape: monitors (card reader, processes, USB, files, desk visits, heartbeat) turn what they see
into device events through `Agent.emit`, which commits the event to the local journal and wakes
the sender; the sender drains the journal to JetStream whenever there is a link. The link is
optional at every moment: the agent starts, observes and records without it (its policy comes
from the local cache), and catches up when the pocket WiFi is back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from madoguchi_agent import domain, processes, policy as policy_mod
from madoguchi_agent.cardreader import CardReaderWatch, ReaderChange
from madoguchi_agent.config import AgentConfig
from madoguchi_agent.files import FileWatch, quarantine, scan_file, walk
from madoguchi_agent.outbox import LEVELS, WARNING_AT, Outbox, OutboxFull, drain_once, level_for, run_sender
from madoguchi_agent.usb import UsbWatch
from madoguchi_shared import subjects
from madoguchi_shared.events import Actor, Event, Role, dump_event, new_id, parse_event
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events import device as ev
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

_E = TypeVar("_E", bound=Event)
_A = TypeVar("_A", bound=ev.AgentEvent)

try:
    AGENT_VERSION = version("madoguchi-device-agent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    AGENT_VERSION = "0.0.0"

# Refused (and counted in the alarm) once the journal reaches its cap: events whose loss does not
# hide a violation. Violations, card alerts, policy and lifecycle events are always written.
SHEDDABLE = frozenset(
    {
        "device.heartbeat",
        "device.synthetic_load",
        "device.usb_device_attached",
        "device.usb_device_removed",
        "device.reader_attached",
        "device.reader_detached",
        "device.process_started",
        "device.file_activity",
    }
)
VISIT_TYPES = ("desk.visit_started", "desk.visit_ended")


def utcnow() -> datetime:
    return datetime.now(UTC)


def errno_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__


class Agent:
    def __init__(self, config: AgentConfig, *, load_rate: float = 0.0, load_count: int = 0):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.outbox = Outbox(config.outbox_path, config.outbox_max_bytes, config.outbox_reserve_bytes)
        self.loaded = policy_mod.load_cache(config.policy_cache_path) or policy_mod.default_policy()
        self.actor = Actor(id=config.device_id, role=Role.device)
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.desk_state = domain.DeskState()
        self.load_rate = load_rate
        self.load_count = load_count
        self.alarm = "ok"
        self.shed = 0
        self.lost = 0  # events that must never be lost and could not be written (counted in shed too)
        self._lost_reported = 0
        self.drained = 0
        self._started = time.monotonic()
        self._stop_reason = "requested"
        self._tasks: list[asyncio.Task] = []
        self._seen_files: dict[str, tuple[int, int]] = {}
        self._last_shed_alarm = 0.0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._policy_kick = asyncio.Event()
        self.files: FileWatch | None = None
        self.scope = processes.Scope(tuple(config.process_users), tuple(config.process_root_pids))
        self.process_source = "none"
        self._process_recheck = asyncio.Event()
        self._short: set[asyncio.Task] = set()
        self._files_rescan = asyncio.Event()
        self._gaps: set[tuple[str, str]] = set()  # open monitoring gaps (monitor, reason)
        self._connect_failures = 0
        # scans, hashing, quarantine moves: two worker threads are plenty and keep memory small
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="agent-io")

    @property
    def policy(self) -> policy_mod.Policy:
        return self.loaded.policy

    # -- writing events ----------------------------------------------------------------------

    def build(self, cls: type[_A], **fields: Any) -> _A:
        c = self.config
        return cls(
            municipality=c.municipality, ward=c.ward, desk=c.desk, device_id=c.device_id, actor=self.actor, **fields
        )

    def emit(self, cls: type[_A], **fields: Any) -> _A | None:
        """Build an event of this device and commit it to the journal (None when shed)."""
        return self.write(self.build(cls, **fields))

    def write(self, event: _E) -> _E | None:
        written = self.write_many([event])
        return event if written else None

    def write_many(self, events: list[Event]) -> int:
        """Commit events; low-value ones (SHEDDABLE) are refused and counted at the cap and while
        the disk is full; the others are written into the journal's reserve on a full disk, and
        only lost (counted, CRITICAL in the log) when even that is spent."""
        _, size = self.outbox.depth()
        if self.outbox.disk_full or level_for(size, self.config.outbox_max_bytes) == "shedding":
            kept = [e for e in events if e.type not in SHEDDABLE]
            self.shed += len(events) - len(kept)
            events = kept
        written = 0
        if events:
            try:
                written = self._put(events)
            except sqlite3.Error as exc:  # journal damaged, read-only...: counted, "critical", logged
                self.shed += len(events)
                self.lost += sum(1 for e in events if e.type not in SHEDDABLE)
                log.critical("outbox.write_failed", error=type(exc).__name__, events=len(events))
            self._wake.set()
        self._check_alarm()
        return written

    def _put(self, events: list[Event]) -> int:
        try:
            self.outbox.put_many(events, may_use_reserve=False)
            return len(events)
        except OutboxFull:
            pass
        # the disk is full: what must never be lost goes into the reserve, the rest is counted
        keep = [e for e in events if e.type not in SHEDDABLE]
        self.shed += len(events) - len(keep)
        if not keep:
            return 0
        try:
            self.outbox.put_many(keep, may_use_reserve=True)
            return len(keep)
        except OutboxFull:
            self.shed += len(keep)
            self.lost += len(keep)
            log.critical("outbox.lost_on_full_disk", events=len(keep), types=sorted({e.type for e in keep}))
            return 0

    def _check_alarm(self) -> None:
        """Raise OutboxSizeAlarm when the level rises (a full disk is "critical" at once), when an
        event that must never be lost could not be written (at once, "critical"), when refused
        events are pending (at most once a minute while still refusing) and when the journal has
        drained and has its reserve again (`cleared`). An alarm the journal cannot take goes
        straight to the bus when there is a link."""
        depth, size = self.outbox.depth()
        cap = self.config.outbox_max_bytes
        full = self.outbox.disk_full
        lost = self.lost > self._lost_reported
        level = level_for(size, cap)
        if (full or lost) and LEVELS.index(level) < LEVELS.index("critical"):
            level = "critical"
        now = time.monotonic()
        raise_it = LEVELS.index(level) > LEVELS.index(self.alarm) or lost
        refusing = level == "shedding" or full
        report_shed = self.shed > 0 and (not refusing or now - self._last_shed_alarm >= 60)
        cleared = self.alarm != "ok" and size < cap * WARNING_AT / 2 and not full and not lost
        if not (raise_it or report_shed or cleared):
            return
        name = "cleared" if cleared else level if level != "ok" else "warning"
        alarm = self.build(
            ev.OutboxSizeAlarm, level=name, depth=depth, bytes=size, cap_bytes=cap, shed=self.shed, disk_full=full
        )
        (log.critical if name in ("critical", "shedding") else log.warning)(
            "outbox.size_alarm", level=name, depth=depth, bytes=size, shed=self.shed, disk_full=full, lost=self.lost
        )
        try:
            self.outbox.put(alarm)  # never shed: into the reserve if need be
        except (sqlite3.Error, OutboxFull):
            if not self._say_directly(alarm):
                return  # no journal, no link: the count stays pending for the next alarm
        self.shed = 0
        self._lost_reported = self.lost
        self._last_shed_alarm = now
        self.alarm = "ok" if cleared else level

    def _say_directly(self, alarm: Event) -> bool:
        """Publish an alarm the journal cannot take straight to JetStream (same Nats-Msg-Id)."""
        js = self._js()
        if js is None:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False

        async def send() -> None:
            try:
                await js.publish(
                    alarm.subject,
                    dump_event(alarm),
                    headers={"Nats-Msg-Id": str(alarm.event_id), "Mg-Type": alarm.type},
                )
                log.critical("outbox.alarm_sent_directly", level=getattr(alarm, "level", None))
            except Exception as exc:  # noqa: BLE001 - nothing else can carry it: the log says so
                log.critical("outbox.alarm_not_sent", error=type(exc).__name__)

        task = loop.create_task(send())
        self._short.add(task)
        task.add_done_callback(self._short.discard)
        return True

    def check_disk(self) -> None:
        """While the disk is full: write the reserve again once there is room (then `cleared`)."""
        if self.outbox.disk_full and self.outbox.restore_reserve():
            log.warning("outbox.disk_space_back")
            self._check_alarm()

    # -- the bus -----------------------------------------------------------------------------

    def _js(self) -> JetStreamContext | None:
        link = self._link()
        return link[1] if link is not None else None

    def _link(self) -> tuple[NATS, JetStreamContext] | None:
        """The connection and its JetStream context while connected."""
        if self.nc is not None and self.nc.is_connected and self.js is not None:
            return self.nc, self.js
        return None

    async def _connect_loop(self) -> None:
        delay = 0.5
        options = dict(
            name=f"agent-{self.config.device_id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            allow_reconnect=True,
            error_cb=self._nats_error,
            reconnected_cb=self._nats_reconnected,
            disconnected_cb=self._nats_disconnected,
        )
        while not self._stop.is_set():
            try:
                # read each time: a credential or certificate replaced on disk is taken at the next try.
                # The first connection is tried once per round here (nats-py's own loop for it goes
                # quiet after a failed TLS handshake: no second error, no connection); reconnecting
                # after a link loss stays nats-py's (the option is read when the link drops).
                nc = await nats.connect(
                    self.config.nats_url, **{**options, "allow_reconnect": False}, **self.config.nats_options()
                )
                nc.options["allow_reconnect"] = True
                self.nc = nc
                self.js = self.nc.jetstream()
                log.info("agent.connected")
                self._connect_failures = 0
                self._close_gap("link", "connect_failed")
                self._wake.set()
                self._policy_kick.set()
                if self.config.monitors.desk_visits:
                    self._spawn(self._desk_visits_loop(), "desk_visits")
                return
            except Exception as exc:  # noqa: BLE001 - any failure to connect is reported as a gap and retried
                # WARNING with the reason: a refused credential must not look like a quiet agent
                self._connect_failed(_connect_reason(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, 10.0)

    async def _nats_error(self, exc: Exception) -> None:
        # connection refused, authorization errors (a refused credential), permissions violations
        # arrive here: WARNING with the reason; while there is no link, a failure to connect
        reason = _connect_reason(exc)
        if self.nc is None or not self.nc.is_connected:
            self._connect_failed(reason)
        else:
            log.warning("nats.error", reason=reason)

    def _connect_failed(self, reason: str) -> None:
        self._connect_failures += 1
        log.warning("agent.connect_failed", reason=reason, attempt=self._connect_failures, url=self.config.nats_url)
        if self._connect_failures == 2:  # one failure at boot may be the network coming up
            self._gap("link", "connect_failed", reason)

    async def _nats_reconnected(self) -> None:
        log.info("agent.reconnected")
        self._connect_failures = 0
        self._close_gap("link", "connect_failed")
        self._wake.set()
        self._policy_kick.set()

    async def _nats_disconnected(self) -> None:
        log.info("agent.disconnected")

    # -- policy ------------------------------------------------------------------------------

    async def _policy_loop(self) -> None:
        c = self.config
        watching = None
        while not self._stop.is_set():
            link = self._link()
            if link is not None:
                nc, js = link
                try:
                    if watching is None:
                        # a put on either key wakes us at once; the poll is the fallback
                        watching = [
                            await nc.subscribe(f"$KV.{c.policy_bucket}.{key}", cb=self._on_policy_put)
                            for key in (c.policy_key, c.desk_policy_key)
                        ]
                    fetched = await policy_mod.fetch(js, c.policy_bucket, c.policy_key, c.desk_policy_key)
                    if fetched is not None and (fetched.version, fetched.sha256) != (
                        self.loaded.version,
                        self.loaded.sha256,
                    ):
                        self._apply_policy(fetched)
                except ValueError as exc:  # a malformed policy: keep the one we enforce
                    log.error("policy.invalid", error=str(exc)[:200])
                except Exception as exc:  # noqa: BLE001 - a failed fetch keeps the policy in force
                    log.warning("policy.fetch_failed", reason=_connect_reason(exc))
            self._policy_kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._policy_kick.wait(), timeout=c.policy_poll_s)

    async def _on_policy_put(self, msg) -> None:
        self._policy_kick.set()

    def _apply_policy(self, fetched: policy_mod.LoadedPolicy) -> None:
        before = self.loaded
        self.loaded = fetched
        policy_mod.save_cache(self.config.policy_cache_path, fetched)
        self.emit(ev.PolicyChanged, from_version=before.version, policy_version=fetched.version, sha256=fetched.sha256)
        log.info("policy.changed", from_version=before.version, version=fetched.version)
        self._process_recheck.set()  # running programs are checked against the new policy
        self._files_rescan.set()  # new folders are watched and every watched folder scanned

    # -- card reader and the desk's visits (DESK-9) --------------------------------------------

    def on_reader_change(self, change: ReaderChange) -> None:
        now = utcnow()
        reader = ev.redact(change.reader)
        if change.kind == "reader_attached":
            self.emit(ev.ReaderAttached, reader=reader)
        elif change.kind == "reader_detached":
            self.emit(ev.ReaderDetached, reader=reader)
        elif change.kind == "card_inserted":
            self._fold(domain.CardSeen(reader, change.atr, now))
            slot = self.desk_state.card(reader)
            self.emit(
                ev.CardInserted,
                reader=reader,
                atr=change.atr,
                visit_id=slot.visit_id if slot else None,
                occurred_at=now,
            )
        elif change.kind == "card_removed":
            slot = self.desk_state.card(reader)
            dwell = (now - slot.inserted_at).total_seconds() if slot else None
            self._fold(domain.CardGone(reader, now))
            self.emit(ev.CardRemoved, reader=reader, atr=change.atr, dwell_s=dwell, occurred_at=now)

    def _fold(self, fact) -> None:
        """evolve, decide, record the alerts, evolve with them (domain.py)."""
        self.desk_state = domain.evolve(self.desk_state, fact)
        for alert in domain.decide(self.desk_state, fact, self.policy.card_left_s):
            event = self.emit(
                ev.CardLeftInReader,
                reader=alert.reader,
                atr=alert.atr,
                inserted_at=alert.inserted_at,
                reason=alert.reason,
                visit_id=alert.visit_id,
                seconds_in_reader=alert.seconds,
            )
            log.warning("card.left_in_reader", reason=alert.reason, reader=alert.reader)
            if event is not None:
                log.warning("card.left_in_reader.message", message=event.describe_ja())
            self.desk_state = domain.evolve(self.desk_state, alert)

    async def _card_loop(self) -> None:
        watch = CardReaderWatch(asyncio.get_running_loop(), self.on_reader_change)
        try:
            while not self._stop.is_set():
                try:
                    watch.check()
                except Exception as exc:  # noqa: BLE001 - a reader check failure must not end the watch loop
                    log.warning("cardreader.check_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=5.0)
        finally:
            watch.stop()

    async def _card_timer_loop(self) -> None:
        while not self._stop.is_set():
            self._fold(domain.Tick(utcnow()))
            step = max(0.2, min(5.0, self.policy.card_left_s / 4))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=step)

    async def _desk_visits_loop(self) -> None:
        """Follow the desk's visits: an ordered consumer replaying the last hours, then live."""
        c = self.config
        subject = subjects.pattern("desk", c.municipality, "visit")
        while not self._stop.is_set():
            try:
                start = utcnow() - timedelta(hours=c.desk_lookback_h)
                if self.js is None:
                    raise ConnectionError("not connected yet")
                sub = await self.js.subscribe(
                    subject,
                    cb=self._on_desk_event,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.BY_START_TIME,
                    config=api.ConsumerConfig(opt_start_time=start),
                )
                try:
                    await self._stop.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                return
            except Exception as exc:  # noqa: BLE001 - no link, or the desk stream does not exist yet, or not permitted
                log.warning("desk_visits.subscribe_failed", reason=_connect_reason(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=5.0)

    async def _on_desk_event(self, msg) -> None:
        if (msg.headers or {}).get("Mg-Type", VISIT_TYPES[0]) not in VISIT_TYPES:
            return  # details, opinions, PIN failures...: not needed here, not parsed
        try:
            event = parse_event(msg.data)
        except ValueError:
            return
        if event.desk != self.config.desk:
            return
        if isinstance(event, dk.VisitStarted):
            self._fold(domain.VisitStarted(str(event.visit_id), event.occurred_at))
        elif isinstance(event, dk.VisitEnded):
            self._fold(domain.VisitEnded(str(event.visit_id), event.occurred_at))

    # -- processes, USB, files -----------------------------------------------------------------

    async def _process_loop(self) -> None:
        """Every program start of the desk session, from the kernel (or a poll, loudly)."""
        loop = asyncio.get_running_loop()
        scope = self.scope
        rescan = asyncio.Event()
        listener = None
        if self.config.process_source == "netlink":

            def on_exec(pid: int) -> None:  # the listener's thread: read /proc now, while it runs
                status = processes.read_status(pid)
                if status is None or not scope.contains(pid, status[2], status[1]):
                    return
                info = processes.read_proc(pid, status)
                if info is not None:
                    loop.call_soon_threadsafe(self._on_program, info, "netlink")

            def on_overflow() -> None:  # the listener's thread: rescan /proc on the loop
                loop.call_soon_threadsafe(rescan.set)

            listener = processes.ExecListener(on_exec, on_overflow)
            try:
                listener.start()
            except OSError as exc:
                listener = None
                self._gap("processes", "no_kernel_notices", errno_name(exc))
        else:
            self._gap("processes", "no_kernel_notices", "configured")
        self.process_source = "netlink" if listener else "poll"
        known: dict[int, tuple[int, str | None]] = {}
        first = True
        try:
            while not self._stop.is_set():
                recheck = self._process_recheck.is_set()
                self._process_recheck.clear()
                try:
                    if first or recheck or rescan.is_set() or listener is None:
                        rescan.clear()
                        now = await self._in_thread(processes.running, scope)
                        alive = {}
                        for info in now:
                            alive[info.pid] = (info.start, info.exe)
                            if known.get(info.pid) != (info.start, info.exe):
                                self._on_program(info, "scan")  # new to us: started before, or missed
                            elif recheck:
                                self._on_program(info, "scan", recheck=True)  # a new policy applies
                        known = alive
                        first = False
                except Exception:
                    log.exception("process.scan_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._process_recheck.wait(), timeout=self.policy.process_scan_s)
        finally:
            if listener is not None:
                await self._in_thread(listener.stop)

    def _on_program(self, info: processes.ProcInfo, source: str, recheck: bool = False) -> None:
        self._spawn_short(self._examine(info, source, recheck))

    async def _examine(self, info: processes.ProcInfo, source: str, recheck: bool) -> None:
        policy = self.policy
        decision = processes.decide(policy, info)
        digest, parent = await self._in_thread(self._hash_and_parent, info)
        common = dict(
            pid=info.pid,
            name=ev.redact(info.name) or "?",
            path=ev.safe_executable_path(info.exe) if info.exe else None,
            sha256=digest,
            parent_name=ev.redact(parent[0]) if parent[0] else None,
            parent_path=ev.safe_executable_path(parent[1]) if parent[1] else None,
            os_uid=info.uid,
            script=ev.safe_executable_path(decision.script) if decision.script else None,
        )
        if not recheck:
            self.emit(
                ev.ProcessStarted,
                parent_pid=info.ppid or None,
                inline_code=decision.inline_code,
                allowed=decision.allowed,
                source=source,
                **common,
            )
        if decision.allowed:
            return
        enforced, error = False, None
        if policy.process_enforce:
            enforced, error = await self._in_thread(processes.terminate_pid, info.pid, info.start)
        log.warning("process.violation", pid=info.pid, reason=decision.reason, enforced=enforced, source=source)
        self.emit(
            ev.ProcessViolation,
            enforce=policy.process_enforce,
            enforced=enforced,
            error=error,
            reason=decision.reason,
            source=source,
            **{k: v for k, v in common.items()},
        )

    @staticmethod
    def _hash_and_parent(info: processes.ProcInfo):
        digest = processes.file_sha256(info.exe, f"/proc/{info.pid}/exe") if info.exe else None
        return digest, processes.parent_of(info)

    def _spawn_short(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._short.add(task)
        task.add_done_callback(self._short_done)

    def _short_done(self, task: asyncio.Task) -> None:
        self._short.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent.task_failed", task="examine", error=repr(task.exception()))

    async def _usb_loop(self) -> None:
        watch = UsbWatch(self.config.sysfs_usb_root)
        while not self._stop.is_set():
            try:
                for ch in await self._in_thread(watch.step, self.policy):
                    d = ch.device
                    common = dict(
                        port=d.port,
                        vendor_id=d.vendor_id,
                        product_id=d.product_id,
                        device_class=d.device_class,
                        interface_classes=d.interface_classes,
                        manufacturer=ev.redact(d.manufacturer) if d.manufacturer else None,
                        product=ev.redact(d.product) if d.product else None,
                        serial=ev.redact(d.serial) if d.serial else None,
                    )
                    if ch.kind == "attached":
                        self.emit(
                            ev.UsbDeviceAttached, present_at_start=ch.present_at_start, allowed=ch.allowed, **common
                        )
                    elif ch.kind == "removed":
                        self.emit(ev.UsbDeviceRemoved, **common)
                    else:
                        self.emit(
                            ev.UsbViolation,
                            kind=ch.violation,
                            block_attempted=ch.block_attempted,
                            blocked=ch.blocked,
                            error=ch.error,
                            reauthorized=ch.reauthorized,
                            **common,
                        )
            except Exception:
                log.exception("usb.scan_failed")
            await self._pause(self.policy.usb_scan_s)

    async def _files_loop(self) -> None:
        assert self.files is not None
        while not self._stop.is_set():
            ready = await self.files.quiet_paths()
            for kind, src, dest in self.files.take_immediate():
                self._file_activity(kind, src, dest)
            for path, action in ready:
                try:
                    self._file_activity(action, path, None)
                    await self._check_file(path)
                except Exception:
                    log.exception("files.check_failed")

    def _file_activity(self, action: str, path: str, dest: str | None) -> None:
        if not self.policy.file_activity or self.files is None:
            return
        found = self.files.root_of(path) if action != "deleted" else self._root_of_gone(path)
        to = self.files.root_of(dest) if dest else None
        if found is None and to is None:
            return
        size = None
        with contextlib.suppress(OSError):
            size = os.stat(dest or path).st_size if action != "deleted" else None
        if found is None:  # moved in from outside the watched folders: a new file here
            assert dest is not None and to is not None
            self.emit(
                ev.FileActivity,
                root=to[1].label,
                path=ev.safe_relative_path(os.path.realpath(dest), to[0]),
                action="created",
                size_bytes=size,
            )
            return
        self.emit(
            ev.FileActivity,
            root=found[1].label,
            path=ev.safe_relative_path(self._real(path), found[0]),
            action=action,
            dest_root=to[1].label if to else None,
            dest_path=ev.safe_relative_path(os.path.realpath(dest), to[0]) if to and dest else None,
            size_bytes=size,
        )

    @staticmethod
    def _real(path: str) -> str:
        parent = os.path.realpath(os.path.dirname(path))
        return os.path.join(parent, os.path.basename(path))

    def _root_of_gone(self, path: str):
        return self.files.root_of(os.path.dirname(path) or "/") if self.files else None

    async def _check_file(self, path: str, force: bool = False) -> None:
        files = self.files
        if files is None:  # (set before the first file event)
            return
        found = files.root_of(path)
        if found is None:
            return
        root, folder = found
        try:
            st = os.stat(path)
        except OSError:
            return
        if not force and self._seen_files.get(path) == (st.st_mtime_ns, st.st_size):
            return
        self._seen_files[path] = (st.st_mtime_ns, st.st_size)
        if len(self._seen_files) > 100_000:
            self._seen_files.clear()
        policy = self.policy
        result = await self._in_thread(scan_file, folder, Path(path), policy.max_scan_bytes, policy.max_archive_bytes)
        rel = ev.safe_relative_path(os.path.realpath(path), root)  # noqa: ASYNC240 - resolves a path just stat-ed, no I/O wait
        if result.not_scanned is not None:
            ns = result.not_scanned
            self.emit(
                ev.FileNotScanned,
                root=folder.label,
                path=rel,
                size_bytes=ns.size,
                scanned_bytes=ns.scanned_bytes,
                reason=ns.reason,
            )
            log.warning("files.not_scanned", root=folder.label, reason=ns.reason, size=ns.size)
        hit = result.hit
        if hit is None:
            return
        event_id = new_id()
        suffix = Path(path).suffix.lower()
        name = f"{event_id}{suffix}" if ev._SUFFIX.match(suffix) else str(event_id)
        moved, error = (False, None)
        if policy.quarantine:
            files.ours.add(path)
            moved, error = await self._in_thread(quarantine, Path(path), self.config.quarantine_dir, name)
            if not moved:
                files.ours.discard(path)
        event = self.build(
            ev.PersonalDataFileFound,
            event_id=event_id,
            root=folder.label,
            path=rel,
            kinds=hit.kinds,
            findings=hit.findings,
            size_bytes=hit.size,
            quarantine=policy.quarantine,
            quarantined=moved,
            quarantine_name=name if moved else None,
            error=error,
            in_name=hit.in_name,
            in_archive=hit.in_archive,
        )
        self.write(event)
        log.warning("files.personal_data", root=folder.label, kinds=list(hit.kinds), quarantined=moved)

    async def _scan_roots(self, roots: list[str]) -> None:
        """The scan at start and after a policy change: every file of the given watched roots."""
        for root in roots:
            for path in await self._in_thread(walk, root):
                if self._stop.is_set():
                    return
                try:
                    await self._check_file(path)
                except Exception:
                    log.exception("files.check_failed")

    async def _files_rescan_loop(self) -> None:
        """Watch the folders of the policy and of the desk users now (a login, a policy change, a
        mounted stick); scan what is new to the watch, and everything after a policy change."""
        assert self.files is not None
        first = True
        while not self._stop.is_set():
            policy_changed = self._files_rescan.is_set() and not first
            self._files_rescan.clear()
            added = self.files.apply(self.policy, self.scope.homes)
            if self.policy.scan_at_start:
                roots = list(self.files.roots()) if first or policy_changed else [r for r, _ in added]
                if not first:
                    self._seen_files.clear() if policy_changed else None
                await self._scan_roots(roots)
            first = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._files_rescan.wait(), timeout=10.0)

    async def _sessions_loop(self) -> None:
        """Logon, logoff, lock, unlock from logind (sessions.py); a gap while logind cannot be reached."""
        from madoguchi_agent.sessions import SessionWatch

        loop = asyncio.get_running_loop()

        def on_change(change) -> None:
            loop.call_soon_threadsafe(self._on_session, change)

        while not self._stop.is_set():
            watch = SessionWatch(on_change, self.config.dbus_address)
            try:
                await self._in_thread(watch.start)
            except Exception as exc:  # noqa: BLE001 - any failure to reach logind is a gap, retried
                self._gap("sessions", "no_logind", _connect_reason(exc))
                await self._pause(30.0)
                continue
            self._close_gap("sessions", "no_logind")
            try:
                while not self._stop.is_set() and watch._thread is not None and watch._thread.is_alive():
                    await self._pause(1.0)
            finally:
                watch.stop()  # at most the watch thread's 0.5 s receive timeout

    async def _printing_loop(self) -> None:
        """Print jobs from CUPS (printing.py); a gap while the scheduler cannot be asked."""
        from madoguchi_agent.printing import PrintWatch

        watch = PrintWatch(self.config.cups_url)
        while not self._stop.is_set():
            try:
                for job in await self._in_thread(watch.step):
                    self.emit(
                        ev.PrintJob,
                        job_id=job.job_id,
                        printer=ev.redact(job.printer) or "?",
                        state=job.state,
                        pages=job.pages,
                        size_bytes=job.size_bytes,
                    )
                self._close_gap("printing", "no_cups")
            except Exception as exc:  # noqa: BLE001 - any failure to reach CUPS is a gap, retried
                self._gap("printing", "no_cups", _connect_reason(exc))
            await self._pause(self.config.print_poll_s)

    def _on_session(self, change) -> None:
        self.emit(
            ev.SessionChanged,
            action=change.action,
            session=change.session,
            os_uid=change.uid,
            seat=change.seat,
            remote=change.remote,
        )
        log.info("session.changed", action=change.action, uid=change.uid)
        if change.action in ("logon", "logoff"):  # the desk users may have changed: look now
            before, uids = self.scope.homes, self.scope.uids
            self.check_gaps()
            self._desk_users_changed(before, uids)

    def _desk_users_changed(self, homes_before, uids_before) -> None:
        if self.files is not None and self.scope.homes != homes_before:
            self._files_rescan.set()  # a desk user logged in: watch (and scan) their folders
        if self.scope.uids != uids_before:
            self._process_recheck.set()  # their programs already running are found and checked

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the agent stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    # -- gaps in the monitoring: loud, never silent ------------------------------------------------

    def _gap(self, monitor: str, reason: str, detail: str | None = None) -> None:
        if (monitor, reason) in self._gaps:
            return
        self._gaps.add((monitor, reason))
        log.warning("monitoring.gap", monitor=monitor, reason=reason, detail=detail)
        self.emit(ev.MonitoringGap, monitor=monitor, reason=reason, detail=ev.redact(detail) if detail else None)

    def _close_gap(self, monitor: str, reason: str) -> None:
        if (monitor, reason) not in self._gaps:
            return
        self._gaps.discard((monitor, reason))
        log.info("monitoring.gap_closed", monitor=monitor, reason=reason)
        self.emit(ev.MonitoringGap, monitor=monitor, reason=reason, closed=True)

    def _set_gap(self, is_open: bool, monitor: str, reason: str, detail: str | None = None) -> None:
        if is_open:
            self._gap(monitor, reason, detail)
        else:
            self._close_gap(monitor, reason)

    def check_gaps(self) -> None:
        """What is not monitored right now: no desk user, no USB sysfs, no watched folder."""
        c = self.config
        self.scope.refresh()
        if c.monitors.processes:
            self._set_gap(
                self.scope.empty,
                "processes",
                "no_desk_user",
                "no process_users/process_root_pids and nobody logged in"
                if not c.process_users
                else "configured accounts unknown",
            )
        if c.monitors.usb:
            self._set_gap(not c.sysfs_usb_root.is_dir(), "usb", "no_sysfs", "no USB device tree in sysfs")
        if c.monitors.files and self.files is not None:
            self._set_gap(not self.files.roots(), "files", "no_watched_folder", "no watched folder exists")

    async def _gaps_loop(self) -> None:
        while not self._stop.is_set():
            try:
                before, uids = self.scope.homes, self.scope.uids
                self.check_gaps()
                self._desk_users_changed(before, uids)
            except Exception:
                log.exception("monitoring.check_failed")
            await self._pause(max(1.0, self.policy.process_scan_s))

    # -- heartbeat and synthetic load --------------------------------------------------------------

    def heartbeat(self) -> Event | None:
        depth, size = self.outbox.depth()
        return self.emit(
            ev.Heartbeat,
            agent_version=AGENT_VERSION,
            policy_version=self.loaded.version,
            outbox_depth=depth + 1,
            outbox_bytes=size,
            link_up=self._js() is not None,
            uptime_s=int(time.monotonic() - self._started),
            card_present=bool(self.desk_state.cards),
        )

    async def _heartbeat_loop(self) -> None:
        from madoguchi_agent.heartbeat import run_heartbeat

        await run_heartbeat(self, self._stop)

    async def _load_loop(self) -> None:
        """Synthetic events at a rate (0 = as fast as the journal takes them), for bench and tests."""
        run_id = f"load-{int(time.time())}"
        seq, start = 0, time.monotonic()
        while not self._stop.is_set() and (self.load_count == 0 or seq < self.load_count):
            if self.load_rate > 0:
                due = int((time.monotonic() - start) * self.load_rate)
                n = max(0, due - seq)
            else:
                n = 500
            if self.load_count:
                n = min(n, self.load_count - seq)
            if n:
                self.write_many([self.build(ev.SyntheticLoad, run_id=run_id, seq=seq + i) for i in range(n)])
                seq += n
            await asyncio.sleep(0.02 if self.load_rate > 0 else 0)
        log.info("load.done", events=seq)

    # -- running ----------------------------------------------------------------------------------

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("agent.task_failed", task=task.get_name(), error=repr(task.exception()))

    def request_stop(self, reason: str = "requested") -> None:
        self._stop_reason = reason
        self._stop.set()

    def _on_drained(self, n: int) -> None:
        self.drained += n
        self.check_disk()
        self._check_alarm()

    async def run(self, install_signals: bool = True) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop, "signal")

        marker, clean = c.running_marker, c.data_dir / "agent.clean"
        previous = "unclean" if marker.exists() else "clean" if clean.exists() else "first"
        marker.write_text(str(os.getpid()))
        clean.unlink(missing_ok=True)
        self.emit(
            ev.AgentStarted,
            agent_version=AGENT_VERSION,
            policy_version=self.loaded.version,
            previous_run=previous,
            outbox_depth=self.outbox.depth()[0],
        )
        self.emit(
            ev.PolicyApplied, policy_version=self.loaded.version, sha256=self.loaded.sha256, source=self.loaded.source
        )
        log.info("agent.started", device=c.device_id, previous_run=previous, policy_version=self.loaded.version)

        self._spawn(self._connect_loop(), "connect")
        self._spawn(
            run_sender(
                self._js, self.outbox, self._wake, self._stop, c.outbox_batch, c.outbox_ack_timeout_s, self._on_drained
            ),
            "sender",
        )
        self._spawn(self._policy_loop(), "policy")
        self._spawn(self._heartbeat_loop(), "heartbeat")
        if c.monitors.card:
            self._spawn(self._card_loop(), "card")
            self._spawn(self._card_timer_loop(), "card_timer")
        if c.monitors.processes:
            self._spawn(self._process_loop(), "processes")
        if c.monitors.usb:
            self._spawn(self._usb_loop(), "usb")
        if c.monitors.files:
            self.files = FileWatch(loop, c.quarantine_dir)
            self.files.apply(self.policy, self.scope.homes)
            self._spawn(self._files_loop(), "files")
            self._spawn(self._files_rescan_loop(), "files_rescan")
        if c.monitors.sessions:
            self._spawn(self._sessions_loop(), "sessions")
        if c.monitors.printing:
            self._spawn(self._printing_loop(), "printing")
        self.check_gaps()  # loud at once: what is not monitored
        self._spawn(self._gaps_loop(), "gaps")
        if self.load_rate or self.load_count:
            self._spawn(self._load_loop(), "load")

        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
            for sig in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

    async def _shutdown(self) -> None:
        for task in [*self._tasks, *self._short]:
            task.cancel()
        await asyncio.gather(*self._short, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.files is not None:
            self.files.stop()
        self.emit(ev.AgentStopped, reason=self._stop_reason, uptime_s=int(time.monotonic() - self._started))
        # a last drain, bounded: what does not go now waits in the journal for the next start
        deadline = time.monotonic() + 3.0
        while (js := self._js()) is not None and self.outbox.depth()[0] and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                _, failed = await drain_once(js, self.outbox, self.config.outbox_batch, 2.0)
                if failed:
                    break
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.outbox.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.config.running_marker.unlink(missing_ok=True)
        (self.config.data_dir / "agent.clean").touch()
        log.info("agent.stopped", reason=self._stop_reason)


def _connect_reason(exc: BaseException) -> str:
    """A short reason for a failed connection or request (for the WARNING log and the gap event)."""
    text = str(exc).strip().replace("\n", " ")
    name = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno:
        return f"{name}: {errno_name(exc)}"
    return f"{name}: {text}"[:200] if text else name
