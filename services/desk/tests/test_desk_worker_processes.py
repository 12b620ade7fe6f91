"""`madoguchi serve desk` with two worker processes (MADOGUCHI_API_WORKERS=2, as `make run` does with
one per core): both workers take requests on one port, each with its own cache of the desk-day, and
tickets issued at once through both are numbered once each, in stream order (ARCHITECTURE rule 2)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from desk_api import SAPPORO_TOML, auth

from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.runtime import free_port
from madoguchi_shared.subjects import aggregate_subject


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


async def test_two_worker_processes_number_tickets_once_each(settings, municipality, nc, js, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MADOGUCHI_NATS_URL": settings.nats_url,
        "MADOGUCHI_TOKEN_SECRET": settings.token_secret.get_secret_value(),
        "MADOGUCHI_MUNICIPALITY": municipality,
        "MADOGUCHI_CONFIG_FILE": str(SAPPORO_TOML),
        "MADOGUCHI_DESK_PORT": str(port),
        "MADOGUCHI_DATA_DIR": str(tmp_path),
        "MADOGUCHI_LOG_LEVEL": "WARNING",
        "MADOGUCHI_API_WORKERS": "2",
        # a Tuesday at 10:00 in Sapporo, running at real speed from now
        "MADOGUCHI_EXTRA": json.dumps({"clock": f"2021-04-06T10:00:00+09:00@1@{time.time()}"}),
    }
    log = tmp_path / "server.err"  # a file, not a pipe: an unread pipe that fills blocks the server
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "madoguchi_shared.cli", "serve", "desk"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    s1 = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
            deadline = time.monotonic() + 240  # two processes importing the app on a busy 2-core machine
            while True:
                assert server.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    if (await probe.get("/healthz")).status_code == 200 and len(workers_of(server.pid)) == 2:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (
                    "two workers did not start:\n" + log.read_text(errors="replace")[-3000:]
                )
                await asyncio.sleep(0.2)
        clients = [
            httpx.AsyncClient(base_url=base, timeout=30) for _ in range(8)
        ]  # connections spread over both workers
        try:
            responses = await asyncio.gather(
                *(c.post("/v1/desks/kita-1/tickets", headers=s1) for _ in range(5) for c in clients)
            )
        finally:
            for c in clients:
                await c.aclose()
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201][:3]
        assert sorted(r.json()["ticket_no"] for r in responses) == list(range(1, 41))
    finally:
        server.terminate()
        server.wait(30)
    day = json.loads(responses[0].text)["events"][0]["deskday_id"]
    stored = await bus.load(nc, aggregate_subject("desk", municipality, "deskday", day))
    assert [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"] == list(range(1, 41))
