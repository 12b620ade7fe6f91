"""The calls service as the benchmark runs it: the real app in its own process, under the same
uvicorn settings as bench.desk_server, with a clock inside the phone line's hours (2021-04-06,
a Tuesday, 10:00 JST plus the time elapsed)."""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from madoguchi_shared.settings import Settings

from bench.desk_server import START, serve


def main() -> None:
    port = int(sys.argv[1])
    config = Path(sys.argv[2])
    from madoguchi_calls.main import create_app

    t0 = time.monotonic()
    settings = Settings(config_file=config)
    app = create_app(settings, clock=lambda: START + timedelta(seconds=time.monotonic() - t0), check_interval=0)
    serve(app, port)


if __name__ == "__main__":
    os.environ.setdefault("MADOGUCHI_LOG_LEVEL", "WARNING")
    main()
