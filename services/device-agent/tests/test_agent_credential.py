"""The agent on its own laptop credential (issue 15 §5): with only the permissions a desk laptop
has, it drains its outbox to its own subject, follows its policy in the KV bucket, and follows the
desk's visits (DESK-9) — every JetStream call it makes is allowed, and nothing more."""

from __future__ import annotations

import asyncio

from agent_harness import make_config, of_type, running_agent, wait_for

from madoguchi_agent.policy import Policy, publish
from madoguchi_shared import subjects
from madoguchi_shared import natsauth


async def test_agent_runs_on_a_laptop_credential_policy_visits_and_outbox(
    nats_server, data_dir, nc, js, municipality, tmp_path
):
    identity = natsauth.issue_device(data_dir, "chuo-1-pc", municipality, desk="chuo-1")
    nats_server.reload()
    credential = tmp_path / "nats.json"
    credential.write_text(identity.credential())
    config = make_config(
        tmp_path, nats_server.address, municipality, nats_credential=credential, monitors={"desk_visits": True}
    )
    version = await publish(js, "mg_policy", config.policy_key, Policy(heartbeat_s=0.5, card_left_s=90))
    async with running_agent(config) as agent:
        events = await wait_for(
            nc,
            municipality,
            lambda es: of_type(es, "device.policy_changed") and of_type(es, "device.heartbeat"),
            what="policy change and heartbeat drained on the laptop credential",
        )
        assert agent.policy.card_left_s == 90 and of_type(events, "device.policy_changed")[0].policy_version == version
        # the ordered consumer following the desk's visits exists, created with the laptop's credential
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            filters = [c.config.filter_subject for c in await js.consumers_info("MG_DESK")]
            if subjects.pattern("desk", municipality, "visit") in filters:
                break
            assert asyncio.get_running_loop().time() < deadline, filters
            await asyncio.sleep(0.2)
    await wait_for(nc, municipality, lambda es: of_type(es, "device.agent_stopped"), what="stopped")
