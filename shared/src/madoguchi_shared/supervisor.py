"""The supervisor of `madoguchi run`: every child (nats-server, PostgreSQL, each HTTP service) is
watched; one that exits without being asked is started again with exponential backoff, the others
keep serving. Each exit and restart is a JSON log line, a line on the terminal, and an
`admin.process_restarted` event on the bus (so the audit log has every outage of the platform).

Backoff: 0.5 s after the first exit, doubling up to 30 s while the child keeps failing; a child
that stayed up for a minute starts again from 0.5 s. A service counts as back when its /readyz
answers 200 (nats-server and PostgreSQL when they accept connections).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from pathlib import Path

from madoguchi_shared import nats_typed
from madoguchi_shared.logging import get_logger
from madoguchi_shared.runtime import NatsServer, PostgresServer, stop_stale

log = get_logger(__name__)

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


class Child:
    """One supervised process."""

    name: str

    def __init__(self, name: str):
        self.name = name
        self.failures = 0  # consecutive exits without a minute of uptime in between
        self.restarts = 0
        self.restart_at: float | None = None
        self.down_since: float | None = None
        self.up_since = time.monotonic()
        self.backoff = 0.0
        self.last_exit: int | None = None
        self.awaiting_ready = False

    def start(self) -> None:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        """None while running; the exit status (negative: the signal) once it has exited."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    @property
    def pid(self) -> int | None:
        raise NotImplementedError


class ServerChild(Child):
    """nats-server or PostgreSQL from the embedded runtime (start() returns once it accepts connections)."""

    def __init__(self, name: str, server: NatsServer | PostgresServer):
        super().__init__(name)
        self.server = server

    def start(self) -> None:
        try:
            self.server.start()
        except Exception:
            proc = self.server.proc
            if proc is not None and proc.poll() is None:  # started but never became ready
                proc.kill()
                proc.wait(5)
            raise

    def exit_code(self) -> int | None:
        proc = self.server.proc
        return 0 if proc is None else proc.poll()

    def stop(self) -> None:
        self.server.stop()

    @property
    def pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc else None


def _end_group(pgid: int, timeout: float = 10.0) -> None:
    """Kill what is left of a service's session: a parent killed hard leaves its uvicorn workers
    behind (re-parented to init, still serving on the port), and the new parent could not bind
    ([Errno 98], exit 3, retried for ever)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


class ServiceChild(Child):
    """`madoguchi serve <name>` in its own session (a terminal's Ctrl-C reaches only the supervisor)."""

    def __init__(self, name: str, env: dict[str, str], run_dir: Path, ready_url: str):
        super().__init__(name)
        self.env = env
        self.pid_file = run_dir / f"{name}.pid"
        self.ready_url = ready_url
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        stop_stale(self.pid_file, f"madoguchi_shared.cli serve {self.name}", signal.SIGTERM)
        if self.proc is not None:
            _end_group(self.proc.pid)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "madoguchi_shared.cli", "serve", self.name], env=self.env, start_new_session=True
        )
        self.pid_file.write_text(str(self.proc.pid))

    def exit_code(self) -> int | None:
        return 0 if self.proc is None else self.proc.poll()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=0.5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Supervisor:
    """Restart what exits; `stop()` stops services first, then PostgreSQL, then NATS."""

    def __init__(self, *, echo: Callable[[str], None], announce: Callable[[Child, float], None] | None = None):
        self.children: list[Child] = []
        self.echo = echo
        self.announce = announce
        self.stopping = False

    def add(self, child: Child, *, start: bool = True) -> Child:
        if start:
            child.start()
        child.up_since = time.monotonic()
        self.children.append(child)
        return child

    def services(self) -> list[ServiceChild]:
        return [c for c in self.children if isinstance(c, ServiceChild)]

    def tick(self) -> None:
        for child in list(self.children):
            if self.stopping:
                return
            now = time.monotonic()
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            code = child.exit_code()
            if code is None:
                if child.awaiting_ready and child.ready():
                    self._back(child)
                elif child.failures and not child.awaiting_ready and now - child.up_since > STABLE_AFTER:
                    child.failures = 0
                continue
            child.backoff = min(BACKOFF_MAX, BACKOFF_START * 2**child.failures)
            child.failures += 1
            child.last_exit = code
            child.down_since = child.down_since or now
            child.restart_at = now + child.backoff
            child.awaiting_ready = False
            log.warning(
                "process.exited",
                process=child.name,
                exit_code=code,
                restart_in_s=child.backoff,
                failures=child.failures,
            )
            self.echo(f"{child.name} exited ({_describe(code)}); restarting in {child.backoff:g} s")

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        try:
            child.start()
        except Exception as exc:  # noqa: BLE001 - tried again after a longer backoff
            log.error("process.start_failed", process=child.name, error=str(exc)[:500])
            self.echo(f"{child.name} did not start: {str(exc).splitlines()[0][:200]}")
            return
        child.restarts += 1
        child.up_since = time.monotonic()
        child.awaiting_ready = True
        if child.ready():
            self._back(child)

    def _back(self, child: Child) -> None:
        child.awaiting_ready = False
        down = time.monotonic() - (child.down_since or time.monotonic())
        child.down_since = None
        log.warning(
            "process.restarted",
            process=child.name,
            pid=child.pid,
            restarts=child.restarts,
            down_s=round(down, 2),
            exit_code=child.last_exit,
        )
        self.echo(f"{child.name} restarted (pid {child.pid}, restart {child.restarts}, down {down:.1f} s)")
        if self.announce is not None:
            self.announce(child, down)

    def watch(self, interval: float = 0.25) -> None:
        while not self.stopping:
            self.tick()
            time.sleep(interval)

    def stop(self) -> None:
        self.stopping = True
        services = self.services()
        for child in services:
            child.stop()
        for child in services:
            child.wait()
        for child in reversed([c for c in self.children if not isinstance(c, ServiceChild)]):
            child.stop()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def announcer(nats_url: str, municipality: str, **connect_kwargs: Any) -> Callable[[Child, float], None]:
    """Publish `admin.process_restarted` from a short-lived thread (the watch loop never waits on the bus)."""
    from madoguchi_shared import bus
    from madoguchi_shared.events.supervision import ProcessRestarted

    def publish(event: ProcessRestarted) -> None:
        async def go() -> None:
            nc = await bus.connect_tool(nats_url, name="madoguchi-supervisor", **connect_kwargs)
            try:
                await bus.append(nats_typed.jetstream(nc), event)
            finally:
                await nc.close()

        try:
            asyncio.run(go())
        except Exception as exc:  # noqa: BLE001 - the log line above already says it
            log.warning("process.restart_not_announced", process=event.process, error=str(exc)[:300])

    def announce(child: Child, down: float) -> None:
        event = ProcessRestarted(
            municipality=municipality,
            process=child.name,
            exit_code=child.last_exit,
            restarts=child.restarts,
            down_seconds=round(down, 3),
            backoff_seconds=child.backoff,
        )
        threading.Thread(target=publish, args=(event,), name=f"announce-{child.name}", daemon=True).start()

    return announce


__all__ = ["Supervisor", "Child", "ServerChild", "ServiceChild", "announcer"]
