"""Servers on picked ports survive the port being taken between the pick and the bind (a fresh-clone run lost a
cluster node's monitor port to another process): nats-server, a NATS cluster's route port, PostgreSQL and the
tests' uvicorn (Served) start again on fresh ports, and a port someone configured is never silently moved.

Each test takes the port first (a listening socket, as another process would) and makes the pick return it."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from madoguchi_shared import cluster, runtime
from madoguchi_shared.cluster import TlsNatsCluster, wait_for_meta_leader
from madoguchi_shared.runtime import NatsServer, PortTaken, PostgresServer, free_port


@contextmanager
def _taken() -> Iterator[int]:
    """A port another process holds (bound and listening) for the duration."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _pick_first(monkeypatch: pytest.MonkeyPatch, module, *ports: int) -> list[int]:
    """`module.free_port` returns `ports` first (taken meanwhile), then fresh ones; returns every pick made."""
    given = list(ports)
    picks: list[int] = []

    def pick() -> int:
        port = given.pop(0) if given else free_port()
        picks.append(port)
        return port

    monkeypatch.setattr(module, "free_port", pick)
    return picks


def _listener_pid(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def test_free_port_is_free_and_not_repeated():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free at the moment it is handed out (nothing else took these)


def test_nats_server_starts_on_fresh_ports_when_picked_ones_are_taken(tmp_path, monkeypatch):
    with _taken() as client, _taken() as monitor:
        picks = _pick_first(monkeypatch, runtime, client, monitor)
        server = NatsServer(tmp_path / "nats").start()
        try:
            assert client in picks and monitor in picks  # it did try the taken ones
            assert server.port not in (client, monitor) and server.monitor_port not in (client, monitor)
            with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=5) as resp:
                assert json.loads(resp.read())["port"] == server.port  # that is our server on both ports
            port = server.port
            server.kill()
            server.start()  # a restart keeps the port its clients know
            assert server.port == port
        finally:
            server.stop()


def test_nats_server_on_a_configured_port_that_is_taken_fails_and_says_so(tmp_path):
    with _taken() as port:
        server = NatsServer(tmp_path / "nats", port=port)
        with pytest.raises(PortTaken, match="address already in use") as failed:
            server.start()  # not "ready" because something answers on the port: the server's own word counts
        assert failed.value.port == port and server.port == port
        assert server.proc is not None and server.proc.poll() is not None


async def test_cluster_starts_on_fresh_route_ports_when_a_picked_one_is_taken(tmp_path, monkeypatch):
    from madoguchi_shared import bus

    with _taken() as route:
        # client and monitor ports of three nodes, then route ports: the second node's route port is taken
        ports = [free_port() for _ in range(3)]
        picks = _pick_first(monkeypatch, cluster, *ports, free_port(), route, free_port())
        nodes = TlsNatsCluster(tmp_path / "nats", None).start()
        try:
            assert route in picks and route not in nodes.route_ports
            assert [n.port for n in nodes.nodes] == ports == nodes.client_ports
            wait_for_meta_leader(nodes)
            nc = await bus.connect(nodes.url, name="ports-test")
            try:
                info = await nc.jetstream().account_info()
                assert info.streams == 0
            finally:
                await nc.close()
        finally:
            nodes.stop()


def test_postgres_starts_on_a_fresh_port_when_the_picked_one_is_taken(tmp_path, monkeypatch):
    with _taken() as taken:
        picks = _pick_first(monkeypatch, runtime, taken)
        server = PostgresServer(tmp_path / "pg").start()
        try:
            assert picks[0] == taken and server.port != taken
            assert _listener_pid(server.port)
            assert f":{server.port}/" in server.dsn
        finally:
            server.stop()


def test_postgres_on_a_configured_port_that_is_taken_fails_and_says_so(tmp_path):
    with _taken() as port:
        server = PostgresServer(tmp_path / "pg", port=port)
        with pytest.raises(PortTaken, match="Address already in use"):
            server.start()
        assert server.port == port


async def test_served_listens_on_the_port_it_bound_itself():
    from fastapi import FastAPI

    from tests.utils.servers import Served

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    served = Served(app)
    port = int(served.url.rsplit(":", 1)[1])
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))  # held from construction on: nobody can take it before start()
    await served.start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            assert (await client.get("/ping")).json() == {"pong": "yes"}
    finally:
        await served.stop()


async def test_a_fresh_postgres_starts_from_the_sessions_initdb_template(tmp_path, monkeypatch, pg_initdb_template):
    import asyncpg

    def no_initdb(*_args, **_kwargs):
        raise AssertionError("initdb ran although the session's template is set")

    monkeypatch.setattr(runtime, "_initdb", no_initdb)
    server = PostgresServer(tmp_path / "pg").start()
    try:
        conn = await asyncpg.connect(server.dsn)  # the database made, the superuser's password required over TCP
        try:
            assert await conn.fetchval("SELECT current_user") == "madoguchi"
        finally:
            await conn.close()
    finally:
        server.stop()
    assert not (pg_initdb_template / "pgdata" / "postmaster.pid").exists()  # the template itself never runs
