"""Policy from the bus (JetStream key-value `mg_policy`, key <municipality>.<role>), cached locally:
a change while running is applied and recorded; a restart without a link enforces the cache."""

from __future__ import annotations

import asyncio

from agent_harness import make_config, of_type, running_agent, wait_for

from madoguchi_agent.agent import Agent
from madoguchi_agent.policy import Policy, load_cache, publish
from madoguchi_shared.events import parse_event


async def test_policy_from_the_bus_is_applied_cached_and_used_offline(nats_server, nc, js, municipality, tmp_path):
    config = make_config(tmp_path, nats_server.url, municipality)
    rev1 = await publish(js, "mg_policy", config.policy_key, Policy(heartbeat_s=0.5, card_left_s=120))
    async with running_agent(config) as agent:
        await wait_for(nc, municipality, lambda es: of_type(es, "device.policy_changed"), what="policy changed")
        assert agent.policy.card_left_s == 120
        rev2 = await publish(js, "mg_policy", config.policy_key, Policy(heartbeat_s=0.5, card_left_s=60))
        events = await wait_for(nc, municipality, lambda es: len(of_type(es, "device.policy_changed")) == 2,
                                what="second policy change")
        await wait_for(nc, municipality,
                       lambda es: any(h.policy_version == rev2 for h in of_type(es, "device.heartbeat")),
                       what="heartbeat with the new policy version")
    applied = of_type(events, "device.policy_applied")[0]
    assert (applied.source, applied.policy_version) == ("default", 0)
    changes = of_type(events, "device.policy_changed")
    assert [(c.from_version, c.policy_version) for c in changes] == [(0, rev1), (rev1, rev2)]
    cached = load_cache(config.policy_cache_path)
    assert cached.version == rev2 and cached.policy.card_left_s == 60

    # no link at all (nothing listens there): the agent starts with the cached policy
    offline = config.model_copy(update={"nats_url": "nats://127.0.0.1:9"})
    agent = Agent(offline)
    task = asyncio.create_task(agent.run(install_signals=False))
    await asyncio.sleep(0.3)
    assert agent.policy.card_left_s == 60
    agent.request_stop()
    await task
    from madoguchi_agent.outbox import Outbox

    outbox = Outbox(config.outbox_path)
    queued = [parse_event(r.data) for r in outbox.peek(100)]
    outbox.close()
    started = [e for e in queued if e.type == "device.agent_started"][-1]
    applied = [e for e in queued if e.type == "device.policy_applied"][-1]
    assert started.previous_run == "clean"
    assert (applied.source, applied.policy_version) == ("cache", rev2)
    assert queued[-1].type == "device.agent_stopped"  # kept for the next link, not lost


async def test_heartbeat_carries_versions_and_outbox_depth(nats_server, nc, municipality, tmp_path):
    config = make_config(tmp_path, nats_server.url, municipality)
    async with running_agent(config):
        await wait_for(nc, municipality, lambda es: of_type(es, "device.heartbeat"), what="heartbeat")
    events = await wait_for(nc, municipality, lambda es: of_type(es, "device.agent_stopped"), what="stopped")
    hb = of_type(events, "device.heartbeat")[0]
    assert hb.agent_version and hb.policy_version == 0 and hb.outbox_depth >= 1 and hb.uptime_s >= 0
    assert [e.type for e in events][:2] == ["device.agent_started", "device.policy_applied"]
    assert events[-1].type == "device.agent_stopped" and events[-1].reason == "requested"
