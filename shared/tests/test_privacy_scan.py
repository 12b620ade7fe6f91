"""`madoguchi privacy scan`: every stream, table and log file under a data folder, through the same
detector as the free-text fields; counts by kind and place, never a value (issue 14).

Own nats-server and PostgreSQL under one data folder (as `madoguchi run` lays them out), so the
count is of this data alone and not of what other tests put on the session servers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import asyncpg
import pytest

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.runtime import NatsServer, PostgresServer

PHONE = "〇九〇－一二三四－五六七八"
MY_NUMBER = "１２３４ ５６７８\n９０１８"  # 123456789018: a valid My Number
EMAIL = "taro アットマーク example ドット jp"
CLEAN = "令和3年4月5日 10:30 受付番号12、5,000円、〒060-8611、暗証番号を3回間違えた"


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    data = tmp_path_factory.mktemp("privacy-data")
    nats = NatsServer(data / "nats").start()
    pg = PostgresServer(data / "postgres").start()
    yield data, nats, pg
    nats.stop()
    pg.stop()


async def _scan(data, nats, pg) -> tuple[int, str]:
    env = dict(os.environ, MADOGUCHI_DATA_DIR=str(data), MADOGUCHI_NATS_URL=nats.url, MADOGUCHI_PG_DSN=pg.dsn)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from madoguchi_shared.cli import main; main()",
        "privacy",
        "scan",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode() + err.decode()


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if f" {name} " in line)


async def test_scan_counts_by_kind_and_place_never_values(data_folder):
    data, nats, pg = data_folder
    nc = await bus.connect(nats.url, name="privacy-test")
    js = nc.jetstream()
    await bus.ensure_streams(js)
    event_id = str(uuid.uuid4())
    clean_event = {
        "event_id": event_id,
        "type": "desk.note",
        "note": CLEAN,
        "hash": "ab" * 32,
        "occurred_at": "2026-12-05T09:10:20+09:00",
    }
    await js.publish(subjects.aggregate_subject("desk", "900001", "visit", "1"), json.dumps(clean_event).encode())
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute(
        "CREATE SCHEMA demo; CREATE TABLE demo.note (id uuid PRIMARY KEY, text text, extra jsonb, n int);"
        "CREATE TABLE demo.raw (n int, data bytea, digest bytea)"  # as the audit log keeps a message's bytes
    )
    digest = bytes.fromhex("31" * 32)  # 32 bytes of "1": a digest is not read
    await conn.execute("INSERT INTO demo.raw VALUES (1, $1, $2)", json.dumps({"a": CLEAN}).encode() * 3, digest)
    await conn.execute("INSERT INTO demo.note VALUES ($1, $2, $3, 1)", uuid.uuid4(), CLEAN, json.dumps({"a": CLEAN}))
    (data / "logs").mkdir()
    (data / "logs" / "desk.log").write_text(
        json.dumps({"event": "desk.note_added", "id": event_id}) + "\n" + CLEAN + "\n", encoding="utf-8"
    )

    code, out = await _scan(data, nats, pg)
    assert code == 0, out
    assert "検出 0 件" in out and "MG_DESK" in out and "demo.note" in out and "logs/desk.log" in out
    assert "nats/nats-server.log" in out and "postgres/postgres.log" in out  # the servers' own logs too
    assert "1 メッセージ  検出 0" in _line(out, "MG_DESK")

    # what slipped through somewhere, in the hostile spellings of issue 14
    await js.publish(subjects.dlq_subject("reporting"), json.dumps({"summary": f"折返し {PHONE}"}).encode())
    await js.publish(
        subjects.aggregate_subject("desk", "900001", "visit", "2"),
        json.dumps({"note": f"番号 {MY_NUMBER}", "hash": "cd" * 32}).encode(),
    )
    await conn.execute(
        "INSERT INTO demo.note VALUES ($1, $2, $3, 2)",
        uuid.uuid4(),
        f"メール {EMAIL}",
        json.dumps({"a": [CLEAN, f"携帯 {PHONE}"]}),
    )
    raw = json.dumps({"note": f"番号 {MY_NUMBER}", "pad": "x" * 64}, ensure_ascii=False).encode()
    await conn.execute("INSERT INTO demo.raw VALUES (2, $1, $2)", raw, digest)
    with open(data / "logs" / "desk.log", "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": "oops", "detail": f"連絡先 {EMAIL}"}) + "\n")
    await conn.close()
    await nc.drain()

    code, out = await _scan(data, nats, pg)
    assert code == 1, out
    assert "検出 1（電話番号 1）" in _line(out, "MG_DLQ")
    assert "検出 1（個人番号 1）" in _line(out, "MG_DESK")
    assert "2 行  検出 2（電話番号 1、メールアドレス 1）" in _line(out, "demo.note")
    assert "検出 1（メールアドレス 1）" in _line(out, "logs/desk.log")
    assert "2 行  検出 1（個人番号 1）" in _line(out, "demo.raw")
    assert "検出 6 件（個人番号 2、12桁以上の数字 0、電話番号 2、メールアドレス 2、氏名 0、住所 0、生年月日 0）" in out
    for value in ("一二三四", "五六七八", "5678", "9018", "taro", "example", "0901234"):
        assert value not in out
