"""The peer: the pyeventsourcing library (PostgreSQL persistence) on the same embedded PostgreSQL in
the same run, beside the desk command (issue 19 §4). In-process and synchronous, as its users run
it: a desk-day aggregate whose command issues a ticket, one event per save.

- single-event command per save: the aggregate held in memory, `issue_ticket()` + `save()`;
- load + command + save: the aggregate read back from the database first (`repository.get`),
  over 256 aggregates in turn like the desk bench, so every load replays only a few events.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import urlparse

from bench.suites import suite

AGGREGATES = 256
COMMANDS = int(os.environ.get("MG_BENCH_PEER_COMMANDS", "3000"))


def _application(dsn: str, schema: str):
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class DeskDay(Aggregate):
        @event("Opened")
        def __init__(self, desk: str) -> None:
            self.desk = desk
            self.tickets = 0

        @event("TicketIssued")
        def issue_ticket(self) -> None:
            self.tickets += 1

    class Desks(Application):
        pass

    url = urlparse(dsn)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
        "CREATE_TABLE": "y",
    }
    return Desks(env=env), DeskDay


def measure(dsn: str, commands: int = COMMANDS) -> dict[str, float]:
    schema = "peer_" + uuid.uuid4().hex[:8]
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        app, DeskDay = _application(dsn, schema)
        desks = [DeskDay(desk=f"w{i // 4}-{i % 4}") for i in range(AGGREGATES)]
        app.save(*desks)
        start = time.perf_counter()
        for i in range(commands):
            day = desks[i % AGGREGATES]
            day.issue_ticket()
            app.save(day)
        single = commands / (time.perf_counter() - start)
        ids = [d.id for d in desks]
        start = time.perf_counter()
        for i in range(commands):
            day = app.repository.get(ids[i % AGGREGATES])
            day.issue_ticket()
            app.save(day)
        loaded = commands / (time.perf_counter() - start)
        assert app.repository.get(ids[0]).tickets == 2 * len(range(0, commands, AGGREGATES))
        app.close()
        return {"single": single, "load": loaded}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@suite
async def peer(nats_server, pg, pool, ceilings, args) -> list[dict]:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return [
            {
                "area": "peer",
                "figure": "pyeventsourcing not installed: `make bench` installs the bench group",
                "value": None,
                "unit": "",
            }
        ]
    r = measure(pg.dsn)
    desk = ceilings.get("command API: desk commands/s")
    rows = [
        {
            "area": "peer",
            "figure": "pyeventsourcing (PostgreSQL): single-event command per save, in-process",
            "value": r["single"],
            "unit": "commands/s",
        },
        {
            "area": "peer",
            "figure": "pyeventsourcing (PostgreSQL): load + command + save, in-process",
            "value": r["load"],
            "unit": "commands/s",
        },
    ]
    if desk:
        rows.append(
            {
                "area": "peer",
                "figure": "desk command (HTTP, 64 clients) vs. the peer's single-event command",
                "value": desk,
                "unit": "commands/s",
                "ceiling_name": "pyeventsourcing single-event",
                "ceiling": r["single"],
                "target": "≥ 3×",
            }
        )
    return rows
