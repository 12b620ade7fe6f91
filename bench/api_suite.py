"""Command APIs: commands/s and latency at 64 concurrent clients, beside a bare FastAPI endpoint with
the same body under the same server settings (issue 9 §3, issue 19).

Rows: the bare endpoint (the ceiling), a desk command (issue a ticket: validate against the
desk-day state + append with ack) and a calls command (a call comes in: recorded, routed and
counted on the line-day), each run against its real service in its own process.

Stable enough on a shared machine: the three servers run side by side and are measured in
MG_BENCH_API_ROUNDS rounds (5) of MG_BENCH_API_SECONDS (5 s) each, every round running the bare
endpoint and both commands in turn (reversed every other round) and, with the bench group
installed, a round of the pyeventsourcing peer; each row is the median of its rounds, with every
round's rate and the load average shown beside it.

At 64 closed-loop clients the latency says little of the path: the mean is 64 / rate (Little's law),
so a server at its capacity shows its capacity again. After the rounds every server is run at one
fixed offered rate (MG_BENCH_PACED_SHARE, 25 %, of bare's median rate; bench.load `rate`), where
the p50 / p99 are a request's own latency below saturation, beside bare's at the same rate.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

from madoguchi_shared import bus
from madoguchi_shared.auth import token_for
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import free_port
from madoguchi_shared.settings import Settings

from bench.desk_server import bench_config
from bench.load import wrk
from bench.suites import suite

DESKS = 256
SECONDS = int(os.environ.get("MG_BENCH_API_SECONDS", "5"))  # per round
ROUNDS = int(os.environ.get("MG_BENCH_API_ROUNDS", "5"))
# the paced runs (bench.load, `rate`): this share of bare's closed-loop rate, offered to each server
PACED_SHARE = float(os.environ.get("MG_BENCH_PACED_SHARE", "0.25"))
PACED_ROUNDS = int(os.environ.get("MG_BENCH_PACED_ROUNDS", "2"))
PEER_ROUND_COMMANDS = int(os.environ.get("MG_BENCH_PEER_ROUND_COMMANDS", "600"))
SECRET = "bench-token-secret-bench-token-secret-0000"
MUNICIPALITY = "099999"


def start(args: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    probe = "/docs" if args[1] == "bench.bare_server" else "/healthz"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1):
                return proc
        except OSError as exc:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from exc
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def bench_env(nats_server, pg):
    """The config file, environment and tokens the command servers run with."""
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(Path(tmp) / f"{MUNICIPALITY}.toml", DESKS)
        env = {
            **os.environ,
            "MADOGUCHI_NATS_URL": nats_server.url,
            "MADOGUCHI_PG_DSN": pg.dsn,
            "MADOGUCHI_TOKEN_SECRET": SECRET,
            "MADOGUCHI_MUNICIPALITY": MUNICIPALITY,
            "MADOGUCHI_DATA_DIR": tmp,
            "MADOGUCHI_LOG_LEVEL": "WARNING",
        }
        settings = Settings(token_secret=SECRET, municipality=MUNICIPALITY)
        nc = await bus.connect(nats_server.url, name="bench-api")
        await bus.ensure_streams(nc.jetstream())
        # staff tokens are checked against the account (issue 15): the accounts exist first
        tokens = {
            "manager": await token_for(
                nc.jetstream(), settings, staff_id="M0001", roles=[Role.manager], municipality=MUNICIPALITY
            ),
            "operator": await token_for(
                nc.jetstream(), settings, staff_id="O0001", roles=[Role.operator], municipality=MUNICIPALITY
            ),
        }
        await nc.drain()
        yield config, env, tokens


DESK_PATHS = [f"/v1/desks/w{w}-{k}/tickets" for w in range(DESKS // 4) for k in range(4)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def serve(module: str, port_args: list[str], env: dict, paths: list[str], token: str, body: str) -> tuple:
    """Start `module` on a free port and warm it up: 2 s of load, repeated (up to 60 s) until the
    server answers at a steady rate (every aggregate loaded once, the calls service's live view
    started: on a busy machine that alone took longer than a round)."""
    port = free_port()
    server = start(["-m", module, str(port), *port_args], env, port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    previous = 0.0
    while True:
        res = wrk(base, paths, token, body=body, seconds=2)
        answered = res["requests"] - res["non2xx"]
        if (answered and res["rps"] >= 0.5 * previous) or time.monotonic() > deadline:
            return server, base
        previous = max(previous, res["rps"])


def load_once(
    server: subprocess.Popen,
    base: str,
    paths: list[str],
    token: str,
    body: str,
    seconds: int,
    rate: float | None = None,
) -> dict:
    """`seconds` of wrk load (paced at about `rate` requests/s if given: bench.load). Besides wrk's
    figures: the server's CPU time per request (`cpu_ms`), which a busy shared machine disturbs far
    less than the rate."""
    cpu0 = cpu_seconds(server.pid)
    res = wrk(base, paths, token, body=body, seconds=seconds, rate=rate)
    res["cpu_ms"] = (cpu_seconds(server.pid) - cpu0) * 1000 / max(res["requests"], 1)
    return res


def run_load(
    module: str, port_args: list[str], env: dict, paths: list[str], token: str, body: str = "{}", seconds: int = SECONDS
) -> dict:
    """One server, warmed up, then one measured run (bench.profile_command: under MG_BENCH_PROFILE
    the server profiles the measured run only)."""
    server, base = serve(module, port_args, env, paths, token, body)
    try:
        if "MG_BENCH_PROFILE" in env:
            server.send_signal(signal.SIGUSR1)  # bench.desk_server.serve
        return load_once(server, base, paths, token, body, seconds)
    finally:
        stop(server)


def median_of(runs: list[dict]) -> dict:
    """The median of each figure over the rounds, and every round's rate (to show the spread)."""
    out = {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms", "cpu_ms")}
    out["non2xx"] = sum(r["non2xx"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["rounds"] = [round(r["rps"]) for r in runs]
    return out


def measure(env: dict, config: Path, tokens: dict, *, rounds: int = ROUNDS, seconds: int = SECONDS, peer=None) -> dict:
    """The three servers (bare, desk, calls) started side by side, then `rounds` rounds of load, each
    round running every server in turn (in the opposite order every other round) so a change of
    load on the shared machine hits the baseline and the commands alike; the median of each figure.
    With `peer` (bench.peer_suite.Peer) each round also runs the peer's single-event commands."""
    targets = {
        "bare": ("bench.bare_server", [], [f"/v1/bare/{p.split('/')[3]}/tickets" for p in DESK_PATHS], "manager", "{}"),
        "desk": ("bench.desk_server", [str(config)], DESK_PATHS, "manager", "{}"),
        "calls": ("bench.calls_server", [str(config)], ["/v1/calls"], "operator", '{"line":"main"}'),
    }
    servers: dict[str, tuple] = {}
    runs: dict[str, list[dict]] = {key: [] for key in targets}
    peer_runs: list[float] = []
    paced: dict[str, list[dict]] = {key: [] for key in targets}
    rate = 0.0
    load_before = os.getloadavg()
    try:
        for key, (module, args, paths, role, body) in targets.items():
            servers[key] = serve(module, args, env, paths, tokens[role], body)
        for i in range(rounds):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for key in order:
                _, _, paths, role, body = targets[key]
                server, base = servers[key]
                runs[key].append(load_once(server, base, paths, tokens[role], body, seconds))
            if peer is not None:
                peer_runs.append(peer.single(PEER_ROUND_COMMANDS))
            print(
                f"    round {i + 1}/{rounds}: "
                + ", ".join(f"{k} {runs[k][-1]['rps']:,.0f}/s" for k in targets)
                + (f", peer {peer_runs[-1]:,.0f}/s" if peer_runs else "")
                + f", load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        # the latency below saturation: every server at one offered rate, a share of bare's capacity
        rate = PACED_SHARE * statistics.median(r["rps"] for r in runs["bare"])
        for i in range(PACED_ROUNDS):
            for key in list(targets) if i % 2 == 0 else list(reversed(targets)):
                _, _, paths, role, body = targets[key]
                server, base = servers[key]
                paced[key].append(load_once(server, base, paths, tokens[role], body, seconds, rate=rate))
    finally:
        for server, _ in servers.values():
            stop(server)
    out = {key: median_of(r) for key, r in runs.items()}
    out["paced"] = {"rate": rate, **{key: median_of(r) for key, r in paced.items()}}
    out["load"] = {"before": load_before, "after": os.getloadavg()}
    if peer_runs:
        out["peer_single"] = statistics.median(peer_runs)
    return out


def rows(res: dict) -> list[dict]:
    bare = res["bare"]
    workers = int(os.environ.get("MG_BENCH_WORKERS", "1"))
    n = len(bare["rounds"])
    load = res["load"]
    paced = res["paced"]
    out = [
        {
            "area": "command API",
            "figure": "load average (1 / 5 / 15 min) before → after the rounds: the machine's other work",
            "value": " / ".join(f"{x:.2f}" for x in load["before"])
            + " → "
            + " / ".join(f"{x:.2f}" for x in load["after"]),
            "unit": "",
        },
        {
            "area": "command API",
            "figure": f"bare FastAPI endpoint, same body, uvicorn {workers} worker(s) like the servers below "
            f"(ceiling; median of {n} rounds {bare['rounds']})",
            "value": bare["rps"],
            "unit": "req/s",
            "p50_ms": bare["p50_ms"],
            "p99_ms": bare["p99_ms"],
        },
    ]
    figures = {
        "desk": "desk: issue ticket (validate against desk-day state + append with ack), 64 clients",
        "calls": "calls: a call comes in (recorded, routed, counted on the line-day), 64 clients",
    }
    for key, figure in figures.items():
        r = res[key]
        ratios = [round(c / b * 100) for c, b in zip(r["rounds"], bare["rounds"], strict=True) if b]
        out += [
            {
                "area": "command API",
                "figure": f"{figure} (median of {n} rounds {r['rounds']}; % of bare per round {ratios})",
                "value": r["rps"],
                "unit": "commands/s",
                "ceiling_name": "bare FastAPI",
                "ceiling": bare["rps"],
                "target": "≥ 50 % of bare, p99 < 30 ms",
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "errors": r["non2xx"],
            },
            {
                "area": "command API",
                "figure": f"{key}: server CPU per command",
                "value": r["cpu_ms"],
                "unit": "ms",
                "ceiling_name": "bare",
                "ceiling": bare["cpu_ms"],
                "ratio": bare["cpu_ms"] / r["cpu_ms"] if r["cpu_ms"] else None,
            },
            {
                "area": "command API",
                "figure": f"{key} latency p50 / p99 at 64 closed-loop clients (Little's law: the mean is "
                f"64 / rate, {64000 / r['rps']:.0f} ms at this rate, whatever the path; bare's own p99 beside it)"
                if r["rps"]
                else f"{key} latency p50 / p99",
                "value": f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}",
                "unit": "ms",
                "ceiling_name": "bare p50/p99",
                "ceiling": f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f}",
                "ratio": None,
                "target": "p99 < 30 ms",
            },
            {
                "area": "command API",
                "figure": f"{key} latency p50 / p99 at a fixed offered rate of {paced['rate']:,.0f}/s "
                f"({PACED_SHARE:.0%} of bare's closed-loop rate; achieved {paced[key]['rps']:,.0f}/s, "
                f"bare {paced['bare']['rps']:,.0f}/s; median of {len(paced[key]['rounds'])} runs)",
                "value": f"{paced[key]['p50_ms']:.1f} / {paced[key]['p99_ms']:.1f}",
                "unit": "ms",
                "ceiling_name": "bare p50/p99 at the same rate",
                "ceiling": f"{paced['bare']['p50_ms']:.1f} / {paced['bare']['p99_ms']:.1f}",
                "ratio": None,
                "target": "p99 < 30 ms",
            },
            {
                "area": "command API",
                "figure": f"{key}: non-2xx responses during the rounds",
                "value": r["non2xx"],
                "unit": "responses",
            },
        ]
    return out


@suite
async def desk_api(nats_server, pg, pool, ceilings, args) -> list[dict]:
    from bench import peer_suite

    peer = peer_suite.Peer(pg.dsn) if peer_suite.installed() else None
    try:
        async with bench_env(nats_server, pg) as (config, env, tokens):
            res = measure(env, config, tokens, peer=peer)
    finally:
        if peer is not None:
            peer.close()
    ceilings["command API: desk commands/s"] = res["desk"]["rps"]
    if "peer_single" in res:
        ceilings["peer: single-event commands/s (rounds beside the desk)"] = res["peer_single"]
    return rows(res)
