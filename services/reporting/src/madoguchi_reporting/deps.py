"""FastAPI dependencies as Annotated aliases (one place)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from madoguchi_shared.auth import Principal, Role, require

from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.worker import Worker


# Accessors are async: a plain `def` dependency would run in FastAPI's thread pool, a thread hop per request.
async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _worker(request: Request) -> Worker:
    return request.app.state.reporting


async def _cfg(request: Request) -> ReportConfig:
    return request.app.state.reporting.cfg


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Runtime = Annotated[Worker, Depends(_worker)]
Config = Annotated[ReportConfig, Depends(_cfg)]
# Who reads reports: the city, HQ (manager, rounder) and auditors (ORG-2).
Reader = Annotated[Principal, Depends(require(Role.city_staff, Role.manager, Role.rounder, Role.auditor))]
# Who delivers them (REP-6).
Manager = Annotated[Principal, Depends(require(Role.manager))]
