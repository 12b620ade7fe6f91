"""End to end, as an operator checks it: the desk PC's agent → NATS → the audit log → an HQ alert,
for a program, a file, a card, a USB stick, an agent stopped while open and a silent PC.

Everything is real except the USB tree (a simulated sysfs tree: no device can be plugged in
here): the agent (in this process), nats-server, PostgreSQL, the audit writer and alert engine,
pcscd with the virtual reader and vicc as the card. Each step records the time from what the
operator does to the HQ alert arriving on mg.audit.<municipality>.alert.*; run with `-s` to see
the timeline (the figures are reported, not asserted: speed belongs to `make bench`).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

AGENT_TESTS = Path(__file__).resolve().parents[1] / "services" / "device-agent" / "tests"
sys.path.insert(0, str(AGENT_TESTS))

from agent_harness import Pcscd, VirtualCard, make_config, running_agent, write_policy_cache  # noqa: E402

from madoguchi_agent.policy import Policy, WatchedFolder  # noqa: E402
from madoguchi_audit import schema  # noqa: E402
from madoguchi_audit.alert_engine import AlertEngine  # noqa: E402
from madoguchi_audit.config import AuditSettings  # noqa: E402
from madoguchi_audit.ingest import Ingest  # noqa: E402
from madoguchi_shared import bus, subjects  # noqa: E402
from madoguchi_shared.calendar import TOKYO  # noqa: E402
from madoguchi_shared.events import parse_event  # noqa: E402
from madoguchi_shared.events.desk import DayStarted, deskday_id  # noqa: E402
from madoguchi_shared.pii import my_number_check_digit  # noqa: E402

MY_NUMBER = "12345678901" + str(my_number_check_digit("12345678901"))
SILENCE_S = 10  # the smallest silence the audit settings accept


def _sysfs_stick(root: Path, port: str) -> None:
    d = root / port
    d.mkdir(parents=True)
    for name, value in (("idVendor", "0781"), ("idProduct", "5583"), ("bDeviceClass", "00"), ("authorized", "1")):
        (d / name).write_text(value + "\n")
    (root / f"{port}:1.0").mkdir()
    (root / f"{port}:1.0" / "bInterfaceClass").write_text("08\n")


@pytest.fixture
def pcsc(tmp_path):
    try:
        daemon = Pcscd(tmp_path / "pcscd.log").start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield daemon
    daemon.stop()


async def test_event_to_hq_alert_timeline(nats_server, nc, js, pg_pool, settings, municipality, tmp_path, pcsc):
    await bus.ensure_streams(js)
    audit = AuditSettings(
        data_dir=tmp_path / "audit",
        municipality=municipality,
        schema_name=f"audit_{municipality}",
        municipalities=[municipality],
        checkpoint_every=1000,
        checkpoint_seconds=5,
        heartbeat_silence_seconds=SILENCE_S,
    )
    await schema.migrate_pool(pg_pool, audit.schema_name)
    engine = AlertEngine(audit, pg_pool, js, tick_every=0.2)
    ingest = Ingest(audit, nc, pg_pool, on_commit=engine.notify)
    tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(engine.run())]

    arrived: dict[str, list[tuple[float, object]]] = {}
    received_at: dict[object, datetime] = {}

    async def on_alert(msg) -> None:
        event = parse_event(msg.data)
        if event.type == "audit.alert_raised":
            arrived.setdefault(event.rule, []).append((time.monotonic(), event))
            received_at[event.event_id] = datetime.now(UTC)

    sub = await nc.subscribe(subjects.pattern("audit", municipality, "alert"), cb=on_alert)

    async def alert(rule: str, since: float, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in arrived.get(rule, []):
                if at >= since:
                    return at - since, event
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {rule} alert within {timeout} s; got {sorted(arrived)}")

    # the desk is open today (its day_started event), whatever the calendar says about today
    today = datetime.now(TOKYO).date()
    await bus.append(
        js, DayStarted(municipality=municipality, ward="chuo", desk="chuo-1", deskday_id=deskday_id("chuo-1", today))
    )

    desk_folder = tmp_path / "Desktop"
    desk_folder.mkdir()
    usb_root = tmp_path / "sys-usb"
    usb_root.mkdir()
    tool = tmp_path / "unapproved-tool"
    shutil.copy("/bin/sleep", tool)
    go = tmp_path / "go"
    session = subprocess.Popen(["/bin/sh", "-c", f"while [ ! -e '{go}' ]; do sleep 0.02; done; '{tool}' 30"])
    config = make_config(
        tmp_path,
        nats_server.url,
        municipality,
        process_root_pids=(session.pid,),
        monitors={"processes": True, "files": True, "usb": True, "card": True},
        sysfs_usb_root=usb_root,
    )
    write_policy_cache(
        config,
        Policy(
            watched_folders=(WatchedFolder(label="desktop", path=str(desk_folder)),),
            usb_scan_s=0.2,
            card_left_s=1.0,
            heartbeat_s=0.5,
        ),
    )
    timeline: dict[str, float] = {}
    card = VirtualCard(tmp_path / "vicc.log")
    try:
        async with running_agent(config) as agent:
            while agent.process_source == "none":
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # the watches are in place

            t0 = time.monotonic()
            go.touch()  # the session starts a program outside the allow-list
            timeline["program: start -> application_violation"], _ = await alert("application_violation", t0)

            t0 = time.monotonic()
            (desk_folder / "list.csv").write_text(f"番号\n{MY_NUMBER}\n", encoding="utf-8")
            timeline["file: written -> personal_data_file"], _ = await alert("personal_data_file", t0)

            t0 = time.monotonic()
            _sysfs_stick(usb_root, "1-2")
            timeline["USB stick: attached -> usb_violation"], _ = await alert("usb_violation", t0)

            t0 = time.monotonic()
            card.insert()  # no visit in progress: left in the reader after card_left_s = 1 s
            took, event = await alert("card_left_in_reader", t0)
            timeline["card: inserted -> card_left_in_reader (limit 1 s)"] = took
            source = await bus.load(nc, subjects.aggregate_subject("device", municipality, "agent", "chuo-1-pc"))
            left = [s.event for s in source if s.event.type == "device.card_left_in_reader"][0]
            timeline["card: agent's card_left_in_reader event -> HQ alert"] = (
                received_at[event.event_id] - left.occurred_at
            ).total_seconds()
            t_stop = time.monotonic()
        timeline["agent stopped while open -> agent_stopped"], _ = await alert("agent_stopped", t_stop)
        beats = [
            s.event
            for s in await bus.load(nc, subjects.aggregate_subject("device", municipality, "agent", "chuo-1-pc"))
            if s.event.type == "device.heartbeat"
        ]
        last_beat = beats[-1].occurred_at
        took, silent = await alert("desk_pc_silent", t_stop, timeout=SILENCE_S + 20)
        timeline[f"silent PC: last heartbeat -> desk_pc_silent (threshold {SILENCE_S} s)"] = (
            received_at[silent.event_id] - last_beat
        ).total_seconds()
        assert silent.device_id == "chuo-1-pc"
    finally:
        card.remove()
        session.kill()
        session.wait()
        await sub.unsubscribe()
        ingest.stop()
        engine.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)

    print("\nevent -> HQ alert (agent -> NATS -> audit log -> alert engine -> mg.audit.*.alert.*):")
    for step, seconds in timeline.items():
        print(f"  {step:62s} {seconds:7.3f} s")
    assert len(timeline) == 7
