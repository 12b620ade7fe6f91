"""Helpers for the desk edge tests: a cuttable link (the pocket WiFi) and the edge app on a laptop identity."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from desk_api import SAPPORO_TOML

from madoguchi_desk.edge.app import EdgeConfig, create_edge_app
from madoguchi_shared import natsauth
from madoguchi_shared.settings import Settings


class LinkProxy:
    """A TCP proxy standing for the laptop's pocket WiFi: `cut()` drops every connection and refuses
    new ones, `restore()` serves again on the same port."""

    def __init__(self, target: str):
        parts = urlsplit(target.split(",")[0])
        self.host, self.target_port = parts.hostname or "127.0.0.1", parts.port or 4222
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> LinkProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.pipes -= {writer, up_writer}

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.pipes):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.pipes.clear()

    async def restore(self) -> None:
        await self.start()


def laptop_identity(data_dir: Path, nats_server, municipality: str, desk: str) -> dict[str, str]:
    """The laptop's NATS credential (the agent's model), accepted by the running server at once."""
    identity = natsauth.ensure(
        data_dir, natsauth.edge_user(f"{desk}-pc"), "edge", municipality=municipality, device=f"{desk}-pc", desk=desk
    )
    natsauth.write_server_config(data_dir)
    nats_server.reload()
    return identity.connect_options() | {"municipality": municipality}


def credentials_municipality(credentials: dict[str, str]) -> str | None:
    return credentials.get("municipality")


@asynccontextmanager
async def edge_app(
    settings: Settings,
    desk: str,
    state_dir: Path,
    link: LinkProxy,
    credentials: dict[str, str],
    clock,
    *,
    heartbeat_seconds: float = 0.3,
    staffing_check_seconds: float = 3600.0,
    wait_for_accounts: bool = True,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    config = EdgeConfig(
        desk=desk,
        device_id=f"{desk}-pc",
        state_dir=state_dir,
        nats_url=link.url,
        connect_options={k: v for k, v in credentials.items() if k != "municipality"},
        heartbeat_seconds=heartbeat_seconds,
        staffing_check_seconds=staffing_check_seconds,
    )
    s = settings.model_copy(
        update={
            "municipality": credentials_municipality(credentials) or settings.municipality,
            "config_file": SAPPORO_TOML,
            "log_level": "WARNING",
        }
    )
    app = create_edge_app(s, config, clock=clock)
    async with app.router.lifespan_context(app):
        if wait_for_accounts:  # staff tokens are checked once HQ's accounts are read
            await until(lambda: getattr(app.state, "accounts", None))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edge", timeout=30
        ) as client:
            yield app, client


async def until(predicate, timeout: float = 20.0, every: float = 0.05):
    """Wait for an async or plain predicate to hold; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(every)
