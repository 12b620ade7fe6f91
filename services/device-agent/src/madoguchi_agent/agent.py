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
import os
import signal
import sqlite3
import ssl
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from madoguchi_agent import domain, policy as policy_mod
from madoguchi_agent.cardreader import CardReaderWatch, ReaderChange
from madoguchi_agent.config import AgentConfig
from madoguchi_agent.files import FileWatch, quarantine, scan_file
from madoguchi_agent.outbox import LEVELS, WARNING_AT, Outbox, drain_once, level_for, run_sender
from madoguchi_agent.processes import ProcessWatch
from madoguchi_agent.usb import UsbWatch
from madoguchi_shared.events import Actor, Event, Role, new_id, parse_event
from madoguchi_shared.events import device as ev
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

try:
    AGENT_VERSION = version("madoguchi-device-agent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    AGENT_VERSION = "0.0.0"

# Refused (and counted in the alarm) once the journal reaches its cap: events whose loss does not
# hide a violation. Violations, card alerts, policy and lifecycle events are always written.
SHEDDABLE = frozenset({
    "device.heartbeat", "device.synthetic_load", "device.usb_device_attached", "device.usb_device_removed",
    "device.reader_attached", "device.reader_detached",
})
VISIT_FILTER = "mg.desk.{municipality}.visit.*"
VISIT_TYPES = ("desk.visit_started", "desk.visit_ended")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Agent:
    def __init__(self, config: AgentConfig, *, load_rate: float = 0.0, load_count: int = 0):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.outbox = Outbox(config.outbox_path, config.outbox_max_bytes)
        self.loaded = policy_mod.load_cache(config.policy_cache_path) or policy_mod.default_policy()
        self.actor = Actor(id=config.device_id, role=Role.device)
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.desk_state = domain.DeskState()
        self.load_rate = load_rate
        self.load_count = load_count
        self.alarm = "ok"
        self.shed = 0
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
        # scans, hashing, quarantine moves: two worker threads are plenty and keep memory small
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="agent-io")

    @property
    def policy(self) -> policy_mod.Policy:
        return self.loaded.policy

    # -- writing events ----------------------------------------------------------------------

    def build(self, cls: type[Event], **fields) -> Event:
        c = self.config
        return cls(municipality=c.municipality, ward=c.ward, desk=c.desk, device_id=c.device_id, actor=self.actor, **fields)

    def emit(self, cls: type[Event], **fields) -> Event | None:
        """Build an event of this device and commit it to the journal (None when shed)."""
        return self.write(self.build(cls, **fields))

    def write(self, event: Event) -> Event | None:
        written = self.write_many([event])
        return event if written else None

    def write_many(self, events: list[Event]) -> int:
        depth, size = self.outbox.depth()
        if level_for(size, self.config.outbox_max_bytes) == "shedding":
            kept = [e for e in events if e.type not in SHEDDABLE]
            self.shed += len(events) - len(kept)
            events = kept
        written = 0
        if events:
            try:
                self.outbox.put_many(events)
                written = len(events)
            except sqlite3.Error as exc:  # disk full, journal damaged: counted, alarmed, logged
                self.shed += len(events)
                log.error("outbox.write_failed", error=type(exc).__name__, events=len(events))
            self._wake.set()
        self._check_alarm()
        return written

    def _check_alarm(self) -> None:
        """Raise OutboxSizeAlarm when the level rises, when refused events are pending (at most once a
        minute while still shedding) and when the journal has drained (`cleared`)."""
        depth, size = self.outbox.depth()
        cap = self.config.outbox_max_bytes
        level = level_for(size, cap)
        now = time.monotonic()
        raise_it = LEVELS.index(level) > LEVELS.index(self.alarm)
        report_shed = self.shed > 0 and (level != "shedding" or now - self._last_shed_alarm >= 60)
        cleared = self.alarm != "ok" and size < cap * WARNING_AT / 2
        if not (raise_it or report_shed or cleared):
            return
        name = "cleared" if cleared else level if level != "ok" else "warning"
        alarm = self.build(ev.OutboxSizeAlarm, level=name, depth=depth, bytes=size, cap_bytes=cap, shed=self.shed)
        log.warning("outbox.size_alarm", level=name, depth=depth, bytes=size, shed=self.shed)
        try:
            self.outbox.put(alarm)  # never shed
        except sqlite3.Error:
            return  # the count stays pending for the next alarm
        self.shed = 0
        self._last_shed_alarm = now
        self.alarm = "ok" if cleared else level

    # -- the bus -----------------------------------------------------------------------------

    def _js(self) -> JetStreamContext | None:
        return self.js if self.nc is not None and self.nc.is_connected else None

    async def _connect_loop(self) -> None:
        delay = 0.5
        options = dict(
            name=f"agent-{self.config.device_id}", max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            connect_timeout=2, allow_reconnect=True, error_cb=self._nats_error,
            reconnected_cb=self._nats_reconnected, disconnected_cb=self._nats_disconnected,
        )
        if self.config.nats_creds:
            options["user_credentials"] = str(self.config.nats_creds)
        if self.config.nats_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=str(self.config.nats_tls_ca))
        while not self._stop.is_set():
            try:
                self.nc = await nats.connect(self.config.nats_url, **options)
                self.js = self.nc.jetstream()
                log.info("agent.connected")
                self._wake.set()
                self._policy_kick.set()
                if self.config.monitors.desk_visits:
                    self._spawn(self._desk_visits_loop(), "desk_visits")
                return
            except Exception as exc:
                log.debug("agent.connect_failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, 10.0)

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("nats.error", error=type(exc).__name__)

    async def _nats_reconnected(self) -> None:
        log.info("agent.reconnected")
        self._wake.set()
        self._policy_kick.set()

    async def _nats_disconnected(self) -> None:
        log.info("agent.disconnected")

    # -- policy ------------------------------------------------------------------------------

    async def _policy_loop(self) -> None:
        c = self.config
        watching = None
        while not self._stop.is_set():
            js = self._js()
            if js is not None:
                try:
                    if watching is None:
                        # a put on the key wakes us at once; the poll is the fallback
                        watching = await self.nc.subscribe(f"$KV.{c.policy_bucket}.{c.policy_key}",
                                                           cb=self._on_policy_put)
                    fetched = await policy_mod.fetch(js, c.policy_bucket, c.policy_key)
                    if fetched is not None and (fetched.version, fetched.sha256) != (self.loaded.version, self.loaded.sha256):
                        self._apply_policy(fetched)
                except ValueError as exc:  # a malformed policy: keep the one we enforce
                    log.error("policy.invalid", error=str(exc)[:200])
                except Exception as exc:
                    log.debug("policy.fetch_failed", error=type(exc).__name__)
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
        if self.files is not None:
            self.files.apply(self.policy)

    # -- card reader and the desk's visits (DESK-9) --------------------------------------------

    def on_reader_change(self, change: ReaderChange) -> None:
        now = utcnow()
        reader = ev.redact(change.reader)[:256]
        if change.kind == "reader_attached":
            self.emit(ev.ReaderAttached, reader=reader)
        elif change.kind == "reader_detached":
            self.emit(ev.ReaderDetached, reader=reader)
        elif change.kind == "card_inserted":
            self._fold(domain.CardSeen(reader, change.atr, now))
            slot = self.desk_state.card(reader)
            self.emit(ev.CardInserted, reader=reader, atr=change.atr, visit_id=slot.visit_id if slot else None,
                      occurred_at=now)
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
                ev.CardLeftInReader, reader=alert.reader, atr=alert.atr, inserted_at=alert.inserted_at,
                reason=alert.reason, visit_id=alert.visit_id, seconds_in_reader=alert.seconds,
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
                except Exception as exc:
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
        subject = VISIT_FILTER.format(municipality=c.municipality)
        while not self._stop.is_set():
            try:
                start = utcnow() - timedelta(hours=c.desk_lookback_h)
                sub = await self.js.subscribe(
                    subject, cb=self._on_desk_event, ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.BY_START_TIME,
                    config=api.ConsumerConfig(opt_start_time=start),
                )
                try:
                    await self._stop.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                return
            except Exception as exc:  # no link, or the desk stream does not exist yet
                log.debug("desk_visits.subscribe_failed", error=type(exc).__name__)
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
        if event.type == "desk.visit_started":
            self._fold(domain.VisitStarted(str(event.visit_id), event.occurred_at))
        elif event.type == "desk.visit_ended":
            self._fold(domain.VisitEnded(str(event.visit_id), event.occurred_at))

    # -- processes, USB, files -----------------------------------------------------------------

    async def _process_loop(self) -> None:
        watch = ProcessWatch(tuple(self.config.process_users), tuple(self.config.process_root_pids))
        while not self._stop.is_set():
            try:
                for v in await self._in_thread(watch.scan, self.policy):
                    self.emit(
                        ev.ProcessViolation, pid=v.pid, name=ev.redact(v.name)[:256],
                        path=ev.safe_executable_path(v.exe) if v.exe else None, sha256=v.sha256,
                        parent_name=ev.redact(v.parent_name)[:256] if v.parent_name else None,
                        parent_path=ev.safe_executable_path(v.parent_exe) if v.parent_exe else None,
                        os_uid=v.uid,
                        enforce=v.enforce, enforced=v.enforced, error=v.error,
                    )
            except Exception:
                log.exception("process.scan_failed")
            await self._pause(self.policy.process_scan_s)

    async def _usb_loop(self) -> None:
        watch = UsbWatch(self.config.sysfs_usb_root)
        while not self._stop.is_set():
            try:
                for ch in await self._in_thread(watch.step, self.policy):
                    d = ch.device
                    common = dict(
                        port=d.port, vendor_id=d.vendor_id, product_id=d.product_id, device_class=d.device_class,
                        interface_classes=d.interface_classes,
                        manufacturer=ev.redact(d.manufacturer)[:256] if d.manufacturer else None,
                        product=ev.redact(d.product)[:256] if d.product else None,
                        serial=ev.redact(d.serial)[:256] if d.serial else None,
                    )
                    if ch.kind == "attached":
                        self.emit(ev.UsbDeviceAttached, present_at_start=ch.present_at_start, allowed=ch.allowed, **common)
                    elif ch.kind == "removed":
                        self.emit(ev.UsbDeviceRemoved, **common)
                    else:
                        self.emit(ev.UsbViolation, kind=ch.violation, block_attempted=ch.block_attempted,
                                  blocked=ch.blocked, error=ch.error, **common)
            except Exception:
                log.exception("usb.scan_failed")
            await self._pause(self.policy.usb_scan_s)

    async def _files_loop(self) -> None:
        assert self.files is not None
        while not self._stop.is_set():
            for path in await self.files.quiet_paths():
                try:
                    await self._check_file(path)
                except Exception:
                    log.exception("files.check_failed")

    async def _check_file(self, path: str) -> None:
        found = self.files.root_of(path)
        if found is None:
            return
        root, folder = found
        try:
            st = os.stat(path)
        except OSError:
            return
        if self._seen_files.get(path) == (st.st_mtime_ns, st.st_size):
            return
        self._seen_files[path] = (st.st_mtime_ns, st.st_size)
        if len(self._seen_files) > 10000:
            self._seen_files.clear()
        policy = self.policy
        hit = await self._in_thread(scan_file, folder, Path(path), policy.max_scan_bytes)
        if hit is None:
            return
        event_id = new_id()
        suffix = Path(path).suffix.lower()
        name = f"{event_id}{suffix}" if ev._SUFFIX.match(suffix) else str(event_id)
        moved, error = (False, None)
        if policy.quarantine:
            moved, error = await self._in_thread(quarantine, Path(path), self.config.quarantine_dir, name)
        event = self.build(
            ev.PersonalDataFileFound, event_id=event_id, root=folder.label,
            path=ev.safe_relative_path(os.path.realpath(path), root), kinds=hit.kinds, findings=hit.findings,
            size_bytes=hit.size, quarantine=policy.quarantine, quarantined=moved,
            quarantine_name=name if moved else None, error=error,
        )
        self.write(event)
        log.warning("files.personal_data", root=folder.label, kinds=list(hit.kinds), quarantined=moved)

    async def _files_rescan_loop(self) -> None:
        """Pick up removable media mounted since the last look."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=10.0)
            if self.files is not None:
                self.files.apply(self.policy)

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the agent stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    # -- heartbeat and synthetic load --------------------------------------------------------------

    def heartbeat(self) -> Event | None:
        depth, size = self.outbox.depth()
        return self.emit(
            ev.Heartbeat, agent_version=AGENT_VERSION, policy_version=self.loaded.version, outbox_depth=depth + 1,
            outbox_bytes=size, link_up=self._js() is not None, uptime_s=int(time.monotonic() - self._started),
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
        self.emit(ev.AgentStarted, agent_version=AGENT_VERSION, policy_version=self.loaded.version,
                  previous_run=previous, outbox_depth=self.outbox.depth()[0])
        self.emit(ev.PolicyApplied, policy_version=self.loaded.version, sha256=self.loaded.sha256,
                  source=self.loaded.source)
        log.info("agent.started", device=c.device_id, previous_run=previous, policy_version=self.loaded.version)

        self._spawn(self._connect_loop(), "connect")
        self._spawn(run_sender(self._js, self.outbox, self._wake, self._stop, c.outbox_batch,
                               c.outbox_ack_timeout_s, self._on_drained), "sender")
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
            self.files.apply(self.policy)
            self._spawn(self._files_loop(), "files")
            self._spawn(self._files_rescan_loop(), "files_rescan")
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.files is not None:
            self.files.stop()
        self.emit(ev.AgentStopped, reason=self._stop_reason, uptime_s=int(time.monotonic() - self._started))
        # a last drain, bounded: what does not go now waits in the journal for the next start
        deadline = time.monotonic() + 3.0
        while self._js() is not None and self.outbox.depth()[0] and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                acked, failed = await drain_once(self.js, self.outbox, self.config.outbox_batch, 2.0)
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

