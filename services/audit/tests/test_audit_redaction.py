"""An erased free text (issue 14, crypto-shredding) is reported by `audit verify` as redacted, not
tampered: the log keeps the event with its ciphertext, the chain and the reconciliation with the
streams of record stay green, and the redaction record is counted."""

from __future__ import annotations

import asyncio
import sys

from audit_harness import cli_env, publish, running_ingest, sample_events

from madoguchi_shared import auth
from madoguchi_shared.events.base import Role
from madoguchi_shared.events.desk import EscalationRaised
from madoguchi_shared.privacy import approve_erasure, request_erasure
from madoguchi_shared.sealed import ERASED_JA, TextVault, ref_of


async def _cli(*args: str, env: dict) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "madoguchi_audit.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode() + err.decode()


async def test_verify_reports_an_erased_text_as_redacted_not_tampered(nc, js, pg_pool, settings, migrated):
    audit = migrated
    m = audit.municipality
    await auth.add_staff(js, municipality=m, staff_id="S0901", roles=[Role.manager], password="manager-pass-0901")
    await auth.add_staff(js, municipality=m, staff_id="A0901", roles=[Role.auditor], password="auditor-pass-0901")
    vault = TextVault(js)
    event = await vault.seal_event(
        EscalationRaised(
            municipality=m,
            ward="chuo",
            desk="chuo-1",
            deskday_id="chuo-1_2021-03-29",
            escalation_no=1,
            category="complaint",
            summary="説明が分かりにくいとのご意見、資料を渡して説明した。",
        )
    )
    await publish(js, sample_events(m, 40) + [event])
    ref = ref_of(event.summary)
    await request_erasure(nc, m, ref, "S0901", "manager-pass-0901", "本人からの削除の申出")
    await approve_erasure(nc, m, ref, "A0901", "auditor-pass-0901")
    assert await vault.reveal(m, event.summary) == ERASED_JA

    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        kept = await conn.fetchval(f'SELECT data FROM "{audit.schema_name}".log WHERE event_id = $1', event.event_id)
    assert event.summary.encode() in bytes(kept)  # the record keeps its ciphertext: nothing cut, nothing edited

    common = [
        "--dsn",
        settings.resolved_pg_dsn(),
        "--data-dir",
        str(audit.data_dir),
        "--schema",
        audit.schema_name,
        "--nats",
        settings.nats_url,
    ]
    code, out = await _cli("verify", *common, env=cli_env(audit))
    assert code == 0, out
    assert out.startswith("OK  log ")
    assert "redacted: 1 free text(s) erased by key destruction" in out and "redacted, not tampered" in out
