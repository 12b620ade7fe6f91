"""Serve bench.bare_app under the same settings as bench.desk_server."""

import sys

import uvicorn

from bench.bare_app import create_app

uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop", http="httptools", access_log=False)
