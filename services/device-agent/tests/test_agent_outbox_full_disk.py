"""The journal on a full disk (issue 18 §4): a real, small file system (tmpfs, mounted in a mount
namespace of its own with `unshare -Urm`, so no root is needed) is filled up by another file while
the agent's journal holds 2,000 unsent events. The agent says "critical", refuses heartbeats but
keeps a violation and a card alert, drains the whole journal to JetStream while the disk is still
full (deleting sent rows needs no new space), and writes its reserve again, clears the alarm and
writes heartbeats again once the space is back."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

from agent_harness import agent_subject

from madoguchi_shared import bus

SCENARIO = Path(__file__).with_name("full_disk_scenario.py")


async def test_a_full_disk_keeps_critical_events_says_critical_and_drains(nats_server, nc, municipality, tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is needed for the full-disk test"
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mount = 'mount -t tmpfs -o size=6m tmpfs "$0" && exec "$1" "$2" "$0" "$3" "$4"'
    proc = await asyncio.create_subprocess_exec(
        unshare,
        "-Urm",
        "sh",
        "-c",
        mount,
        str(folder),
        sys.executable,
        str(SCENARIO),
        nats_server.url,
        municipality,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    log = stdout.decode() + stderr.decode()

    assert out["reserve_at_start"] == 512 * 1024
    assert out["free_after_fill"] < 4096 and out["disk_full"], out  # really full, and the agent noticed
    assert out["heartbeats_refused"] == 5  # low-value events are refused...
    assert out["violation_id"] and out["card_id"]  # ...what must never be lost is kept
    # "critical" is said at once, as an event and in the log, with the refusals counted
    assert ("critical", True) in [(level, full) for level, full, _ in out["alarms_while_full"]], out
    assert "outbox.size_alarm" in log and "critical" in log and "outbox.disk_full_reserve_used" in log
    assert out["shed_counted"] >= 5
    # with not even the reserve left, a violation is lost: counted, and "critical" goes straight to the bus
    assert out["violations_until_nothing_left"] < 20_000 and out["lost_counted"] == 1
    assert "outbox.lost_on_full_disk" in log and "outbox.alarm_sent_directly" in log
    # the whole journal went out while the disk was still full
    assert out["depth_after_drain"] == 0 and out["still_full_when_drained"], out
    assert out["free_after_drain"] >= out["free_before_drain"], out  # the drain took no new space
    # space back: reserve rewritten, alarm cleared, heartbeats written again
    assert not out["disk_full_after_space"] and out["reserve_after_space"] == 512 * 1024
    assert out["heartbeat_after_space"]
    assert out["alarms_after_space"][-1][0] == "cleared", out

    stored = [s.event for s in await bus.load(nc, agent_subject(municipality))]
    ids = {str(e.event_id) for e in stored}
    assert out["violation_id"] in ids and out["card_id"] in ids
    assert sum(1 for e in stored if e.type == "device.synthetic_load") == 2000  # none lost to the full disk
    # every violation the journal took arrived (the one it could not take is the counted loss)
    assert sum(1 for e in stored if e.type == "device.process_violation") == 1 + out["violations_until_nothing_left"]
    assert len(ids) == len(stored)  # none twice
    alarms = [e for e in stored if e.type == "device.outbox_size_alarm"]
    assert any(a.level == "critical" and a.disk_full for a in alarms) and alarms[-1].level == "cleared"
    assert any(a.level == "critical" and a.shed >= 1 for a in alarms[1:-1])  # the one said directly, with the loss
