"""Racing commands on a 3-node cluster (JetStream R3) through the desk API (issue 18 item 1).

In a replicated stream a losing writer often gets err_code 10164 ("wrong last sequence", while the
winner's write is in flight) instead of 10071; both are conflicts. Several desk replicas, each on its
own node, race on one desk-day: ticket issues are re-decided and succeed, gap-free; "call next" on the
same screen version gives one winner and 409s; no racer ever sees a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import httpx
import pytest
from desk_api import SAPPORO_TOML, FakeClock, auth, ok, train

from madoguchi_desk.main import create_app
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events.admin import TrainingItemCompleted
from madoguchi_shared.subjects import aggregate_subject
from tests.utils.servers import NatsCluster


@pytest.fixture
def cluster(tmp_path):
    nodes = NatsCluster(tmp_path).start()
    yield nodes
    nodes.stop()


async def test_appends_racing_on_one_subject_in_a_cluster_are_conflicts_never_errors(cluster, municipality):
    nc, js = await cluster.connect()
    clients = [await bus.connect(node.url, name=f"racer-{i}") for i, node in enumerate(cluster.nodes)]
    try:
        first = TrainingItemCompleted(municipality=municipality, staff_id="R1", item="system", hours=1)
        await bus.append(js, first, expected=0)
        outcome = {"won": 0, "conflict": 0}

        async def racer(client) -> None:
            rjs = client.jetstream()
            for _ in range(40):
                last = await bus.last_sequence(rjs, first.subject)
                try:
                    await bus.append(
                        rjs,
                        TrainingItemCompleted(municipality=municipality, staff_id="R1", item="system", hours=1),
                        expected=last,
                    )
                    outcome["won"] += 1
                except bus.ConcurrencyConflict:
                    outcome["conflict"] += 1

        await asyncio.gather(*(racer(c) for c in clients for _ in range(2)))  # two racers per node
        stored = await bus.load(nc, first.subject)
        assert len(stored) == 1 + outcome["won"]  # every win stored once, no loser slipped in
        assert outcome["conflict"] > 0 and outcome["won"] + outcome["conflict"] == 6 * 40
    finally:
        for client in clients:
            await client.close()
        await nc.close()


async def test_desk_replicas_racing_through_the_api_get_201_200_or_409_never_5xx(cluster, settings, municipality):
    nc, js = await cluster.connect()
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    staff = [f"S{i}" for i in range(1, 5)]
    for s in staff:
        await train(js, municipality, s)
    heads = [await auth(js, settings, municipality, s, Role.supporter, ("kita",)) for s in staff]
    apps = []
    for node in cluster.nodes:  # one desk replica per node
        s = settings.model_copy(
            update={
                "municipality": municipality,
                "config_file": SAPPORO_TOML,
                "log_level": "WARNING",
                "nats_url": node.url,
                "stream_replicas": 3,
            }
        )
        apps.append(create_app(s, clock=clock, staffing_check_seconds=3600))
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
                clients.append(
                    await stack.enter_async_context(
                        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60)
                    )
                )

            # 4 supporters on 3 replicas issue 20 tickets each at once: every one re-decided until it lands
            async def issue(i: int) -> list[httpx.Response]:
                return [await clients[i % 3].post("/v1/desks/kita-1/tickets", headers=heads[i]) for _ in range(20)]

            issued = [r for rs in await asyncio.gather(*(issue(i) for i in range(4))) for r in rs]
            assert all(r.status_code in (201, 409) for r in issued), [
                r.text for r in issued if r.status_code not in (201, 409)
            ][:3]
            winners = [r.json()["ticket_no"] for r in issued if r.status_code == 201]
            assert sorted(winners) == list(range(1, len(winners) + 1)) and len(winners) >= 70
            for i, h in enumerate(heads):
                ok(await clients[i % 3].post("/v1/desks/kita-1/staff/check-in", headers=h, json={}))

            # rounds of "call next": all four screens show the same version; one wins, the rest get a 409
            for _ in range(5):
                queue = ok(await clients[0].get("/v1/desks/kita-1/queue", headers=heads[0]))
                body = {"version": queue["version"]}
                calls = await asyncio.gather(
                    *(
                        clients[i % 3].post("/v1/desks/kita-1/tickets/call-next", headers=heads[i], json=body)
                        for i in range(4)
                    )
                )
                codes = sorted(r.status_code for r in calls)
                assert codes == [200, 409, 409, 409], [r.text for r in calls]
                assert all(
                    r.headers["content-type"].startswith("application/problem+json")
                    for r in calls
                    if r.status_code == 409
                )
        stored = await bus.load(nc, aggregate_subject("desk", municipality, "deskday", "kita-1_2021-04-06"))
        numbers = [s.event.ticket_no for s in stored if s.event.type == "desk.ticket_issued"]
        assert numbers == sorted(winners)  # in stream order: no gaps, no duplicates
        assert [s.event.type for s in stored].count("desk.ticket_called") == 5
    finally:
        await nc.close()
