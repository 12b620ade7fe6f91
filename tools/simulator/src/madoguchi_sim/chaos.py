"""`make chaos`: faults an operator fears, injected under a simulated day's load through the APIs.

On loopback, from the wheels: 3 NATS nodes (JetStream R3, `sync_interval: always`, TLS from a CA made
here, one bus identity per service as `make cluster` has), PostgreSQL primary + streaming standby (synchronous: a commit waits for the standby, so a
promotion loses nothing acknowledged), and the services: two desk replicas behind a client-side
fail-over (a refused connection goes to the other replica, as a load balancer's health check would
make it), calls, reporting, audit, each in its own process under the supervisor of `madoguchi run`
(a process that dies is started again, as systemd would). Services reach PostgreSQL by a two-host DSN
with `target_session_attrs=read-write`, so they follow a promotion.

While the simulator plays the day through the desk and calls APIs (the services read its clock):

1. kill -9 the NATS node that leads MG_DESK (the supervisor starts it again);
2. kill -9 a node that follows MG_DESK;
3. kill -9 one desk replica;
4. kill -9 the reporting worker;
5. kill -9 the PostgreSQL primary and promote the standby.

Then `madoguchi report verify` and `madoguchi audit verify` must be green, and a table says:
acknowledged commands lost (a 2xx answer whose events are not on the streams), duplicates (event ids
the streams hold twice, records the audit log names duplicates), 5xx answers, requests cut in flight
by a killed replica, and the longest wait of one command, per fault and overall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import httpx

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.calendar import TOKYO

SERVICES = ("calls", "reporting", "audit")


# --------------------------------------------------------------------------- what the clients saw
@dataclass
class Seen:
    """Every request the simulated staff made: when, how long, what came back."""

    requests: list[tuple[float, float, str, str]] = field(default_factory=list)  # (start, seconds, route, outcome)
    acked: set[str] = field(default_factory=set)  # event ids of 2xx answers
    by_replica: Counter = field(default_factory=Counter)
    t0: float = field(default_factory=time.monotonic)

    def fives(self) -> int:
        return sum(1 for r in self.requests if r[3].startswith("5"))

    def cut(self) -> int:
        return sum(1 for r in self.requests if r[3] == "cut in flight")

    def window(self, start: float, seconds: float) -> list[tuple[float, float, str, str]]:
        return [r for r in self.requests if start <= r[0] < start + seconds]


class Recording(httpx.AsyncBaseTransport):
    """The staff's HTTP transport: round robin over a service's replicas, a refused connection tried on the
    next one (nothing was sent), every answer timed and its acknowledged event ids kept."""

    def __init__(self, ports: list[int], seen: Seen, name: str):
        self.ports = ports
        self.seen = seen
        self.name = name
        self.next = 0
        self.transports = [httpx.AsyncHTTPTransport() for _ in ports]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.monotonic()
        route = f"{request.method} {request.url.path}"
        last: Exception | None = None
        for k in range(len(self.ports) * 2):
            i = (self.next + k) % len(self.ports)
            request.url = request.url.copy_with(port=self.ports[i])
            try:
                response = await self.transports[i].handle_async_request(request)
            except httpx.ConnectError as exc:  # refused: this replica is down, nothing was sent
                last = exc
                await asyncio.sleep(0.05 if k < len(self.ports) else 0.5)
                continue
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
                self.seen.requests.append((start - self.seen.t0, time.monotonic() - start, route, "cut in flight"))
                raise exc
            self.next = (i + 1) % len(self.ports)
            await response.aread()
            self.seen.by_replica[f"{self.name}:{self.ports[i]}"] += 1
            self.seen.requests.append(
                (start - self.seen.t0, time.monotonic() - start, route, str(response.status_code))
            )
            if 200 <= response.status_code < 300:
                try:
                    body = json.loads(response.content)
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    for e in body.get("events") or ():
                        if isinstance(e, dict) and e.get("event_id"):
                            self.seen.acked.add(str(e["event_id"]))
            return response
        self.seen.requests.append((start - self.seen.t0, time.monotonic() - start, route, "refused"))
        raise last or httpx.ConnectError("no replica")

    async def aclose(self) -> None:
        for t in self.transports:
            await t.aclose()


# --------------------------------------------------------------------------- the system on loopback
class System:
    """The cluster, PostgreSQL primary + standby and the supervised services, under `data`."""

    def __init__(self, data: Path, speed: float, day: date):
        from madoguchi_shared import tls
        from madoguchi_shared.cluster import StandbyPostgres, TlsNatsCluster
        from madoguchi_shared.runtime import PostgresServer, free_port
        from madoguchi_shared.supervisor import Supervisor

        from madoguchi_sim.clock import SimClock

        self.data = data
        self.clock = SimClock.for_day(day, speed, at=dtime(7, 0))  # the start-up takes place before the desks open
        from madoguchi_shared import natsauth

        self.material = tls.generate(data / "tls", clients=("operator", "desk", *SERVICES))
        natsauth.ensure_embedded(data, ["desk", *SERVICES])  # each service its own bus identity, as `make cluster`
        self.nats = TlsNatsCluster(data / "nats", self.material, auth_dir=data)
        self.primary = PostgresServer(data / "postgres")
        self.standby = StandbyPostgres(data / "postgres-standby", self.primary)
        self.ports = {"desk": [free_port(), free_port()], **{s: [free_port()] for s in SERVICES}}
        self.supervisor = Supervisor(echo=lambda line: print(f"  [supervisor] {line}", flush=True))
        self.children: dict[str, list] = {}
        self._watching = False
        self._thread: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        from madoguchi_shared.cluster import tls_env

        return {
            **os.environ,
            "MADOGUCHI_NATS_URL": self.nats.address,
            "MADOGUCHI_STREAM_REPLICAS": "3",
            "MADOGUCHI_DATA_DIR": str(self.data),
            "MADOGUCHI_EXTRA": json.dumps({"clock": self.clock.spec(), "deadline_check_seconds": "0"}),
            "MADOGUCHI_PG_DSN": self.both_hosts(self.primary.dsn),
            "MADOGUCHI_LOG_LEVEL": "WARNING",
            **tls_env(self.material, "operator"),
        }

    def both_hosts(self, dsn: str) -> str:
        """The DSN with the standby as a second host: a client connects to whichever is read-write."""
        both = dsn.replace(
            f"@127.0.0.1:{self.primary.port}/", f"@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/"
        )
        return both + ("&" if "?" in both else "?") + "target_session_attrs=read-write"

    def start(self) -> None:
        from madoguchi_shared import db
        from madoguchi_shared.cluster import tls_env, wait_for_meta_leader
        from madoguchi_shared.supervisor import ServerChild, ServiceChild

        for i, node in enumerate(self.nats.nodes):
            self.supervisor.add(ServerChild(f"nats-server-{i}", node))
        self.primary.start()
        self.standby.start()
        asyncio.run(self._synchronous())
        wait_for_meta_leader(self.nats)
        env = self.env()
        os.environ.update({k: v for k, v in env.items() if k.startswith("MADOGUCHI_")})
        subprocess.run(
            [sys.executable, "-m", "madoguchi_shared.cli", "streams"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        names = ["desk", *SERVICES]
        dsns = asyncio.run(db.provision(self.primary.dsn, self.data / "secrets", names))
        subprocess.run(
            [sys.executable, "-m", "madoguchi_audit.cli", "migrate"],
            env={**env, "MADOGUCHI_PG_DSN": self.both_hosts(dsns["migrator"])},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for name in names:
            for k, port in enumerate(self.ports[name]):
                run_dir = self.data / "run" / f"{name}-{k}"
                run_dir.mkdir(parents=True, exist_ok=True)
                child_env = {
                    **env,
                    "MADOGUCHI_PG_DSN": self.both_hosts(dsns[name]),
                    **tls_env(self.material, name),
                    f"MADOGUCHI_{name.upper()}_PORT": str(port),
                }
                child = ServiceChild(name, child_env, run_dir, f"http://127.0.0.1:{port}/readyz")
                self.supervisor.add(child)
                self.children.setdefault(name, []).append(child)
        self._watching = True
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 120
        for child in [c for cs in self.children.values() for c in cs]:
            while not child.ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} not ready after 120 s")
                time.sleep(0.3)

    async def _synchronous(self) -> None:
        """Commits wait for the standby (set after pg_basebackup, so the standby's copy does not wait for itself)."""
        import asyncpg

        conn = await asyncpg.connect(self.primary.dsn)
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            await conn.execute("SELECT pg_reload_conf()")
            for _ in range(100):
                if await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"):
                    return
                await asyncio.sleep(0.1)
            raise RuntimeError("the standby did not become synchronous")
        finally:
            await conn.close()

    def _watch(self) -> None:
        while self._watching:
            self.supervisor.tick()
            time.sleep(0.2)

    def stop(self) -> None:
        self._watching = False
        if self._thread is not None:
            self._thread.join(5)
        self.supervisor.stop()
        for pg in (self.standby, self.primary):
            try:
                pg.stop()
            except Exception:  # noqa: BLE001 - the killed primary is gone already
                pass

    # ----------------------------------------------------------------------- faults
    async def stream_roles(self, js) -> tuple[int, list[int]]:
        info = await js.stream_info("MG_DESK")
        index = {f"mg-{i}": i for i in range(len(self.nats.nodes))}
        return index[info.cluster.leader], [index[r.name] for r in info.cluster.replicas or []]

    def kill_nats(self, i: int) -> int:
        proc = self.nats.nodes[i].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        return proc.pid

    def kill_service(self, name: str, k: int = 0) -> int:
        pid = self.children[name][k].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return pid

    async def promote_standby(self) -> None:
        import asyncpg

        assert self.primary.proc is not None
        os.kill(self.primary.proc.pid, signal.SIGKILL)
        conn = await asyncpg.connect(self.standby.dsn)
        try:
            await conn.fetchval("SELECT pg_promote(true, 60)")
            await conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()


# --------------------------------------------------------------------------- the run
@dataclass
class Fault:
    name: str
    at: float = 0.0  # seconds since the load started
    detail: str = ""


async def _faults(system: System, seen: Seen, every: float, faults: list[Fault], js) -> None:
    def commands() -> list:
        return [r for r in seen.requests if r[2].startswith("POST") and "/auth/" not in r[2]]

    while not commands():  # the desks open: the faults are timed from the first command
        await asyncio.sleep(0.2)
    begin = commands()[0][0]

    async def at(k: int) -> None:
        await asyncio.sleep(max(0.0, begin + every * (k + 1) - (time.monotonic() - seen.t0)))

    await at(0)
    leader, followers = await system.stream_roles(js)
    pid = system.kill_nats(leader)
    faults.append(
        Fault("NATS stream leader kill -9", time.monotonic() - seen.t0, f"mg-{leader} (pid {pid}) led MG_DESK")
    )
    await at(1)
    leader, followers = await system.stream_roles(js)
    pid = system.kill_nats(followers[0])
    faults.append(Fault("NATS follower kill -9", time.monotonic() - seen.t0, f"mg-{followers[0]} (pid {pid})"))
    await at(2)
    pid = system.kill_service("desk", 0)
    faults.append(
        Fault("desk replica kill -9", time.monotonic() - seen.t0, f"pid {pid}, port {system.ports['desk'][0]}")
    )
    await at(3)
    pid = system.kill_service("reporting")
    faults.append(Fault("reporting worker kill -9", time.monotonic() - seen.t0, f"pid {pid}"))
    await at(4)
    t = time.monotonic() - seen.t0
    await system.promote_standby()
    faults.append(
        Fault(
            "PostgreSQL primary kill -9, standby promoted",
            t,
            f"standby 127.0.0.1:{system.standby.port} read-write after {time.monotonic() - seen.t0 - t:.1f} s",
        )
    )


async def _load(system: System, seen: Seen, day: date, until: dtime, seed: int, faults: list[Fault], every: float):
    from madoguchi_shared.municipality import load_municipality
    from madoguchi_shared.settings import Settings

    from madoguchi_sim.apimode import ApiTargets, run_api
    from madoguchi_sim.demo import create_demo_staff
    from madoguchi_sim.generator import Scenario

    settings = Settings()
    m = load_municipality(settings.municipality)
    password = "chaos-password-2021"
    staff = await create_demo_staff(settings, m, password)
    desk = Recording(system.ports["desk"], seen, "desk")
    calls = Recording(system.ports["calls"], seen, "calls")
    targets = ApiTargets(
        f"http://127.0.0.1:{system.ports['desk'][0]}",
        f"http://127.0.0.1:{system.ports['calls'][0]}",
        desk_transport=desk,
        calls_transport=calls,
    )
    scenario = Scenario(municipalities=(m,), start=day, days=1, seed=seed, setup=False)
    nc = await bus.connect_tool(settings.nats_url, name="madoguchi-chaos")
    try:
        js = nc.jetstream()
        start_seqs = {s: (await js.stream_info(s)).state.last_seq for s in ("MG_DESK", "MG_CALLS")}
        seen.t0 = time.monotonic()
        chaos = asyncio.create_task(_faults(system, seen, every, faults, js))
        outcome = await run_api(
            settings,
            scenario,
            targets,
            clock=system.clock,
            nats_client=nc,
            passwords={p.staff_id: password for p in staff},
            progress=False,
            until=datetime.combine(day, until, TOKYO),
        )
        await chaos
        stored: Counter = Counter()
        for stream, context in (("MG_DESK", "desk"), ("MG_CALLS", "calls")):
            async for _seq, _subject, data, _headers in bus.load_filter(
                js, subjects.context_filter(context, m.code), start_seqs[stream] + 1, timeout=5.0
            ):
                try:
                    stored[json.loads(data)["event_id"]] += 1
                except (ValueError, KeyError):
                    continue
        return outcome, stored, m.code
    finally:
        await desk.aclose()
        await calls.aclose()
        await nc.drain()


def _cli(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "madoguchi_shared.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, (done.stdout + done.stderr).strip()


async def _audit_duplicates(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        schemas = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'duplicate'"
            )
        ]
        return sum([await conn.fetchval(f'SELECT count(*) FROM "{s}".duplicate') for s in schemas])
    finally:
        await conn.close()


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("var/chaos"), help="data folder (emptied first)")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--until", default="12:00", help="simulated time the load stops (HH:MM, Tokyo)")
    parser.add_argument("--every", type=float, default=35.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    import shutil

    data = args.data.resolve()
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    day = date.today()
    while day.weekday() >= 5:  # the day's load: a weekday at every desk
        day += timedelta(days=1)
    system = System(data, args.speed, day)
    print(
        f"chaos: starting the cluster under {data} (3 NATS nodes R3 TLS, PostgreSQL primary + synchronous standby, "
        f"2 desk replicas, calls, reporting, audit) ...",
        flush=True,
    )
    seen = Seen()
    faults: list[Fault] = []
    try:
        system.start()
        print(
            f"chaos: load of {day} through the APIs at x{args.speed:g} until {args.until}; a fault every {args.every:g} s",
            flush=True,
        )
        outcome, stored, code = asyncio.run(
            _load(system, seen, day, dtime.fromisoformat(args.until), args.seed, faults, args.every)
        )
        print(outcome.summary(), flush=True)
        for f in faults:
            print(f"  fault at {f.at:6.1f} s: {f.name} ({f.detail})")
        env = {**system.env(), "MADOGUCHI_PG_DSN": system.standby.dsn, "MADOGUCHI_MUNICIPALITY": code}
        rep_rc, rep_out = _cli(
            ["report", "verify", "--from", day.isoformat(), "--to", day.isoformat(), "--wait", "180"], env
        )
        time.sleep(5)
        aud_rc, aud_out = _cli(["audit", "verify", "--grace", "5"], env)
        audit_dups = asyncio.run(_audit_duplicates(system.standby.dsn))
    finally:
        system.stop()
    lost = sorted(e for e in seen.acked if e not in stored)
    dups = sum(n - 1 for n in stored.values() if n > 1)
    answered = [r for r in seen.requests if r[3] not in ("cut in flight", "refused")]
    rows = [("fault", "at s", "requests in next 20 s", "5xx", "cut in flight", "longest wait s")]
    for f in faults:
        w = seen.window(f.at, 20.0)
        rows.append(
            (
                f.name,
                f"{f.at:.1f}",
                str(len(w)),
                str(sum(1 for r in w if r[3].startswith("5"))),
                str(sum(1 for r in w if r[3] == "cut in flight")),
                f"{max((r[1] for r in w), default=0):.2f}",
            )
        )
    rows.append(
        (
            "whole run",
            f"{max((r[0] for r in seen.requests), default=0):.0f}",
            str(len(seen.requests)),
            str(seen.fives()),
            str(seen.cut()),
            f"{max((r[1] for r in answered), default=0):.2f}",
        )
    )
    print()
    print(_table(rows))
    summary = [
        ("acknowledged commands lost", f"{len(lost)} of {len(seen.acked)} acknowledged events"),
        ("duplicates", f"{dups} event ids twice on the streams; {audit_dups} records the audit log names duplicates"),
        ("5xx answers", str(seen.fives())),
        ("requests cut in flight (killed replica)", str(seen.cut())),
        ("longest unavailability (longest wait of one command)", f"{max((r[1] for r in answered), default=0):.2f} s"),
        ("p99 command time", f"{_p99([r[1] for r in answered]):.2f} s"),
        ("report verify", "green" if rep_rc == 0 else f"RED (exit {rep_rc})"),
        ("audit verify", "green" if aud_rc == 0 else f"RED (exit {aud_rc})"),
    ]
    print(_table([("result", "value"), *summary]))
    longest = max(answered, key=lambda r: r[1], default=None)
    if longest is not None:
        print(
            f"  longest wait: {longest[1]:.2f} s for {longest[2]} started at {longest[0]:.1f} s (answer {longest[3]})"
        )
    for r in [r for r in seen.requests if r[3].startswith("5") or r[3] == "cut in flight"][:20]:
        print(f"  {r[3]} at {r[0]:.1f} s after {r[1]:.2f} s: {r[2]}")
    if rep_rc:
        print(rep_out[-3000:])
    if aud_rc:
        print(aud_out[-3000:])
    ok = not lost and not dups and rep_rc == 0 and aud_rc == 0
    print("chaos: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
