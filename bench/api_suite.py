"""Command APIs: commands/s and latency at 64 concurrent clients, beside a bare FastAPI endpoint with
the same body under the same server settings (issue 9 §3, issue 19).

Rows: the bare endpoint (the ceiling), a desk command (issue a ticket: validate against the
desk-day state + append with ack) and a calls command (a call comes in: recorded, routed and
counted on the line-day), each run against its real service in its own process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

from madoguchi_shared import bus
from madoguchi_shared.auth import token_for
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import free_port
from madoguchi_shared.settings import Settings

from bench.desk_server import bench_config
from bench.load import wrk
from bench.suites import suite

DESKS = 256
SECONDS = int(os.environ.get("MG_BENCH_API_SECONDS", "10"))
SECRET = "bench-token-secret-bench-token-secret-0000"
MUNICIPALITY = "099999"


def start(args: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    probe = "/docs" if args[1] == "bench.bare_server" else "/healthz"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1):
                return proc
        except OSError as exc:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from exc
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def bench_env(nats_server, pg):
    """The config file, environment and tokens the command servers run with."""
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / f"{MUNICIPALITY}.toml", DESKS)
        env = {
            **os.environ,
            "MADOGUCHI_NATS_URL": nats_server.url,
            "MADOGUCHI_PG_DSN": pg.dsn,
            "MADOGUCHI_TOKEN_SECRET": SECRET,
            "MADOGUCHI_MUNICIPALITY": MUNICIPALITY,
            "MADOGUCHI_DATA_DIR": tmp,
            "MADOGUCHI_LOG_LEVEL": "WARNING",
        }
        settings = Settings(token_secret=SECRET, municipality=MUNICIPALITY)
        nc = await bus.connect(nats_server.url, name="bench-api")
        await bus.ensure_streams(nc.jetstream())
        # staff tokens are checked against the account (issue 15): the accounts exist first
        tokens = {
            "manager": await token_for(
                nc.jetstream(), settings, staff_id="M0001", roles=[Role.manager], municipality=MUNICIPALITY
            ),
            "operator": await token_for(
                nc.jetstream(), settings, staff_id="O0001", roles=[Role.operator], municipality=MUNICIPALITY
            ),
        }
        await nc.drain()
        yield config, env, tokens


DESK_PATHS = [f"/v1/desks/w{w}-{k}/tickets" for w in range(DESKS // 4) for k in range(4)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_load(
    module: str, port_args: list[str], env: dict, paths: list[str], token: str, body: str = "{}", seconds: int = SECONDS
) -> dict:
    """Start `module` on a free port, warm it up for 2 s, then measure `seconds` of load. Besides
    wrk's figures: the server's CPU time per request (`cpu_ms`), which a busy shared machine
    disturbs far less than the rate."""
    port = free_port()
    server = start(["-m", module, str(port), *port_args], env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        wrk(base, paths, token, body=body, seconds=2)  # warm up: every aggregate loaded once
        if "MG_BENCH_PROFILE" in env:
            server.send_signal(signal.SIGUSR1)  # profile the measured run only (bench.desk_server.serve)
        cpu0 = cpu_seconds(server.pid)
        res = wrk(base, paths, token, body=body, seconds=seconds)
        res["cpu_ms"] = (cpu_seconds(server.pid) - cpu0) * 1000 / max(res["requests"], 1)
        return res
    finally:
        stop(server)


def measure(env: dict, config: Path, tokens: dict) -> dict[str, dict]:
    return {
        "bare": run_load(
            "bench.bare_server", [], env, [f"/v1/bare/{d.split('/')[3]}/tickets" for d in DESK_PATHS], tokens["manager"]
        ),
        "desk": run_load("bench.desk_server", [str(config)], env, DESK_PATHS, tokens["manager"]),
        "calls": run_load(
            "bench.calls_server", [str(config)], env, ["/v1/calls"], tokens["operator"], body='{"line":"main"}'
        ),
    }


def rows(res: dict[str, dict]) -> list[dict]:
    bare = res["bare"]
    workers = int(os.environ.get("MG_BENCH_WORKERS", "1"))
    out = [
        {
            "area": "command API",
            "figure": f"bare FastAPI endpoint, same body, uvicorn {workers} worker(s) like the servers below (ceiling)",
            "value": bare["rps"],
            "unit": "req/s",
            "p50_ms": bare["p50_ms"],
            "p99_ms": bare["p99_ms"],
        }
    ]
    figures = {
        "desk": "desk: issue ticket (validate against desk-day state + append with ack), 64 clients",
        "calls": "calls: a call comes in (recorded, routed, counted on the line-day), 64 clients",
    }
    for key, figure in figures.items():
        r = res[key]
        out += [
            {
                "area": "command API",
                "figure": figure,
                "value": r["rps"],
                "unit": "commands/s",
                "ceiling_name": "bare FastAPI",
                "ceiling": bare["rps"],
                "target": "≥ 50 % of bare, p99 < 30 ms",
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "errors": r["non2xx"],
            },
            {
                "area": "command API",
                "figure": f"{key}: server CPU per command",
                "value": r["cpu_ms"],
                "unit": "ms",
                "ceiling_name": "bare",
                "ceiling": bare["cpu_ms"],
                "ratio": bare["cpu_ms"] / r["cpu_ms"] if r["cpu_ms"] else None,
            },
            {
                "area": "command API",
                "figure": f"{key} latency p50 / p99",
                "value": f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}",
                "unit": "ms",
                "ceiling_name": "bare p50/p99",
                "ceiling": f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f}",
                "ratio": None,
                "target": "p99 < 30 ms",
            },
            {
                "area": "command API",
                "figure": f"{key}: non-2xx responses during the run",
                "value": r["non2xx"],
                "unit": "responses",
            },
        ]
    return out


@suite
async def desk_api(nats_server, pg, pool, ceilings, args) -> list[dict]:
    async with bench_env(nats_server, pg) as (config, env, tokens):
        res = measure(env, config, tokens)
    ceilings["command API: desk commands/s"] = res["desk"]["rps"]
    return rows(res)
