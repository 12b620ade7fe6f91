"""The reporting service's background work: the projections (supervised), the outbox publisher,
the deadline check (REP-6), and waiting for the projections to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from madoguchi_shared.logging import get_logger
from madoguchi_shared.projection import Projection
from madoguchi_shared.settings import Settings

from madoguchi_reporting import deliverables, schema
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.projections import BATCH, REBUILD_LOCK, Notifier, RebuildInProgress, drain_outbox, projections
from madoguchi_reporting.submissions import make_revision_check

log = get_logger(__name__)


def live_notifier(cfg: ReportConfig) -> Notifier:
    return Notifier(enabled=True, revision_check=make_revision_check(cfg))


def freeze_startup_heap() -> None:
    """Take what is alive once the service has started (modules, models, schemas: ~200,000 objects)
    out of the cyclic collector's sight (`gc.freeze`), after a collection. A projection's batch keeps
    thousands of objects alive across young collections, so full collections come every few
    batches; without this each one walks the whole startup heap again (about a fifth of a
    projection's CPU on `make bench`). A young collection every 10,000 allocations instead of 700,
    as the service's web layer sets it once started (`madoguchi_shared.web`), so a process that runs
    only the projections (the bench) collects as the service does: a batch's events
    (their UUIDs are tracked objects) set off a young collection every 700 of them otherwise, about
    2 us an event of parse and fold (process CPU, 88,000 events, 3 pairs)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


class Worker:
    def __init__(self, settings: Settings, nc, pool: asyncpg.Pool, *, batch: int = BATCH):
        self.settings = settings
        self.nc = nc
        self.js = nc.jetstream()
        self.pool = pool
        self.cfg = ReportConfig(settings)
        self.projections: list[Projection] = projections(live_notifier(self.cfg), batch=batch)
        self.tasks: list[asyncio.Task] = []
        self._stopping = False
        self._outbox = asyncio.Event()
        self._listener: PoolConnectionProxy | None = None  # a pooled connection, released back in stop()
        self.deadline_interval = float(settings.extra.get("deadline_check_seconds", "300"))

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, projections_on: bool = True) -> None:
        async with self.pool.acquire() as conn:
            await schema.migrate(conn)
        freeze_startup_heap()
        self._listener = await self.pool.acquire()
        await self._listener.add_listener("reporting_outbox", self._on_notify)
        if projections_on:
            self.start_projections()
        self.tasks.append(asyncio.create_task(self._publish_outbox(), name="reporting-outbox"))
        if self.deadline_interval > 0:  # 0 switches the periodic check off (tests drive it through the API)
            self.tasks.append(asyncio.create_task(self._deadlines(), name="reporting-deadlines"))

    def start_projections(self) -> None:
        for p in self.projections:
            p._stop = asyncio.Event()
            self.tasks.append(asyncio.create_task(self._supervise(p), name=p.name))

    async def stop_projections(self) -> None:
        """Stop the projections between batches (a batch in flight completes or rolls back)."""
        for p in self.projections:
            p.stop()
        running = [t for t in self.tasks if t.get_name() in {p.name for p in self.projections}]
        await asyncio.gather(*running, return_exceptions=True)
        self.tasks = [t for t in self.tasks if t not in running]

    async def stop(self) -> None:
        self._stopping = True
        gc.unfreeze()  # what was alive at start is the collector's again (a test process starts many workers)
        await self.stop_projections()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener("reporting_outbox", self._on_notify)
            await self.pool.release(self._listener)
            self._listener = None

    def _on_notify(self, *_args) -> None:
        self._outbox.set()

    async def _supervise(self, p: Projection) -> None:
        """Restart a projection that stopped on an error the runner does not handle itself (the bus
        gone while creating its consumer, ...), with backoff. Bad events never get here: the runner
        dead-letters them, and waits out a database that is away."""
        delay = 1.0
        while True:
            try:
                await p.run(self.nc, self.pool)
                return  # stopped on purpose
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - restart from the stored position
                if p._stop.is_set():
                    return
                log.warning(
                    "projection.restart", projection=p.name, error=f"{type(exc).__name__}: {exc}"[:300], retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)

    # --- outbox ----------------------------------------------------------------------------------

    async def _publish_outbox(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._outbox.wait(), timeout=2.0)
            except TimeoutError:
                pass
            self._outbox.clear()
            try:
                async with self.pool.acquire() as conn:
                    while await drain_outbox(conn, self.js):
                        pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the rows stay; retried on the next round
                log.warning("outbox.publish_failed", error=str(exc)[:300])
                await asyncio.sleep(1.0)

    async def flush_outbox(self) -> int:
        n = 0
        async with self.pool.acquire() as conn:
            while True:
                k = await drain_outbox(conn, self.js)
                n += k
                if not k:
                    return n

    # --- deadlines (REP-6) -------------------------------------------------------------------------

    async def _deadlines(self) -> None:
        await asyncio.sleep(min(5.0, self.deadline_interval))
        while True:
            try:
                await self.check_deadlines()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("deadlines.check_failed", error=str(exc)[:300])
            await asyncio.sleep(self.deadline_interval)

    async def check_deadlines(self, municipality: str | None = None, on: dt.date | None = None) -> dict[str, int]:
        m = municipality or self.settings.municipality
        defined = await deliverables.plan(self.pool, self.nc, self.cfg, m)
        if defined:
            await self.caught_up(only=("reporting-deliverables",))
        overdue = await deliverables.check_overdue(self.pool, self.nc, None if municipality is None else m, on)
        return {"defined": defined, "overdue": overdue}

    # --- catching up ----------------------------------------------------------------------------------

    async def caught_up(self, timeout: float = 60.0, only: tuple[str, ...] | None = None) -> None:
        """Wait until every projection has applied what its stream holds now."""
        deadline = asyncio.get_running_loop().time() + timeout
        for p in self.projections:
            if only and p.name not in only:
                continue
            target = await stream_target(self.js, p)
            while True:
                async with self.pool.acquire() as conn:
                    pos = await p.stored_position(conn)
                if pos >= target:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{p.name} at {pos}, stream at {target}")
                await asyncio.sleep(0.05)

    async def lag(self) -> dict[str, dict[str, int]]:
        out = {}
        async with self.pool.acquire() as conn:
            for p in self.projections:
                target = await stream_target(self.js, p)
                pos = await p.stored_position(conn)
                out[p.name] = {"position": pos, "stream": target, "behind": max(0, target - pos)}
        return out


async def stream_target(js, p: Projection) -> int:
    """The last sequence a projection must reach: the stream's last message on its filter."""
    return await p.target(js)


__all__ = ["Worker", "RebuildInProgress", "REBUILD_LOCK", "stream_target"]
