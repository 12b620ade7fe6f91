"""Benchmark of the device agent (issue 5): CPU share and RSS of the agent process while idle and
under 100 events/s, and the outbox drain rate after a reconnect, beside nats-py's raw
`publish_async` rate measured in the same run against the same server.

    python services/device-agent/bench_agent.py results.json [--seconds 10] [--drain-events 20000]

Targets: idle CPU under 1 % of a core, RSS under 60 MB, drain at least 5,000 events/s.
Each agent runs as its own process (`python -m madoguchi_agent run`), with the card reader (when
pcscd runs), processes, USB (an empty fake sysfs tree) and file monitors on, as on a desk PC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from madoguchi_agent.config import AgentConfig, Monitors
from madoguchi_agent.outbox import Outbox
from madoguchi_agent.policy import LoadedPolicy, Policy, WatchedFolder, policy_digest, save_cache
from madoguchi_shared import bus
from madoguchi_shared.events import dump_event
from madoguchi_shared.events import device as ev
from madoguchi_shared.runtime import NatsServer, free_port

MUNICIPALITY = "999001"


def make_config(root: Path, name: str, url: str) -> Path:
    data = root / name
    (data / "sys-usb").mkdir(parents=True)
    (data / "desktop").mkdir()
    config = AgentConfig(
        device_id=f"bench-{name}",
        municipality=MUNICIPALITY,
        ward="chuo",
        desk="chuo-1",
        nats_url=url,
        data_dir=data / "state",
        sysfs_usb_root=data / "sys-usb",
        process_users=("bench-nobody",),
        monitors=Monitors(),
    )
    policy = Policy(watched_folders=(WatchedFolder(label="desktop", path=str(data / "desktop")),))
    save_cache(config.policy_cache_path, LoadedPolicy(policy, 1, policy_digest(policy), "cache"))
    path = data / "agent.json"
    path.write_text(config.model_dump_json())
    return path


def start_agent(config: Path, *extra: str) -> subprocess.Popen:
    log = config.parent / "agent.log"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "madoguchi_agent", "run", "--config", str(config), "--log-level", "WARNING", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_agent(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def measure(proc: subprocess.Popen, warmup: float, seconds: float) -> dict:
    p = psutil.Process(proc.pid)
    time.sleep(warmup)
    t0, c0 = time.monotonic(), p.cpu_times()
    rss = 0
    end = t0 + seconds
    while time.monotonic() < end:
        rss = max(rss, p.memory_info().rss)
        time.sleep(0.25)
    t1, c1 = time.monotonic(), p.cpu_times()
    cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
    return {"cpu_percent_of_core": round(100 * cpu, 3), "rss_mb": round(rss / 2**20, 1), "seconds": round(t1 - t0, 1)}


def depth(config: AgentConfig) -> int:
    outbox = Outbox(config.outbox_path)
    try:
        return outbox.depth()[0]
    finally:
        outbox.close()


def drain_after_reconnect(root: Path, store: Path, port: int, server: NatsServer, n: int) -> tuple[dict, NatsServer]:
    """Stop the server, let the agent journal n events offline, restart it, time the drain."""
    path = make_config(root, "drain", server.url)
    config = AgentConfig.model_validate_json(path.read_text())
    server.stop()
    proc = start_agent(path, "--load-count", str(n), "--load-rate", "0")
    log = path.parent / "agent.log"
    deadline = time.monotonic() + 120
    while depth(config) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    offline = depth(config)
    server = NatsServer(store, port=port).start()
    t_restart = time.monotonic()
    first_seen = t_first = None
    while time.monotonic() < deadline:
        d = depth(config)
        now = time.monotonic()
        if first_seen is None and d < offline:
            first_seen, t_first = d, now
        if d == 0:
            break
        time.sleep(0.005)
    t_end = time.monotonic()
    stop_agent(proc)
    del log
    if first_seen is None:
        raise RuntimeError("the outbox did not drain")
    return {
        "offline_depth": offline,
        "drain_events_per_s": round(first_seen / max(t_end - t_first, 1e-6)),
        "including_reconnect_s": round(t_end - t_restart, 2),
    }, server


async def raw_publish_rate(url: str, n: int, runs: int = 3) -> float:
    """nats-py publish_async with Nats-Msg-Id, 2,000 in flight: the ceiling the drain compares to.
    Best of `runs` (this machine is shared; the best run is the client's rate, not the neighbours')."""
    return max([await _raw_run(url, n, f"raw{r}") for r in range(runs)])


async def _raw_run(url: str, n: int, run_id: str) -> float:
    nc = await bus.connect(url, "bench-raw")
    js = nc.jetstream()
    events = [
        ev.SyntheticLoad(
            municipality=MUNICIPALITY, ward="chuo", desk="chuo-1", device_id="bench-raw", run_id=run_id, seq=i
        )
        for i in range(n)
    ]
    payloads = [(e.subject, dump_event(e), {"Nats-Msg-Id": str(e.event_id), "Mg-Type": e.type}) for e in events]
    t0 = time.monotonic()
    futures = []
    for subject, data, headers in payloads:
        futures.append(await js.publish_async(subject, data, headers=headers))
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    rate = n / (time.monotonic() - t0)
    await nc.close()
    return rate


async def ensure(url: str) -> None:
    nc = await bus.connect(url, "bench-setup")
    await bus.ensure_streams(nc.jetstream())
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="where to write the JSON results")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per phase")
    parser.add_argument("--drain-events", type=int, default=20_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        root = Path(tmp)
        store, port = root / "nats", free_port()
        server = NatsServer(store, port=port).start()
        try:
            asyncio.run(ensure(server.url))
            idle_proc = start_agent(make_config(root, "idle", server.url))
            try:
                idle = measure(idle_proc, warmup=3.0, seconds=args.seconds)
            finally:
                stop_agent(idle_proc)
            load_proc = start_agent(make_config(root, "load", server.url), "--load-rate", "100")
            try:
                loaded = measure(load_proc, warmup=3.0, seconds=args.seconds)
            finally:
                stop_agent(load_proc)
            drain, server = drain_after_reconnect(root, store, port, server, args.drain_events)
            raw = asyncio.run(raw_publish_rate(server.url, args.drain_events))
        finally:
            server.stop()

    results = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "idle": idle,
        "load_100_per_s": loaded,
        "drain": drain,
        "raw_publish_async_events_per_s": round(raw),
        "targets": {"idle_cpu_percent": 1.0, "rss_mb": 60, "drain_events_per_s": 5000},
    }
    rows = [
        ("idle CPU (% of one core)", idle["cpu_percent_of_core"], "< 1"),
        ("idle RSS (MB)", idle["rss_mb"], "< 60"),
        ("100 ev/s CPU (% of one core)", loaded["cpu_percent_of_core"], ""),
        ("100 ev/s RSS (MB)", loaded["rss_mb"], "< 60"),
        ("outbox drain after reconnect (ev/s)", drain["drain_events_per_s"], ">= 5000"),
        ("  events journaled offline", drain["offline_depth"], ""),
        ("  reconnect + drain (s)", drain["including_reconnect_s"], ""),
        ("raw nats-py publish_async, best of 3 (ev/s)", results["raw_publish_async_events_per_s"], ""),
    ]
    print(f"{'measure':40s} {'value':>12s}  target")
    for name, value, target in rows:
        print(f"{name:40s} {value!s:>12s}  {target}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
