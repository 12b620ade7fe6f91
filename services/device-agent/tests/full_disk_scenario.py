"""The full-disk scenario of test_agent_outbox_full_disk.py, run inside its own mount namespace
(`unshare -Urm`) where DIR is a small tmpfs: a real file system that really fills up.

    python full_disk_scenario.py DIR NATS_URL MUNICIPALITY

An agent (no monitors; the scenario writes its events) fills its journal offline, another program
fills the disk, the agent goes on writing, the link comes back while the disk is still full, then
the other program's file goes. Prints one JSON line of what it saw; the test asserts on it and on
the stream.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from agent_harness import make_config

from madoguchi_agent.agent import Agent
from madoguchi_agent.outbox import drain_once
from madoguchi_shared import bus
from madoguchi_shared.events import device as ev


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path) -> None:
    """Another program writes until the disk is full (down to the last block)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 64 << 10, 4096, 512, 1):
            block = b"x" * size
            while True:
                try:
                    if os.write(fd, block) < len(block):
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def levels(agent: Agent) -> list[tuple[str, bool, int]]:
    rows = agent.outbox.peek(1_000_000)
    alarms = [ev.OutboxSizeAlarm.model_validate_json(r.data) for r in rows if r.type == "device.outbox_size_alarm"]
    return [(a.level, a.disk_full, a.shed) for a in alarms]


async def main() -> None:
    root, url, municipality = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = make_config(root, "nats://127.0.0.1:1", municipality, outbox_reserve_bytes=512 * 1024, outbox_batch=250)
    agent = Agent(config)
    out: dict = {"reserve_at_start": agent.outbox.reserve_path.stat().st_size}

    # offline: 2,000 events wait in the journal
    for start in range(0, 2000, 200):
        agent.write_many([agent.build(ev.SyntheticLoad, run_id="full-disk", seq=start + i) for i in range(200)])
    waiting = agent.outbox.depth()[0]

    fill(root / "someone-elses-file")
    out["free_after_fill"] = free_bytes(root)
    # the agent goes on: heartbeats until a write finds the disk full
    beats = 0
    while not agent.outbox.disk_full and beats < 20_000:
        agent.heartbeat()
        beats += 1
    out["beats_until_full"] = beats
    out["disk_full"] = agent.outbox.disk_full
    shed_before = agent.shed
    refused = [agent.heartbeat() for _ in range(5)]
    out["heartbeats_refused"] = sum(1 for e in refused if e is None)
    violation = agent.emit(ev.ProcessViolation, pid=4242, name="game", enforce=True, enforced=True)
    card = agent.emit(
        ev.CardLeftInReader,
        reader="Virtual PCD 00 00",
        atr="3B8F8001",
        inserted_at=datetime.now(UTC),
        reason="no_visit",
        seconds_in_reader=700.0,
    )
    out["violation_id"] = str(violation.event_id) if violation else None
    out["card_id"] = str(card.event_id) if card else None
    out["alarms_while_full"] = levels(agent)
    out["shed_counted"] = agent.shed + sum(s for _, _, s in levels(agent)) - shed_before
    out["journal_depth_full"] = agent.outbox.depth()[0]
    out["waiting_before_fill"] = waiting

    # the link comes back while the disk is still full
    nc = await bus.connect(url, "full-disk-scenario")
    js = nc.jetstream()
    agent.nc, agent.js = nc, js  # as the agent's connect loop would have it
    # someone takes the rest of the disk too, the reserve's space included: a violation can no
    # longer be written; the agent says "critical" straight to the bus instead
    fill(root / "more-of-someone-elses")
    written = 0
    while (
        written < 20_000
        and agent.emit(ev.ProcessViolation, pid=4343, name="game2", enforce=True, enforced=True) is not None
    ):
        written += 1  # the journal's own free pages and WAL take some first
    out["violations_until_nothing_left"] = written
    out["lost_counted"] = agent.lost
    await asyncio.gather(*agent._short)
    (root / "more-of-someone-elses").unlink()  # that one goes again; the disk is as full as before

    # everything drains while the disk is still full. The violations just written may still sit in
    # the WAL, and copying them into the database may grow it (what the reserve is for): settled
    # first, so the free space measured around the drain is what deleting costs.
    agent.outbox._restart_wal()
    out["free_before_drain"] = free_bytes(root)
    rounds = 0
    while agent.outbox.depth()[0] and rounds < 100:
        await drain_once(js, agent.outbox, 250, 10.0, limit=1000)
        rounds += 1
    out["depth_after_drain"] = agent.outbox.depth()[0]
    out["free_after_drain"] = free_bytes(root)
    out["still_full_when_drained"] = agent.outbox.disk_full and free_bytes(root) < config.outbox_reserve_bytes * 2

    # space comes back: the reserve is written again, the alarm clears, heartbeats are written again
    (root / "someone-elses-file").unlink()
    agent.check_disk()
    out["disk_full_after_space"] = agent.outbox.disk_full
    out["reserve_after_space"] = agent.outbox.reserve_path.stat().st_size
    out["heartbeat_after_space"] = agent.heartbeat() is not None
    out["alarms_after_space"] = levels(agent)
    while agent.outbox.depth()[0]:
        await drain_once(js, agent.outbox, 250, 10.0)
    await nc.close()
    agent.outbox.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
