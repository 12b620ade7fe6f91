#!/usr/bin/env bash
# make demo: the system (without desk and calls, which the demo serves on its simulated clock),
# then a living day at Sapporo's 10 desks and the phone line through the APIs. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED="${DEMO_SPEED:-51}"
.venv/bin/madoguchi run --only reporting --only audit --only console &
RUN=$!
# SIGTERM: a background job of a non-interactive shell ignores SIGINT; the supervisor handles TERM
trap 'kill -TERM $RUN 2>/dev/null; wait $RUN 2>/dev/null || true' EXIT INT TERM
port="${MADOGUCHI_CONSOLE_PORT:-8100}"
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1 && break
  kill -0 $RUN 2>/dev/null || { echo "the system did not start" >&2; exit 1; }
  sleep 0.5
done
echo "console: http://127.0.0.1:${port}  (demo logins below)"
.venv/bin/madoguchi simulate demo --speed "$SPEED"
echo "the demo day is over; the system keeps running until Ctrl-C (reports at http://127.0.0.1:${port}/reports)"
wait $RUN
