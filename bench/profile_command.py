"""Where a command's time goes: run the desk or calls command of the bench (bench.api_suite) under
cProfile while wrk drives it, then print the functions by own time and by cumulative time.

    .venv/bin/python -m bench.profile_command desk --seconds 10     (or: make profile-commands)
    .venv/bin/python -m bench.profile_command calls --sampler py-spy

Starts its own nats-server and PostgreSQL in a temp folder, like `make bench`. The stats file is
written to a temp folder and deleted; pass --keep FILE to keep it (e.g. for snakeviz).

`--sampler py-spy` samples the server from outside instead (py-spy 250 times a second, full stacks;
py-spy is no dependency of the project: `.tools/bin/uv pip install --python .venv/bin/python py-spy`)
and prints each function's share of the samples, on its own and with what it calls. cProfile's cost
per call weighs on code that makes many small calls: nats-py's header parse (a generator over every
character) took 13 % of a calls command under cProfile and about 2 % of the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import collections
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from madoguchi_shared.runtime import NatsServer, PostgresServer

from bench import api_suite

COMMANDS = {
    "desk": ("bench.desk_server", api_suite.DESK_PATHS, "manager", "{}"),
    "calls": ("bench.calls_server", ["/v1/calls"], "operator", '{"line":"main"}'),
}


async def main(args) -> None:
    with tempfile.TemporaryDirectory(prefix="mgprof") as tmp:
        nats_server = NatsServer(Path(tmp) / "nats").start()
        pg = PostgresServer(Path(tmp) / "pg").start()
        try:
            async with api_suite.bench_env(nats_server, pg) as (config, env, tokens):
                for name in args.commands:
                    module, paths, role, body = COMMANDS[name]
                    if args.sampler == "py-spy":
                        sample(name, module, [str(config)], env, paths, tokens[role], body, args)
                        continue
                    stats_file = Path(tmp) / f"{name}.prof"
                    res = api_suite.run_load(
                        module,
                        [str(config)],
                        {**env, "MG_BENCH_PROFILE": str(stats_file), "MG_BENCH_PROFILE_CLOCK": args.clock},
                        paths,
                        tokens[role],
                        body=body,
                        seconds=args.seconds,
                    )
                    print(
                        f"\n=== {name}: {res['rps']:,.0f} commands/s under the profiler, p50/p99 "
                        f"{res['p50_ms']} / {res['p99_ms']} ms, non-2xx {res['non2xx']}"
                    )
                    stats = pstats.Stats(str(stats_file))
                    stats.sort_stats("tottime").print_stats(args.top)
                    stats.sort_stats("cumulative").print_stats(args.top)
                    if args.keep:
                        shutil.copy(stats_file, f"{args.keep}.{name}")
        finally:
            pg.stop()
            nats_server.stop()


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(".venv/bin/py-spy").resolve())
    if not Path(found).exists():
        raise SystemExit("py-spy not found: .tools/bin/uv pip install --python .venv/bin/python py-spy")
    return found


def sample(
    name: str, module: str, port_args: list[str], env: dict, paths: list[str], token: str, body: str, args
) -> None:
    """py-spy on the warmed-up server during one measured run; the shares of the samples."""
    server, base = api_suite.serve(module, port_args, env, paths, token, body)
    with tempfile.TemporaryDirectory(prefix="mgspy") as tmp:
        out = Path(tmp) / "stacks.txt"
        try:
            spy = subprocess.Popen(
                [
                    py_spy(),
                    "record",
                    "-p",
                    str(server.pid),
                    "-d",
                    str(args.seconds),
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            res = api_suite.load_once(server, base, paths, token, body, args.seconds)
            spy.wait()
        finally:
            api_suite.stop(server)
        own: collections.Counter[str] = collections.Counter()
        within: collections.Counter[str] = collections.Counter()
        total = 0
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            frames = [re.sub(r" \(/\S*?/(site-packages|src|python3\.\d+)/", " (", f) for f in stack.split(";")]
            own[frames[-1]] += n
            for frame in set(frames):
                within[frame] += n
        if args.keep:
            shutil.copy(out, f"{args.keep}.{name}.txt")
    print(
        f"\n=== {name}: {res['rps']:,.0f} commands/s while sampled, server CPU {res['cpu_ms']:.3f} ms a command, "
        f"{total} samples"
    )
    for title, counter in (("on its own", own), ("with what it calls", within)):
        print(f"--- share of the samples {title}")
        for frame, n in counter.most_common(args.top):
            print(f"{n * 100 / max(total, 1):5.1f} %  {frame}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commands", nargs="*", help="desk, calls (default: both)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time functions by the server's CPU time (default: not disturbed by the machine's other work) or wall time",
    )
    parser.add_argument("--keep", help="keep the stats files as KEEP.desk / KEEP.calls")
    parser.add_argument(
        "--sampler",
        choices=["cprofile", "py-spy"],
        default="cprofile",
        help="cProfile inside the server (default) or py-spy sampling it from outside (see above)",
    )
    os.environ.setdefault("MADOGUCHI_LOG_LEVEL", "WARNING")
    args = parser.parse_args()
    args.commands = args.commands or list(COMMANDS)
    unknown = set(args.commands) - set(COMMANDS)
    if unknown:
        parser.error(f"unknown command(s): {', '.join(sorted(unknown))}")
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
