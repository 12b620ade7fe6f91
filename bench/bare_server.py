"""Serve bench.bare_app under the same settings as bench.desk_server (MG_BENCH_WORKERS too)."""

import sys

from bench.desk_server import serve

if __name__ == "__main__":
    serve("bench.bare_app:create_app", int(sys.argv[1]))
