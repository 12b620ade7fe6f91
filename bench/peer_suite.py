"""The peer: the pyeventsourcing library (PostgreSQL persistence) on the same embedded PostgreSQL in
the same run, beside the desk command (issue 19 §4). In-process and synchronous, as its users run
it: a desk-day aggregate whose command issues a ticket, one event per save.

- single-event command per save: the aggregate held in memory, `issue_ticket()` + `save()`;
- load + command + save: the aggregate read back from the database first (`repository.get`),
  over 256 aggregates in turn like the desk bench, so every load replays only a few events.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from urllib.parse import urlparse

from bench.suites import suite

AGGREGATES = 256
COMMANDS = int(os.environ.get("MG_BENCH_PEER_COMMANDS", "3000"))


@functools.cache  # eventsourcing refuses a second class under one topic: the classes are made once
def _classes():
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

    return Desks, DeskDay


def _application(dsn: str, schema: str):
    Desks, DeskDay = _classes()
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


class Peer:
    """The peer's application on its own schema, set up once and measured in rounds (the command API
    suite runs a round of it between its own, so a change of load on the machine hits both)."""

    def __init__(self, dsn: str):
        import psycopg

        self.dsn = dsn
        self.schema = "peer_" + uuid.uuid4().hex[:8]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        self.app, DeskDay = _application(dsn, self.schema)
        self.desks = [DeskDay(desk=f"w{i // 4}-{i % 4}") for i in range(AGGREGATES)]
        self.app.save(*self.desks)
        self.issued = [0] * AGGREGATES

    def single(self, commands: int) -> float:
        """Single-event command per save: the aggregate held in memory, `issue_ticket()` + `save()`."""
        start = time.perf_counter()
        for i in range(commands):
            day = self.desks[i % AGGREGATES]
            day.issue_ticket()
            self.app.save(day)
            self.issued[i % AGGREGATES] += 1
        return commands / (time.perf_counter() - start)

    def loaded(self, commands: int) -> float:
        """Load + command + save: the aggregate read back from the database first."""
        ids = [d.id for d in self.desks]
        start = time.perf_counter()
        for i in range(commands):
            day = self.app.repository.get(ids[i % AGGREGATES])
            day.issue_ticket()
            self.app.save(day)
            self.issued[i % AGGREGATES] += 1
        rate = commands / (time.perf_counter() - start)
        self.desks = [self.app.repository.get(i) for i in ids]
        return rate

    def close(self) -> None:
        import psycopg

        try:
            assert self.app.repository.get(self.desks[0].id).tickets == self.issued[0]
            self.app.close()
        finally:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


def installed() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True


def measure(dsn: str, commands: int = COMMANDS) -> dict[str, float]:
    peer = Peer(dsn)
    try:
        return {"single": peer.single(commands), "load": peer.loaded(commands)}
    finally:
        peer.close()


@suite
async def peer(nats_server, pg, pool, ceilings, args) -> list[dict]:
    if not installed():
        return [
            {
                "area": "peer",
                "figure": "pyeventsourcing not installed: `make bench` installs the bench group",
                "value": None,
                "unit": "",
            }
        ]
    r = measure(pg.dsn)
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
    desk = ceilings.get("command API: desk commands/s")
    if desk:
        # the peer's rounds ran between the desk's (bench.api_suite): the same load on the machine
        peer_single = ceilings.get("peer: single-event commands/s (rounds beside the desk)", r["single"])
        rows.append(
            {
                "area": "peer",
                "figure": "desk command (HTTP, 64 clients) vs. the peer's single-event command, "
                "medians of interleaved rounds",
                "value": desk,
                "unit": "commands/s",
                "ceiling_name": "pyeventsourcing single-event",
                "ceiling": peer_single,
                "target": "≥ 3×",
            }
        )
    return rows
