"""The poison test (issue 12): a schema-valid desk event that the statistics tables cannot hold is
dead-lettered with its reason and alerted to HQ; the reporting projection goes on (later events
reach the reports within 5 s, /readyz names the dead letter, the metrics count it) and
`report verify` is green for everything else; after the fix, a replay counts it."""

from __future__ import annotations

import asyncio
import datetime as dt

from madoguchi_shared import bus, dlq, reader, subjects
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events import parse_event
from madoguchi_shared.projection import ALERT_RULE

from madoguchi_reporting.cli import verify_async
from madoguchi_reporting.projections import DESK

from reporting_harness import headers, reporting_settings, running_app
from sim_week import WEEK_START, simulate

CAP = 9000  # what this test's desk-day ticket table is made to hold


async def test_an_event_the_tables_cannot_hold_is_dead_lettered_and_the_rest_goes_on(
    settings, js, nc, pg_pool, municipality
):
    s = reporting_settings(settings)
    week = simulate(municipality, WEEK_START, desks=1, days=2, visitors=12, seed=5)
    day1 = [e for e in week.events if e.occurred_at.date() == WEEK_START]
    later = [e for e in week.events if e.occurred_at.date() != WEEK_START]
    issued = next(e for e in day1 if isinstance(e, dk.TicketIssued))
    # valid by the contract, but the table (for this municipality) cannot hold it
    poison = dk.TicketIssued(
        municipality=municipality,
        ward=issued.ward,
        desk=issued.desk,
        deskday_id=issued.deskday_id,
        ticket_no=CAP + 500,
        occurred_at=issued.occurred_at + dt.timedelta(minutes=1),
    )
    constraint = f"poison_{municipality}"
    async with pg_pool.acquire() as conn:
        from madoguchi_reporting import schema

        await schema.migrate(conn)
        await conn.execute(f"""ALTER TABLE reporting.ticket ADD CONSTRAINT {constraint}
                               CHECK (municipality <> '{municipality}' OR ticket_no < {CAP}) NOT VALID""")
    try:
        await bus.publish_many(js, day1)
        ack = await bus.append(js, poison)
        async with running_app(s) as (app, client):
            worker = app.state.reporting
            await worker.caught_up()
            desk = next(p for p in worker.projections if p.name == DESK)
            assert desk.dead_lettered == 1

            # later events reach the report within 5 s, without a restart
            tasks = {t.get_name(): t for t in worker.tasks}
            await bus.publish_many(js, later)
            day2 = WEEK_START + dt.timedelta(days=1)
            truth = week.desk_truth(issued.desk, day2)
            h = await headers(js, s, municipality)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while True:
                r = await client.get(
                    "/v1/reports/daily", params={"desk": issued.desk, "date": day2.isoformat()}, headers=h
                )
                if r.status_code == 200 and r.json()["figures"]["visitors"] == truth["visitors"]:
                    break
                assert loop.time() < deadline, "later events not projected within 5 s"
                await asyncio.sleep(0.1)
            assert all(not t.done() for t in tasks.values())

            # the dead letter, its reason (no content), the HQ alert
            dead = [
                m
                async for m in reader.read_all(nc, subjects.dlq_subject(DESK), stream="MG_DLQ")
                if m.headers["Mg-Original-Seq"] == str(ack.seq)
            ]
            assert len(dead) == 1 and parse_event(dead[0].data).event_id == poison.event_id
            # the reason names the error, not the refused value (the constraint's name holds the municipality code,
            # which may contain the value's digits: it is taken out before looking)
            reason = dead[0].headers["Mg-Reason"]
            assert "CheckViolation" in reason and str(CAP + 500) not in reason.replace(constraint, "")
            alerts = [
                parse_event(m.data)
                async for m in reader.read_all(
                    nc, subjects.context_filter("audit", municipality, "alert"), stream="MG_AUDIT"
                )
            ]
            assert [(a.rule, a.source_event_ids) for a in alerts] == [(ALERT_RULE, (poison.event_id,))]

            # health: /readyz says which projection dead-lettered; the metrics count it
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["projections"][DESK]["status"] == "dead_lettered"
            assert ready.json()["projections"][DESK]["dead_lettered"] == 1
            metrics = (await client.get("/metrics")).text
            assert f'madoguchi_projection_dead_letters_total{{projection="{DESK}"}} 1.0' in metrics
            assert f'madoguchi_projection_lag{{projection="{DESK}"}}' in metrics

            # the recount agrees with everything else
            checks, text = await verify_async(nc, app.state.pool, worker.cfg, municipality, WEEK_START, day2)
            assert sum(len(c.mismatches) for c in checks) == 0, text
            assert "1 dead-lettered events left out" in text

            # after the fix (the table holds it now), the operator replays it: it counts, verify still green
            async with pg_pool.acquire() as conn:
                await conn.execute(f"ALTER TABLE reporting.ticket DROP CONSTRAINT {constraint}")
            await dlq.request_replay(nc, DESK, ack.seq)
            deadline = loop.time() + 10
            while not await pg_pool.fetchval(
                "SELECT count(*) FROM reporting.ticket WHERE municipality = $1 AND ticket_no = $2",
                municipality,
                CAP + 500,
            ):
                assert loop.time() < deadline, "the replay was not applied"
                await asyncio.sleep(0.1)
            checks, text = await verify_async(nc, app.state.pool, worker.cfg, municipality, WEEK_START, day2)
            assert sum(len(c.mismatches) for c in checks) == 0, text
            assert "left out" not in text
    finally:
        async with pg_pool.acquire() as conn:
            await conn.execute(f"ALTER TABLE reporting.ticket DROP CONSTRAINT IF EXISTS {constraint}")
