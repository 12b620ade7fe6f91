"""A busy morning at one desk through its laptop's edge, with the pocket WiFi down for 10 simulated
minutes of the busiest hour (issue 21): the simulator plays the day through the edge's desk API, the
link is cut and restored, and afterwards HQ's stream and reports equal the simulator's truth, with
no ticket or event twice (`report verify` green)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from contextlib import AsyncExitStack
from datetime import date, datetime, time as dtime, timedelta

import httpx
from desk_api import SAPPORO_TOML
from edge_harness import LinkProxy, edge_app, laptop_identity, until

from madoguchi_desk.main import create_app as create_desk
from madoguchi_reporting.cli import verify_async
from madoguchi_reporting.main import create_app as create_reporting
from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import parse_event
from madoguchi_shared.municipality import load_municipality
from madoguchi_sim.apimode import ApiTargets, run_api
from madoguchi_sim.clock import SimClock
from madoguchi_sim.demo import create_demo_staff, demo_staff
from madoguchi_sim.generator import Scenario, iter_events
from madoguchi_sim.profile import DEFAULT
from madoguchi_reporting.recount import recount

SPEED = 600.0  # a simulated hour in 6 s
DAY = date(2021, 4, 6)
PASSWORD = "demo-password-for-tests"
COMPARED = (
    "visitors",
    "completed",
    "not_completed",
    "tickets_issued",
    "no_shows",
    "recalls",
    "masks_checked",
    "short_absences",
    "capacity_alerts",
    "escalations",
    "escalations_to_city",
    "opinions",
    "pin_failures",
    "pin_locks",
    "pin_lock_warnings",
    "cards_handed",
)
BUSY = dataclasses.replace(
    DEFAULT,
    visitors_mean=125.0,
    visitors_sd=3.0,
    visitors_max=130,
    hourly_weights=((8, 2.0), (9, 2.4), *DEFAULT.hourly_weights[2:]),
)


async def test_a_busy_hour_with_the_link_cut_for_ten_minutes_reports_the_truth(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    m = load_municipality(SAPPORO_TOML, code=municipality)
    until_at = datetime.combine(DAY, dtime(10, 0), TOKYO)
    for seed in range(40):  # a morning whose busiest hour has at least 20 visitors (the scenario varies with the code)
        sc = Scenario(
            municipalities=(m,),
            start=DAY,
            days=1,
            seed=seed,
            profile=BUSY,
            setup=False,
            lines=False,
            devices=False,
            only_desks=frozenset({"chuo-1"}),
        )
        script = [e for e in iter_events(sc) if e.occurred_at <= until_at]
        issued = [e.occurred_at.astimezone(TOKYO) for e in script if e.type == "desk.ticket_issued"]
        busiest = max((8, 9), key=lambda h: sum(1 for t in issued if t.hour == h))
        if sum(1 for t in issued if t.hour == busiest) >= 20:
            break
    assert sum(1 for t in issued if t.hour == busiest) >= 20  # a busy hour
    # the link drops for the ten minutes of that hour with the most arrivals
    starts = [datetime.combine(DAY, dtime(busiest, minute), TOKYO) for minute in range(0, 51, 5)]
    cut_at = max(starts, key=lambda a: sum(1 for t in issued if a <= t < a + timedelta(minutes=10)))
    restore_at = cut_at + timedelta(minutes=10)
    in_outage = [e for e in script if cut_at <= e.occurred_at < restore_at and e.context == "desk"]
    assert len(in_outage) >= 10

    s = settings.model_copy(update={"municipality": municipality, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    staff = {p.staff_id for p in demo_staff(m) if p.staff_id.startswith("chuo-1-") or p.role == Role.manager}
    await create_demo_staff(s, m, PASSWORD, nc=nc, only=staff)
    clock = SimClock.starting_now(min(e.occurred_at for e in script) - timedelta(seconds=5), SPEED)
    link = await LinkProxy(nats_server.url).start()
    laptop = laptop_identity(data_dir, nats_server, municipality, "chuo-1")
    timeline: dict[str, float] = {}

    async def pocket_wifi(edge_service) -> None:
        # The link drops when the desk has reached cut_at and comes back when it has done what the
        # script does until restore_at: on a loaded machine the commands may lag behind the clock,
        # and the ten simulated minutes of work must happen offline all the same.
        async def issued_by_the_desk() -> int:
            return (await edge_service.deskday(edge_service.desk, DAY)).state.last_ticket

        await clock.sleep_until(cut_at)
        await until(lambda: _at_least(issued_by_the_desk(), sum(1 for t in issued if t < cut_at)), timeout=60)
        timeline["cut"] = time.monotonic()
        await link.cut()
        await clock.sleep_until(restore_at)
        await until(lambda: _at_least(issued_by_the_desk(), sum(1 for t in issued if t < restore_at)), timeout=60)
        timeline["restored"] = time.monotonic()
        await link.restore()
        await until(lambda: edge_service.link.outages, timeout=30)
        timeline["converged"] = time.monotonic()

    async with AsyncExitStack() as stack:
        hq = create_desk(s, clock=clock, staffing_check_seconds=1.0)
        await stack.enter_async_context(hq.router.lifespan_context(hq))
        edge_state, edge = await stack.enter_async_context(
            edge_app(settings, "chuo-1", tmp_path, link, laptop, clock, staffing_check_seconds=1.0)
        )
        await until(lambda: edge_state.state.link.online and getattr(edge_state.state, "accounts", None))
        wifi = asyncio.create_task(pocket_wifi(edge_state.state.desk))
        targets = ApiTargets("http://edge", "http://calls", httpx.ASGITransport(app=edge_state), None)
        outcome = await run_api(
            s, sc, targets, clock=clock, nats_client=nc, until=until_at, passwords={}, settle_seconds=0
        )
        await wifi
        assert outcome.failed() == 0, outcome.summary()
        converged = await until(lambda: _drained(edge), timeout=30)
        outage = converged["outages"][0]
        print(
            f"\nedge outage: {outage['commands']} commands decided offline, {outage['queued']} events queued "
            f"({outage['offline_seconds']} s wall offline = 10 simulated minutes at x{SPEED:g}); drained in "
            f"{outage['seconds_to_converge']} s after the link came back, "
            f"{timeline['converged'] - timeline['restored']:.2f} s from restoring the link to HQ holding every event"
        )
        assert outage["commands"] >= 5 and outage["queued"] >= 10 and len(converged["outages"]) == 1

        # HQ holds every event once, every ticket once and in order
        day_subject = subjects.aggregate_subject("desk", municipality, "deskday", f"chuo-1_{DAY.isoformat()}")
        events = [
            parse_event(data)
            async for _s, _subj, data, _h in bus.load_filter(js, subjects.context_filter("desk", municipality))
        ]
        assert max(Counter(e.event_id for e in events).values()) == 1
        tickets = [e.ticket_no for e in events if e.subject == day_subject and e.type == "desk.ticket_issued"]
        assert tickets == list(range(1, len(tickets) + 1)) and len(tickets) == len(issued)

        # the day's figures equal the simulator's truth
        truth = recount([e for e in script if e.context == "desk"])[municipality][f"daily_chuo-1_{DAY.isoformat()}"]
        recorded = recount(events)[municipality][f"daily_chuo-1_{DAY.isoformat()}"]
        for figure in COMPARED:
            assert recorded.get(figure, 0) == truth.get(figure, 0), figure
        for key in truth:
            if key.startswith(("by_gender.", "by_age_band.", "by_purpose.", "not_completed_reasons.")):
                assert recorded.get(key) == truth[key], key

        # and the reports agree with the stream: `report verify` green
        rs = s.model_copy(
            update={
                "extra": {
                    **s.extra,
                    "deadline_check_seconds": "0",
                    "contract_start": "2021-03-15",
                    "contract_end": "2021-09-30",
                }
            }
        )
        reporting = create_reporting(rs)
        await stack.enter_async_context(reporting.router.lifespan_context(reporting))
        worker = reporting.state.reporting
        await worker.caught_up()
        checks, text = await verify_async(reporting.state.nc, reporting.state.pool, worker.cfg, municipality, DAY, DAY)
        assert checks and sum(len(c.mismatches) for c in checks) == 0, text
    await link.cut()


async def _at_least(count, n: int) -> bool:
    return await count >= n


async def _drained(edge) -> dict | None:
    state = (await edge.get("/v1/edge")).json()
    return state if state["online"] and state["pending"] == 0 and state["outages"] else None
