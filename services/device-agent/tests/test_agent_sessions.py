"""Logon, logoff, lock and unlock (SEC-2 "every operation") from logind's D-Bus signals: a real
dbus-daemon, with a stand-in for logind (fake_logind.py: logind needs systemd as PID 1)."""

from __future__ import annotations

import asyncio

import pytest
from agent_harness import make_config, of_type, running_agent, wait_for
from fake_logind import DbusDaemon, FakeLogind


@pytest.fixture
def logind(tmp_path):
    daemon = DbusDaemon(tmp_path).start()
    fake = FakeLogind(daemon.address)
    yield daemon, fake
    fake.stop()
    daemon.stop()


async def test_logon_lock_unlock_logoff_are_recorded(nats_server, nc, municipality, tmp_path, logind):
    daemon, fake = logind
    fake.logon("1", 1000)  # already open when the agent starts: known, not reported as a logon
    config = make_config(
        tmp_path, nats_server.url, municipality, monitors={"sessions": True}, dbus_address=daemon.address
    )
    async with running_agent(config) as agent:
        for _ in range(100):
            if ("sessions", "no_logind") not in agent._gaps and agent._tasks:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # subscribed
        fake.logon("3", 0, klass="greeter")  # the login screen: not a desk user's session
        fake.logon("2", 1001)
        await wait_for(nc, municipality, lambda es: of_type(es, "device.session_changed"), what="logon")
        fake.set_locked("2", True)
        fake.set_locked("2", False)
        fake.set_locked("1", True)
        fake.logoff("2")
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.session_changed")) >= 5, what="session changes"
        )
    changes = [(e.action, e.session, e.os_uid) for e in of_type(events, "device.session_changed")]
    assert changes == [
        ("logon", "2", 1001),
        ("lock", "2", 1001),
        ("unlock", "2", 1001),
        ("lock", "1", 1000),
        ("logoff", "2", 1001),
    ]
    assert all(e.seat == "seat0" and not e.remote for e in of_type(events, "device.session_changed"))
    assert not of_type(events, "device.monitoring_gap")


async def test_no_logind_is_a_gap(nats_server, nc, municipality, tmp_path):
    config = make_config(
        tmp_path,
        nats_server.url,
        municipality,
        monitors={"sessions": True},
        dbus_address=f"unix:path={tmp_path / 'no-bus'}",
    )
    async with running_agent(config):
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.monitoring_gap"), what="gap")
    gap = of_type(events, "device.monitoring_gap")[0]
    assert (gap.monitor, gap.reason) == ("sessions", "no_logind") and gap.detail
