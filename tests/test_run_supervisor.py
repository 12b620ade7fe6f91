"""`madoguchi run` (what `make run` starts): NATS, PostgreSQL and a service come up ready, a
stop leaves no process behind even when the signal is sent twice, and a second start resumes
with the data kept.

The supervisor runs as a real child process on its own data folder and ports, as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from madoguchi_shared import subjects
from madoguchi_shared.runtime import free_port
from madoguchi_shared.settings import Settings

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
    req = urllib.request.Request(
        f"http://127.0.0.1:{desk_port}/v1/auth/token",
        method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _run_env(data: Path, services: tuple[str, ...], **extra: str) -> tuple[dict[str, int], dict[str, str]]:
    """Ports and environment for `madoguchi run` on its own data folder: free ports for NATS (and
    its monitor), PostgreSQL and each service; no DSN or NATS URL inherited from the test session."""
    ports = {name: free_port() for name in ("nats", "mon", "pg", *services)}
    env = {
        **os.environ,
        "MADOGUCHI_DATA_DIR": str(data),
        "MADOGUCHI_NATS_PORT": str(ports["nats"]),
        "MADOGUCHI_NATS_MONITOR_PORT": str(ports["mon"]),
        "MADOGUCHI_PG_PORT": str(ports["pg"]),
        "MADOGUCHI_LOG_LEVEL": "WARNING",
        "MADOGUCHI_MUNICIPALITY": "011002",  # where the supervisor announces restarts
        **{f"MADOGUCHI_{name.upper()}_PORT": str(ports[name]) for name in services},
        **extra,
    }
    for key in ("MADOGUCHI_PG_DSN", "MADOGUCHI_NATS_URL"):
        env.pop(key, None)  # the tools find NATS from MADOGUCHI_NATS_PORT alone
    return ports, env


def _start(env: dict, services: tuple[str, ...] = ("desk",)) -> subprocess.Popen:
    only = [arg for name in services for arg in ("--only", name)]
    return subprocess.Popen(
        [sys.executable, "-m", "madoguchi_shared.cli", "run", *only],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


async def _announced(data: Path, nats_port: int, names: list[str]) -> dict[str, int]:
    """How many restarts of each process the supervisor has announced on the bus (it announces a
    restart after it has printed "<name> restarted", once the process answers ready again)."""
    from madoguchi_shared import bus

    # the tools' (administrator's) credential from the data folder: the bus refuses anonymous clients
    nc = await bus.connect(Settings(data_dir=data, nats_port=nats_port).nats_url, name="check")
    try:
        return {
            name: len(await bus.load(nc, subjects.aggregate_subject("admin", "011002", "process", name)))
            for name in names
        }
    finally:
        await nc.close()


def _wait_announced(data: Path, nats_port: int, names: list[str], timeout: float = 60) -> dict[str, int]:
    """Wait until every named process has at least one announced restart. A service answering
    /readyz is not yet a restart the supervisor has noticed: it checks every 0.25 s, so a test that
    stops it right after /readyz may stop it before it says so (a 2-core CI run did)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = asyncio.run(_announced(data, nats_port, names))
        if all(seen[name] >= 1 for name in names) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def _staff_add(env: dict, staff_id: str, role: str) -> None:
    """`madoguchi staff add`, as an administrator types it, password on stdin."""
    added = subprocess.run(
        [sys.executable, "-m", "madoguchi_shared.cli", "staff", "add", "--id", staff_id, "--role", role]
        + ["--password-stdin"],
        env=env,
        cwd=REPO,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stdout + added.stderr


def _stop_twice(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # an impatient second signal must not cut the shutdown short
    out, _ = proc.communicate(timeout=90)
    return out


def test_run_starts_ready_stops_cleanly_on_a_double_signal_and_resumes(tmp_path):
    data = tmp_path / "var"
    ports, env = _run_env(data, ("desk",))
    desk_port = ports["desk"]

    proc = _start(env)
    try:
        _wait_ready(f"http://127.0.0.1:{desk_port}/readyz", proc)
        nats_pid = int((data / "nats" / "nats-server.pid").read_text().split()[0])
        pg_pid = int((data / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert _alive(nats_pid) and _alive(pg_pid)
        _staff_add(env, "M9001", "manager")
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


def _request(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict, dict]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        url, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read() or b"{}")
    except OSError:
        return 0, {}, {}  # not listening (the service itself is down)


def _pid(path: Path) -> int:
    return int(path.read_text().split()[0])


def test_run_restarts_each_child_killed_hard_while_the_others_keep_serving(tmp_path):
    """Issue 15 §4: kill -9 each child of `madoguchi run` in turn (a service, the other service,
    nats-server, PostgreSQL); each is back and serving, the others unaffected, and no command ever
    got a 500 (while NATS is down a command is a 503 with Retry-After)."""
    data = tmp_path / "var"
    ports, env = _run_env(data, ("desk", "calls"))
    desk, calls = f"http://127.0.0.1:{ports['desk']}", f"http://127.0.0.1:{ports['calls']}"
    proc = _start(env, ("desk", "calls"))
    statuses: list[int] = []
    day = [0]

    def command() -> tuple[int, dict, dict]:
        """A manager's command on each service: extended hours on the desk, a call coming in on the line."""
        day[0] += 1
        got = _request(
            "POST",
            f"{desk}/v1/calendar/extended-hours",
            token,
            {"date": f"2030-01-{day[0] % 28 + 1:02d}", "close": "19:00"},
        )
        statuses.append(got[0])
        also = _request("POST", f"{calls}/v1/calls", token, {"line": "main"})
        statuses.append(also[0])
        return got if got[0] != 201 else also

    def serving(timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"madoguchi run exited with {proc.returncode}"
            if all(_request("GET", f"{url}/readyz")[0] == 200 for url in (desk, calls)):
                if command()[0] == 201:
                    return
            time.sleep(0.3)
        raise AssertionError("not serving again within the time allowed")

    try:
        for url in (desk, calls):
            _wait_ready(f"{url}/readyz", proc)
        _staff_add(env, "M9002", "manager")
        code, _, body = _request("POST", f"{desk}/v1/auth/token", None, {"username": "M9002", "password": PASSWORD})
        assert code == 200, body
        token = body["access_token"]
        serving()

        pid_files = {
            "desk": data / "run" / "desk.pid",
            "calls": data / "run" / "calls.pid",
            "nats-server": data / "nats" / "nats-server.pid",
            "postgresql": data / "postgres" / "pgdata" / "postmaster.pid",
        }
        for victim in ("desk", "calls", "nats-server", "postgresql"):
            before = {name: _pid(path) for name, path in pid_files.items()}
            os.kill(before[victim], signal.SIGKILL)
            if victim in ("desk", "calls"):  # the other service goes on serving meanwhile
                other = calls if victim == "desk" else desk
                for _ in range(5):
                    assert _request("GET", f"{other}/readyz")[0] == 200
                    time.sleep(0.1)
            if victim == "nats-server":  # commands while the bus is down: 503 with Retry-After, or already back
                for _ in range(6):
                    code, headers, body = command()
                    assert code in (201, 503), body
                    if code == 503:
                        assert int(headers["retry-after"]) > 0 and body["title"] == "一時的に利用できません"
            deadline = (
                time.monotonic() + 120
            )  # the pid file names a new, live process (the old one may linger a moment)
            while time.monotonic() < deadline:
                try:
                    again = _pid(pid_files[victim])
                except (OSError, ValueError, IndexError):
                    again = before[victim]
                if again != before[victim] and _alive(again):
                    break
                time.sleep(0.2)
            serving()
            after = {name: _pid(path) for name, path in pid_files.items()}
            assert after[victim] != before[victim] and _alive(after[victim]), f"{victim} not restarted"
            assert {k: v for k, v in after.items() if k != victim} == {
                k: v for k, v in before.items() if k != victim
            }, f"killing {victim} restarted others too"
        assert 500 not in statuses and all(s in (201, 503) for s in statuses), statuses

        seen = _wait_announced(data, ports["nats"], list(pid_files))
        assert seen == dict.fromkeys(pid_files, 1)  # each restart is an admin event, hence in the audit log
    finally:
        out = _stop_twice(proc)
        (tmp_path / "run.log").write_text(out)  # the supervisor's and the services' output, for a failure
    assert proc.returncode == 0, out
    for victim in ("desk", "calls", "nats-server", "postgresql"):
        assert f"{victim} exited (signal SIGKILL)" in out and f"{victim} restarted" in out, out[-3000:]


def _group(pgid: int) -> list[int]:
    """The live processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_a_service_with_worker_processes_killed_hard_comes_back_without_its_old_workers(tmp_path):
    """kill -9 of a service's parent leaves its uvicorn workers behind, still holding the port: the
    supervisor ends the old session before starting the service again, so the new one binds (it
    used to exit with [Errno 98] and be retried for ever while unsupervised workers served)."""
    data = tmp_path / "var"
    ports, env = _run_env(data, ("desk",), MADOGUCHI_API_WORKERS="2")
    proc = _start(env)
    ready = f"http://127.0.0.1:{ports['desk']}/readyz"
    try:
        _wait_ready(ready, proc, timeout=240)
        parent = _pid(data / "run" / "desk.pid")
        workers = [pid for pid in _group(parent) if pid != parent]
        assert workers, "the desk runs without worker processes"
        os.kill(parent, signal.SIGKILL)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            again = _pid(data / "run" / "desk.pid")
            if again != parent and _alive(again) and not _group(parent):
                break
            time.sleep(0.3)
        assert not _group(parent), f"the old workers {_group(parent)} still run"
        _wait_ready(ready, proc, timeout=240)
        assert _pid(data / "run" / "desk.pid") != parent
        assert _wait_announced(data, ports["nats"], ["desk"]) == {"desk": 1}
    finally:
        out = _stop_twice(proc)
        (tmp_path / "run.log").write_text(out)
    assert "Errno 98" not in out, out[-3000:]
    assert "desk exited (signal SIGKILL)" in out and "desk restarted" in out, out[-3000:]
