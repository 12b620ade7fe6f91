"""Application restriction (SEC-2): a program outside the desk role's allow-list is reported with
name, path, hash and parent, and terminated where the policy says enforce."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import psutil
from agent_harness import make_config, of_type, running_agent, sha256_of, wait_for, write_policy_cache

from madoguchi_agent.policy import Policy, publish


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
        config = make_config(
            tmp_path, nats_server.url, municipality, monitors={"processes": True}, process_root_pids=(session.pid,)
        )
        write_policy_cache(config, Policy(process_enforce=True, process_scan_s=0.2))
        async with running_agent(config):
            events = await wait_for(
                nc, municipality, lambda es: of_type(es, "device.process_violation"), what="process violation"
            )
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
        config = make_config(
            tmp_path, nats_server.url, municipality, monitors={"processes": True}, process_root_pids=(session.pid,)
        )
        write_policy_cache(config, Policy(process_enforce=False, process_scan_s=0.2))
        async with running_agent(config):
            events = await wait_for(
                nc, municipality, lambda es: of_type(es, "device.process_violation"), what="process violation"
            )
        v = of_type(events, "device.process_violation")[0]
        assert v.name == "another-tool" and v.enforce is False and v.enforced is False
        assert child.is_running()
    finally:
        for p in psutil.Process(session.pid).children(recursive=True):
            p.kill()
        session.kill()
        session.wait()


async def test_twenty_one_second_runs_are_twenty_events_from_the_kernel(nats_server, nc, municipality, tmp_path):
    """Every start, however short, from the kernel's exec notices: twenty one-second runs of a
    program outside the allow-list (two sessions of ten, one after the other) are twenty events."""
    tool = tmp_path / "short-tool"
    shutil.copy("/bin/sleep", tool)
    loop = f"for i in 1 2 3 4 5 6 7 8 9 10; do '{tool}' 1; done"
    session, go = _gated(tmp_path, f"{loop} & {loop}; wait")
    config = make_config(
        tmp_path, nats_server.url, municipality, monitors={"processes": True}, process_root_pids=(session.pid,)
    )
    write_policy_cache(config, Policy(process_enforce=False))
    try:
        async with running_agent(config) as agent:
            await _until(lambda: agent.process_source != "none")
            assert agent.process_source == "netlink"
            go.touch()
            await asyncio.to_thread(session.wait, 30)
            events = await wait_for(
                nc,
                municipality,
                lambda es: len(_started(es, "short-tool")) >= 20,
                timeout=30,
                what="twenty program starts",
            )
    finally:
        session.kill()
        session.wait()
    started = _started(events, "short-tool")
    assert len(started) == 20 and len({e.pid for e in started}) == 20
    digest = sha256_of(tool)
    for e in started:
        assert e.source == "netlink" and e.allowed is False and e.path == str(tool) and e.sha256 == digest
        assert e.parent_name in ("sh", "dash") and e.parent_pid and e.os_uid == os.getuid()
    assert len([v for v in of_type(events, "device.process_violation") if v.name == "short-tool"]) == 20


def _gated(tmp_path, script: str, name: str = "go") -> tuple[subprocess.Popen, object]:
    """A desk session (an allowed shell, the scope's root) that waits for a file, then runs
    `script`: started before the agent, so the agent's scope is this session alone."""
    go = tmp_path / name
    session = subprocess.Popen(["/bin/sh", "-c", f"while [ ! -e '{go}' ]; do sleep 0.02; done; {script}"])
    return session, go


def _started(events, name: str):
    return [e for e in of_type(events, "device.process_started") if e.name == name]


async def _until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_programs_run_by_an_interpreter_are_visible_and_checked(nats_server, nc, municipality, tmp_path):
    """`python3 -c` runs code inside an allowed program; a script runs by an allowed shell: both
    are seen, named (the script's path, never the code) and stopped."""
    script = tmp_path / "tool.sh"
    script.write_text("sleep 30\n")
    os.chown(script, 65534, 65534)  # a desk user's own script (a root-owned one is the administrator's)
    session, go = _gated(tmp_path, f"/usr/bin/python3 -c 'import time; time.sleep(30)' & /bin/sh '{script}'; wait")
    config = make_config(
        tmp_path, nats_server.url, municipality, monitors={"processes": True}, process_root_pids=(session.pid,)
    )
    write_policy_cache(config, Policy(process_enforce=True))
    try:
        async with running_agent(config) as agent:
            await _until(lambda: agent.process_source != "none")
            go.touch()
            events = await wait_for(
                nc, municipality, lambda es: len(of_type(es, "device.process_violation")) >= 2, what="two violations"
            )
            await asyncio.to_thread(session.wait, 10)  # both were stopped: the session ends
    finally:
        session.kill()
        session.wait()
    violations = {v.reason: v for v in of_type(events, "device.process_violation")}
    assert violations["inline_code"].name.startswith("python3") and violations["inline_code"].enforced
    assert violations["script_not_allowed"].script == str(script) and violations["script_not_allowed"].enforced
    python = [e for e in of_type(events, "device.process_started") if e.pid == violations["inline_code"].pid][0]
    assert python.inline_code and python.script is None and not python.allowed
    raw = " ".join(e.model_dump_json() for e in events)
    assert "time.sleep" not in raw  # the code itself is never recorded


async def test_a_policy_change_rechecks_running_programs(nats_server, nc, js, municipality, tmp_path):
    """A violator started under a report-only policy is stopped once enforcement is switched on."""
    session, _tool = _session(tmp_path, "early-tool")
    try:
        child = _child(session)
        config = make_config(
            tmp_path, nats_server.url, municipality, monitors={"processes": True}, process_root_pids=(session.pid,)
        )
        write_policy_cache(config, Policy(process_enforce=False))  # not the enforcing built-in one at start
        await publish(js, "mg_policy", config.policy_key, Policy(process_enforce=False))
        async with running_agent(config):
            await wait_for(nc, municipality, lambda es: of_type(es, "device.process_violation"), what="reported")
            assert child.is_running()
            await publish(js, "mg_policy", config.desk_policy_key, Policy(process_enforce=True))
            events = await wait_for(
                nc,
                municipality,
                lambda es: any(v.enforced for v in of_type(es, "device.process_violation")),
                what="enforced after the change",
            )
        violations = of_type(events, "device.process_violation")
        assert {v.pid for v in violations} == {child.pid}
        assert not violations[0].enforced and violations[-1].enforced  # reported, then stopped
        assert of_type(events, "device.policy_changed")[-1].policy_version > 0
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert len(_started(events, "early-tool")) == 1  # found once at start, re-checked, not re-counted
    finally:
        session.kill()
        session.wait()


async def test_no_kernel_notices_and_no_desk_user_are_loud(nats_server, nc, municipality, tmp_path):
    config = make_config(
        tmp_path,
        nats_server.url,
        municipality,
        monitors={"processes": True, "usb": True},
        process_users=("no-such-desk-user",),
        process_source="poll",
        sysfs_usb_root=tmp_path / "no-sysfs",
    )
    async with running_agent(config):
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.monitoring_gap")) >= 3, what="three gaps"
        )
    gaps = {(g.monitor, g.reason) for g in of_type(events, "device.monitoring_gap") if not g.closed}
    assert gaps == {("processes", "no_kernel_notices"), ("processes", "no_desk_user"), ("usb", "no_sysfs")}


def test_scripts_of_the_administrator_and_the_agent_itself_are_not_stopped(tmp_path):
    from madoguchi_agent.processes import OWN_BIN, ProcInfo, decide

    def run(*argv: str) -> str:
        return decide(Policy(), ProcInfo(1, 0, 1000, "sh", "/usr/bin/dash", argv, str(tmp_path), 0)).reason

    installed = tmp_path / "session.sh"
    installed.write_text("true\n")
    installed.chmod(0o644)  # root's, as every file the tests make
    assert run("sh", str(installed)) == "allowed"
    installed.chmod(0o666)  # anyone could have changed it
    assert run("sh", str(installed)) == "script_not_allowed"
    os.chown(installed, 65534, 65534)
    installed.chmod(0o644)
    assert run("sh", str(installed)) == "script_not_allowed"
    assert run("sh", os.path.join(OWN_BIN, "madoguchi-agent")) == "allowed"
    assert run("sh", "-c", "echo hi") == "allowed"  # a shell's inline code: what it starts is seen anyway
