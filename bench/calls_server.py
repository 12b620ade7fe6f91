"""The calls service as the benchmark runs it: the real app in its own process, under the same
uvicorn settings as bench.desk_server, with a clock inside the phone line's hours (2021-04-06,
a Tuesday, 10:00 JST plus the time elapsed)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from madoguchi_shared.settings import Settings

from bench.desk_server import bench_clock, serve


def main() -> None:
    os.environ["MG_BENCH_CONFIG"] = sys.argv[2]
    os.environ.setdefault("MG_BENCH_T0", str(time.time()))  # one clock for every worker process
    serve("bench.calls_server:calls_app", int(sys.argv[1]))


def calls_app():
    from madoguchi_calls.main import create_app

    settings = Settings(config_file=Path(os.environ["MG_BENCH_CONFIG"]))
    return create_app(settings, clock=bench_clock(), check_interval=0)


if __name__ == "__main__":
    os.environ.setdefault("MADOGUCHI_LOG_LEVEL", "WARNING")
    main()
