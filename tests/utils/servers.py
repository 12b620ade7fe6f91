"""Real servers for tests: one nats-server and one PostgreSQL per test session (port 0, temp dirs)."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

from madoguchi_shared import bus
from madoguchi_shared.cluster import TlsNatsCluster
from madoguchi_shared.runtime import NatsServer, PostgresServer
from madoguchi_shared.settings import Settings


# Least privilege in the test session as in `madoguchi run`: the root conftest provisions (db.provision) one
# login role per service that uses PostgreSQL and the migration owner (mg_migrator); a service built for a
# test connects as its own role (`as_service`), never as the superuser. Filled by the `pg_roles` fixture.
PG_SERVICES = ("reporting", "calls", "audit")
SERVICE_DSNS: dict[str, str] = {}


def as_service(settings: Settings, service: str) -> Settings:
    """The settings a service's process gets from `madoguchi run`: its own PostgreSQL login."""
    dsn = SERVICE_DSNS.get(service)
    return settings if dsn is None else settings.model_copy(update={"pg_dsn": dsn})


async def own_audit_log(settings: Settings, municipality: str) -> Settings:
    """Settings whose audit service keeps its own log (schema audit_<municipality>, recording that municipality
    only), migrated by the owner role as `madoguchi run` does. One log has one writer: two audit services of a
    test session on the default schema would write one chain with two keys, which verify rightly calls a fault."""
    import asyncpg

    from madoguchi_audit import schema as audit_schema

    name = f"audit_{municipality}"
    conn = await asyncpg.connect(SERVICE_DSNS.get("migrator", settings.pg_dsn))
    try:
        await audit_schema.migrate(conn, name)
    finally:
        await conn.close()
    extra = {**settings.extra, "audit_schema_name": name, "audit_municipalities": [municipality]}
    return settings.model_copy(update={"extra": extra})


_GIVEN: set[str] = set()
_DRAW = random.SystemRandom()  # not the `random` module's state, which hypothesis and tests seed and reset


def unique_municipality() -> str:
    """Tests isolate by municipality: it is part of every subject and key. 9xxxxx is never real. Never the same
    code twice in one test process (a repeat made one test count another's events: with the module's seeded
    state, two draws in a session coincided)."""
    while True:
        code = f"9{_DRAW.randrange(0, 100000):05d}"
        if code not in _GIVEN:
            _GIVEN.add(code)
            return code


def make_settings(nats: NatsServer, pg: PostgresServer, data_dir: Path, **overrides) -> Settings:
    return Settings(
        nats_url=nats.url,
        pg_dsn=pg.dsn,
        data_dir=data_dir,
        token_secret="test-token-secret-not-for-production-000000",
        service_secret="test-service-secret-not-for-production-0000",
        log_json=False,
        **overrides,
    )


class NatsCluster(TlsNatsCluster):
    """The loopback cluster of `make cluster` (madoguchi_shared.cluster: 3 nodes, JetStream with
    `sync_interval: always`, routes) without TLS or users, small enough for a test; clients connect
    through `connect`, which waits for the JetStream meta leader and the R3 streams."""

    def __init__(self, root: Path, size: int = 3):
        super().__init__(root, None, size)

    def node(self, name: str) -> NatsServer:
        return next(n for i, n in enumerate(self.nodes) if f"mg-{i}" == name)

    async def connect(self, url: str | None = None, timeout: float = 30.0, **kwargs):
        """A client once the cluster has a JetStream meta leader and the streams exist with R3."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            nc = None
            try:
                nc = await bus.connect(url or self.url, name="cluster-test", **kwargs)
                js = nc.jetstream()
                await bus.ensure_streams(js, replicas=3)
                return nc, js
            except Exception:
                if nc is not None:  # else it goes on reconnecting to the stopped cluster for the rest of the session
                    await nc.close()
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)


class Served:
    """A service app over real HTTP: uvicorn as a task in the test's event loop. Its listening socket is bound
    here, on a port the kernel picks (or `port`), and handed to uvicorn: no other process can take the port
    between picking it and serving on it (a port picked first and bound later can be, see free_port)."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.app = app
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", port or 0))
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the startup error
                raise RuntimeError("server stopped during startup")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await asyncio.wait_for(self.task, 15)
        self.socket.close()
