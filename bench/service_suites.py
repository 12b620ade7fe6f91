"""Each service's own benchmark script, run as a subprocess and turned into table rows."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.suites import suite

ROOT = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str, timeout: int = 600) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([sys.executable, str(ROOT / script), str(out), *args], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


@suite
async def agent(nats_server, pg, pool, ceilings, args) -> list[dict]:
    r = run_script("services/device-agent/bench_agent.py", "--seconds", "8")
    raw = r["raw_publish_async_events_per_s"]
    return [
        {"area": "agent", "figure": "idle CPU", "value": r["idle"]["cpu_percent_of_core"], "unit": "% of a core", "target": "< 1 %"},
        {"area": "agent", "figure": "idle RSS", "value": r["idle"]["rss_mb"], "unit": "MB", "target": "< 60 MB"},
        {"area": "agent", "figure": "CPU at 100 events/s", "value": r["load_100_per_s"]["cpu_percent_of_core"], "unit": "% of a core"},
        {"area": "agent", "figure": "RSS at 100 events/s", "value": r["load_100_per_s"]["rss_mb"], "unit": "MB", "target": "< 60 MB"},
        {"area": "agent", "figure": "outbox drain after reconnect", "value": r["drain"]["drain_events_per_s"], "unit": "events/s",
         "ceiling_name": "raw publish_async", "ceiling": raw, "target": "≥ 5,000/s"},
    ]
