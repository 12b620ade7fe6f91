"""Property (issue 12): valid events of EVERY type, drawn by hypothesis from the exported JSON
Schemas, go through every reporting projection and the audit ingest on the real PostgreSQL with
no dead letter, no exception and no stall. Bounded examples, so it stays quick in `make test`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from madoguchi_shared import bus
from madoguchi_shared.events import REGISTRY, Event
from tests.utils.event_strategies import events as event_strategy
from tests.utils.servers import unique_municipality

ROOT = Path(__file__).resolve().parent.parent
for folder in ("services/reporting/tests",):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

from madoguchi_audit import schema as audit_schema  # noqa: E402
from madoguchi_audit.config import AuditSettings  # noqa: E402
from madoguchi_audit.ingest import Ingest  # noqa: E402
from reporting_harness import reporting_settings, running_app  # noqa: E402

EXAMPLES = 2  # valid events drawn per event type and run


def draw_events(municipality: str) -> list[Event]:
    """Hypothesis draws, type by type: EXAMPLES valid events of every type (all of this municipality),
    and EXAMPLES more with every number at its upper bound and every list at its longest."""
    drawn: list[Event] = []
    for name, extreme in ((n, x) for n in sorted(REGISTRY) for x in (False, True)):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.large_base_example],
        )
        @given(event_strategy(REGISTRY[name], municipality, extreme=extreme))
        def collect(event: Event) -> None:
            drawn.append(event)

        collect()
    return drawn


async def test_valid_events_of_every_type_through_every_projection_and_the_audit_ingest(
    settings, js, nc, pg_pool, tmp_path
):
    m = unique_municipality()
    drawn = draw_events(m)
    assert {e.type for e in drawn} == set(REGISTRY)  # every type, valid by its own model
    await bus.publish_many(js, drawn)
    ours = {e.type.split(".", 1)[0] for e in drawn}
    assert {"desk", "calls", "report", "audit", "admin", "device"} <= ours

    audit = AuditSettings(
        data_dir=tmp_path / "audit",
        municipality=m,
        schema_name=f"audit_{m}",
        municipalities=[m],
        checkpoint_every=100,
        checkpoint_seconds=0.5,
    )
    await audit_schema.migrate_pool(pg_pool, audit.schema_name)
    ingest = Ingest(audit, nc, pg_pool)  # the audit ingest's own entrypoint
    ingest_task = asyncio.create_task(ingest.run())
    async with running_app(reporting_settings(settings)) as (app, _client):
        worker = app.state.reporting
        await worker.caught_up(timeout=60)  # no stall: every projection reaches its stream's end
        await ingest.wait_idle(60)
        ingest.stop()
        await asyncio.wait_for(ingest_task, 20)
        dead = {p.name: p.dead_lettered for p in worker.projections}
        assert dead == {p.name: 0 for p in worker.projections}, "valid events were dead-lettered"
        async with pg_pool.acquire() as conn:
            reasons = await conn.fetch(
                """SELECT name, seq, reason FROM reporting.projection_dead_letter
                                          WHERE split_part(subject, '.', 3) = $1""",
                m,
            )
            assert [dict(r) for r in reasons] == []
            logged = await conn.fetchval(
                f'SELECT count(*) FROM "{audit.schema_name}".log WHERE parsed AND municipality = $1', m
            )
        assert logged >= len(drawn)  # every event recorded (plus the log's own checkpoints)
        assert all(not t.done() for t in worker.tasks)
