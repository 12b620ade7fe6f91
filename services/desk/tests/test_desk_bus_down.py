"""A command while the bus is down is a 503 with Retry-After and a Japanese problem document,
never a 500; nothing is stored, and the service serves again as soon as NATS is back (issue 15 §4)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path

from desk_api import FakeClock, auth, desk_app, ok

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.runtime import NatsServer
from madoguchi_shared.subjects import aggregate_subject


def _unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503 and body["title"] == "一時的に利用できません" and "メッセージバス" in body["detail"]


def _stop_process(pid: int) -> None:
    """SIGSTOP, then wait until every thread of the process is stopped: kill() returns before a busy
    thread on another core has stopped, and such a thread could still answer one last publish."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(500):
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"nats-server {pid} did not stop")


async def _wait_connected(app, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not app.state.nc.is_connected:
            await asyncio.sleep(0.05)


async def test_commands_get_503_with_retry_after_while_nats_is_stopped_then_serve_again(
    settings, municipality, tmp_path
):
    server = NatsServer(tmp_path / "nats").start()
    s = settings.model_copy(update={"nats_url": server.url})
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    try:
        async with desk_app(s, municipality, clock) as (app, client):
            s1 = await auth(app.state.js, s, municipality, "S1", Role.supporter, ("kita",))  # an account on this bus
            assert ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)["ticket_no"] == 1

            server.stop()  # NATS stopped: the connection is lost at once
            for _ in range(3):
                _unavailable(await client.post("/v1/desks/kita-1/tickets", headers=s1))
            assert (await client.get("/readyz")).status_code == 503

            server.start()  # same port, same store
            await _wait_connected(app)
            assert ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)["ticket_no"] == 2

            # a server that stops answering without closing the connection: the ack never comes. One
            # server has no election to wait out: the desk hears 503 within a few seconds (it waited ~16 s)
            _stop_process(server.proc.pid)
            try:
                started = time.monotonic()
                _unavailable(await client.post("/v1/desks/kita-1/tickets", headers=s1))
                waited = time.monotonic() - started
                # the next command while it stays frozen: as quick (no read of the aggregate hangs longer)
                started = time.monotonic()
                _unavailable(await client.post("/v1/desks/kita-1/tickets", headers=s1))
                waited_again = time.monotonic() - started
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert waited < 6.5, waited
            assert waited_again < 6.5, waited_again
            await _wait_connected(app)
            issued = ok(await client.post("/v1/desks/kita-1/tickets", headers=s1), 201)["ticket_no"]

            nc = await bus.connect(server.url, name="check")
            try:
                stored = await bus.load(nc, aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06"))
            finally:
                await nc.close()
            numbers = [x.event.ticket_no for x in stored if x.event.type == "desk.ticket_issued"]
            # the refused commands stored nothing; the one whose ack timed out may have landed (its
            # number is then taken, never duplicated)
            assert numbers == list(range(1, issued + 1)) and issued in (3, 4, 5)
    finally:
        server.stop()


async def test_a_refusal_while_the_bus_is_frozen_answers_at_once_and_is_recorded_after(
    settings, municipality, tmp_path
):
    """A 403 records admin.access_denied; with a frozen bus (the publish waits for its timeout,
    ~16 s) the 403 does not wait: it answers within a few seconds, and the record is stored in the
    background as soon as the bus answers again."""
    server = NatsServer(tmp_path / "nats").start()
    s = settings.model_copy(update={"nats_url": server.url})
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    try:
        async with desk_app(s, municipality, clock) as (app, client):
            s1 = await auth(app.state.js, s, municipality, "S1", Role.supporter, ("kita",))
            _stop_process(server.proc.pid)
            try:
                started = time.monotonic()
                refused = await client.post("/v1/desks/chuo-1/tickets", headers=s1)  # not the supporter's ward
                waited = time.monotonic() - started
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert refused.status_code == 403, refused.text
            assert waited < 8, waited
            await _wait_connected(app)
            nc = await bus.connect(server.url, name="check")
            try:
                async with asyncio.timeout(60):
                    while True:
                        stored = await bus.load(nc, aggregate_subject("admin", municipality, "access", "S1"))
                        if any(x.event.type == "admin.access_denied" for x in stored):
                            break
                        await asyncio.sleep(0.2)
            finally:
                await nc.close()
    finally:
        server.stop()
