"""The heartbeat: every `policy.heartbeat_s` seconds, with agent version, policy version and the
outbox depth. HQ (the audit service) alerts when a desk PC's heartbeat is missing during opening
hours; a heartbeat written offline arrives late with `link_up = false`, which tells HQ the PC was
alive but cut off."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from madoguchi_agent.agent import Agent


async def run_heartbeat(agent: Agent, stop: asyncio.Event) -> None:
    last = float("-inf")
    while not stop.is_set():
        interval = agent.policy.heartbeat_s  # read each time: a new policy applies at once
        agent.check_disk()  # after a full disk: the reserve back (and "cleared") once there is room
        if time.monotonic() - last >= interval:
            agent.heartbeat()
            last = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(interval, 1.0))
