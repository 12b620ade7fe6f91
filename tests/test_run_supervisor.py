"""`madoguchi run` (what `make run` starts): NATS, PostgreSQL and a service come up ready, a
stop leaves no process behind even when the signal is sent twice, and a second start resumes
with the data kept.

The supervisor runs as a real child process on its own data folder and ports, as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from madoguchi_shared.runtime import free_port

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "supervisor-test-pass"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert proc.poll() is None, f"madoguchi run exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {timeout} s")


def _token(desk_port: int, username: str, password: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{desk_port}/v1/auth/token", method="POST",
                                 data=json.dumps({"username": username, "password": password}).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "madoguchi_shared.cli", "run", "--only", "desk"], env=env, cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop_twice(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # an impatient second signal must not cut the shutdown short
    out, _ = proc.communicate(timeout=90)
    return out


def test_run_starts_ready_stops_cleanly_on_a_double_signal_and_resumes(tmp_path):
    data = tmp_path / "var"
    desk_port, nats_port, pg_port = free_port(), free_port(), free_port()
    env = {**os.environ, "MADOGUCHI_DATA_DIR": str(data), "MADOGUCHI_NATS_PORT": str(nats_port),
           "MADOGUCHI_NATS_MONITOR_PORT": str(free_port()),
           "MADOGUCHI_PG_PORT": str(pg_port), "MADOGUCHI_DESK_PORT": str(desk_port), "MADOGUCHI_LOG_LEVEL": "WARNING"}
    env.pop("MADOGUCHI_PG_DSN", None)
    env.pop("MADOGUCHI_NATS_URL", None)  # the tools find NATS from MADOGUCHI_NATS_PORT alone

    proc = _start(env)
    try:
        _wait_ready(f"http://127.0.0.1:{desk_port}/readyz", proc)
        nats_pid = int((data / "nats" / "nats-server.pid").read_text().split()[0])
        pg_pid = int((data / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert _alive(nats_pid) and _alive(pg_pid)
        added = subprocess.run([sys.executable, "-m", "madoguchi_shared.cli", "staff", "add", "--id", "M9001",
                                "--role", "manager", "--password-stdin"], env=env, cwd=REPO, input=PASSWORD + "\n",
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stdout + added.stderr
        assert _token(desk_port, "M9001", PASSWORD) == 200
    finally:
        out = _stop_twice(proc)
    assert proc.returncode == 0, out
    assert "stopped; data kept" in out
    deadline = time.monotonic() + 30
    while (_alive(nats_pid) or _alive(pg_pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(nats_pid), "nats-server left running"
    assert not _alive(pg_pid), "PostgreSQL left running"

    again = _start(env)  # the second start resumes: the account made before is still there
    try:
        _wait_ready(f"http://127.0.0.1:{desk_port}/readyz", again)
        assert _token(desk_port, "M9001", PASSWORD) == 200
        assert _token(desk_port, "M9001", "wrong-password-here") == 401
    finally:
        _stop_twice(again)
    assert again.returncode == 0
