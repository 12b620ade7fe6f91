"""Credentials on the bus (issue 15 §5): the embedded nats-server lets no client in without a user
and password, and each identity may publish only its own subjects. The session's server runs this
way, so every other test runs with credentials on (each service app as its own identity)."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats import errors as nats_errors

from madoguchi_shared import subjects
from madoguchi_shared import bus, natsauth
from madoguchi_shared.events import dump_event
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.events.device import Heartbeat
from madoguchi_shared.events.supervision import ProcessRestarted

pytestmark = pytest.mark.asyncio


async def _refused_at_connect(address: str, **auth) -> None:
    with pytest.raises((nats_errors.Error, OSError)):
        nc = await nats.connect(address, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, **auth)
        await nc.close()


async def test_a_client_without_credentials_or_with_a_wrong_password_cannot_connect(nats_server):
    await _refused_at_connect(nats_server.address)
    await _refused_at_connect(nats_server.address, user="desk", password="not-the-password")
    await _refused_at_connect(nats_server.address, user="nobody", password="nothing")


class _Client:
    """A connection as one identity that records the server's permission refusals."""

    def __init__(self):
        self.refusals: list[str] = []

    async def connect(self, address: str, identity: natsauth.Identity):
        async def on_error(exc: Exception) -> None:
            self.refusals.append(str(exc))

        self.nc = await nats.connect(address, error_cb=on_error, **identity.connect_options())
        self.js = self.nc.jetstream(timeout=1.0)
        return self

    async def refused(self, subject: str, data: bytes = b"{}") -> bool:
        """True when the publish is refused (no ack: the server dropped it with a permissions error)."""
        before = len(self.refusals)
        try:
            await self.js.publish(subject, data)
        except (nats_errors.TimeoutError, nats_errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
            await asyncio.sleep(0.05)
            return len(self.refusals) > before and "permissions violation" in self.refusals[-1].lower()
        return False


def _heartbeat(municipality: str, device: str) -> Heartbeat:
    return Heartbeat(
        municipality=municipality,
        device_id=device,
        ward="chuo",
        desk="chuo-1",
        agent_version="t",
        policy_version=0,
        outbox_depth=0,
        outbox_bytes=0,
        link_up=True,
        uptime_s=1,
    )


async def test_a_laptop_credential_publishes_only_to_its_own_subject(nats_server, data_dir, nc, municipality):
    identity = natsauth.issue_device(data_dir, "cred-pc-1", municipality, desk="chuo-1")
    nats_server.reload()
    await asyncio.sleep(0.3)  # the reload is asynchronous
    laptop = await _Client().connect(nats_server.address, identity)
    try:
        own = _heartbeat(municipality, "cred-pc-1")
        ack = await bus.append(laptop.js, own)
        assert ack.stream == "MG_DEVICE"
        other = _heartbeat(municipality, "cred-pc-2")  # another laptop's subject
        assert await laptop.refused(other.subject, dump_event(other))
        assert await laptop.refused(_heartbeat("011002", "cred-pc-1").subject)  # its own id in another municipality
        for subject in (
            subjects.aggregate_subject("desk", municipality, "deskday", "chuo-1_2021-04-06"),
            subjects.aggregate_subject("admin", municipality, "staff", "S1"),
            subjects.aggregate_subject("audit", municipality, "alert", "x"),
            subjects.aggregate_subject("calls", municipality, "call", "x"),
            subjects.aggregate_subject("report", municipality, "report", "x"),
            "$JS.API.STREAM.DELETE.MG_DEVICE",
            f"$KV.mg_policy.{municipality}.desk",
        ):
            assert await laptop.refused(subject), subject
    finally:
        await laptop.nc.close()
    assert [s.event.event_id for s in await bus.load(nc, own.subject)] == [own.event_id]
    assert await bus.load(nc, other.subject) == []


async def test_service_and_supervisor_identities_publish_only_their_own_streams(
    nats_server, data_dir, nc, municipality
):
    desk = await _Client().connect(nats_server.address, natsauth.load(data_dir, "desk"))
    supervisor = await _Client().connect(nats_server.address, natsauth.load(data_dir, "supervisor"))
    try:
        item = TrainingItemCompleted(municipality=municipality, staff_id="S1", item="system", hours=1)
        await bus.append(desk.js, item)  # the admin stream (logins, refusals): every service
        call = subjects.aggregate_subject("calls", municipality, "call", str(item.event_id))
        assert await desk.refused(call, dump_event(item))  # the phone line's stream is not the desk's
        assert await desk.refused("$JS.API.STREAM.DELETE.MG_DESK")
        # a new limit on a stream of record would make the server drop its messages (deny_delete does not
        # stop that): no service may update one
        assert natsauth.LOG_STREAMS == bus.LOG_STREAMS
        before = {s: (await nc.jetstream().stream_info(s)).state.messages for s in bus.LOG_STREAMS}
        for stream in bus.LOG_STREAMS:
            config = (await nc.jetstream().stream_info(stream)).config
            config.max_msgs, config.max_msgs_per_subject = 1, 1
            assert await desk.refused(f"$JS.API.STREAM.UPDATE.{stream}", json.dumps(config.as_dict()).encode()), stream
        for stream in bus.LOG_STREAMS:
            info = await nc.jetstream().stream_info(stream)
            assert info.config.max_msgs in (-1, None) and info.state.messages >= before[stream], stream
        with pytest.raises(nats.js.errors.APIError):  # a purge gets through to the stream, which refuses it
            await desk.js.purge_stream("MG_DESK")
        restarted = ProcessRestarted(
            municipality=municipality, process="desk", restarts=1, down_seconds=1, backoff_seconds=0.5
        )
        await bus.append(supervisor.js, restarted)
        assert await supervisor.refused(item.subject, dump_event(item))
    finally:
        await desk.nc.close()
        await supervisor.nc.close()
    assert await bus.load(nc, call) == []
    assert (await nc.jetstream().stream_info("MG_DESK")).config.name == "MG_DESK"  # not deleted
