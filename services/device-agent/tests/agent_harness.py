"""Helpers for the device-agent tests: configs, an in-process agent, reading its events back,
and the real PC/SC stack (pcscd + the vsmartcard virtual reader + vicc as the card)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from madoguchi_agent.agent import Agent
from madoguchi_agent.config import AgentConfig, Monitors
from madoguchi_agent.policy import LoadedPolicy, Policy, policy_digest, save_cache
from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.events import Event

HERE = Path(__file__).parent
VICC_SHIM = HERE / "vicc_shim.py"
VIRTUAL_READER = "Virtual PCD 00 00"
ALL_OFF = dict(card=False, processes=False, usb=False, files=False, desk_visits=False, sessions=False, printing=False)


def make_config(tmp_path: Path, nats_url: str, municipality: str, **overrides) -> AgentConfig:
    monitors = {**ALL_OFF, **overrides.pop("monitors", {})}
    data = dict(
        device_id="chuo-1-pc",
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        role="desk",
        nats_url=nats_url,
        data_dir=tmp_path / "agent-data",
        monitors=Monitors(**monitors),
        sysfs_usb_root=tmp_path / "sys-usb",
        policy_poll_s=1.0,
    )
    data.update(overrides)
    return AgentConfig(**data)


def write_policy_cache(config: AgentConfig, policy: Policy, version: int = 1) -> None:
    """Give the agent a policy as if it had fetched it before (the offline cache)."""
    save_cache(config.policy_cache_path, LoadedPolicy(policy, version, policy_digest(policy), "cache"))


@contextlib.asynccontextmanager
async def running_agent(config: AgentConfig):
    """An agent in this process (sharing the test's loop); stopped and drained on exit."""
    agent = Agent(config)
    task = asyncio.create_task(agent.run(install_signals=False))
    await asyncio.sleep(0)
    try:
        yield agent
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)


def agent_subject(municipality: str, device_id: str = "chuo-1-pc") -> str:
    return subjects.aggregate_subject("device", municipality, "agent", device_id)


async def device_events(nc, municipality: str, device_id: str = "chuo-1-pc") -> list[Event]:
    return [s.event for s in await bus.load(nc, agent_subject(municipality, device_id))]


async def wait_for(
    nc, municipality: str, predicate: Callable[[list[Event]], object], timeout: float = 20.0, what: str = "events"
) -> list[Event]:
    """Poll the device's subject in JetStream until predicate(events) holds."""
    deadline = time.monotonic() + timeout
    events: list[Event] = []
    while time.monotonic() < deadline:
        events = await device_events(nc, municipality)
        if predicate(events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; got {[e.type for e in events]}")


def of_type(events: list[Event], type_: str) -> list[Event]:
    return [e for e in events if e.type == type_]


# ---------------------------------------------------------------------------------------------
# PC/SC: pcscd, the vpcd virtual reader, vicc as a card
# ---------------------------------------------------------------------------------------------

APT_HINT = (
    "apt-get install -y pcscd vsmartcard-vpcd vsmartcard-vpicc python3-virtualsmartcard "
    "python3-pycryptodome swig libpcsclite-dev"
)


def readers() -> list[str]:
    try:
        from smartcard.System import readers as list_readers

        return [str(r) for r in list_readers()]
    except Exception:  # noqa: BLE001 - no pcscd: no readers
        return []


def vicc_python() -> str:
    """A Python that runs vicc: Debian's python3 with python3-pycryptodome (the shim maps
    Cryptodome to the Crypto name vicc imports) or with pycryptodome itself."""
    candidates = [os.environ.get("MADOGUCHI_VICC_PYTHON", ""), "/usr/bin/python3"]
    for python in filter(None, candidates):
        if not os.path.exists(python):
            continue
        ok = subprocess.run(
            [
                python,
                "-c",
                "import importlib.util as u, sys; "
                "sys.exit(0 if (u.find_spec('Crypto') or u.find_spec('Cryptodome')) else 1)",
            ],
            capture_output=True,
        )
        if ok.returncode == 0:
            return python
    raise RuntimeError(f"no Python with pycryptodome for vicc; install it: {APT_HINT}")


def _other_pcscd_running() -> bool:
    try:
        pid = int(Path("/run/pcscd/pcscd.pid").read_text().strip("\x00 \n"))  # pcscd writes a NUL too
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


class Pcscd:
    """pcscd in the foreground, started only when none is running (and then stopped again)."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Pcscd:
        if not os.path.exists("/usr/lib/pcsc/drivers/serial/libifdvpcd.so") or not shutil.which("pcscd"):
            raise RuntimeError(f"pcscd with the vsmartcard virtual reader is not installed: {APT_HINT}")
        if VIRTUAL_READER in readers():
            return self  # a pcscd is already serving the virtual reader (e.g. the system one)
        if _other_pcscd_running():  # another test session's pcscd may be starting up: give it a moment
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _other_pcscd_running():
                if VIRTUAL_READER in readers():
                    return self
                time.sleep(0.2)
        # Twice: a pcscd that just stopped may still hold vpcd's port ("Address already in use"),
        # and the new one then serves no virtual reader; it is stopped and started again.
        for _attempt in range(2):
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    ["pcscd", "--foreground"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if VIRTUAL_READER in readers():
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
            self.stop()
            time.sleep(2)
        raise RuntimeError(f"pcscd shows no '{VIRTUAL_READER}' within 15 s, twice; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class VirtualCard:
    """`vicc -t iso7816` connected to vpcd's first slot: the card is in the reader while it runs."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def insert(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [vicc_python(), str(VICC_SHIM), "-t", "iso7816"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def remove(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
