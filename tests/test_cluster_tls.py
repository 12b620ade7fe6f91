"""TLS off the box and the loopback cluster of `make cluster`.

- A NATS node with TLS from a generated CA (clients verified): a client that does not know the CA,
  one in clear text, and one without a client certificate are all refused; a client with the CA and
  its certificate connects and appends.
- Three TLS NATS nodes (routes over TLS, JetStream R3) and PostgreSQL primary + streaming standby:
  an event appended through the bus is stored on three nodes, and its row written to the primary
  is read back from the standby.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request

import asyncpg
import pytest

from madoguchi_shared import bus, tls
from madoguchi_shared.cluster import StandbyPostgres, TlsNatsCluster, node_config, tls_env
from madoguchi_shared.errors import BusUnreachable
from madoguchi_shared.events.admin import StaffAccountCreated
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import NatsServer, PostgresServer
from madoguchi_shared.settings import Settings


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    return tls.generate(tmp_path_factory.mktemp("tls"), clients=("desk", "stranger"))


@pytest.fixture
def tls_node(tmp_path, material):
    node = NatsServer(tmp_path / "n", config=node_config(0, [], material)).start()
    yield node
    node.stop()


async def test_a_client_without_the_ca_or_a_certificate_is_refused(tls_node, material, tmp_path):
    desk = material.clients["desk"]
    # no CA: the system's roots do not know the loopback CA
    with pytest.raises(BusUnreachable):
        await bus.connect(
            tls_node.url, "no-ca", first_connect_timeout=3, tls=tls.client_context(None, desk.cert, desk.key)
        )
    # clear text: the server requires TLS
    with pytest.raises(BusUnreachable):
        await bus.connect(tls_node.url, "clear", first_connect_timeout=3, tls=None)
    # the CA but no client certificate: the server verifies clients
    with pytest.raises(BusUnreachable):
        await bus.connect(tls_node.url, "no-cert", first_connect_timeout=3, tls=tls.client_context(material.ca))
    # a certificate from another CA
    other = tls.generate(tmp_path / "other", clients=("desk",))
    with pytest.raises(BusUnreachable):
        await bus.connect(
            tls_node.url,
            "other-ca",
            first_connect_timeout=3,
            tls=tls.client_context(material.ca, other.clients["desk"].cert, other.clients["desk"].key),
        )

    # the settings a service reads from its environment: CA, certificate and key
    settings = Settings(**{k.removeprefix("MADOGUCHI_").lower(): v for k, v in tls_env(material, "desk").items()})
    nc = await bus.connect(tls_node.url, "desk", first_connect_timeout=5, tls=settings.nats_tls())
    try:
        assert nc._transport._io_writer.get_extra_info("ssl_object") is not None  # the connection is TLS
        js = nc.jetstream()
        await bus.ensure_streams(js)
        event = StaffAccountCreated(municipality="011002", staff_id="S-TLS", roles=(Role.supporter,))
        ack = await bus.append(js, event, expected=0)
        assert [s.event.event_id for s in await bus.load(nc, event.subject)] == [event.event_id]
        assert ack.seq >= 1
    finally:
        await nc.close()


async def test_bus_connect_takes_tls_from_the_environment(tls_node, material, monkeypatch, caplog):
    for key, value in tls_env(material, "desk").items():
        monkeypatch.setenv(key, value)
    nc = await bus.connect(tls_node.url, "from-env", first_connect_timeout=5)
    try:
        await nc.flush()
        assert nc.is_connected
        assert nc._transport._io_writer.get_extra_info("ssl_object") is not None
    finally:
        await nc.close()
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if "eof_received" in r.getMessage()]  # no noise when it closes


async def test_three_tls_nodes_and_a_streaming_standby(tmp_path, material):
    cluster = TlsNatsCluster(tmp_path / "nats", material).start()
    primary = PostgresServer(tmp_path / "pg-primary").start()
    standby = None
    nc = None
    try:
        standby = StandbyPostgres(tmp_path / "pg-standby", primary).start()
        context = tls.client_context(material.ca, material.clients["desk"].cert, material.clients["desk"].key)
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # until the cluster has a JetStream meta leader
            try:
                nc = await bus.connect(cluster.url, "cluster-tls", first_connect_timeout=5, tls=context)
                await bus.ensure_streams(nc.jetstream(), replicas=3)
                break
            except Exception:
                if nc is not None:
                    await nc.close()
                    nc = None
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        js = nc.jetstream()
        event = StaffAccountCreated(municipality="011002", staff_id="S-R3", roles=(Role.manager,))
        await bus.append(js, event, expected=0)
        info = await js.stream_info("MG_ADMIN")
        assert info.config.num_replicas == 3
        assert info.cluster.leader and len(info.cluster.replicas) == 2
        # each node routes to the two others, and a route port asks for TLS before anything else
        for node, route_port in zip(cluster.nodes, cluster.route_ports, strict=True):
            for _ in range(100):
                with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor_port}/routez") as resp:
                    peers = {r["remote_name"] for r in json.loads(resp.read())["routes"] or []}
                if len(peers) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(peers) == 2, peers
            with socket.create_connection(("127.0.0.1", route_port), timeout=2) as raw:
                try:  # a route port without TLS greets with INFO at once; this one says nothing in clear text
                    greeting = raw.recv(5)
                except TimeoutError:
                    greeting = b""
            assert greeting != b"INFO ", "a route port speaks clear text"
            route_client = tls.client_context(material.ca, material.server.cert, material.server.key)
            with (
                socket.create_connection(("127.0.0.1", route_port), timeout=5) as raw,
                route_client.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
            ):
                assert wrapped.version() in ("TLSv1.2", "TLSv1.3")

        stored = await bus.load(nc, event.subject)
        conn = await asyncpg.connect(primary.dsn)
        try:
            await conn.execute("CREATE TABLE staff_seen (event_id uuid PRIMARY KEY, seq bigint NOT NULL)")
            await conn.execute("INSERT INTO staff_seen VALUES ($1, $2)", stored[0].event.event_id, stored[0].seq)
        finally:
            await conn.close()
        replica = await asyncpg.connect(standby.dsn)
        try:
            assert await replica.fetchval("SELECT pg_is_in_recovery()")
            for _ in range(600):  # replication is asynchronous: within 30 s on a loaded machine
                try:
                    seq = await replica.fetchval("SELECT seq FROM staff_seen WHERE event_id = $1", event.event_id)
                except asyncpg.UndefinedTableError:
                    seq = None
                if seq is not None:
                    break
                await asyncio.sleep(0.05)
            assert seq == stored[0].seq
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await replica.execute("INSERT INTO staff_seen VALUES (gen_random_uuid(), 0)")
        finally:
            await replica.close()
    finally:
        if nc is not None:
            await nc.close()
        if standby is not None:
            standby.stop()
        primary.stop()
        cluster.stop()


def test_deploy_nats_configs_are_valid_as_written(tmp_path, material):
    """deploy/nats/node*.conf with accounts.conf: only the certificate and store paths moved to a temp
    folder, the passwords from the environment (unquoted, so NATS substitutes them)."""
    import os
    import subprocess
    from pathlib import Path

    from madoguchi_shared.runtime import nats_server_binary

    deploy = Path(__file__).resolve().parent.parent / "deploy" / "nats"
    accounts = (deploy / "accounts.conf").read_text()
    assert re.findall(r"password: (\S+),", accounts) and all(
        p.startswith("$") for p in re.findall(r"password: (\S+),", accounts)
    )  # unquoted: substituted
    (tmp_path / "accounts.conf").write_text(accounts)
    # every password the file names comes from the environment, as an operator's unit file gives it
    env = {**os.environ, **{p[1:]: "s3cret" for p in re.findall(r"password: (\S+),", accounts)}}
    for n in (1, 2, 3):
        text = (deploy / f"node{n}.conf").read_text()
        assert "sync_interval: always" in text and text.count("verify: true\n") == 2
        text = (
            text.replace("/etc/madoguchi/tls/ca.pem", str(material.ca))
            .replace("/etc/madoguchi/tls/server.pem", str(material.server.cert))
            .replace("/etc/madoguchi/tls/server.key", str(material.server.key))
            .replace("/var/lib/madoguchi/nats", str(tmp_path / "store"))
        )
        conf = tmp_path / f"node{n}.conf"
        conf.write_text(text)
        done = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    # a certificate path that does not exist makes the check fail (the check can fail)
    (tmp_path / "broken.conf").write_text(text.replace(str(material.ca), str(tmp_path / "missing.pem")))
    done = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(tmp_path / "broken.conf")], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
