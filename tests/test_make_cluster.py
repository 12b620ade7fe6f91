"""`make cluster` (madoguchi run --cluster) as an operator runs it: it prints where the three TLS
NATS nodes and PostgreSQL primary and standby listen, the desk service comes up on them, the
streams are R3, the operator's commands reach the cluster through cluster.env, and Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from nats import errors as nats_errors
from nats.js.errors import NoStreamResponseError

from madoguchi_shared import subjects
from madoguchi_shared import bus


def _free_block(offsets: tuple[int, ...]) -> int:
    for _ in range(200):
        base = random.randrange(20000, 40000)
        try:
            socks = []
            for off in offsets:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


@pytest.fixture
def short_dir():
    """PostgreSQL's socket path must stay under 107 bytes: a short folder, not pytest's tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="mgc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_run_cluster_starts_tls_nats_r3_and_a_standby_and_stops_on_ctrl_c(short_dir):
    tmp_path = short_dir
    nats_port = _free_block((0, 1, 2, 2000, 2001, 2002))
    monitor = _free_block((0, 1, 2))
    pg_port = _free_block((0, 1))
    desk_port = _free_block((0,))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MADOGUCHI_")},
        "MADOGUCHI_DATA_DIR": str(tmp_path / "var"),
        "MADOGUCHI_NATS_PORT": str(nats_port),
        "MADOGUCHI_NATS_MONITOR_PORT": str(monitor),
        "MADOGUCHI_PG_PORT": str(pg_port),
        "MADOGUCHI_DESK_PORT": str(desk_port),
        "MADOGUCHI_LOG_JSON": "false",
        "MADOGUCHI_LOG_LEVEL": "WARNING",
    }
    out = tmp_path / "out.log"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "madoguchi_shared.cli", "run", "--cluster", "--only", "desk"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "Madoguchi is running" not in out.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text(errors="replace")
            time.sleep(0.3)
        text = out.read_text()
        assert "admin:" not in text  # no password on the terminal
        for i in range(3):
            assert f"mg-{i} nats://127.0.0.1:{nats_port + i}" in text
        assert f"primary 127.0.0.1:{pg_port}" in text and f"standby 127.0.0.1:{pg_port + 1}" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{desk_port}/readyz", timeout=5) as resp:
            assert resp.status == 200

        # the operator's environment: the three nodes, R3, the CA and the operator's certificate
        values = dict(line.split("=", 1) for line in (tmp_path / "var" / "cluster.env").read_text().splitlines())
        assert values["MADOGUCHI_STREAM_REPLICAS"] == "3"
        from madoguchi_shared.settings import Settings

        assert "@" not in values["MADOGUCHI_NATS_URL"]  # no password in the file: the tools' identity is on file
        settings = Settings(
            nats_url=values["MADOGUCHI_NATS_URL"],
            nats_tls_ca=values["MADOGUCHI_NATS_TLS_CA"],
            nats_tls_cert=values["MADOGUCHI_NATS_TLS_CERT"],
            nats_tls_key=values["MADOGUCHI_NATS_TLS_KEY"],
            data_dir=Path(values["MADOGUCHI_DATA_DIR"]),
        )
        # a client with the CA and a certificate but no bus identity is refused: every node wants a user
        with pytest.raises(bus.BusUnreachable):
            await bus.connect(values["MADOGUCHI_NATS_URL"], "nobody", first_connect_timeout=3, tls=settings.nats_tls())
        nc = await bus.connect(settings.nats_url, "operator", first_connect_timeout=10, tls=settings.nats_tls())
        try:
            info = await nc.jetstream().stream_info("MG_DESK")
            assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
            # the desk service is connected to one of the nodes, over TLS
            conns = []
            for i in range(3):
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{monitor + i}/connz?limit=1000&auth=1", timeout=5
                ) as resp:
                    conns += json.loads(resp.read())["connections"] or []
            desk = [c for c in conns if c.get("name") == "madoguchi-desk"]
            assert desk and all(c.get("tls_version") for c in desk), conns
            assert {c.get("authorized_user") for c in desk} == {"desk"}  # its own identity, as on one node
            # which may publish only its own context: the desk identity cannot write the calls stream
            refusals: list[str] = []

            async def on_error(exc: Exception) -> None:
                refusals.append(str(exc))

            as_desk = await bus.connect(
                settings.nats_url_for("desk"),
                "as-desk",
                first_connect_timeout=10,
                tls=settings.nats_tls(),
                error_cb=on_error,
            )
            try:
                with pytest.raises((nats_errors.TimeoutError, nats_errors.NoRespondersError, NoStreamResponseError)):
                    await as_desk.jetstream().publish(
                        subjects.aggregate_subject("calls", "011002", "call", "x"), b"{}", timeout=2
                    )
                await asyncio.sleep(0.2)
                assert any("permissions violation" in r.lower() for r in refusals), refusals
            finally:
                await as_desk.close()
        finally:
            await nc.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = out.read_text()
    assert "stopped; data kept" in text
    for port in (nats_port, nats_port + 1, nats_port + 2, pg_port, pg_port + 1):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"{port} still listening after Ctrl-C"
