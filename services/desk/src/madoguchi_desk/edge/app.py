"""The desk edge app on the laptop: the desk API for its one desk, over the journal (EDGE.md).

`create_edge_app(settings, EdgeConfig(...))` builds it; `madoguchi edge run` (or the systemd unit)
serves it. The laptop's console (desk screen and calling display) points its desk upstream here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram

from madoguchi_desk.api import calendar_router, desks_router, queue_router, visits_router
from madoguchi_desk.edge.journal import Journal
from madoguchi_desk.edge.link import EdgeLink
from madoguchi_desk.edge.service import COMMAND_KEY, EdgeDeskService
from madoguchi_desk.main import load_config
from madoguchi_shared.clock import Clock, utc_clock
from madoguchi_shared.errors import NotFound
from madoguchi_shared import auth, logging, sealed
from madoguchi_shared.events.base import Role
from madoguchi_shared.logging import get_logger
from madoguchi_shared.settings import Settings
from madoguchi_shared.web import (
    LoginThrottle,
    RequestContext,
    _auth_router,
    _install_error_handlers,
    _ops_router,
    security_headers,
)

log = get_logger(__name__)

KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass
class EdgeConfig:
    desk: str
    device_id: str
    state_dir: Path
    nats_url: str
    connect_options: dict = field(default_factory=dict)
    heartbeat_seconds: float = 2.0
    staffing_check_seconds: float = 15.0


class CommandIds:
    """Client command ids (`Idempotency-Key`): the first answer is stored with the command's events
    (same SQLite transaction) and a repeat gets it back; nothing is decided twice (EDGE.md)."""

    def __init__(self, app, journal: Journal):
        self.app = app
        self.journal = journal
        self.inflight: dict[str, asyncio.Event] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        key = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"idempotency-key"), None)
        if key is None:
            return await self.app(scope, receive, send)
        if not KEY.match(key):
            return await self._answer(
                send,
                422,
                json.dumps(
                    {
                        "title": "Unprocessable Entity",
                        "status": 422,
                        "detail": "Idempotency-Key は8～64文字の英数字・ハイフン・下線で指定してください。",
                    },
                    ensure_ascii=False,
                ).encode(),
                False,
            )
        while key in self.inflight:
            await self.inflight[key].wait()
        known, status, body = self.journal.answer(key)
        if known:
            if body is None and status is not None and status >= 400:  # an old refusal, its text no longer kept
                body = json.dumps(
                    {
                        "title": "Conflict",
                        "status": status,
                        "replayed": True,
                        "detail": "この操作は以前に受け付けられませんでした。画面を更新してください。",
                    },
                    ensure_ascii=False,
                ).encode()
            elif body is None:  # the answer lost in a crash, or no longer kept: the events the command made
                rows = self.journal.command_events(key)
                status, body = (
                    status or 200,
                    json.dumps(
                        {"events": [{"seq": r.seq, **json.loads(r.data)} for r in rows], "replayed": True},
                        ensure_ascii=False,
                    ).encode(),
                )
            return await self._answer(send, status or 200, body, True)  # (a kept body is kept with its status)
        done = self.inflight[key] = asyncio.Event()
        token = COMMAND_KEY.set(key)
        captured: dict = {"status": None, "body": []}

        async def capture(message):
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            COMMAND_KEY.reset(token)
            if captured["status"] is not None and captured["status"] < 500:
                self.journal.store_answer(key, captured["status"], b"".join(captured["body"]))
            del self.inflight[key]
            done.set()

    @staticmethod
    async def _answer(send, status: int, body: bytes, replayed: bool) -> None:
        headers = [
            (b"content-type", b"application/json" if status < 400 else b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *security_headers(),
        ]
        if replayed:
            headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


ACCOUNTS_KEPT_EVERY = 30.0
# A form sent twice comes back within seconds (a double click, a retry after a lost answer): the first
# answer is replayed as it was for this long, later repeats get the command's events (still one command).
ANSWERS_KEPT_SECONDS = 600.0


class KeptAccounts(auth.AccountDirectory):
    """The last copy of HQ's accounts of this municipality, from the journal: what checks staff tokens
    after a restart while the link is down (an account it does not hold is refused)."""

    @staticmethod
    def snapshot(directory: auth.AccountDirectory, municipality: str) -> dict:
        now = time.time()
        accounts = [
            {**dataclasses.asdict(a), "password_hash": None, "roles": [r.value for r in a.roles]}
            for a in directory.of_municipality(municipality)
        ]
        return {"accounts": accounts, "revoked": {k: v for k, v in directory.revoked.items() if v > now}}

    @classmethod
    def from_snapshot(cls, snapshot: dict) -> KeptAccounts:
        kept = cls(None)  # type: ignore[arg-type]
        for raw in snapshot.get("accounts", []):
            account = auth.Account(
                **{**raw, "roles": tuple(Role(r) for r in raw["roles"]), "wards": tuple(raw["wards"])}
            )
            kept.accounts[account.key] = account
        kept.revoked = dict(snapshot.get("revoked", {}))
        return kept

    async def account(self, municipality: str, staff_id: str):
        return self.accounts.get(f"{municipality}.{staff_id}")

    async def stop(self) -> None:
        return None


edge_router = APIRouter(prefix="/v1/edge", tags=["edge"])
not_on_edge = APIRouter(tags=["edge"])


@not_on_edge.get("/v1/desks/{desk_id}/live", include_in_schema=False)
async def no_live_feed(desk_id: str) -> None:
    """HQ's live feed follows the bus; on the laptop the screens poll the status instead."""
    raise NotFound(
        "ライブ配信は本部のサービスで利用できます。この端末では状態（/status）を参照してください。", code="not_on_edge"
    )


@edge_router.get("")
async def edge_state(request: Request) -> dict:
    """The link to HQ: online, commands not yet sent, the outage timeline."""
    return request.app.state.link.view() | {"desk": request.app.state.desk.desk.id, "sent": request.app.state.link.sent}


def create_edge_app(settings: Settings, config: EdgeConfig, *, clock: Clock | None = None) -> FastAPI:
    municipality = load_config(settings)
    desk = municipality.desk(config.desk)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.configure(settings.log_level, settings.log_json)
        service: EdgeDeskService = app.state.desk
        link: EdgeLink = app.state.link
        app.state.nc = None
        app.state.js = None

        snapshot = service.journal.fact("accounts")
        if snapshot is not None:  # a restart without a link: the last copy checks tokens until HQ is reached
            app.state.accounts = KeptAccounts.from_snapshot(snapshot)

        async def accounts() -> None:
            # staff tokens are checked against HQ's accounts; the copy stays in memory through an outage
            # and is kept in the journal (no password hashes) for a restart while offline
            while service.js is None:
                await asyncio.sleep(0.2)
            app.state.nc, app.state.js = service.nc, service.js
            sealed.use(sealed.TextVault(service.js))
            while True:
                try:
                    live = await auth.AccountDirectory(service.js).start(settings.stream_replicas)
                    break
                except Exception as exc:  # noqa: BLE001 - HQ not reachable yet
                    log.warning("edge.accounts_unreadable", error_type=type(exc).__name__)
                    await asyncio.sleep(2.0)
            app.state.accounts = live
            while True:
                service.journal.set_fact("accounts", KeptAccounts.snapshot(live, municipality.code))
                await asyncio.sleep(ACCOUNTS_KEPT_EVERY)

        async def staffing_timer() -> None:
            while True:  # DESK-5 for this desk, online or not (HQ's timer leaves it to the edge)
                await asyncio.sleep(config.staffing_check_seconds)
                await service.staffing_sweep()
                service.journal.forget_answers(ANSWERS_KEPT_SECONDS)

        await link.start()
        tasks = [
            asyncio.create_task(accounts(), name="edge-accounts"),
            asyncio.create_task(staffing_timer(), name="edge-staffing-timer"),
        ]
        log.info("edge.started", desk=desk.id, device=config.device_id, journal=str(service.journal.path))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            directory = getattr(app.state, "accounts", None)
            if directory is not None:
                await directory.stop()
            await link.stop()
            service.journal.close()

    app = FastAPI(
        title="Madoguchi desk edge",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description=f"窓口エッジ（{desk.id}）: the desk's commands on its laptop, drained to HQ",
    )
    journal = Journal(Path(config.state_dir) / f"edge-{desk.id}.sqlite")
    service = EdgeDeskService(municipality, desk, config.device_id, journal, clock or utc_clock)
    options = dict(config.connect_options)
    tls = settings.nats_tls()  # the pocket WiFi is the internet: HQ's CA, the laptop's client certificate
    if tls is not None and "tls" not in options:
        options["tls"] = tls
        if settings.nats_tls_hostname:
            options["tls_hostname"] = settings.nats_tls_hostname
    link = EdgeLink(service, config.nats_url, connect_options=options, heartbeat_seconds=config.heartbeat_seconds)
    app.state.settings = settings
    app.state.service_name = "desk-edge"
    app.state.use_db = False
    app.state.ready_details = {}
    app.state.login_throttle = LoginThrottle(settings.login_rate_limit, settings.login_rate_window_seconds)
    app.state.municipality = municipality
    app.state.desk = service
    app.state.link = link
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    requests = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=registry)
    app.add_middleware(CommandIds, journal=journal)
    app.add_middleware(RequestContext, service="desk-edge", requests=requests, latency=latency)
    _install_error_handlers(app)
    app.include_router(_ops_router())
    app.include_router(_auth_router())
    for router in (not_on_edge, queue_router, calendar_router, desks_router, visits_router, edge_router):
        app.include_router(router)
    return app
