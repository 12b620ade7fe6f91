"""Application restriction (SEC-2): a program outside the desk role's allow-list is reported with
name, path, hash and parent, and terminated where the policy says enforce."""

from __future__ import annotations

import os
import shutil
import time
import subprocess

import psutil
from agent_harness import make_config, of_type, running_agent, sha256_of, wait_for, write_policy_cache

from madoguchi_agent.policy import Policy


def _session(tmp_path, name: str = "unapproved-tool") -> tuple[subprocess.Popen, str]:
    """A desk session: an allowed shell (/bin/sh) that runs a program copied outside the allow-list."""
    tool = tmp_path / name
    shutil.copy("/bin/sleep", tool)
    session = subprocess.Popen(["/bin/sh", "-c", f"'{tool}' 120; sleep 120"])
    return session, str(tool)


def _child(session: subprocess.Popen) -> psutil.Process:
    for _ in range(100):
        children = psutil.Process(session.pid).children()
        if children:
            return children[0]
        time.sleep(0.02)
    raise AssertionError("the session started no program")


async def test_unlisted_program_is_reported_and_terminated(nats_server, nc, municipality, tmp_path):
    session, tool = _session(tmp_path)
    try:
        child = _child(session)
        config = make_config(tmp_path, nats_server.url, municipality, monitors={"processes": True},
                             process_root_pids=(session.pid,))
        write_policy_cache(config, Policy(process_enforce=True, process_scan_s=0.2))
        async with running_agent(config):
            events = await wait_for(nc, municipality, lambda es: of_type(es, "device.process_violation"),
                                    what="process violation")
        violations = of_type(events, "device.process_violation")
        assert len(violations) == 1  # the allowed shell and its later `sleep` are not reported
        v = violations[0]
        assert v.pid == child.pid and v.name == "unapproved-tool"
        assert v.path == tool  # not under a home folder: shown as is
        assert v.sha256 == sha256_of(tmp_path / "unapproved-tool")
        assert v.parent_name == "sh" and v.parent_path is not None
        assert v.enforce is True and v.enforced is True and v.error is None
        assert v.os_uid == os.getuid()
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert session.poll() is None  # the allowed session goes on
    finally:
        session.kill()
        session.wait()


async def test_report_only_policy_leaves_the_program_running(nats_server, nc, municipality, tmp_path):
    session, _ = _session(tmp_path, "another-tool")
    try:
        child = _child(session)
        config = make_config(tmp_path, nats_server.url, municipality, monitors={"processes": True},
                             process_root_pids=(session.pid,))
        write_policy_cache(config, Policy(process_enforce=False, process_scan_s=0.2))
        async with running_agent(config):
            events = await wait_for(nc, municipality, lambda es: of_type(es, "device.process_violation"),
                                    what="process violation")
        v = of_type(events, "device.process_violation")[0]
        assert v.name == "another-tool" and v.enforce is False and v.enforced is False
        assert child.is_running()
    finally:
        for p in psutil.Process(session.pid).children(recursive=True):
            p.kill()
        session.kill()
        session.wait()
