"""HTTP load with wrk (Debian package): 64 connections, a Lua script choosing the path per request.

Closed loop by default (each connection sends its next request when the answer comes: the rate is
the server's capacity, and the latency at 64 clients is bound by Little's law to 64 / rate). With
`rate`, each connection pauses before each request for a random time (exponential, mean
connections / rate), so the server gets about `rate` requests a second whatever its capacity: the
latency there is the one a request meets below saturation. Still no true open loop (wrk has no
fixed schedule: a slow answer delays that connection's next request, so queueing is under- rather
than over-stated); the rate achieved is reported beside it."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

LUA = """
counter = 0
local paths = {%(paths)s}
request = function()
  counter = counter + 1
  local path = paths[(counter %% #paths) + 1]
  return wrk.format("POST", path, {["Content-Type"]="application/json", ["Authorization"]="Bearer %(token)s"}, '%(body)s')
end
"""

PACED = """
local mean_ms = %(mean_ms)f
delay = function()
  return -math.log(1 - math.random()) * mean_ms
end
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(
    url_base: str,
    paths: list[str],
    token: str = "",
    body: str = "{}",
    connections: int = 64,
    seconds: int = 10,
    threads: int = 1,
    rate: float | None = None,
) -> dict:
    script = LUA % {"paths": ",".join(f'"{p}"' for p in paths), "token": token, "body": body}
    if rate:
        script += PACED % {"mean_ms": connections / rate * 1000}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", f.name, url_base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(f.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50%", "99%"):
        m = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        lat[pct] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "p50_ms": lat["50%"],
        "p99_ms": lat["99%"],
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "requests": int(total.group(1)) if total else 0,
        "raw": out,
    }
