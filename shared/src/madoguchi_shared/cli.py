"""The `madoguchi` command line. Services add their own subcommands through the entry-point
group `madoguchi.cli` (name = "module:typer_app"); HTTP services register in `madoguchi.services`
(name = "module:create_app")."""

from __future__ import annotations

import asyncio
import getpass
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from madoguchi_shared.settings import Settings

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from madoguchi_shared.events.admin import DisableReason
    from madoguchi_shared.events.base import Actor
    from madoguchi_shared.supervisor import Supervisor

T = TypeVar("T")

app = typer.Typer(
    help="Madoguchi（窓口）: operations platform for My Number card support desks and phone lines.",
    no_args_is_help=True,
)
schema_app = typer.Typer(help="Event contracts.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts and credentials.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
nats_app = typer.Typer(help="Credentials on the bus (NATS users of the embedded server).", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
app.add_typer(nats_app, name="nats")


def _add_dlq() -> None:
    from madoguchi_shared import dlq

    app.add_typer(dlq.app, name="dlq")


_add_dlq()


def _add_privacy() -> None:
    from madoguchi_shared import privacy

    app.add_typer(privacy.app, name="privacy")


_add_privacy()


def service_factories() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="madoguchi.services")}


@schema_app.command("export")
def schema_export(directory: Path) -> None:
    """Write a JSON Schema per event type (and the catalog) into DIRECTORY."""
    from madoguchi_shared.events import REGISTRY, adapter

    directory.mkdir(parents=True, exist_ok=True)
    catalog: list[dict[str, str]] = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        schema = cls.model_json_schema()
        (directory / f"{name}.json").write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n")
        catalog.append(
            {
                "type": name,
                "context": cls.context,
                "aggregate": cls.aggregate,
                "aggregate_field": cls.aggregate_field,
                "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            }
        )
    (directory / "_union.json").write_text(json.dumps(adapter().json_schema(), ensure_ascii=False, indent=2) + "\n")
    (directory / "_catalog.json").write_text(json.dumps(catalog, ensure_ascii=False, indent=2) + "\n")
    typer.echo(f"wrote {len(catalog)} event schemas to {directory}")


@schema_app.command("list")
def schema_list() -> None:
    """List every event type with its subject pattern."""
    from madoguchi_shared.events import REGISTRY

    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        typer.echo(f"{name:45s} mg.{cls.context}.<municipality>.{cls.aggregate}.<{cls.aggregate_field}>")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("パスワード / password: ")
    if first != getpass.getpass("もう一度 / again: "):
        raise typer.BadParameter("passwords differ")
    return first


@staff_app.command("add")
def staff_add(
    staff_id: Annotated[str, typer.Option("--id", help="staff id, e.g. S0001 (never a name)")],
    role: Annotated[
        list[str],
        typer.Option("--role", help="manager, rounder, supporter, operator, city_staff, auditor, administrator"),
    ],
    ward: Annotated[list[str], typer.Option("--ward", help="ward scope; omit for all wards (HQ roles)")] = [],  # noqa: B006
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create (or reset) a staff account, e.g. the first manager."""
    from madoguchi_shared import auth, bus
    from madoguchi_shared.events.base import Role
    from madoguchi_shared.nats_typed import jetstream

    settings = Settings()
    roles = [Role(r) for r in role]
    password = _read_password(password_stdin)

    async def go() -> None:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-cli")
        js = jetstream(nc)
        await bus.ensure_streams(js, settings.stream_replicas)
        await auth.add_staff(
            js,
            municipality=municipality or settings.municipality,
            staff_id=staff_id,
            roles=roles,
            wards=ward,
            password=password,
        )
        await nc.drain()

    try:
        asyncio.run(go())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"staff {staff_id}: roles {', '.join(r.value for r in roles)}; wards {', '.join(ward) or 'all'}")


def _staff_run(work: Callable[[JetStreamContext, Settings, str, Actor], Awaitable[T]], municipality: str | None) -> T:
    """Run `work(js, settings, municipality, actor)` against the bus, as the command line
    (an administrator at the machine; events name the actor `cli`)."""
    from madoguchi_shared import bus
    from madoguchi_shared.errors import DomainError
    from madoguchi_shared.events.base import Actor, Role
    from madoguchi_shared.nats_typed import jetstream

    settings = Settings()
    m = municipality or settings.municipality

    async def go() -> T:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-cli")
        try:
            js = jetstream(nc)
            await bus.ensure_streams(js, settings.stream_replicas)
            return await work(js, settings, m, Actor(id="cli", role=Role.administrator))
        finally:
            await nc.drain()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise SystemExit(1) from None


MunicipalityOpt = Annotated[str | None, typer.Option(help="municipality code; default from settings")]


@staff_app.command("list")
def staff_list(municipality: MunicipalityOpt = None) -> None:
    """Every staff account: roles, wards, status and who is cleared for the desk and the phone (ORG-4)."""
    from madoguchi_shared import auth, staff

    async def work(js: JetStreamContext, settings: Settings, m: str, actor: Actor) -> list[dict[str, Any]]:
        directory = await auth.AccountDirectory(js).start()
        try:
            return await staff.list_staff(js, directory, staff.training_plan(settings, m), m)
        finally:
            await directory.stop()

    for row in _staff_run(work, municipality):
        cleared = ", ".join(d for d, ok in row["cleared"].items() if ok) or "-"
        typer.echo(
            f"{row['staff_id']:12s} {','.join(row['roles']):20s} {','.join(row['wards']) or 'all':12s} "
            f"{row['status']:15s} cleared: {cleared}"
        )


@staff_app.command("disable")
def staff_disable(
    staff_id: Annotated[str, typer.Option("--id")],
    municipality: MunicipalityOpt = None,
    reason: Annotated[str, typer.Option(help="left, suspended, compromised, other")] = "other",
) -> None:
    """Disable an account: its tokens are refused by every service at once."""
    from madoguchi_shared import staff
    from madoguchi_shared.events.base import Role

    _staff_run(
        lambda js, s, m, actor: staff.set_disabled(
            js, m, staff_id, True, actor, {Role.administrator}, cast("DisableReason", reason)
        ),
        municipality,
    )
    typer.echo(f"staff {staff_id}: disabled")


@staff_app.command("enable")
def staff_enable(staff_id: Annotated[str, typer.Option("--id")], municipality: MunicipalityOpt = None) -> None:
    """Enable a disabled or locked account again."""
    from madoguchi_shared import staff
    from madoguchi_shared.events.base import Role

    _staff_run(
        lambda js, s, m, actor: staff.set_disabled(js, m, staff_id, False, actor, {Role.administrator}), municipality
    )
    typer.echo(f"staff {staff_id}: enabled")


@staff_app.command("reset-password")
def staff_reset_password(staff_id: Annotated[str, typer.Option("--id")], municipality: MunicipalityOpt = None) -> None:
    """Print a temporary password; the person sets a new one at the next login."""
    from madoguchi_shared import staff
    from madoguchi_shared.events.base import Role

    temporary = _staff_run(
        lambda js, s, m, actor: staff.reset_password(js, m, staff_id, actor, {Role.administrator}), municipality
    )
    typer.echo(f"staff {staff_id}: temporary password {temporary} (to be replaced at the next login)")


@staff_app.command("train")
def staff_train(
    staff_id: Annotated[str, typer.Option("--id")],
    trainer: Annotated[str, typer.Option(help="the trainer's staff id")],
    item: Annotated[list[str], typer.Option(help="training plan item key; 'all' for every item")] = ["all"],  # noqa: B006
    on: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD; default today")] = None,
    score: Annotated[int | None, typer.Option(help="also record the test with this score (0-100)")] = None,
    municipality: MunicipalityOpt = None,
) -> None:
    """Record training items (ORG-4) with date and trainer, and optionally the test score."""
    from datetime import date

    from madoguchi_shared import staff

    day = date.fromisoformat(on) if on else date.today()

    async def work(js: JetStreamContext, settings: Settings, m: str, actor: Actor) -> tuple[int, bool | None]:
        plan = staff.training_plan(settings, m)
        keys = [i.key for i in plan.items] if item == ["all"] else item
        for key in keys:
            await staff.record_item(js, plan, m, staff_id, key, day, trainer, None, actor)
        passed = None
        if score is not None:
            passed = await staff.record_test(js, plan, m, staff_id, score, day, trainer, actor)
        return len(keys), passed

    count, passed = _staff_run(work, municipality)
    typer.echo(
        f"staff {staff_id}: {count} training item(s) recorded"
        + ("" if passed is None else f"; test {'passed' if passed else 'not passed'}")
    )


@staff_app.command("token")
def staff_token(
    subject: Annotated[str, typer.Option("--id", help="device id or service name")],
    kind: Annotated[str, typer.Option(help="device or service")] = "device",
    ward: Annotated[str | None, typer.Option()] = None,
    desk: Annotated[str | None, typer.Option()] = None,
    days: Annotated[int, typer.Option(help="validity in days")] = 30,
    nats_credential: Annotated[
        Path | None,
        typer.Option(
            "--nats-credential", help="for a device: also write its NATS credential (user and password) to this file"
        ),
    ] = None,
) -> None:
    """Print a device or service credential (a signed token); for a device, --nats-credential FILE
    also issues the bus credential its agent connects with (`madoguchi nats credential`)."""
    from madoguchi_shared import auth
    from madoguchi_shared.events.base import Role

    if kind not in ("device", "service"):
        raise typer.BadParameter("kind must be device or service")
    settings = Settings()
    role = Role.device if kind == "device" else Role.service
    typer.echo(
        auth.issue_token(
            settings,
            staff_id=subject,
            roles=[role],
            wards=[ward] if ward else [],
            kind=kind,
            desk=desk,
            ttl=days * 86400,
        )
    )
    if nats_credential is not None:
        if kind != "device":
            raise typer.BadParameter("--nats-credential is for a device")
        typer.echo(_device_credential(settings, subject, settings.municipality, desk, nats_credential), err=True)


def _device_credential(settings: Settings, device: str, municipality: str, desk: str | None, out: Path | None) -> str:
    from madoguchi_shared import natsauth

    identity = natsauth.issue_device(settings.data_dir.resolve(), device, municipality, desk)
    if out is None:
        return identity.credential().rstrip("\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.chmod(0o600)
    out.write_text(identity.credential())
    return f'NATS credential of {device} ({identity.user}) written to {out}: set nats_credential = "{out}" in its agent config'


@nats_app.command("credential")
def nats_credential(
    device: Annotated[str, typer.Option("--device", help="the desk PC's device id, e.g. chuo-1-pc")],
    desk: Annotated[str | None, typer.Option(help="its desk, e.g. chuo-1")] = None,
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the credential file here (mode 0600) instead of printing it")
    ] = None,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge", help="the laptop's desk edge (services/desk/EDGE.md) instead of its agent; needs --desk"
        ),
    ] = False,
) -> None:
    """Issue a desk laptop's NATS credential (user and password): it may publish only to its own
    subject mg.device.<municipality>.agent.<device>. A running embedded nats-server reloads at once.
    With --edge: the credential of the laptop's desk edge (its desk's desk-days and visits)."""
    settings = Settings()
    if not edge:
        typer.echo(_device_credential(settings, device, municipality or settings.municipality, desk, out))
        return
    from madoguchi_shared import natsauth

    if not desk:
        raise typer.BadParameter("--edge needs --desk")
    identity = natsauth.issue_edge(settings.data_dir.resolve(), device, municipality or settings.municipality, desk)
    if out is None:
        typer.echo(identity.credential().rstrip("\n"))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.chmod(0o600)
    out.write_text(identity.credential())
    typer.echo(
        f"NATS credential of the desk edge on {device} ({identity.user}) written to {out}: "
        f"MADOGUCHI_EDGE_NATS_CREDENTIAL={out} in its desk-edge.env"
    )


@nats_app.command("users")
def nats_users() -> None:
    """List the NATS identities of the embedded server and what each may publish."""
    from madoguchi_shared import natsauth

    for identity in natsauth.identities(Settings().data_dir):
        allowed = natsauth.permissions(identity)["publish"]["allow"]
        typer.echo(
            f"{identity.user:24s} {identity.kind:10s} {' '.join(allowed[:4])}{' ...' if len(allowed) > 4 else ''}"
        )


@app.command()
def streams() -> None:
    """Create or update the JetStream streams."""
    from madoguchi_shared import bus
    from madoguchi_shared.nats_typed import jetstream

    settings = Settings()

    async def go() -> None:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-cli")
        await bus.ensure_streams(jetstream(nc), settings.stream_replicas)
        for spec in bus.STREAMS:
            info = await jetstream(nc).stream_info(spec.name)
            typer.echo(f"{spec.name:10s} {','.join(spec.subjects):14s} messages={info.state.messages}")
        await nc.drain()

    asyncio.run(go())


@app.command("tls-certs")
def tls_certs(
    directory: Path,
    server_name: Annotated[list[str], typer.Option(help="a name (or address) of the NATS nodes")] = [],  # noqa: B006
    client: Annotated[list[str], typer.Option(help="a client certificate to issue (service or laptop)")] = [],  # noqa: B006
) -> None:
    """A CA, the NATS nodes' certificate and one per client under DIRECTORY (what exists is kept).
    For hosts without a CA of their own; see deploy/README.md."""
    from madoguchi_shared import tls

    material = tls.generate(directory, server_names=tuple(server_name) or tls.LOOPBACK_NAMES, clients=tuple(client))
    typer.echo(f"ca      {material.ca}")
    typer.echo(f"server  {material.server.cert} {material.server.key}")
    for name, pair in material.clients.items():
        typer.echo(f"client  {name}: {pair.cert} {pair.key}")


@app.command()
def serve(name: str) -> None:
    """Run one HTTP service (desk, calls, reporting, audit, ...) in the foreground; the command
    services with MADOGUCHI_API_WORKERS worker processes (0 = one per core)."""
    import uvicorn

    factories = service_factories()
    if name not in factories:
        raise typer.BadParameter(f"unknown service {name!r}; known: {', '.join(sorted(factories))}")
    settings = Settings()
    port = getattr(settings, f"{name}_port")
    https: dict[str, Any] = {}
    if settings.https_cert:  # HTTPS (with HSTS) straight from uvicorn; else a reverse proxy in front (deploy/)
        https = {
            "ssl_certfile": str(settings.https_cert),
            "ssl_keyfile": str(settings.https_key or settings.https_cert),
        }
    options: dict[str, Any] = dict(
        host=settings.host, port=port, log_level="warning", loop="uvloop", http="httptools", access_log=False, **https
    )
    workers = api_workers(name, settings)
    if workers > 1:
        os.environ[SERVE_NAME] = name  # read by each worker process's factory
        uvicorn.run(
            "madoguchi_shared.cli:served_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
    else:
        uvicorn.run(served_app(name, settings), **options)


SERVE_NAME = "MADOGUCHI_SERVE_NAME"
# uvicorn's supervisor pings each worker process and kills one that does not answer in time (default 5 s),
# counting from the worker's spawn. A spawned worker first imports this module (its __main__) and uvicorn
# before its answering thread starts: 16-18 s on a 2-core machine at load 15-20 (measured), so with the
# default every worker was killed and respawned for ever and the service never answered.
WORKER_HEALTHCHECK_SECONDS = 120
# The services that take commands and keep only caches in memory: safe to run as several processes.
# The others hold a single writer (audit's hash chain) or their projection runners: one process each.
WORKER_SERVICES = frozenset({"desk", "calls"})


def api_workers(name: str, settings: Settings) -> int:
    if name not in WORKER_SERVICES:
        return 1
    return settings.api_workers or os.cpu_count() or 1


def served_app(name: str | None = None, settings: Settings | None = None):
    """The app of service `name` (default: MADOGUCHI_SERVE_NAME, in a uvicorn worker process)."""
    name = name or os.environ[SERVE_NAME]
    settings = settings or Settings()
    create_app = service_factories()[name].load()
    kwargs = {}
    if settings.extra.get("clock") and "clock" in inspect.signature(create_app).parameters:
        from madoguchi_shared.clock import clock_from_spec

        kwargs["clock"] = clock_from_spec(settings.extra["clock"])  # a simulated day (make demo)
    return create_app(settings, **kwargs)


@app.command()
def run(
    embedded: Annotated[bool, typer.Option(help="start nats-server and PostgreSQL under the data folder")] = True,
    only: Annotated[list[str], typer.Option(help="start only these services")] = [],  # noqa: B006
    cluster: Annotated[
        bool,
        typer.Option(
            help="3 NATS nodes (JetStream R3, TLS from a generated CA) and "
            "PostgreSQL primary + streaming standby, on loopback"
        ),
    ] = False,
    edge: Annotated[
        list[str],
        typer.Option(
            help="also start a desk edge for this desk, as its laptop would run it, "
            "with a console of its own (services/desk/EDGE.md)"
        ),
    ] = [],  # noqa: B006
) -> None:
    """Start the whole system: NATS and PostgreSQL (embedded), streams, every service, supervised:
    a child that exits is restarted with backoff while the rest keep serving. Ctrl-C stops it."""
    from madoguchi_shared import natsauth
    from madoguchi_shared.logging import configure
    from madoguchi_shared.runtime import NatsServer, PostgresServer
    from madoguchi_shared.supervisor import ServerChild, ServiceChild, Supervisor, announcer

    settings = Settings()
    configure(settings.log_level, settings.log_json)
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    settings.resolved_token_secret()  # create the key once, before services race for it
    env = dict(os.environ)
    supervisor = Supervisor(echo=lambda line: typer.echo(line, err=True))

    def stop_all(*_args: object) -> None:
        if supervisor.stopping:
            return
        # A second Ctrl-C or TERM while stopping (an impatient user, a wrapper script forwarding
        # the signal) must not cut the shutdown short and leave NATS and PostgreSQL running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        typer.echo("\nstopping ...")
        supervisor.stop()
        typer.echo("stopped; data kept in " + str(data))

    def on_term(*_args: object) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    try:
        names: list[str] = []
        for name, ep in sorted(service_factories().items()):
            if only and name not in only:
                continue
            try:
                ep.load()
            except Exception as exc:  # noqa: BLE001 - start the rest, say which one is missing
                typer.echo(f"{name:12s} not started: {type(exc).__name__}: {exc}", err=True)
                continue
            names.append(name)
        nats_url = settings.nats_url
        loopback = None
        pg: PostgresServer | None = None  # embedded: the single node, or the cluster's primary
        if embedded and cluster:
            from madoguchi_shared.cluster import LoopbackCluster, tls_env, wait_for_meta_leader

            # one TLS certificate and one bus identity (user, password, permissions) per service, as single-node
            loopback = LoopbackCluster.plan(
                data,
                nats_port=settings.nats_port,
                monitor_port=settings.nats_monitor_port,
                pg_port=settings.pg_port,
                clients=tuple(sorted(service_factories())),
            )
            for i, node in enumerate(loopback.nats.nodes):
                supervisor.add(ServerChild(f"nats-server-{i}", node))
            supervisor.add(ServerChild("postgresql", loopback.primary))
            supervisor.add(ServerChild("postgresql-standby", loopback.standby))
            wait_for_meta_leader(loopback.nats)
            env.update(loopback.env())
            os.environ.update(loopback.env())  # this supervisor's own bus client (restart events)
            nats_url = loopback.nats.address  # each process adds its own identity
            pg = loopback.primary
            env["MADOGUCHI_PG_DSN"] = pg.dsn
            for line in loopback.describe():
                typer.echo(line)
            operator = {**loopback.env(), "MADOGUCHI_DATA_DIR": str(data)}  # the tools' identity is on file there
            (data / "cluster.env").write_text("".join(f"{k}={v}\n" for k, v in operator.items()))
            typer.echo(f"operator    `set -a; . {data / 'cluster.env'}; set +a` points madoguchi commands at it")
        elif embedded:
            # credentials on the bus: one identity per service, the supervisor's, the tools' (admin)
            natsauth.ensure_embedded(data, sorted(service_factories()))
            nats_server = NatsServer(
                data / "nats", port=settings.nats_port, monitor_port=settings.nats_monitor_port, auth_dir=data
            )
            supervisor.add(ServerChild("nats-server", nats_server))
            pg = PostgresServer(data / "postgres", port=settings.pg_port)
            supervisor.add(ServerChild("postgresql", pg))
            nats_url = env["MADOGUCHI_NATS_URL"] = nats_server.address  # each process adds its own identity
            env["MADOGUCHI_PG_DSN"] = pg.dsn
            typer.echo(
                f"nats-server  {nats_server.address}  (JetStream store {data / 'nats'}; "
                f"credentials in {natsauth.secrets_dir(data)})"
            )
            typer.echo(
                f"postgresql   {pg.dsn.replace(':' + pg.password + '@', '@')}  (data {data / 'postgres'}; "
                "each service logs in as its own role)"
            )
        env["MADOGUCHI_DATA_DIR"] = str(data)
        supervisor.announce = announcer(
            settings.model_copy(update={"nats_url": nats_url}).nats_url_for("supervisor"), settings.municipality
        )
        subprocess.run(
            [sys.executable, "-m", "madoguchi_shared.cli", "streams"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        run_dir = data / "run"
        run_dir.mkdir(exist_ok=True)
        service_env = {name: env for name in names}
        if pg is not None:  # embedded; least privilege: a login role per service, migrations by a separate owner role
            from madoguchi_shared import db

            dsns = asyncio.run(db.provision(pg.dsn, data / "secrets", names))
            if "audit" in names:
                subprocess.run(
                    [sys.executable, "-m", "madoguchi_audit.cli", "migrate"],
                    env={**env, "MADOGUCHI_PG_DSN": dsns["migrator"]},
                    check=True,
                )
            service_env = {name: {**env, "MADOGUCHI_PG_DSN": dsns[name]} for name in names}
        if loopback is not None:  # each service presents its own certificate to the bus
            from madoguchi_shared.cluster import tls_env

            service_env = {name: {**service_env[name], **tls_env(loopback.material, name)} for name in names}
        for name in names:
            port = getattr(settings, f"{name}_port")
            supervisor.add(ServiceChild(name, service_env[name], run_dir, f"http://{settings.host}:{port}/readyz"))
        for line in _edge_children(supervisor, settings, env, run_dir, edge, with_console="console" in names):
            typer.echo(line)
        deadline = time.monotonic() + 60
        pending = {c.name: c for c in supervisor.services()}
        while pending and time.monotonic() < deadline:
            supervisor.tick()  # a service that dies while starting is restarted like any other
            for name, child in list(pending.items()):
                if child.exit_code() is None and child.ready():
                    del pending[name]
                    typer.echo(f"{name:12s} {child.ready_url.rsplit('/', 1)[0]}  (ready; API docs at /docs)")
            time.sleep(0.3)
        for name in pending:
            typer.echo(f"{name:12s} not ready after 60 s; see its log above", err=True)
        typer.echo(
            "Madoguchi is running (supervised: a part that stops is restarted). "
            "Ctrl-C stops everything; `make run` again resumes with the data kept."
        )
        supervisor.watch()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def _edge_children(
    supervisor: Supervisor,
    settings: Settings,
    env: dict[str, str],
    run_dir: Path,
    desks: list[str],
    *,
    with_console: bool,
) -> list[str]:
    """A desk edge per desk (as its laptop runs it, services/desk/EDGE.md) on ports 8111, 8112, ..., each
    with a console of its own (8110, 8120, ...) whose desk screen and calling display read the edge."""
    from madoguchi_shared.runtime import stop_stale
    from madoguchi_shared.supervisor import ServiceChild

    class CommandChild(ServiceChild):
        def __init__(self, name: str, argv: list[str], child_env: dict[str, str], ready_url: str):
            super().__init__(name, child_env, run_dir, ready_url)
            self.argv = argv

        def start(self) -> None:
            stop_stale(self.pid_file, " ".join(self.argv), signal.SIGTERM)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "madoguchi_shared.cli", *self.argv], env=self.env, start_new_session=True
            )
            self.pid_file.write_text(str(self.proc.pid))

    lines: list[str] = []
    for i, desk in enumerate(desks):
        port, console_port = settings.desk_port + 10 + i, settings.console_port + 10 * (i + 1)
        supervisor.add(
            CommandChild(
                f"edge-{desk}",
                ["edge", "run", "--desk", desk, "--port", str(port)],
                env,
                f"http://{settings.host}:{port}/healthz",
            )
        )
        lines.append(f"edge {desk:7s} http://{settings.host}:{port}  (the desk's laptop: its commands work offline)")
        if with_console:
            console_env = {**env, "MADOGUCHI_DESK_PORT": str(port), "MADOGUCHI_CONSOLE_PORT": str(console_port)}
            supervisor.add(
                CommandChild(
                    f"console-{desk}",
                    ["serve", "console"],
                    console_env,
                    f"http://{settings.host}:{console_port}/healthz",
                )
            )
            lines.append(
                f"console {desk} http://{settings.host}:{console_port}/desk/{desk}  "
                f"(the laptop's desk screen; calling display /display/{desk})"
            )
    return lines


def _add_service_commands() -> None:
    for ep in entry_points(group="madoguchi.cli"):
        try:
            sub = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not take the CLI down
            print(f"warning: subcommands of {ep.name} unavailable: {exc}", file=sys.stderr)
            continue
        app.add_typer(sub, name=ep.name)


def main() -> None:
    _add_service_commands()
    from madoguchi_shared.errors import BusUnreachable

    try:
        app()
    except BusUnreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
