"""The shell around the alert rules: read the log, fold, append the alerts, remember.

The engine reads the audit log itself (the merged, ordered record of every stream), only the
event types some rule or the alert list cares about. Per batch it appends the alert events the
rules propose, updates the `alert` table from the alert events it reads back, and stores its
rule state with its log position in one transaction: a crash replays the batch, the rules propose
the same alert ids, and the create check (expected subject sequence 0) refuses the copies.

Time-driven rules (silent desk PCs, re-raising) tick only when the engine has caught up with the
log, so replaying an old backlog never raises alerts about a past that is already over.

`AlertHub` feeds the HQ's live view: one core NATS subscription on mg.audit.*.alert.* fanned out
to every SSE client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from madoguchi_shared import subjects
from madoguchi_shared import db
from madoguchi_shared import bus
from madoguchi_shared.events import Event, parse_event
from madoguchi_shared.events.audit import AlertAcknowledged, AlertRaised, AlertReraised, AlertResolved
from madoguchi_shared.logging import get_logger

from madoguchi_audit import alerts
from madoguchi_audit.config import AuditSettings

log = get_logger(__name__)


class AlertEngine:
    def __init__(
        self,
        settings: AuditSettings,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tick_every: float = 5.0,
    ):
        self.settings = settings
        self.schema = settings.schema_name
        self.pool = pool
        self.js = js
        self.clock = clock
        self.tick_every = tick_every
        self.rules = alerts.Rules.from_settings(settings)
        self.state = alerts.RuleState()
        self.position = 0
        self.published = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._types = sorted(alerts.TYPES)

    def notify(self, _position: int = 0) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _load(self) -> None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f'SELECT position, state FROM "{self.schema}".alert_engine WHERE log_id = $1', self.settings.log_id
            )
        if row is not None:
            self.position = row["position"]
            self.state = alerts.RuleState.from_json(json.loads(row["state"]))

    async def run(self) -> None:
        await self._load()
        last_tick = 0.0
        while not self._stop.is_set():
            try:
                n = await self.step()
            except Exception as exc:  # noqa: BLE001 - the bus or the database is away: start over from the store
                log.warning("audit.alert_engine_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._load()
                continue
            if n:
                continue
            if time.monotonic() - last_tick >= self.tick_every:
                last_tick = time.monotonic()
                try:
                    await self.tick()
                except Exception as exc:  # noqa: BLE001
                    log.warning("audit.alert_tick_failed", error=f"{type(exc).__name__}: {exc}")
                    with contextlib.suppress(Exception):
                        await self._load()
            self._idle.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        self._idle.clear()
        self._wake.set()
        await asyncio.wait_for(self._idle.wait(), timeout)

    WINDOW = 50_000  # log positions looked at per step (the log has no index on type alone: a range of positions)

    async def step(self, limit: int = 1000) -> int:
        """Fold the next batch of relevant log records; returns how many positions it moved (0: caught up)."""
        async with self.pool.acquire() as conn:
            top = await conn.fetchval(
                f'SELECT position FROM "{self.schema}".chain_head WHERE log_id = $1', self.settings.log_id
            )
            if top is None or top <= self.position:
                return 0
            end = min(top, self.position + self.WINDOW)  # committed with the head: every record up to it is there
            rows = await conn.fetch(
                f'''SELECT position, stream_seq, type, data FROM "{self.schema}".log
                    WHERE position > $1 AND position <= $2 AND type = ANY($3::text[])
                      AND NOT EXISTS (SELECT 1 FROM "{self.schema}".duplicate d WHERE d.position = log.position)
                    ORDER BY position LIMIT $4''',
                self.position,
                end,
                self._types,
                limit,
            )
        start = self.position
        if not rows:  # nothing for the rules up to `end`: move on (stored with the next save)
            self.position = end
            return end - start
        outs: list[alerts.Out] = []
        alert_events: list[tuple[int, Event]] = []
        for row in rows:
            try:
                event = parse_event(bytes(row["data"]))
            except ValueError:
                continue  # unreadable records are the DLQ's business; the log has them
            if event.type in alerts.ALERT_EVENTS:
                alert_events.append((row["position"], event))
            outs += alerts.fold(self.state, event, row["stream_seq"], self.rules)
        await self._append(outs)
        await self._save(rows[-1]["position"] if len(rows) == limit else end, alert_events)
        return self.position - start

    async def tick(self) -> None:
        outs = alerts.tick(self.state, self.clock(), self.rules)
        if outs:
            await self._append(outs)
            await self._save(self.position, [])

    async def _append(self, outs: list[alerts.Out]) -> None:
        for out in outs:
            try:
                await bus.append(self.js, out.event, out.expected)
                self.published += 1
            except bus.ConcurrencyConflict:
                pass  # raised already (a replay) or acknowledged meanwhile: nothing to add

    async def _save(self, position: int, alert_events: list[tuple[int, Event]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for pos, event in alert_events:
                await project_alert(conn, self.schema, pos, event)
            await conn.execute(
                f'''INSERT INTO "{self.schema}".alert_engine(log_id, position, state, updated_at)
                    VALUES ($1, $2, $3::jsonb, now())
                    ON CONFLICT (log_id) DO UPDATE SET position = EXCLUDED.position, state = EXCLUDED.state,
                        updated_at = now()''',
                self.settings.log_id,
                position,
                json.dumps(self.state.to_json()),
            )
        self.position = position


async def project_alert(conn: db.Connection, schema: str, position: int, e: Event) -> None:
    """Apply one alert event to the alert table (idempotent; runs in the engine's transaction)."""
    t = f'"{schema}".alert'
    if isinstance(e, AlertRaised):
        await conn.execute(
            f"""INSERT INTO {t} (alert_id, municipality, rule, severity, status, ward, desk, device_id, about,
                    title, message, raised_at, last_raised_at, position)
                VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10, $11, $11, $12)
                ON CONFLICT (alert_id) DO NOTHING""",
            e.alert_id,
            e.municipality,
            e.rule,
            e.severity,
            e.ward,
            e.desk,
            e.device_id,
            e.about,
            e.title,
            e.message,
            e.occurred_at,
            position,
        )
    elif isinstance(e, AlertAcknowledged):
        await conn.execute(
            f"""UPDATE {t} SET status = CASE WHEN status = 'open' THEN 'acknowledged' ELSE status END,
                    acknowledged_by = $2, acknowledged_at = $3, position = $4 WHERE alert_id = $1""",
            e.alert_id,
            e.acknowledged_by,
            e.occurred_at,
            position,
        )
    elif isinstance(e, AlertReraised):
        await conn.execute(
            f"UPDATE {t} SET reraise_count = greatest(reraise_count, $2), last_raised_at = $3, position = $4 "
            "WHERE alert_id = $1",
            e.alert_id,
            e.reraise_count,
            e.occurred_at,
            position,
        )
    elif isinstance(e, AlertResolved):
        await conn.execute(
            f"UPDATE {t} SET status = 'resolved', resolved_at = $2, position = $3 WHERE alert_id = $1",
            e.alert_id,
            e.occurred_at,
            position,
        )


class AlertHub:
    """Live alert events for SSE clients: one NATS subscription, a bounded queue per client."""

    SUBJECT = subjects.pattern("audit", "*", "alert")

    def __init__(self, nc: NATS):
        self.nc = nc
        self.queues: set[asyncio.Queue] = set()
        self._sub = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.SUBJECT, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for q in self.queues:
            q.put_nowait(None)

    async def _on_msg(self, msg) -> None:
        try:
            event = parse_event(msg.data)
        except ValueError:
            return
        for q in list(self.queues):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()  # a slow client loses the oldest, never blocks the others
            q.put_nowait(event)

    @contextlib.asynccontextmanager
    async def listen(self, size: int = 1000) -> AsyncIterator[asyncio.Queue]:
        q: asyncio.Queue = asyncio.Queue(maxsize=size)
        self.queues.add(q)
        try:
            yield q
        finally:
            self.queues.discard(q)
