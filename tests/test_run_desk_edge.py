"""The embedded default starts a desk edge beside the system (`madoguchi run --edge chuo-1`, issue 21):
the edge gets its own NATS identity in the data folder, takes its desk-day and reports 「送信済み」."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from madoguchi_shared import natsauth
from madoguchi_shared.runtime import free_port

REPO = Path(__file__).resolve().parents[1]


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def test_run_with_an_edge_starts_it_beside_the_system(tmp_path):
    data = tmp_path / "var"
    desk_port = free_port()
    env = {
        **os.environ,
        "MADOGUCHI_DATA_DIR": str(data),
        "MADOGUCHI_NATS_PORT": str(free_port()),
        "MADOGUCHI_NATS_MONITOR_PORT": str(free_port()),
        "MADOGUCHI_PG_PORT": str(free_port()),
        "MADOGUCHI_DESK_PORT": str(desk_port),
        "MADOGUCHI_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "madoguchi_shared.cli", "run", "--only", "desk", "--edge", "chuo-1"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"madoguchi run exited with {proc.returncode}"
            state = _get(f"http://127.0.0.1:{desk_port + 10}/v1/edge")
            if state and state["online"] and state["label_ja"] == "送信済み" and state["sent"] >= 1:
                break
            time.sleep(0.3)
        assert state and state["online"] and state["label_ja"] == "送信済み" and state["sent"] >= 1, state
        identity = natsauth.load(data, natsauth.edge_user("chuo-1-pc"))
        assert identity is not None and identity.kind == "edge" and identity.desk == "chuo-1"
        status = subprocess.run(
            [sys.executable, "-m", "madoguchi_shared.cli", "edge", "status", "--port", str(desk_port + 10)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "chuo-1 (chuo-1-pc): 送信済み" in status.stdout, status.stdout + status.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    assert f"edge chuo-1  http://127.0.0.1:{desk_port + 10}  (the desk's laptop" in out, out
