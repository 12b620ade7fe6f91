#!/usr/bin/env bash
# make demo: the whole system under the supervisor of `madoguchi run`, with the desk and calls
# services reading a simulated clock (MADOGUCHI_EXTRA='{"clock": ...}', which a restarted service
# reads again), then a living day at Sapporo's 10 desks and the phone line through the APIs.
# After the demo day everything keeps serving (logins, reports) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED="${DEMO_SPEED:-51}"
if [ -z "${MADOGUCHI_EXTRA:-}" ]; then
  MADOGUCHI_EXTRA="$(.venv/bin/madoguchi simulate clock --speed "$SPEED")"
  export MADOGUCHI_EXTRA
fi
.venv/bin/madoguchi run &
RUN=$!
# SIGTERM: a background job of a non-interactive shell ignores SIGINT; the supervisor handles TERM
trap 'kill -TERM $RUN 2>/dev/null; wait $RUN 2>/dev/null || true' EXIT INT TERM
port="${MADOGUCHI_CONSOLE_PORT:-8100}"
desk_port="${MADOGUCHI_DESK_PORT:-8101}"
calls_port="${MADOGUCHI_CALLS_PORT:-8102}"
for _ in $(seq 1 240); do
  curl -fs "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:${desk_port}/readyz" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:${calls_port}/readyz" >/dev/null 2>&1 && break
  kill -0 $RUN 2>/dev/null || { echo "the system did not start" >&2; exit 1; }
  sleep 0.5
done
echo "console: http://127.0.0.1:${port}  (demo logins below)"
.venv/bin/madoguchi simulate demo --speed "$SPEED" --no-serve
echo "the demo day is over; the system keeps running until Ctrl-C (reports at http://127.0.0.1:${port}/reports)"
wait $RUN
