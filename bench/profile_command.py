"""Where a command's time goes: run the desk or calls command of the bench (bench.api_suite) under
cProfile while wrk drives it, then print the functions by own time and by cumulative time.

    .venv/bin/python -m bench.profile_command desk --seconds 10     (or: make profile-commands)

Starts its own nats-server and PostgreSQL in a temp folder, like `make bench`. The stats file is
written to a temp folder and deleted; pass --keep FILE to keep it (e.g. for snakeviz).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import shutil
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
    os.environ.setdefault("MADOGUCHI_LOG_LEVEL", "WARNING")
    args = parser.parse_args()
    args.commands = args.commands or list(COMMANDS)
    unknown = set(args.commands) - set(COMMANDS)
    if unknown:
        parser.error(f"unknown command(s): {', '.join(sorted(unknown))}")
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
