"""`madoguchi dlq list / show / replay`: an operator sees a dead letter and why, never the personal
data that was refused, and can ask for a replay."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from madoguchi_shared import subjects
from madoguchi_shared import bus, reader
from madoguchi_shared.cli import app
from madoguchi_shared.projection import dead_letter
from tests.utils.servers import unique_municipality

PHONE = "090-1234-5678"


def test_dlq_list_show_and_replay_without_printing_personal_data(nats_server, monkeypatch):
    m = unique_municipality()
    consumer = f"cli{m}"
    payload = {
        "type": "calls.call_noted",
        "municipality": m,
        "call_id": "0192f0a4-0000-7000-8000-000000000001",
        "text": f"山田太郎さん {PHONE} に折り返し",
        "ticket_no": 2**62,
        "desk": "chuo-1",
        "minutes": 12,
    }

    async def setup():
        nc = await bus.connect(nats_server.url, name="dlq-test")
        await bus.ensure_streams(nc.jetstream())
        await dead_letter(
            nc,
            consumer,
            subjects.aggregate_subject("calls", m, "call", "x"),
            4711,
            json.dumps(payload, ensure_ascii=False).encode(),
            ValueError("text: personal data refused"),
        )
        await nc.drain()

    asyncio.run(setup())
    monkeypatch.setenv("MADOGUCHI_NATS_URL", nats_server.url)
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--consumer", consumer])
    assert listed.exit_code == 0, listed.output
    assert "4711" in listed.output and "personal data refused" in listed.output and "1 件" in listed.output

    shown = runner.invoke(app, ["dlq", "show", consumer, "4711"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert PHONE not in shown.output and "山田" not in shown.output and str(2**62) not in shown.output
    assert body["payload"]["text"].startswith("＜非表示＞") and body["payload"]["ticket_no"].startswith("＜非表示＞")
    assert body["payload"]["desk"] == "chuo-1" and body["payload"]["minutes"] == 12 and body["original_seq"] == 4711

    missing = runner.invoke(app, ["dlq", "show", consumer, "4712"])
    assert missing.exit_code == 1

    replay = runner.invoke(app, ["dlq", "replay", consumer, "4711"])
    assert replay.exit_code == 0, replay.output

    async def requests():
        nc = await bus.connect(nats_server.url, name="dlq-test")
        try:
            return [
                json.loads(x.data)
                async for x in reader.read_all(nc, subjects.dlq_replay_subject(consumer), stream="MG_DLQ")
            ]
        finally:
            await nc.drain()

    assert asyncio.run(requests()) == [{"seq": 4711}]
