"""ARCHITECTURE rule 8 end to end: a batch sent again after the stream's duplicate window counts once.

A desk laptop killed between JetStream's ack and the outbox's delete sends the same rows again when
it comes back; after the stream's duplicate window (MG_DEVICE keeps an hour: a laptop whose battery
died overnight) the server stores them as new messages. The stream then holds each event twice (a
new Nats-Msg-Id is exactly what the server sees once the window is over). Every report (the desk
reports of the reporting service, HQ's device activity of the audit service) counts each event
once, the audit log records both copies and names the second a duplicate of the first, and
`report verify` and `audit verify` stay green.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "reporting" / "tests"))

from reporting_harness import headers, reporting_settings, running_app  # noqa: E402
from sim_week import WEEK_START, simulate  # noqa: E402

from madoguchi_audit import schema as audit_schema  # noqa: E402
from madoguchi_audit import verify as audit_verify  # noqa: E402
from madoguchi_audit.config import AuditSettings  # noqa: E402
from madoguchi_audit.main import create_app as create_audit_app  # noqa: E402
from madoguchi_reporting import queries  # noqa: E402
from madoguchi_reporting.cli import verify_async  # noqa: E402
from madoguchi_shared import bus  # noqa: E402
from madoguchi_shared.auth import Role  # noqa: E402
from madoguchi_shared.events import Actor, dump_event, new_id  # noqa: E402
from madoguchi_shared.events import device as dev  # noqa: E402
from tests.utils.servers import unique_municipality  # noqa: E402


def agent_batch(municipality: str) -> list:
    pc: dict[str, Any] = dict(
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        device_id="chuo-1-pc",
        occurred_at=datetime.now(UTC),
        actor=Actor(id="chuo-1-pc", role=Role.device),
    )
    return [
        *[dev.ProcessStarted(pid=100 + i, name="chromium", allowed=True, source="netlink", **pc) for i in range(4)],
        dev.FileActivity(root="desktop", path="memo.txt", action="created", **pc),
        dev.SessionChanged(action="logon", session="2", os_uid=1000, **pc),
        dev.PrintJob(job_id=1, printer="desk-printer", state="completed", pages=2, **pc),
        *[
            dev.Heartbeat(
                agent_version="1", policy_version=1, outbox_depth=0, outbox_bytes=0, link_up=True, uptime_s=i, **pc
            )
            for i in range(3)
        ],
    ]


async def send_again_after_window(js, events) -> None:
    for event in events:
        await js.publish(event.subject, dump_event(event), headers={"Nats-Msg-Id": f"{event.event_id}.after-window"})


async def test_a_batch_sent_again_after_the_duplicate_window_counts_once_everywhere(
    settings, js, nc, pg_pool, tmp_path
):
    m = unique_municipality()
    week = simulate(m, WEEK_START, desks=2, days=1, visitors=18, seed=18)
    # the laptops write these events now: ids of today (the simulator stamps its ids at the simulated
    # instant, and a projection forgets applied ids older than its dedupe horizon by the id's own time)
    week.events = [e.model_copy(update={"event_id": new_id()}) for e in week.events]
    desks = sorted({res.desk for res, _ in week.served()})
    device = agent_batch(m)
    audit = AuditSettings(
        data_dir=tmp_path / "audit",
        municipality=m,
        schema_name=f"audit_{m}",
        municipalities=[m],
        checkpoint_every=100,
        checkpoint_seconds=0.5,
    )
    await audit_schema.migrate_pool(pg_pool, audit.schema_name)
    app_settings = settings.model_copy(update={"municipality": m, "data_dir": tmp_path})
    audit_app = create_audit_app(app_settings, audit)

    async with AsyncExitStack() as stack:
        rep_app, rep = await stack.enter_async_context(running_app(reporting_settings(settings)))
        await stack.enter_async_context(audit_app.router.lifespan_context(audit_app))
        hq = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=audit_app), base_url="http://audit", timeout=60)
        )
        manager = await headers(js, reporting_settings(settings), m)

        async def settle() -> None:
            await rep_app.state.reporting.caught_up()
            await audit_app.state.ingest.wait_idle()

        async def figures() -> dict:
            out = {}
            for desk in desks:
                r = await rep.get(
                    "/v1/reports/daily", params={"desk": desk, "date": WEEK_START.isoformat()}, headers=manager
                )
                assert r.status_code == 200, r.text
                out[desk] = queries.flatten(r.json())
            r = await hq.get("/v1/audit/device-activity", headers=manager)
            assert r.status_code == 200, r.text
            out["pcs"] = {pc["device_id"]: pc["counts"] for pc in r.json()["pcs"]}
            return out

        await bus.publish_many(js, week.events + device)
        await settle()
        before = await figures()
        for desk in desks:
            truth = week.desk_truth(desk, WEEK_START)
            assert truth["visitors"] > 0
            actual = before[desk]
            assert not {k for k in set(actual) | set(truth) if (truth.get(k) or 0) != (actual.get(k) or 0)}
        assert before["pcs"] == {
            "chuo-1-pc": {
                "process_started": 4,
                "file_activity": 1,
                "session_changed": 1,
                "print_job": 1,
                "heartbeat": 3,
            }
        }

        # the laptop's batch and half a desk day come again, as new messages on the streams
        again = device + week.events[: len(week.events) // 2]
        await send_again_after_window(js, again)
        await settle()
        assert await figures() == before

        # the audit log holds both copies (it vouches for the streams) and names each second one
        async with pg_pool.acquire() as conn:
            t = f'"{audit.schema_name}"'
            named = await conn.fetch(f"""SELECT l.event_id, f.event_id AS first_id, f.position < l.position AS earlier
                                         FROM {t}.duplicate d JOIN {t}.log l ON l.position = d.position
                                         JOIN {t}.log f ON f.position = d.first_position""")
            assert len(named) == len(again)
            assert all(r["event_id"] == r["first_id"] and r["earlier"] for r in named)
            assert {r["event_id"] for r in named} == {e.event_id for e in again}
            report = await audit_verify.verify_all(conn, nc, audit, grace_seconds=0)
        assert report.ok, report.lines()

        checks, text = await verify_async(
            nc, rep_app.state.pool, rep_app.state.reporting.cfg, m, WEEK_START, WEEK_START
        )
        assert sum(len(c.mismatches) for c in checks) == 0, text
        assert sum(c.checked for c in checks) > 0
