"""The audit service over HTTP (a real uvicorn server, real NATS and PostgreSQL): auditors' queries
with hashes and the covering checkpoint, exports, every query recorded, verification, and the HQ
alert flow with the live SSE feed."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import socket
import zipfile
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from audit_harness import migrator_pool, make_audit_settings, publish, sample_events

from madoguchi_shared.auth import Role, token_for
from madoguchi_shared.events import Actor
from madoguchi_shared.events import device as dev

from madoguchi_audit import query, schema
from madoguchi_audit.main import create_app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app):
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def _auth(js, settings, municipality, staff: str, role: Role, wards=()) -> dict:
    token = await token_for(js, settings, staff_id=staff, roles=[role], wards=list(wards), municipality=municipality)
    return {"Authorization": f"Bearer {token}"}


async def _until(fn, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def _usb(municipality: str, blocked: bool) -> dev.UsbViolation:
    return dev.UsbViolation(
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        device_id="chuo-1-pc",
        port="1-1",
        vendor_id="0781",
        product_id="5581",
        device_class="00",
        interface_classes=("08",),
        kind="mass_storage",
        block_attempted=True,
        blocked=blocked,
        actor=Actor(id="chuo-1-pc", role=Role.device),
    )


@pytest.fixture
def app_settings(settings, municipality, tmp_path):
    import audit_harness

    # The service logs in as its own role (mg_audit), as under `madoguchi run`.
    return settings.model_copy(
        update={"municipality": municipality, "data_dir": tmp_path, "pg_dsn": audit_harness.SERVICE_DSN}
    )


async def test_auditors_query_export_and_verify_and_every_query_is_recorded(
    app_settings, municipality, js, tmp_path, pg_pool, monkeypatch
):
    # Exports stream in parts (100, then 2,000 records): small parts here, so these exports take several.
    monkeypatch.setattr(query, "FIRST_PART", 3)
    monkeypatch.setattr(query, "PART", 4)
    audit = make_audit_settings(app_settings, municipality, tmp_path)
    await schema.migrate_pool(migrator_pool(), audit.schema_name)  # the owner migrates; the service only uses it
    app = create_app(app_settings, audit)
    events = sample_events(municipality, 80, start=datetime.now(UTC) - timedelta(hours=2))
    await publish(js, events)
    auditor = await _auth(js, app_settings, municipality, "A0001", Role.auditor)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        await app.state.ingest.wait_idle()
        await asyncio.sleep(0.8)  # a timed checkpoint covers the tail
        await app.state.ingest.wait_idle()

        denied = await client.get(
            "/v1/audit/records", headers=await _auth(js, app_settings, municipality, "S1", Role.supporter)
        )
        assert denied.status_code == 403 and denied.headers["content-type"].startswith("application/problem+json")

        page = (await client.get("/v1/audit/records", params={"ward": "chuo", "limit": 5}, headers=auditor)).json()
        assert len(page["records"]) == 5 and page["next_after"] == page["records"][-1]["position"]
        for rec in page["records"]:
            assert rec["ward"] == "chuo"
            digest = hashlib.sha256(bytes.fromhex(rec["prev_hash"]) + rec["header"].encode() + rec["data"].encode())
            assert digest.hexdigest() == rec["hash"]  # checkable by the auditor alone
        assert page["checkpoint"]["position"] >= page["records"][-1]["position"]
        following = (
            await client.get("/v1/audit/records", params={"ward": "chuo", "after": page["next_after"]}, headers=auditor)
        ).json()
        assert following["records"][0]["position"] > page["next_after"]

        denial = next(e for e in events if e.type == "admin.access_denied")
        by_corr = (
            await client.get(
                "/v1/audit/records", params={"correlation_id": str(denial.correlation_id)}, headers=auditor
            )
        ).json()
        assert [r["event_id"] for r in by_corr["records"]] == [str(denial.event_id)]
        by_type = (
            await client.get(
                "/v1/audit/records", params={"event_type": "device.", "actor": "chuo-1-pc"}, headers=auditor
            )
        ).json()
        assert by_type["records"] and {r["type"] for r in by_type["records"]} == {"device.heartbeat"}
        # Newest first with the total; routine heartbeats left out when asked.
        # (one ward: the auditor's own queries, logged as they go, have none)
        every = (await client.get("/v1/audit/records", params={"limit": 500, "ward": "chuo"}, headers=auditor)).json()
        newest = (
            await client.get(
                "/v1/audit/records", params={"newest_first": "true", "limit": 5, "ward": "chuo"}, headers=auditor
            )
        ).json()
        assert newest["total"] == len(every["records"])
        assert [r["position"] for r in newest["records"]] == [r["position"] for r in every["records"]][::-1][:5]
        older = (
            await client.get(
                "/v1/audit/records",
                params={"newest_first": "true", "limit": 5, "ward": "chuo", "before": newest["next_before"]},
                headers=auditor,
            )
        ).json()
        chuo = [r["position"] for r in every["records"]][::-1]
        assert [r["position"] for r in older["records"]] == chuo[5:10]
        quiet = (
            await client.get(
                "/v1/audit/records", params={"hide_routine": "true", "limit": 500, "ward": "chuo"}, headers=auditor
            )
        ).json()
        beats = sum(1 for r in every["records"] if r["type"] == "device.heartbeat")
        assert beats and quiet["total"] == every["total"] - beats
        assert all(r["type"] != "device.heartbeat" for r in quiet["records"])
        window = {"time_from": events[10].occurred_at.isoformat(), "time_to": events[20].occurred_at.isoformat()}
        timed = (await client.get("/v1/audit/records", params=window, headers=auditor)).json()
        assert len(timed["records"]) == 10
        bad = await client.get("/v1/audit/records", params={"limit": 5000}, headers=auditor)
        assert bad.status_code == 422

        jsonl = await client.get("/v1/audit/export", params={"format": "jsonl", "ward": "kita"}, headers=auditor)
        lines = [json.loads(line) for line in jsonl.text.splitlines()]
        assert lines[0]["kind"] == "export" and lines[-1]["kind"] == "checkpoint"
        records = [x for x in lines if x["kind"] == "record"]
        assert len(records) > 7 and all(r["ward"] == "kita" for r in records)  # three parts at least
        assert lines[-1]["checkpoint"]["position"] >= records[-1]["position"]
        assert lines[-2] == {"kind": "summary", "count": len(records), "query_ids": lines[-2]["query_ids"]}
        assert lines[-2]["query_ids"][0] == lines[0]["query_id"] and len(lines[-2]["query_ids"]) >= 3
        zipped = await client.get("/v1/audit/export", params={"format": "csv", "limit": 30}, headers=auditor)
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
            assert {"records.csv", "checkpoint.json", "public_keys.json", "export.json"} <= set(zf.namelist())
            rows = list(csv.reader(io.StringIO(zf.read("records.csv").decode("utf-8-sig"), newline="")))
            assert len(rows) == 31 and rows[0][:2] == ["position", "stream"]  # the limit, in parts of 3, 4, 4 ...
            zip_meta = json.loads(zf.read("export.json"))
            assert zip_meta["count"] == 30 and len(zip_meta["query_ids"]) == 1 + 7

        verified = (await client.post("/v1/audit/verify", headers=auditor)).json()
        assert verified["ok"] and verified["records"] >= 80 and verified["checkpoints_checked"] >= 1

        # who looked at what: every query above is itself in the log
        await app.state.ingest.wait_idle()
        looked = (
            await client.get(
                "/v1/audit/records", params={"event_type": "audit.query_performed", "limit": 100}, headers=auditor
            )
        ).json()["records"]
        exports = [r["event"] for r in looked if r["event"]["endpoint"] == "export"]
        # every query once (the 403 and the 422 read nothing), an export once per part, recorded before it was sent
        assert len(looked) == 9 + len(exports) and all(r["actor_id"] == "A0001" for r in looked)
        assert {e["export_format"] for e in exports} == {"csv", "jsonl"}
        kita = [e for e in exports if e["export_format"] == "jsonl"]
        assert [e["query_id"] for e in kita] == lines[-2]["query_ids"] and all(
            e["filters"]["ward"] == "kita" for e in kita
        )
        sent = [r["position"] for r in records]
        assert [e["result_count"] for e in kita] == [3] + [4] * (len(kita) - 2) + [len(sent) - 3 - 4 * (len(kita) - 2)]
        at = 0
        for e in kita:  # each part's record names exactly the positions it sent
            assert (e["first_position"], e["last_position"]) == (sent[at], sent[at + e["result_count"] - 1])
            at += e["result_count"]
        csv_parts = [e for e in exports if e["export_format"] == "csv"]
        assert [e["query_id"] for e in csv_parts] == zip_meta["query_ids"] and sum(
            e["result_count"] for e in csv_parts
        ) == 30
        runs = (
            await client.get("/v1/audit/records", params={"event_type": "audit.verification_run"}, headers=auditor)
        ).json()["records"]
        assert runs and runs[0]["event"]["result"] == "ok"


async def test_hq_sees_alerts_live_acknowledges_them_and_a_second_ack_conflicts(
    app_settings, municipality, js, tmp_path, pg_pool
):
    audit = make_audit_settings(app_settings, municipality, tmp_path)
    await schema.migrate_pool(migrator_pool(), audit.schema_name)  # the owner migrates; the service only uses it
    app = create_app(app_settings, audit)
    manager = await _auth(js, app_settings, municipality, "M0001", Role.manager)
    await publish(js, [_usb(municipality, blocked=False)])
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def open_alerts():
            return (await client.get("/v1/alerts", headers=manager)).json()["alerts"]

        alerts = await _until(open_alerts)
        assert alerts[0]["rule"] == "usb_violation" and alerts[0]["severity"] == "urgent"
        alert_id = alerts[0]["alert_id"]

        seen: list[tuple[str, dict]] = []

        async def listen():
            async with client.stream("GET", "/v1/alerts/stream", headers=manager) as response:
                assert response.status_code == 200
                event = None
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        seen.append((event, json.loads(line.split(":", 1)[1])))
                        if event == "alert_acknowledged":
                            return

        listener = asyncio.create_task(listen())
        await _until(lambda: asyncio.sleep(0, result=bool(seen)))
        assert seen[0][0] == "alert_open" and seen[0][1]["alert_id"] == alert_id
        await publish(js, [_usb(municipality, blocked=True).model_copy(update={"port": "2-1"})])
        await _until(lambda: asyncio.sleep(0, result=any(e == "alert_raised" for e, _ in seen)))

        supporter = await _auth(js, app_settings, municipality, "S0001", Role.supporter, wards=["chuo"])
        assert (await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=supporter)).status_code == 403
        ok = await client.post(
            f"/v1/alerts/{alert_id}/acknowledge", json={"note": "現地の支援員に確認を依頼"}, headers=manager
        )
        assert ok.status_code == 200, ok.text
        again = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=manager)
        assert again.status_code == 409 and again.json()["title"]
        note_with_phone = await client.post(
            f"/v1/alerts/{alert_id}/close", json={"note": "090-1234-5678 に連絡"}, headers=manager
        )
        assert note_with_phone.status_code == 422
        assert (await client.post("/v1/alerts/no-such-alert/acknowledge", headers=manager)).status_code == 404
        await asyncio.wait_for(listener, 20)
        assert seen[-1][1]["acknowledged_by"] == "M0001"

        async def acknowledged():
            rows = (await client.get("/v1/alerts", params={"status": "acknowledged"}, headers=manager)).json()["alerts"]
            return [r for r in rows if r["alert_id"] == alert_id]

        assert (await _until(acknowledged))[0]["acknowledged_by"] == "M0001"


async def test_readyz_names_a_halted_writer(app_settings, municipality, js, tmp_path):
    """The writer halted (here: a signing key replaced on disk) is a readiness detail, never "ready":
    the auditors' pages still serve (200, "degraded") and /readyz says why the log stopped."""
    from madoguchi_audit import checkpoints

    audit = make_audit_settings(app_settings, municipality, tmp_path)
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(municipality, 20))
    app = create_app(app_settings, audit)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        await app.state.ingest.wait_idle()
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["writer"] == {"log": {"status": "ok"}}, ready

    audit.resolved_signing_key_file.unlink()
    checkpoints.generate_key(audit.resolved_signing_key_file)  # an intruder's key: the writer refuses it
    app = create_app(app_settings, audit)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def halted():
            body = (await client.get("/readyz")).json()
            return body if body["writer"]["log"]["status"] == "halted" else None

        body = await _until(halted)
        assert body["status"] == "degraded" and body["writer"]["log"]["reason"].startswith("untrusted_key"), body
