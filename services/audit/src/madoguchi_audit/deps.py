"""FastAPI dependencies of the audit service, as Annotated aliases (one place)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from madoguchi_shared.auth import Principal, Role, require

from madoguchi_audit.alert_engine import AlertHub
from madoguchi_audit.config import AuditSettings


# Accessors are async: a plain `def` dependency would run in FastAPI's thread pool, a thread hop per request.
async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _audit(request: Request) -> AuditSettings:
    return request.app.state.audit


async def _nc(request: Request) -> NATS:
    return request.app.state.nc


async def _js(request: Request) -> JetStreamContext:
    return request.app.state.js


async def _hub(request: Request) -> AlertHub:
    return request.app.state.hub


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Audit = Annotated[AuditSettings, Depends(_audit)]
Nc = Annotated[NATS, Depends(_nc)]
Js = Annotated[JetStreamContext, Depends(_js)]
Hub = Annotated[AlertHub, Depends(_hub)]

# Auditors read the operation log (ORG-2); administrators may run the verifier too.
Auditor = Annotated[Principal, Depends(require(Role.auditor))]
VerifyRole = Annotated[Principal, Depends(require(Role.auditor, Role.administrator))]
# HQ (本部) watches and handles the alerts (SEC-2); the city and auditors may look.
AlertHandler = Annotated[Principal, Depends(require(Role.manager, Role.rounder))]
AlertViewer = Annotated[
    Principal, Depends(require(Role.manager, Role.rounder, Role.city_staff, Role.auditor, Role.administrator))
]
