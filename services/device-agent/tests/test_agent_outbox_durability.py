"""The outbox's promise end to end: the nats-server stops while the agent produces 10,000 events,
the agent is `kill -9`ed once while it drains after the server is back, both restart, and the
stream holds exactly 10,000 distinct events: nothing lost, nothing doubled.

The agent runs as a real process (python -m madoguchi_agent run) so it can be SIGKILLed; the test
has its own nats-server on a fixed port and store so it can stop and restart it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent_harness import agent_subject, make_config

from madoguchi_agent.outbox import Outbox
from madoguchi_shared import bus
from madoguchi_shared.runtime import NatsServer

N = 10_000


def _start_agent(config_path: Path, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "madoguchi_agent", "run", "--config", str(config_path), *extra],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _depth(path: Path) -> int:
    outbox = Outbox(path)
    try:
        return outbox.depth()[0]
    finally:
        outbox.close()


async def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _count(url: str, subject: str, type_: str) -> int:
    nc = await bus.connect(url, "durability-count")
    try:
        return sum(1 for s in await bus.load(nc, subject) if s.event.type == type_)
    finally:
        await nc.close()


async def test_nothing_lost_nothing_doubled_across_link_loss_and_kill_9(tmp_path, municipality):
    store = tmp_path / "nats"
    server = NatsServer(store).start()  # on picked ports (picked again if taken); the restart keeps them
    port = server.port
    subject = agent_subject(municipality)
    nc = await bus.connect(server.url, "durability-setup")
    await bus.ensure_streams(nc.jetstream())
    await nc.close()

    # small batches: the drain takes many round trips, so the kill lands in the middle of it
    config = make_config(tmp_path, server.url, municipality, outbox_batch=250)
    config_path = tmp_path / "agent.json"
    config_path.write_text(config.model_dump_json())
    log = tmp_path / "agent.log"
    agent = _start_agent(config_path, log, "--load-count", str(N), "--load-rate", "2500")
    try:
        # the link is up and the first synthetic events arrive; then the server goes away mid-production
        await _wait(lambda: _nonzero(server.url, subject), 30, "first events")
        server.stop()
        await _wait(lambda: _async(b'"load.done"' in log.read_bytes()), 30, "production to end")
        offline = _depth(config.outbox_path)
        assert offline > 0

        server = NatsServer(store, port=port).start()  # same port, same store
        # kill -9 once the drain has visibly started, well before it ends
        killed_at = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            depth = _depth(config.outbox_path)
            if depth < offline:
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
                killed_at = depth
                break
            await asyncio.sleep(0.002)
        assert killed_at is not None and killed_at > 0, f"drain not caught in flight (depth {killed_at})"
        # rows the stream holds that the journal still holds: acks on the wire at the kill (each
        # row is deleted as soon as its own ack is read); sent again after restart, deduplicated
        nc = await bus.connect(server.url, "durability-kill")
        in_stream = {str(s.event.event_id) for s in await bus.load(nc, subject)}
        await nc.close()
        outbox = Outbox(config.outbox_path)
        waiting = {r.event_id for r in outbox.peek(N + 100)}
        outbox.close()
        stored_not_deleted = len(waiting & in_stream)

        agent = _start_agent(config_path, log)
        await _wait(lambda: _async(_depth(config.outbox_path) == 0), 60, "the outbox to drain")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0

        nc = await bus.connect(server.url, "durability-check")
        stored = await bus.load(nc, subject)
        await nc.close()
        synthetic = [s.event for s in stored if s.event.type == "device.synthetic_load"]
        assert len(synthetic) == N
        assert len({e.seq for e in synthetic}) == N and len({e.event_id for e in synthetic}) == N
        assert len({s.event.event_id for s in stored}) == len(stored)  # no event twice, of any type
        starts = [s.event for s in stored if s.event.type == "device.agent_started"]
        assert [e.previous_run for e in starts] == ["first", "unclean"]  # the kill -9 is on record
        print(
            f"\noffline depth {offline}, killed at depth {killed_at}, in the stream and still in the "
            f"journal {stored_not_deleted}, stream {len(stored)} events"
        )
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        server.stop()


async def _nonzero(url: str, subject: str) -> bool:
    return await _count(url, subject, "device.synthetic_load") > 0


async def _async(value: bool) -> bool:
    return value
