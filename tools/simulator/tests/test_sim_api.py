"""API mode: one desk and the phone line for the first hour of a day, through the real desk and
calls apps (real NATS and PostgreSQL), on a simulated clock shared with the apps (~600x)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import datetime, time, timedelta

import httpx
from sim_harness import SAPPORO_TOML, scenario

from madoguchi_calls.main import create_app as create_calls
from madoguchi_desk.main import create_app as create_desk
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event

from madoguchi_sim.apimode import ApiTargets, run_api, scripts
from madoguchi_sim.clock import SimClock
from madoguchi_sim.demo import create_demo_staff
from madoguchi_sim.generator import iter_events
from madoguchi_reporting.recount import recount

SPEED = 600.0
PASSWORD = "demo-password-for-tests"
STAFF = ("mgr-1", "op-1", "op-2", "chuo-1-s1", "chuo-1-s2", "chuo-1-s3")
COMPARED = (
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


async def test_one_desk_and_the_line_for_an_hour_through_the_apis(settings, nc, municipality):
    sc = scenario(municipality, days=1, seed=9, only_desks=frozenset({"chuo-1"}), setup=False)
    m = sc.municipalities[0]
    until = datetime.combine(sc.start, time(9, 45), TOKYO)  # opening at 8:45, an hour of visitors
    script = [e for e in iter_events(sc) if e.occurred_at <= until]
    s = settings.model_copy(update={"municipality": municipality, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    await create_demo_staff(s, m, PASSWORD, nc=nc, only=set(STAFF))
    # the clock starts once the accounts exist: on a loaded machine their making took simulated hours
    # away from the script (a call before the opening then reached the service after it)
    clock = SimClock.starting_now(min(e.occurred_at for e in script) - timedelta(seconds=5), SPEED)

    async with AsyncExitStack() as stack:
        desk = create_desk(s, clock=clock, staffing_check_seconds=1.0)
        calls = create_calls(s, clock=clock, check_interval=1.0)
        await stack.enter_async_context(desk.router.lifespan_context(desk))
        await stack.enter_async_context(calls.router.lifespan_context(calls))
        targets = ApiTargets(
            "http://desk", "http://calls", httpx.ASGITransport(app=desk), httpx.ASGITransport(app=calls)
        )
        outcome = await run_api(
            s, sc, targets, clock=clock, nats_client=nc, until=until, passwords={p: PASSWORD for p in STAFF}
        )

    assert outcome.failed() == 0, outcome.summary()
    desk_script, line_script = scripts(script)
    assert outcome.commands["tickets"] > 5 and outcome.commands["visits/end"] > 3 and outcome.commands["calls"] > 0
    assert outcome.device_events == sum(1 for e in desk_script["chuo-1"] if e.context == "device")

    # the services recorded what the script did: the same counts, with their own ids and stamps
    expected = recount([e for e in script if e.context in ("desk", "calls")])[municipality]
    recorded = outcome.truth.reports()[municipality]
    day = sc.start.isoformat()
    want, got = expected[f"daily_chuo-1_{day}"], recorded[f"daily_chuo-1_{day}"]
    for figure in COMPARED + ("visitors", "completed", "not_completed"):
        assert got.get(figure, 0) == want.get(figure, 0), figure
    for key in want:
        if key.startswith(("by_gender.", "by_age_band.", "by_purpose.", "not_completed_reasons.")):
            assert got.get(key) == want[key], key
    line_want, line_got = expected[f"daily_line-main_{day}"], recorded[f"daily_line-main_{day}"]
    for figure in ("received", "answered", "closed", "abandoned", "out_of_hours", "callbacks.opened"):
        assert line_got.get(figure, 0) == line_want.get(figure, 0), figure
    # a caller's choice is played only when the service made the script's offer (a run behind the
    # clock may reach it after the opening with a call the script received before): never more
    chosen = outcome.truth.event_types.get("calls.offer_choice_recorded", 0)
    scripted = sum(1 for e in line_script if e.type == "calls.offer_choice_recorded")
    assert chosen <= scripted and (chosen == scripted or outcome.max_lag_s > 60), (chosen, scripted)
    played = set(outcome.truth.event_types) | _derived_or_unscripted() | {"calls.offer_choice_recorded"}
    assert _types(line_script) <= played


def _types(events: list[Event]) -> set[str]:
    return {e.type for e in events}


def _derived_or_unscripted() -> set[str]:
    return {"calls.callback_contact_erased", "calls.callback_overdue", "calls.capacity_threshold_crossed"}


async def test_serving_on_a_taken_port_says_so_clearly(settings):
    """`simulate run --mode api --serve` next to a running desk service: a clear error, no traceback."""
    import socket

    import pytest

    from madoguchi_sim.demo import ServeError, serve_services

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = settings.model_copy(update={"host": "127.0.0.1", "desk_port": port})
        with pytest.raises(ServeError, match=f"port {port} of the desk service is taken"):
            async with serve_services(s, SimClock.starting_now(datetime.now(TOKYO), 1.0)):
                pass


def test_a_run_that_falls_behind_the_clock_says_so():
    from madoguchi_sim.apimode import ApiOutcome

    assert "warning" not in ApiOutcome(max_lag_s=5.0).summary()
    behind = ApiOutcome(max_lag_s=3_600.0)
    assert "60 simulated minutes behind" in behind.summary() and "--speed" in behind.summary()
    assert behind.as_dict()["max_lag_simulated_s"] == 3_600.0
