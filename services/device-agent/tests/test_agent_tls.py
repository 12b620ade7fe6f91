"""The agent over TLS (issue 18 §5): a nats-server with TLS from a generated CA that verifies
clients and requires a user and password. The agent with the CA, its client certificate and its
laptop credential connects and drains its journal; an agent that does not know the CA, or has no
client certificate, is refused, says why at WARNING, and keeps its events for later."""

from __future__ import annotations

import asyncio

import pytest
from agent_harness import agent_subject, make_config, of_type, running_agent

from madoguchi_agent.config import AgentConfig
from madoguchi_shared import bus, natsauth, tls
from madoguchi_shared.cluster import node_config
from madoguchi_shared.events.device import MonitoringGap
from madoguchi_shared.runtime import NatsServer


@pytest.fixture
def tls_bus(tmp_path, municipality):
    material = tls.generate(tmp_path / "tls", clients=("admin", "chuo-1-pc"))
    data = tmp_path / "data"
    natsauth.ensure(data, "admin", "admin")
    identity = natsauth.ensure(
        data, natsauth.device_user("chuo-1-pc"), "device", municipality=municipality, device="chuo-1-pc", desk="chuo-1"
    )
    credential = tmp_path / "nats.json"
    credential.write_text(identity.credential())
    server = NatsServer(tmp_path / "nats", config=node_config(0, [], material), auth_dir=data).start()
    yield server, material, credential
    server.stop()


async def _stored(server, material, municipality) -> list:
    admin = material.clients["admin"]
    nc = await bus.connect(
        server.url, "tls-check", first_connect_timeout=5, tls=tls.client_context(material.ca, admin.cert, admin.key)
    )
    try:
        await bus.ensure_streams(nc.jetstream())
        return [s.event for s in await bus.load(nc, agent_subject(municipality))]
    finally:
        await nc.close()


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_the_agent_connects_over_tls_and_one_without_the_ca_is_refused(tls_bus, municipality, tmp_path):
    server, material, credential = tls_bus
    await _stored(server, material, municipality)  # the streams exist
    laptop = material.clients["chuo-1-pc"]
    assert server.address.startswith("nats://127.0.0.1:")

    # without the CA: the server's certificate is not trusted, nothing is sent, the reason is a WARNING
    stranger = make_config(
        tmp_path / "no-ca",
        server.address,
        municipality,
        nats_credential=credential,
        nats_tls_cert=laptop.cert,
        nats_tls_key=laptop.key,
    )
    async with running_agent(stranger) as agent:
        await _until(lambda: _true(agent._connect_failures >= 2))
        assert agent.js is None
        gaps = [
            MonitoringGap.model_validate_json(r.data)
            for r in agent.outbox.peek(1000)
            if r.type == "device.monitoring_gap"
        ]
        # the reason, for HQ's "agent cannot connect" once the event gets there (and at WARNING in the log)
        assert [(g.monitor, g.reason) for g in gaps] == [("link", "connect_failed")]
        assert gaps[0].detail.startswith("SSLCertVerificationError")
    # with the CA but no client certificate: the server verifies clients and refuses
    anonymous = make_config(
        tmp_path / "no-cert", server.address, municipality, nats_credential=credential, nats_tls_ca=material.ca
    )
    async with running_agent(anonymous) as agent:
        await _until(lambda: _true(agent._connect_failures >= 2))
        assert agent.js is None
    assert await _stored(server, material, municipality) == []

    # with the CA, its certificate and key and its laptop credential: connected, journal drained
    config = make_config(
        tmp_path / "ok",
        server.address,
        municipality,
        nats_credential=credential,
        nats_tls_ca=material.ca,
        nats_tls_cert=laptop.cert,
        nats_tls_key=laptop.key,
    )
    async with running_agent(config):
        await _until(lambda: _has(server, material, municipality, "device.heartbeat"))
    events = await _stored(server, material, municipality)
    assert of_type(events, "device.agent_started") and of_type(events, "device.agent_stopped")
    assert not of_type(events, "device.monitoring_gap")  # this agent never failed to connect


async def test_the_agent_signs_in_with_its_nkey_over_tls(municipality, tmp_path):
    """A NATS user defined by the laptop's public nkey (with the laptop's permissions), over TLS
    with client certificates: the agent with the seed drains; one with another seed is refused."""
    import json
    import os

    import nkeys

    material = tls.generate(tmp_path / "tls", clients=("admin", "chuo-1-pc"))

    def seed_file(name: str) -> tuple:
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        path = tmp_path / f"{name}.nk"
        path.write_bytes(seed)
        path.chmod(0o600)
        return path, nkeys.from_seed(bytearray(seed)).public_key.decode()

    seed, public = seed_file("chuo-1-pc")
    other_seed, _ = seed_file("other")
    laptop = natsauth.Identity(
        user=public, password="", kind="device", municipality=municipality, device="chuo-1-pc", desk="chuo-1"
    )
    users = [
        {"nkey": public, "permissions": natsauth.permissions(laptop)},
        {"user": "admin", "password": "admin-secret", "permissions": {"publish": ">", "subscribe": ">"}},
    ]
    config_text = node_config(0, [], material) + f"authorization: {json.dumps({'users': users})}\n"
    server = NatsServer(tmp_path / "nats", config=config_text).start()
    try:
        admin = material.clients["admin"]
        url = server.address.replace("nats://", "nats://admin:admin-secret@")
        nc = await bus.connect(
            url, "nkey-check", first_connect_timeout=5, tls=tls.client_context(material.ca, admin.cert, admin.key)
        )
        await bus.ensure_streams(nc.jetstream())
        cert = dict(
            nats_tls_ca=material.ca,
            nats_tls_cert=material.clients["chuo-1-pc"].cert,
            nats_tls_key=material.clients["chuo-1-pc"].key,
        )
        stranger = make_config(tmp_path / "other", server.address, municipality, nats_nkey_seed=other_seed, **cert)
        async with running_agent(stranger) as agent:
            await _until(lambda: _true(agent._connect_failures >= 2))
            assert agent.js is None
        config = make_config(tmp_path / "ok", server.address, municipality, nats_nkey_seed=seed, **cert)
        async with running_agent(config):

            async def heartbeat() -> bool:
                return bool(
                    of_type([s.event for s in await bus.load(nc, agent_subject(municipality))], "device.heartbeat")
                )

            await _until(heartbeat)
        await nc.close()
    finally:
        server.stop()


def test_a_certificate_without_its_key_is_refused_in_the_config(tmp_path):
    with pytest.raises(ValueError, match="nats_tls_cert and nats_tls_key go together"):
        AgentConfig(device_id="pc", municipality="011002", ward="chuo", desk="chuo-1", nats_tls_cert=tmp_path / "c.pem")


async def _true(value: bool) -> bool:
    return value


async def _has(server, material, municipality, type_: str) -> bool:
    return bool(of_type(await _stored(server, material, municipality), type_))
