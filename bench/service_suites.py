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
        subprocess.run(
            [sys.executable, str(ROOT / script), str(out), *args],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )
        return json.loads(out.read_text())


@suite
async def agent(nats_server, pg, pool, ceilings, args) -> list[dict]:
    r = run_script("services/device-agent/bench_agent.py", "--seconds", "8")
    raw = r["raw_publish_async_events_per_s"]
    return [
        {
            "area": "agent",
            "figure": "idle CPU",
            "value": r["idle"]["cpu_percent_of_core"],
            "unit": "% of a core",
            "target": "< 1 %",
        },
        {"area": "agent", "figure": "idle RSS", "value": r["idle"]["rss_mb"], "unit": "MB", "target": "< 60 MB"},
        {
            "area": "agent",
            "figure": "CPU at 100 events/s",
            "value": r["load_100_per_s"]["cpu_percent_of_core"],
            "unit": "% of a core",
        },
        {
            "area": "agent",
            "figure": "RSS at 100 events/s",
            "value": r["load_100_per_s"]["rss_mb"],
            "unit": "MB",
            "target": "< 60 MB",
        },
        {
            "area": "agent",
            "figure": "outbox drain after reconnect",
            "value": r["drain"]["drain_events_per_s"],
            "unit": "events/s",
            "ceiling_name": "raw publish_async",
            "ceiling": raw,
            "target": "≥ 5,000/s",
        },
    ]


def _load(path: str, name: str):
    """Import a service's bench script (scripts, not packages) by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@suite
async def audit(nats_server, pg, pool, ceilings, args) -> list[dict]:
    return await _load("services/audit/bench_audit.py", "bench_audit").suite(nats_server, pg, pool, ceilings, args)


@suite
async def reporting(nats_server, pg, pool, ceilings, args) -> list[dict]:
    r = run_script("services/reporting/bench_reporting.py", "--weeks", "8", "--final-weeks", "26", timeout=900)
    rows = [
        {
            "area": "reporting",
            "figure": f"projection into statistics ({r['events']:,} events, rebuild mode)",
            "value": r["projection_rebuild_mode_events_per_s"],
            "unit": "events/s",
            "ceiling_name": "raw pull + COPY, no logic (same run)",
            "ceiling": r["raw_ceiling_events_per_s"],
            "target": "≥ 60 % of ceiling",
        },
        {
            "area": "reporting",
            "figure": "projection, live mode",
            "value": r["projection_live_mode_events_per_s"],
            "unit": "events/s",
            "ceiling_name": "raw pull + COPY",
            "ceiling": r["raw_ceiling_events_per_s"],
        },
        {
            "area": "reporting",
            "figure": f"rebuild of 1 million events (extrapolated from {r['rebuild_events']:,})",
            "value": r["rebuild_1M_extrapolated_s"],
            "unit": "s",
            "target": "< 80 s",
        },
    ]
    for name, t in r["reports"].items():
        target = "JSON < 1 s, xlsx/PDF < 5 s" if name.startswith("final") else ""
        rows.append(
            {
                "area": "reporting",
                "figure": f"{name} report: JSON / xlsx / PDF / CSV",
                "value": f"{t['json_s']:.2f} / {t['xlsx_s']:.2f} / {t['pdf_s']:.2f} / {t['csv_s']:.2f}",
                "unit": "s",
                "target": target,
            }
        )
    return rows
