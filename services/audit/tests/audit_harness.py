"""Helpers of the audit tests: sample events of every context, an in-memory chain, ingest runs."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from madoguchi_shared import bus
from madoguchi_shared.events import Actor, Event, Role, dump_event
from madoguchi_shared.events.admin import AccessDenied, LoginSucceeded
from madoguchi_shared.events.calls import CallReceived
from madoguchi_shared.events.device import Heartbeat
from madoguchi_shared.settings import Settings

from madoguchi_audit import chain, checkpoints
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.ingest import Ingest

WARDS = ("chuo", "kita", "higashi", "shiroishi")
# Set by the session fixture `service_role` (conftest.py): the audit service's login role mg_audit.
SERVICE_DSN = ""
SERVICE_POOL = None
MIGRATOR_POOL = None  # mg_migrator: runs the migrations, as `madoguchi run` does before the service starts


def service_pool():
    """The pool the service itself would have: logged in as mg_audit, not as a superuser."""
    assert SERVICE_POOL is not None, "the service_role fixture provisions it"
    return SERVICE_POOL


def migrator_pool():
    """The migration owner's pool (mg_migrator): the tests migrate as `madoguchi run` does, not as a superuser."""
    assert MIGRATOR_POOL is not None, "the service_role fixture provisions it"
    return MIGRATOR_POOL


def make_audit_settings(settings: Settings, municipality: str, data_dir: Path, **overrides) -> AuditSettings:
    values = dict(
        data_dir=data_dir,
        municipality=municipality,
        schema_name=f"audit_{municipality}",
        municipalities=[municipality],
        checkpoint_every=100,
        checkpoint_seconds=0.5,
    )
    values.update(overrides)
    return AuditSettings(**values)


def sample_events(municipality: str, n: int, seed: int = 1, start: datetime | None = None) -> list[Event]:
    """n valid events spread over the admin, device and calls streams, wards and actors."""
    rnd = random.Random(seed)
    t = start or datetime(2021, 4, 1, 0, 0, tzinfo=UTC)
    out: list[Event] = []
    for i in range(n):
        t += timedelta(seconds=rnd.randint(1, 30))
        ward = rnd.choice(WARDS)
        desk = f"{ward}-1"
        staff = f"S{rnd.randint(1, 20):04d}"
        kind = i % 4
        if kind == 0:
            out.append(
                LoginSucceeded(
                    municipality=municipality,
                    staff_id=staff,
                    service="desk",
                    occurred_at=t,
                    actor=Actor(id=staff, role=Role.supporter),
                )
            )
        elif kind == 1:
            out.append(
                AccessDenied(
                    municipality=municipality,
                    ward=ward,
                    subject_id=staff,
                    service="desk",
                    method="GET",
                    path="/v1/desks/{desk}/tickets",
                    reason="ward",
                    target_ward=ward,
                    occurred_at=t,
                    actor=Actor(id=staff, role=Role.supporter),
                    correlation_id=uuid4(),
                )
            )
        elif kind == 2:
            out.append(
                Heartbeat(
                    municipality=municipality,
                    ward=ward,
                    desk=desk,
                    device_id=f"{desk}-pc",
                    agent_version="1.0",
                    policy_version=1,
                    outbox_depth=0,
                    outbox_bytes=0,
                    link_up=True,
                    uptime_s=i,
                    occurred_at=t,
                    actor=Actor(id=f"{desk}-pc", role=Role.device),
                )
            )
        else:
            out.append(
                CallReceived(
                    municipality=municipality,
                    call_id=uuid4(),
                    line="main",
                    within_hours=True,
                    seats_signed_in=2,
                    seats_free=1,
                    occurred_at=t,
                )
            )
    return out


def memory_log(
    events: list[Event], key: checkpoints.SigningKey, municipality: str, *, cp_every: int = 25, log_id: str = "oplog"
) -> tuple[list[tuple], list]:
    """A log built in memory exactly as the writer builds it: full rows and signed checkpoints."""
    messages = [chain.Message(f"MG_{e.context.upper()}", i + 1, e.subject, dump_event(e)) for i, e in enumerate(events)]
    rows, _, _ = chain.chain_records(messages, 0, chain.GENESIS)
    cps = []
    previous = 0
    for row in rows:
        position = row[0]
        if position % cp_every == 0 or position == len(rows):
            cps.append(
                checkpoints.sign(
                    key,
                    municipality=municipality,
                    log_id=log_id,
                    position=position,
                    head=row[-1],
                    previous_position=previous,
                )
            )
            previous = position
    return rows, cps


def to_rows(full: list[tuple]) -> list[chain.Row]:
    return [chain.row_from_columns(r) for r in full]


@contextlib.asynccontextmanager
async def running_ingest(audit: AuditSettings, nc, pool=None) -> AsyncIterator[Ingest]:
    """The writer as the service runs it: as mg_audit (`pool` is the superuser's in callers; not used)."""
    ingest = Ingest(audit, nc, service_pool())
    task = asyncio.create_task(ingest.run())
    await ingest.wait_running()
    try:
        yield ingest
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 20)


def cli_env(audit: AuditSettings) -> dict[str, str]:
    """The environment of a `madoguchi audit` process for this test's log (municipality, filter)."""
    import json
    import os

    return {
        **os.environ,
        "MADOGUCHI_MUNICIPALITY": audit.municipality,
        "MADOGUCHI_AUDIT_MUNICIPALITIES": json.dumps(audit.municipalities),
        "MADOGUCHI_AUDIT_CHECKPOINT_EVERY": str(audit.checkpoint_every),
    }


async def publish(js, events: list[Event]) -> None:
    await bus.publish_many(js, events)
