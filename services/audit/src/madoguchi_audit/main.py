"""The audit service: the append-only, hash-chained operation log with signed checkpoints, its
verifier and query API for auditors, and the HQ alerts (SEC-2, REP-5, ASVS 16.4).

Background tasks started in the lifespan: the log writer (ingest.Ingest, which also signs and
exports checkpoints) and the alert engine (alert_engine.AlertEngine), woken after every commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from madoguchi_shared.logging import get_logger
from madoguchi_shared.settings import Settings
from madoguchi_shared.web import create_service_app

from madoguchi_audit import api, schema
from madoguchi_audit.alert_engine import AlertEngine, AlertHub
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.ingest import Ingest

log = get_logger(__name__)


def create_app(settings: Settings, audit: AuditSettings | None = None) -> FastAPI:
    audit = audit or AuditSettings.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool, nc = app.state.pool, app.state.nc
        await schema.ensure(pool, audit.schema_name)
        hub = AlertHub(nc)
        await hub.start()
        engine = AlertEngine(audit, pool, app.state.js) if audit.run_alerts else None
        ingest = Ingest(audit, nc, pool, on_commit=engine.notify if engine else None) if audit.run_ingest else None
        app.state.hub, app.state.engine, app.state.ingest = hub, engine, ingest
        tasks = [asyncio.create_task(t.run(), name=f"audit-{type(t).__name__}") for t in (ingest, engine) if t]
        app.state.ready_details["writer"] = lambda: _writer_health(ingest, tasks[0] if ingest else None)
        try:
            yield
        finally:
            for t in (ingest, engine):
                if t:
                    t.stop()
            done, pending = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception():
                    log.error("audit.task_failed", task=task.get_name(), error=str(task.exception()))
            await hub.stop()

    app = create_service_app(
        "audit",
        settings,
        routers=api.routers(),
        lifespan=lifespan,
        use_db=True,
        description="Append-only hash-chained operation log, verifier, auditors' queries, HQ alerts",
    )
    app.state.audit = audit
    return app


def _writer_health(ingest: Ingest | None, task: asyncio.Task[None] | None) -> dict[str, dict[str, str]]:
    """/readyz detail: the log writer runs, or why it stopped. A writer halted on tampering or an untrusted
    key keeps the auditors' pages serving (status "degraded", 200) but is never reported as fine."""
    if ingest is None or task is None:
        return {"log": {"status": "ok", "writer": "not run by this process"}}
    if ingest.halted is not None:
        return {"log": {"status": "halted", "reason": ingest.halted}}
    if task.done():
        return {"log": {"status": "stopped", "reason": "the writer task ended; see the service log"}}
    return {"log": {"status": "ok"}}


def run(settings: Settings | None = None) -> None:
    import uvicorn

    settings = settings or Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.audit_port, log_config=None, access_log=False)
