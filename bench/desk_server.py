"""The desk service as the benchmark runs it: the real app, in its own process, under uvicorn with
uvloop + httptools (1 worker), with a clock inside business hours (2021-04-06, a Tuesday, 10:00 JST
plus the time elapsed) and a configuration of many desks so 64 clients spread over many desk-days.
MG_BENCH_WORKERS=n runs it (and the bare and calls servers) with n uvicorn worker processes."""

from __future__ import annotations

import importlib
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
import time

import uvicorn

from madoguchi_shared.settings import Settings

JST = timezone(timedelta(hours=9))
START = datetime(2021, 4, 6, 10, 0, tzinfo=JST)


def bench_config(path: Path, desks: int) -> Path:
    wards = []
    for w in range(desks // 4):
        wards.append(
            f'[[wards]]\nid = "w{w}"\nname_ja = "区{w}"\nname_en = "W{w}"\n'
            f"desks = [" + ", ".join(f'{{ id = "w{w}-{k}", name_ja = "窓口{w}-{k}" }}' for k in range(4)) + "]\n"
        )
    path.write_text(
        'code = "099999"\nname_ja = "ベンチ市"\nname_en = "Bench"\ntimezone = "Asia/Tokyo"\nclosed_weekdays = [5, 6]\n'
        'year_end_closure = ["12-29", "01-03"]\ncapacity_thresholds = [0.8, 1.0, 1.25]\n\n'
        "[regular_hours]\nopen = 08:45:00\nclose = 17:15:00\n\n[desk_defaults]\nexpected_max_visitors = 100000\n\n"
        "[phone]\nexpected_max_calls_per_day = 100000\n\n" + "\n".join(wards)
    )
    return path


def main() -> None:
    os.environ["MG_BENCH_CONFIG"] = sys.argv[2]
    os.environ.setdefault("MG_BENCH_T0", str(time.time()))  # one clock for every worker process
    serve("bench.desk_server:desk_app", int(sys.argv[1]))


def bench_clock():
    t0 = float(os.environ["MG_BENCH_T0"])
    return lambda: START + timedelta(seconds=time.time() - t0)


def desk_app():
    from madoguchi_desk.main import create_app

    settings = Settings(config_file=Path(os.environ["MG_BENCH_CONFIG"]))
    return create_app(settings, clock=bench_clock(), staffing_check_seconds=3600)


def serve(factory: str, port: int) -> None:
    """uvicorn with uvloop + httptools, the app from `factory` ("module:function"), with
    MG_BENCH_WORKERS worker processes (default 1). Under MG_BENCH_PROFILE=<file> (one worker) the
    process profiles itself with cProfile from SIGUSR1 (sent after the warm-up) until it stops, and
    writes the stats there (bench.profile_command)."""
    options = dict(host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools", access_log=False)
    workers = int(os.environ.get("MG_BENCH_WORKERS", "1"))
    profile_to = os.environ.get("MG_BENCH_PROFILE")
    if workers > 1:
        uvicorn.run(factory, factory=True, workers=workers, **options)
        return
    module, _, function = factory.partition(":")
    app = getattr(importlib.import_module(module), function)()
    if not profile_to:
        uvicorn.run(app, **options)
        return
    import cProfile
    import signal

    # the process's CPU time, not the wall clock: on a shared machine a preempted syscall would
    # otherwise show as time spent in whatever function was running (MG_BENCH_PROFILE_CLOCK=wall for that)
    clock = time.perf_counter if os.environ.get("MG_BENCH_PROFILE_CLOCK") == "wall" else time.process_time
    profiler = cProfile.Profile(clock)
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through `finally` instead
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(app, **options)
    finally:
        profiler.disable()
        profiler.dump_stats(profile_to)


if __name__ == "__main__":
    os.environ.setdefault("MADOGUCHI_LOG_LEVEL", "WARNING")
    main()
