"""Print jobs (SEC-2 "every operation") from a real CUPS scheduler: a private cupsd on a free port
with a raw queue printing to /dev/null; the job's title holds a name and never leaves the PC."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from agent_harness import make_config, of_type, running_agent, wait_for

from madoguchi_shared.events import dump_event
from madoguchi_shared.runtime import free_port

APT_HINT = "apt-get install -y cups-daemon cups-client"


@pytest.fixture
def cups(tmp_path):
    if not shutil.which("cupsd") or not shutil.which("lpadmin"):
        pytest.fail(f"CUPS is not installed: {APT_HINT}")
    root = tmp_path / "cups"
    for sub in ("spool", "state", "cache", "tmp", "ppd", "ssl"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    (root / "cupsd.conf").write_text(f"""Listen 127.0.0.1:{port}
LogLevel warn
DefaultAuthType None
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  <Limit All>
    Order allow,deny
    Allow all
  </Limit>
</Policy>
""")
    (root / "cups-files.conf").write_text(f"""ServerRoot {root}
RequestRoot {root}/spool
StateDir {root}/state
CacheDir {root}/cache
TempDir {root}/tmp
ErrorLog {root}/error_log
AccessLog {root}/access_log
PageLog {root}/page_log
FileDevice Yes
""")
    proc = subprocess.Popen(
        ["cupsd", "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while subprocess.run(["lpstat", "-h", server, "-r"], capture_output=True, text=True).stdout.find("is running") < 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"cupsd did not start; see {root / 'error_log'}")
        time.sleep(0.1)
    subprocess.run(
        ["lpadmin", "-h", server, "-p", "desk-printer", "-E", "-v", "file:///dev/null"], check=True, capture_output=True
    )
    yield server
    proc.terminate()
    proc.wait(10)


def _print(server: str, path: Path, title: str) -> None:
    subprocess.run(["lp", "-h", server, "-d", "desk-printer", "-t", title, str(path)], check=True, capture_output=True)


async def test_print_jobs_are_recorded_without_their_title(nats_server, nc, municipality, tmp_path, cups):
    doc = tmp_path / "doc.txt"
    doc.write_text("窓口の掲示\n" * 300, encoding="utf-8")
    _print(cups, doc, "before the agent")  # history: not reported
    config = make_config(
        tmp_path,
        nats_server.url,
        municipality,
        monitors={"printing": True},
        cups_url=f"http://{cups}",
        print_poll_s=0.2,
    )
    async with running_agent(config):
        await wait_for(nc, municipality, lambda es: of_type(es, "device.heartbeat"), what="started")
        await asyncio.sleep(0.6)  # the first look at the queue (history) is done
        _print(cups, doc, "山田太郎様 申請書 090-1234-5678")
        events = await wait_for(
            nc,
            municipality,
            lambda es: any(e.state == "completed" for e in of_type(es, "device.print_job")),
            what="a completed print job",
        )
    jobs = of_type(events, "device.print_job")
    assert {j.job_id for j in jobs} == {2}  # job 1 was printed before the agent started
    assert jobs[-1].state == "completed" and jobs[-1].printer == "desk-printer"
    assert jobs[-1].size_bytes and jobs[-1].size_bytes >= doc.stat().st_size // 1024 * 1024
    for e in events:
        raw = dump_event(e).decode()
        assert "山田" not in raw and "1234" not in raw
    assert not of_type(events, "device.monitoring_gap")


async def test_no_cups_is_a_gap(nats_server, nc, municipality, tmp_path):
    config = make_config(
        tmp_path,
        nats_server.url,
        municipality,
        monitors={"printing": True},
        cups_url="http://127.0.0.1:9",
        print_poll_s=0.2,
    )
    async with running_agent(config):
        events = await wait_for(nc, municipality, lambda es: of_type(es, "device.monitoring_gap"), what="gap")
    gap = of_type(events, "device.monitoring_gap")[0]
    assert (gap.monitor, gap.reason) == ("printing", "no_cups")
