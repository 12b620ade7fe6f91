"""Desk API: commands/s and latency at 64 concurrent clients, beside a bare FastAPI endpoint with
the same body under the same server settings (issue 9 §3)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def start(args: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz" if "desk" in args[-2] else f"http://127.0.0.1:{port}/docs", timeout=1):
                return proc
        except OSError as exc:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from exc
            time.sleep(0.2)
    raise RuntimeError("server did not start")


@suite
async def desk_api(nats_server, pg, pool, ceilings, args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / "099999.toml", DESKS)
        secret = "bench-token-secret-bench-token-secret-0000"
        env = {**os.environ, "MADOGUCHI_NATS_URL": nats_server.url, "MADOGUCHI_PG_DSN": pg.dsn, "MADOGUCHI_TOKEN_SECRET": secret,
               "MADOGUCHI_MUNICIPALITY": "099999", "MADOGUCHI_DATA_DIR": tmp, "MADOGUCHI_LOG_LEVEL": "WARNING"}
        settings = Settings(token_secret=secret, municipality="099999")
        nc = await bus.connect(nats_server.url, name="bench-api")
        await bus.ensure_streams(nc.jetstream())
        # staff tokens are checked against the account (issue 15): the account exists first
        token = await token_for(nc.jetstream(), settings, staff_id="M0001", roles=[Role.manager], municipality="099999")
        await nc.drain()
        desks = [f"w{w}-{k}" for w in range(DESKS // 4) for k in range(4)]

        bare_port = free_port()
        bare = start(["-m", "bench.bare_server", str(bare_port)], env, bare_port)
        try:
            wrk(f"http://127.0.0.1:{bare_port}", [f"/v1/bare/{d}/tickets" for d in desks], token, seconds=2)  # warm up
            bare_res = wrk(f"http://127.0.0.1:{bare_port}", [f"/v1/bare/{d}/tickets" for d in desks], token, seconds=SECONDS)
        finally:
            bare.terminate()
            bare.wait()

        desk_port = free_port()
        desk = start(["-m", "bench.desk_server", str(desk_port), str(config)], env, desk_port)
        try:
            paths = [f"/v1/desks/{d}/tickets" for d in desks]
            wrk(f"http://127.0.0.1:{desk_port}", paths, token, seconds=2)  # warm up: load every desk-day once
            res = wrk(f"http://127.0.0.1:{desk_port}", paths, token, seconds=SECONDS)
        finally:
            desk.terminate()
            desk.wait()
    errors = res["non2xx"]
    return [
        {"area": "desk API", "figure": "bare FastAPI endpoint, same body (ceiling)", "value": bare_res["rps"], "unit": "req/s",
         "p50_ms": bare_res["p50_ms"], "p99_ms": bare_res["p99_ms"]},
        {"area": "desk API", "figure": "issue ticket: validate against desk-day state + append with ack, 64 clients",
         "value": res["rps"], "unit": "commands/s", "ceiling_name": "bare FastAPI", "ceiling": bare_res["rps"],
         "target": "≥ 1,000/s, p99 < 50 ms", "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"], "errors": errors},
        {"area": "desk API", "figure": "issue ticket latency p50 / p99", "value": f"{res['p50_ms']:.1f} / {res['p99_ms']:.1f}",
         "unit": "ms", "ceiling_name": "bare p50/p99", "ceiling": f"{bare_res['p50_ms']:.1f} / {bare_res['p99_ms']:.1f}",
         "ratio": None, "target": "p99 < 50 ms"},
        {"area": "desk API", "figure": "non-2xx responses during the run", "value": errors, "unit": "responses"},
    ]
