"""`make bench`: every project figure beside a ceiling measured in the same run on this machine.

Starts its own nats-server and PostgreSQL in a temp folder, runs the raw ceilings and each
service's benchmark, prints a table and writes bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from madoguchi_shared import db
from madoguchi_shared.runtime import NatsServer, PostgresServer

from bench import api_suite, e2e_suite, peer_suite, raw, service_suites  # noqa: F401 - suites register themselves

RESULTS = Path(__file__).parent / "results"


def _load(avg: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"
    return str(v)


def table(rows: list[dict]) -> str:
    head = "| area | figure | value | unit | ceiling (same run) | ratio | target |\n|---|---|---:|---|---|---:|---|"
    lines = [head]
    for r in rows:
        ceiling = f"{r['ceiling_name']}: {fmt(r.get('ceiling'))}" if r.get("ceiling_name") else ""
        ratio = f"{r['ratio']:.0%}" if isinstance(r.get("ratio"), int | float) else ""
        lines.append(
            f"| {r['area']} | {r['figure']} | {fmt(r['value'])} | {r['unit']} | {ceiling} | {ratio} | {r.get('target', '')} |"
        )
    return "\n".join(lines)


async def main(args) -> None:
    from bench import suites

    with tempfile.TemporaryDirectory(prefix="mgbench") as tmp:
        nats_server = NatsServer(Path(tmp) / "nats").start()
        pg = PostgresServer(Path(tmp) / "pg").start()
        pool = await db.create_pool(pg.dsn, max_size=8)
        started = time.perf_counter()
        load_before = os.getloadavg()
        print(f"load average (1 / 5 / 15 min) at the start: {_load(load_before)}", flush=True)
        try:
            rows = await raw.measure(nats_server.url, pool, n=args.events)
            ceilings = {r["figure"]: r["value"] for r in rows}
            for suite in suites.selected(args.only):
                t0 = time.perf_counter()
                try:
                    rows += await suite(nats_server, pg, pool, ceilings, args)
                except Exception as exc:  # noqa: BLE001 - one failing suite must not hide the others
                    rows.append(
                        {
                            "area": suite.__name__,
                            "figure": f"FAILED: {type(exc).__name__}: {exc}"[:200],
                            "value": None,
                            "unit": "",
                        }
                    )
                print(f"  {suite.__name__}: {time.perf_counter() - t0:.0f}s", flush=True)
        finally:
            await pool.close()
            pg.stop()
            nats_server.stop()
    for r in rows:
        numeric = isinstance(r.get("value"), int | float) and isinstance(r.get("ceiling"), int | float)
        if numeric and r["ceiling"] and "ratio" not in r:
            r["ratio"] = r["value"] / r["ceiling"]
    md = table(rows)
    print(md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "when": datetime.now(UTC).isoformat(),
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
        "events": args.events,
        "load_average": {"start": _load(load_before), "end": _load(os.getloadavg())},
    }
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, ensure_ascii=False, indent=2))
    (RESULTS / "latest.md").write_text(
        f"# make bench — {meta['when']}\n\n{meta['machine']}, {meta['cores']} cores, {meta['seconds']} s, "
        f"load average {meta['load_average']['start']} at the start, {meta['load_average']['end']} at the end\n\n{md}\n"
    )
    print(f"load average (1 / 5 / 15 min) at the end: {meta['load_average']['end']}")
    print(f"\nwritten {RESULTS / 'latest.json'} and latest.md ({meta['seconds']} s)")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="events per raw measurement")
    parser.add_argument("--only", action="append", default=[], help="run only these suites")
    parser.add_argument("--replay-events", type=int, default=1_000_000, help="events for the replay benchmark")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
