"""The living demo's people: staff accounts with completed training, and the logins to show.

`create_demo_staff` makes (or resets) every account the simulated day needs — the manager, a
rounder, the phone operators, two or three supporters per desk, a city officer and an auditor to
look at the reports and the log — through `madoguchi_shared.auth.add_staff` over NATS, and
records their training as complete (ORG-4: the desk refuses to check in untrained staff).
Staff ids are codes, never names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

from madoguchi_shared import auth, bus
from madoguchi_shared.events.admin import TRAINING_ITEMS, TrainingItemCompleted, TrainingTestRecorded
from madoguchi_shared.events.base import Actor, Role
from madoguchi_shared.municipality import Municipality
from madoguchi_shared.settings import Settings

from madoguchi_sim import ids
from madoguchi_sim.profile import DEFAULT


@dataclass(frozen=True)
class DemoStaff:
    staff_id: str
    role: Role
    wards: tuple[str, ...] = ()
    label_ja: str = ""


def demo_staff(m: Municipality, supporters_per_desk: int = DEFAULT.supporters_per_desk) -> list[DemoStaff]:
    people = [
        DemoStaff(ids.MANAGER_ID, Role.manager, (), "業務責任者"),
        DemoStaff(ids.ROUNDER_ID, Role.rounder, (), "ラウンダー"),
        *(DemoStaff(op, Role.operator, (), "オペレーター") for op in ids.OPERATOR_IDS),
        DemoStaff("city-1", Role.city_staff, (), "市職員（報告書の閲覧）"),
        DemoStaff("audit-1", Role.auditor, (), "監査担当"),
    ]
    for desk in m.desks:
        for s in ids.staff_ids(desk.id, supporters_per_desk + 1):
            people.append(DemoStaff(s, Role.supporter, (desk.ward,), f"支援員（{m.ward(desk.ward).name_ja}）"))
    return people


async def create_demo_staff(
    settings: Settings, m: Municipality, password: str, nc=None, only: set[str] | None = None
) -> list[DemoStaff]:
    """Create the accounts and their training records (or only those named); returns who was created."""
    people = [p for p in demo_staff(m) if only is None or p.staff_id in only]
    own = nc is None
    nc = nc or await bus.connect_tool(settings.nats_url, name="madoguchi-simulate-demo")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, settings.stream_replicas)
        trainer = Actor(id=ids.MANAGER_ID, role=Role.manager)
        for p in people:
            await auth.add_staff(
                js, municipality=m.code, staff_id=p.staff_id, roles=[p.role], wards=p.wards, password=password
            )
            if p.role in (Role.supporter, Role.rounder, Role.manager, Role.operator):
                for item in TRAINING_ITEMS:
                    await bus.append(
                        js,
                        TrainingItemCompleted(
                            municipality=m.code, staff_id=p.staff_id, item=item, hours=2.0, actor=trainer
                        ),
                    )
                await bus.append(
                    js,
                    TrainingTestRecorded(
                        municipality=m.code, staff_id=p.staff_id, score=92, passed=True, actor=trainer
                    ),
                )
    finally:
        if own:
            await nc.drain()
    return people


def print_logins(settings: Settings, people: list[DemoStaff], password: str, echo=print) -> None:
    """The console's address and who to log in as (one line per role, supporters by ward)."""
    echo("")
    echo(f"コンソール / console: http://{settings.host}:{settings.console_port}/  (パスワード / password: {password})")
    shown: set[str] = set()
    for p in people:
        key = p.role.value if p.role != Role.supporter else f"supporter-{p.wards}"
        if p.role == Role.supporter and p.staff_id.endswith("-s3"):
            continue
        if key in shown and p.role == Role.supporter:
            continue
        shown.add(key)
        echo(f"  {p.staff_id:16s} {p.role.value:11s} {p.label_ja}")
    echo("")


class ServeError(RuntimeError):
    """The simulator could not serve a service itself (its port is taken, or it failed to start)."""


def port_in_use(host: str, port: int) -> bool:
    """Something listens on the port (a service `madoguchi run` already serves, say)."""
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _check_port_free(host: str, port: int, name: str) -> None:
    if port_in_use(host, port):
        raise ServeError(
            f"port {port} of the {name} service is taken. The simulator serves {name} itself "
            f"on the simulated clock: run the rest of the system with `madoguchi run --only reporting --only audit "
            f"--only console` (as `make demo` does), or set MADOGUCHI_{name.upper()}_PORT to a free port"
        )


@asynccontextmanager
async def serve_services(settings: Settings, clock, names: tuple[str, ...] = ("desk", "calls")) -> AsyncIterator[dict]:
    """Run the named HTTP services in this process on their configured ports, reading `clock`.

    For the living demo: the desk and calls services stamp events and check opening hours with
    their clock, so to run a day in minutes they must read the simulation's. Their apps come from
    the `madoguchi.services` entry points (the simulator imports no service), each built with
    `create_app(settings, clock=clock)`; the rest of the system (reporting, audit, console) runs
    as usual: `madoguchi run --only reporting --only audit --only console`.
    """
    import uvicorn

    factories = {ep.name: ep for ep in entry_points(group="madoguchi.services")}
    servers: dict[str, tuple[uvicorn.Server, asyncio.Task]] = {}
    try:
        for name in names:
            if name not in factories:
                raise RuntimeError(f"service {name} is not installed")
            app = factories[name].load()(settings.model_copy(update={"log_level": "WARNING"}), clock=clock)
            port = getattr(settings, f"{name}_port")
            _check_port_free(settings.host, port, name)
            server = uvicorn.Server(
                uvicorn.Config(app, host=settings.host, port=port, log_level="warning", access_log=False, lifespan="on")
            )
            task = asyncio.create_task(server.serve(), name=f"serve-{name}")
            servers[name] = (server, task)
            while not server.started:
                if task.done():
                    try:
                        task.result()  # raises why it stopped
                    except SystemExit:  # uvicorn exits when its startup fails
                        pass
                    raise ServeError(f"the {name} service stopped while starting on port {port}")
                await asyncio.sleep(0.05)
        yield {name: f"http://{settings.host}:{getattr(settings, f'{name}_port')}" for name in servers}
    finally:
        for server, _ in servers.values():
            server.should_exit = True
        for _, task in servers.values():
            with contextlib.suppress(Exception):
                await task
