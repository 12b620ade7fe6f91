"""The read path of one ticket, counted in function hops (issue 12 target: ≤ 12).

    .venv/bin/python -m bench.read_path        (own nats-server and PostgreSQL in a temp folder)

One `desk.ticket_issued` is published and the desk projection (the shared reader and runner, the
reporting projection and its store) carries it into `reporting.ticket` and the desk-day's
`tickets_issued` counter, under `sys.setprofile`. A HOP is a function of the project (shared/src,
services/*/src; comprehensions not counted) called with the ticket in its parameters (`self`
not counted: a method that only works on the object carrying it moves nothing): its bytes on the
socket, its stored message, its event, or what is built from it (its row, its counter, the batch
and the statement that carry them), found by its event id or its time, up to three containers
deep. `trace_ticket` returns the hops in the order first seen; `test_reporting_
read_path.py` asserts the count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import uuid
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = (str(ROOT / "shared" / "src"), str(ROOT / "services"))
NOT_HOPS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")


class Marker:
    """What identifies the ticket in whatever carries it: its event id, its time."""

    def __init__(self, event_id: uuid.UUID, at: dt.datetime):
        self.id, self.at = event_id, at
        self.id_s, self.id_b = str(event_id), str(event_id).encode()

    def held_by(self, x: Any, depth: int = 0) -> bool:
        if isinstance(x, bytes | bytearray | memoryview):
            return self.id_b in bytes(x)
        if isinstance(x, str):
            return self.id_s in x
        if isinstance(x, uuid.UUID):
            return x == self.id
        if isinstance(x, dt.datetime):
            return x == self.at
        if depth >= 3 or isinstance(x, int | float | bool | type(None) | dt.date | type):
            return False
        if isinstance(x, dict):
            return any(self.held_by(k, depth + 1) or self.held_by(v, depth + 1) for k, v in list(x.items())[:5000])
        if isinstance(x, list | tuple | deque | set | frozenset):
            return any(self.held_by(v, depth + 1) for v in list(x)[:5000])
        slots = getattr(type(x), "__slots__", None) or getattr(type(x), "__struct_fields__", None) or ()
        fields = [getattr(x, s, None) for s in slots]
        fields += list(getattr(x, "__dict__", {}).values())
        return any(self.held_by(v, depth + 1) for v in fields)


def _stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def _project(code) -> bool:
    return code.co_filename.startswith(PROJECT) and code.co_name not in NOT_HOPS


async def trace_ticket(nc, js, pool, municipality: str) -> list[str]:
    """Publish one ticket, project it under a trace; the hops in the order first seen."""
    from madoguchi_shared import bus, subjects
    from madoguchi_shared.events import desk as dk

    from madoguchi_reporting import schema
    from madoguchi_reporting.projections import Notifier, desk_projection

    at = dt.datetime(2021, 4, 1, 9, 17, 23, 456789, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    event = dk.TicketIssued(
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        deskday_id="chuo-1_2021-04-01",
        ticket_no=1,
        occurred_at=at,
    )
    marker = Marker(event.event_id, at)
    async with pool.acquire() as conn:
        await schema.migrate(conn)
    projection = desk_projection(
        Notifier(enabled=False),
        name=f"read-path-{municipality}",
        filters=[subjects.context_filter("desk", municipality)],
    )
    hops: dict[str, None] = {}

    def profile(frame, what, _arg):
        if what != "call" or not _project(code := frame.f_code):
            return
        name = f"{Path(code.co_filename).stem}.{code.co_qualname}"
        if name in hops or any(f.f_code is publish for f in _stack(frame)):
            return  # counted already, or the write side (bus.append) putting the ticket on the stream
        params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4)]
        local = frame.f_locals
        if any(marker.held_by(local.get(p)) for p in params if p not in ("self", "cls")):
            hops[name] = None

    publish = bus.append.__code__

    task = asyncio.create_task(projection.run(nc, pool))
    await asyncio.sleep(0.3)  # the reader is waiting
    sys.setprofile(profile)
    try:
        ack = await bus.append(js, event)
        while projection.position < ack.seq:
            await asyncio.sleep(0.01)
    finally:
        sys.setprofile(None)
        projection.stop()
        await task
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT issued_at FROM reporting.ticket WHERE municipality = $1 AND desk = 'chuo-1' AND ticket_no = 1",
            municipality,
        )
        counted = await conn.fetchval(
            """SELECT n FROM reporting.day_count WHERE municipality = $1 AND scope = 'chuo-1'
               AND day = '2021-04-01' AND figure = 'tickets_issued'""",
            municipality,
        )
    assert stored == at and counted == 1, (stored, counted)
    return [h for h in hops if not h.startswith("read_path.")]


async def main() -> None:
    from madoguchi_shared import bus, db
    from madoguchi_shared.logging import configure
    from madoguchi_shared.runtime import NatsServer, PostgresServer

    configure("WARNING", json_logs=False)
    with tempfile.TemporaryDirectory(prefix="mgreadpath") as tmp:
        nats_server = NatsServer(Path(tmp) / "nats").start()
        pg = PostgresServer(Path(tmp) / "pg").start()
        try:
            nc = await bus.connect(nats_server.url, name="read-path")
            js = nc.jetstream()
            await bus.ensure_streams(js)
            pool = await db.create_pool(pg.dsn, max_size=4)
            hops = await trace_ticket(nc, js, pool, "990003")
            await pool.close()
            await nc.close()
        finally:
            pg.stop()
            nats_server.stop()
    for i, h in enumerate(hops, 1):
        print(f"{i:3d}  {h}")
    print(f"read path of one ticket, stream to stored row: {len(hops)} function hops (target ≤ 12)")


if __name__ == "__main__":
    asyncio.run(main())
