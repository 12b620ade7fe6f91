"""`madoguchi simulate ...`: realistic operations for demos, tests and benchmarks (issue 9).

madoguchi simulate run --mode bus --days 5 --seed 7 --truth var/sim/truth.json
madoguchi simulate run --mode api --days 1 --speed 60          (the services must be running)
madoguchi simulate demo --speed 51                              (today at every desk, in 10 minutes)
madoguchi simulate national --events 200000                     (a slice of the national peak day)
madoguchi simulate mix --days 1                                 (the event mix, nothing published)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from madoguchi_shared.settings import Settings

app = typer.Typer(help="Simulated operations: desks, the phone line, desk PCs (issue 9).", no_args_is_help=True)


@app.callback()
def _quiet() -> None:
    # one line per HTTP call would drown the progress of an API run
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _profile(name: str, heartbeat_minutes: float | None = None):
    from madoguchi_sim.profile import DEFAULT, PEAK

    profiles = {"default": DEFAULT, "peak": PEAK}
    if name not in profiles:
        raise typer.BadParameter(f"profile must be one of {', '.join(profiles)}")
    chosen = profiles[name]
    if heartbeat_minutes:
        chosen = dataclasses.replace(chosen, heartbeat_minutes=heartbeat_minutes)
    return chosen


def _scenario(
    municipality: str | None,
    municipalities: int,
    desks: int | None,
    start: date | None,
    days: int,
    seed: int,
    profile: str,
    devices: bool,
    lines: bool,
    setup: bool,
    config: Path | None,
    heartbeat_minutes: float | None = None,
):
    from madoguchi_shared.municipality import load_municipality

    from madoguchi_sim.generator import Scenario, scaled_municipalities, today

    settings = Settings()
    code = municipality or settings.municipality
    template = load_municipality(config, code=code) if config else load_municipality(code)
    munis = scaled_municipalities(template, municipalities, desks) if (municipalities > 1 or desks) else [template]
    return Scenario(
        municipalities=tuple(munis),
        start=start or today(),
        days=days,
        seed=seed,
        profile=_profile(profile, heartbeat_minutes),
        devices=devices,
        lines=lines,
        setup=setup,
    )


def _write_truth(path: Path | None, truth, **meta) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth.as_json(**meta), ensure_ascii=False, indent=1, default=str) + "\n")
    typer.echo(f"ground truth written to {path}")


Municipality = Annotated[str | None, typer.Option(help="municipality code (default: settings, 011002 Sapporo)")]
Municipalities = Annotated[
    int, typer.Option(help="how many municipalities (more than 1: synthetic ones from the template)")
]
Desks = Annotated[int | None, typer.Option(help="desks in all (default: as configured)")]
Start = Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD (default: today in Tokyo)")]
Days = Annotated[int, typer.Option(help="days on which desks open (nights and weekends between come too)")]
Seed = Annotated[int, typer.Option(help="the same seed gives the same events")]
ProfileOpt = Annotated[str, typer.Option(help="rates: default or peak")]
Heartbeat = Annotated[float | None, typer.Option(help="desk PC heartbeat interval in minutes (profile: 1, peak: 0.5)")]
TruthOpt = Annotated[Path | None, typer.Option("--truth", help="write the ground truth JSON here")]


@app.command()
def run(
    mode: Annotated[
        str, typer.Option(help="bus (straight onto JetStream) or api (through the services' REST APIs)")
    ] = "bus",
    days: Days = 1,
    seed: Seed = 1,
    speed: Annotated[
        float, typer.Option(help="0 = as fast as possible; N = a day N times faster than real time")
    ] = 0.0,
    truth: TruthOpt = None,
    start: Start = None,
    municipality: Municipality = None,
    municipalities: Municipalities = 1,
    desks: Desks = None,
    profile: ProfileOpt = "default",
    heartbeat_minutes: Heartbeat = None,
    devices: Annotated[bool, typer.Option(help="desk PC agent traffic (heartbeats, card reader, violations)")] = True,
    lines: Annotated[bool, typer.Option(help="the phone line")] = True,
    setup: Annotated[bool, typer.Option(help="bus mode: staff accounts and training records first")] = True,
    config: Annotated[
        Path | None, typer.Option(help="municipality TOML (default: by code from config/municipalities)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
    serve: Annotated[bool, typer.Option(help="api mode: serve desk and calls here on the simulation's clock")] = False,
    password: Annotated[
        str, typer.Option(help="api mode: password of the simulated staff accounts")
    ] = "demo-password-2021",
) -> None:
    """Simulate operations and write them to the system, bus or API mode."""
    if mode not in ("bus", "api"):
        raise typer.BadParameter("mode must be bus or api")
    scenario = _scenario(
        municipality,
        municipalities,
        desks,
        date.fromisoformat(start) if start else None,
        days,
        seed,
        profile,
        devices,
        lines,
        setup and mode == "bus",
        config,
        heartbeat_minutes,
    )
    settings = Settings()
    if mode == "bus":
        from madoguchi_sim.busmode import publish
        from madoguchi_sim.generator import iter_events
        from madoguchi_sim.truth import Truth
        from madoguchi_shared import bus

        if speed > 0:  # paced: one time-ordered stream per day
            scenario = dataclasses.replace(scenario, group_desks=10**9)
        result = Truth()

        async def publish_all():
            nc = await bus.connect_tool(settings.nats_url, name="madoguchi-simulate")
            try:
                js = nc.jetstream()
                await bus.ensure_streams(js, settings.stream_replicas)
                return await publish(js, iter_events(scenario, result), speed=speed, progress=progress)
            finally:
                await nc.drain()

        report = asyncio.run(publish_all())
        typer.echo(f"published {report.events:,} events in {report.seconds:.1f} s ({report.rate:,.0f} events/s)")
        _print_mix(result.event_types, result)
        _write_truth(truth, result, mode="bus", seed=seed, start=str(scenario.start), days=days, fill=report.as_dict())
        return
    from madoguchi_sim.apimode import ApiTargets, ClockMismatch, run_api
    from madoguchi_sim.clock import SimClock
    from madoguchi_sim.demo import ServeError, create_demo_staff, serve_services

    sim_clock = SimClock.from_settings(settings)
    if sim_clock is None and serve:
        sim_clock = SimClock.for_day(scenario.start, speed or 1.0)

    async def go():
        targets = ApiTargets.from_settings(settings)
        staff = await create_demo_staff(settings, scenario.municipalities[0], password)  # trained (ORG-4), with logins
        passwords = {p.staff_id: password for p in staff}
        if serve:
            async with serve_services(settings, sim_clock):
                return await run_api(
                    settings, scenario, targets, clock=sim_clock, progress=progress, passwords=passwords
                )
        return await run_api(
            settings, scenario, targets, speed=speed or 1.0, clock=sim_clock, progress=progress, passwords=passwords
        )

    try:
        outcome = asyncio.run(go())
    except (ClockMismatch, ServeError) as exc:
        typer.echo(f"cannot run through the APIs: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(outcome.summary())
    _write_truth(
        truth, outcome.truth, mode="api", seed=seed, start=str(scenario.start), days=days, api=outcome.as_dict()
    )


@app.command()
def mix(
    days: Days = 1,
    seed: Seed = 1,
    start: Start = None,
    municipality: Municipality = None,
    municipalities: Municipalities = 1,
    desks: Desks = None,
    profile: ProfileOpt = "default",
    truth: TruthOpt = None,
    heartbeat_minutes: Heartbeat = None,
) -> None:
    """Generate without publishing: the event mix per desk-day and the ground truth."""
    from madoguchi_sim.generator import iter_events
    from madoguchi_sim.truth import Truth

    scenario = _scenario(
        municipality,
        municipalities,
        desks,
        date.fromisoformat(start) if start else None,
        days,
        seed,
        profile,
        True,
        True,
        True,
        None,
        heartbeat_minutes,
    )
    result = Truth()
    n = sum(1 for _ in iter_events(scenario, result))
    typer.echo(f"{n:,} events")
    _print_mix(result.event_types, result)
    _write_truth(truth, result, mode="none", seed=seed, start=str(scenario.start), days=days)


def _print_mix(types: Counter, truth) -> None:
    desk_days = sum(
        len([r for r in reports if not r.startswith("daily_line-")]) for reports in truth.reports().values()
    )
    if not desk_days:
        return
    typer.echo(f"event mix per desk-day ({desk_days} desk-days; setup and phone-line events included in the totals):")
    for name, n in sorted(types.items()):
        typer.echo(f"  {name:45s} {n / desk_days:9.2f}")


@app.command()
def demo(
    speed: Annotated[
        float, typer.Option(help="how much faster than real time (51 = a day in about 14 minutes)")
    ] = 51.0,
    seed: Seed = 1,
    password: Annotated[str, typer.Option(help="password of the demo staff accounts")] = "demo-password-2021",
    truth: TruthOpt = Path("var/sim/demo-truth.json"),
    serve: Annotated[
        bool | None,
        typer.Option(
            help="serve the desk and calls services in this process on the simulation's clock "
            "(default: when their ports are free)"
        ),
    ] = None,
) -> None:
    """A living day: demo staff, then today at Sapporo's desks and the phone line through the APIs.

    The rest of the system must be running. The desk and calls services must read the
    simulation's clock: either this command serves them (start the system without them:
    `madoguchi run --only reporting --only audit --only console`), or they were started with the
    clock in their settings (`madoguchi simulate clock`). Prints the console logins.
    """
    from madoguchi_sim.apimode import ApiTargets, ClockMismatch, run_api
    from madoguchi_sim.clock import SimClock
    from madoguchi_sim.demo import ServeError, create_demo_staff, port_in_use, print_logins, serve_services
    from madoguchi_sim.generator import today

    settings = Settings()
    sim_clock = SimClock.from_settings(settings)
    serving = serve if serve is not None else (sim_clock is None and not port_in_use(settings.host, settings.desk_port))
    if sim_clock is None:
        sim_clock = SimClock.for_day(today(), speed)
    scenario = _scenario(None, 1, None, sim_clock().date(), 1, seed, "default", True, True, False, None)

    async def go():
        staff = await create_demo_staff(settings, scenario.municipalities[0], password)
        print_logins(settings, staff, password, echo=typer.echo)
        passwords = {s.staff_id: password for s in staff}
        if serving:
            async with serve_services(settings, sim_clock) as urls:
                typer.echo(f"desk and calls served here on the simulated clock (x{sim_clock.speed:g}): {urls}")
                return staff, await run_api(
                    settings,
                    scenario,
                    ApiTargets.from_settings(settings),
                    clock=sim_clock,
                    progress=True,
                    passwords=passwords,
                )
        return staff, await run_api(
            settings, scenario, ApiTargets.from_settings(settings), clock=sim_clock, progress=True, passwords=passwords
        )

    try:
        staff, outcome = asyncio.run(go())
    except (ClockMismatch, ServeError) as exc:
        typer.echo(f"cannot run the demo day: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(outcome.summary())
    _write_truth(truth, outcome.truth, mode="demo", seed=seed, start=str(scenario.start), api=outcome.as_dict())
    print_logins(settings, staff, password, echo=typer.echo)


@app.command()
def clock(
    speed: Annotated[float, typer.Option(help="how much faster than real time")] = 51.0,
    day: Annotated[str | None, typer.Option(help="the simulated day (default: today in Tokyo)")] = None,
    at: Annotated[str, typer.Option(help="what the clock reads now, HH:MM")] = "07:40",
) -> None:
    """Print MADOGUCHI_EXTRA for a simulated clock shared by the services and `simulate demo`."""
    from datetime import time as dtime

    from madoguchi_sim.clock import SETTINGS_KEY, SimClock
    from madoguchi_sim.generator import today

    sim = SimClock.for_day(date.fromisoformat(day) if day else today(), speed, dtime.fromisoformat(at))
    typer.echo(json.dumps({SETTINGS_KEY: sim.spec()}))


@app.command()
def national(
    events: Annotated[
        int, typer.Option(help="about how many events (the whole day is ~15 million; more is capped)")
    ] = 200_000,
    municipalities: Annotated[int, typer.Option(help="municipalities in Japan")] = 1741,
    desks: Annotated[int, typer.Option(help="desks in all")] = 4000,
    seed: Seed = 1,
    day: Annotated[str, typer.Option(help="the peak day")] = "2021-09-30",
    workers: Annotated[int, typer.Option(help="generator processes (0 = generate in this process)")] = 2,
    truth: TruthOpt = None,
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
) -> None:
    """Fill the bus with (a slice of) the national peak day and report the fill rate."""
    from madoguchi_sim import national as nat
    from madoguchi_shared import bus

    settings = Settings()

    async def go():
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-simulate-national")
        try:
            js = nc.jetstream()
            await bus.ensure_streams(js, settings.stream_replicas)
            return await nat.fill(
                js,
                events,
                municipalities=municipalities,
                desks=desks,
                day=date.fromisoformat(day),
                seed=seed,
                workers=workers,
                with_truth=truth is not None,
                progress=progress,
            )
        finally:
            await nc.drain()

    report = asyncio.run(go())
    d = report.as_dict()
    typer.echo(
        f"national peak day {day}: {d['municipalities']} municipalities, {d['desks']} desks "
        f"(~{d['events_per_desk_day']:.0f} events per desk-day, agent heartbeats every {d['heartbeat_seconds']:g} s; "
        f"the whole day ~{d['whole_day_events_estimate']:,})"
    )
    typer.echo(f"published {d['events']:,} events in {d['seconds']:.1f} s: {d['events_per_second']:,.0f} events/s")
    typer.echo("by context: " + ", ".join(f"{k} {v:,}" for k, v in d["by_context"].items()))
    if truth is not None:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_text(
            json.dumps(
                {
                    "mode": "national",
                    "seed": seed,
                    "day": day,
                    "fill": d,
                    "events": {"total": sum(report.by_type.values()), "by_type": dict(report.by_type)},
                    "reports": report.truth,
                },
                ensure_ascii=False,
                default=str,
            )
            + "\n"
        )
        typer.echo(f"ground truth written to {truth}")
