"""Free text that can be erased (issue 14, crypto-shredding), end to end on the real bus and database:
a sealed escalation summary in the stream of record, the daily report showing it, a manager's request
and an auditor's approval, then 「削除済み」 in the report (no projection rewritten), the stream's
message unchanged, the key gone, and a redaction record that names who, when and why — no content."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from nats.js.errors import NotFoundError

from tests.utils.servers import as_service
from madoguchi_shared import auth, bus, sealed
from madoguchi_shared.events import dump_event, parse_event
from madoguchi_shared.events.base import Role
from madoguchi_shared.events.desk import EscalationRaised, deskday_id
from madoguchi_shared.privacy import ErasureRefused, approve_erasure, request_erasure
from madoguchi_shared.sealed import BUCKET, ERASED_JA, TextVault, is_sealed, ref_of

from madoguchi_reporting.main import create_app

SUMMARY = "窓口で長くお待たせしたとのご意見。手順を説明し、おわびした。"
DAY = dt.date(2021, 3, 29)
MANAGER, AUDITOR, OTHER_MANAGER = "S0801", "A0801", "S0802"
PASSWORDS = {MANAGER: "manager-pass-0801", AUDITOR: "auditor-pass-0801", OTHER_MANAGER: "manager-pass-0802"}


async def _daily(client, headers) -> dict:
    r = await client.get("/v1/reports/daily", params={"desk": "chuo-1", "date": DAY.isoformat()}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _escalation_text(client, headers, want: str) -> str:
    for _ in range(100):
        report = await _daily(client, headers)
        texts = [e["text"] for e in report.get("escalations", [])]
        if texts and texts[0] == want:
            return texts[0]
        await asyncio.sleep(0.1)
    return texts[0] if texts else None


async def test_erase_request_approve_redacts_everywhere_and_keeps_the_log(settings, nc, js, municipality):
    m = municipality
    for staff_id, role in ((MANAGER, Role.manager), (AUDITOR, Role.auditor), (OTHER_MANAGER, Role.manager)):
        await auth.add_staff(js, municipality=m, staff_id=staff_id, roles=[role], password=PASSWORDS[staff_id])

    # the desk service seals the summary before it is published (TextVault.seal_event)
    plain = EscalationRaised(
        municipality=m,
        ward="chuo",
        desk="chuo-1",
        deskday_id=deskday_id("chuo-1", DAY),
        escalation_no=1,
        category="complaint",
        summary=SUMMARY,
        occurred_at=dt.datetime(2021, 3, 29, 1, 0, tzinfo=dt.UTC),
    )
    vault = TextVault(js)
    event = await vault.seal_event(plain)
    assert is_sealed(event.summary) and SUMMARY not in dump_event(event).decode()
    ref = ref_of(event.summary)
    ack = await bus.append(js, event)
    stored_before = await js.get_msg("MG_DESK", ack.seq)
    assert parse_event(stored_before.data).summary == event.summary  # a sealed text is a valid event field
    # a plain text (an event written before sealing) stays readable as it is: upcast on read
    assert await vault.reveal(m, SUMMARY) == SUMMARY

    s = as_service(settings, "reporting").model_copy(
        update={
            "extra": {
                **settings.extra,
                "deadline_check_seconds": "0",
                "contract_start": "2021-03-15",
                "contract_end": "2021-09-30",
            }
        }
    )
    app = create_app(s)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as client:
            token = await auth.token_for(js, s, staff_id="T-pii-manager", roles=[Role.manager], municipality=m)
            h = {"Authorization": f"Bearer {token}"}
            assert await _escalation_text(client, h, SUMMARY) == SUMMARY  # decrypted when the report is built

            # two roles: the auditor cannot request, the manager cannot approve, nothing before a request
            with pytest.raises(ErasureRefused, match="申請がありません"):
                await approve_erasure(nc, m, ref, AUDITOR, PASSWORDS[AUDITOR])
            with pytest.raises(ErasureRefused, match="管理者"):
                await request_erasure(nc, m, ref, AUDITOR, PASSWORDS[AUDITOR], "本人からの申出")
            with pytest.raises(ErasureRefused, match="パスワード"):
                await request_erasure(nc, m, ref, MANAGER, "wrong-password", "本人からの申出")
            requested = await request_erasure(nc, m, ref, MANAGER, PASSWORDS[MANAGER], "本人からの削除の申出（窓口）")
            with pytest.raises(ErasureRefused, match="すでに申請"):
                await request_erasure(nc, m, ref, OTHER_MANAGER, PASSWORDS[OTHER_MANAGER], "重複")
            with pytest.raises(ErasureRefused, match="監査担当"):
                await approve_erasure(nc, m, ref, OTHER_MANAGER, PASSWORDS[OTHER_MANAGER])
            assert await _escalation_text(client, h, SUMMARY) == SUMMARY  # a request alone erases nothing

            key_seq = (await js.get_last_msg(BUCKET, f"mg_textkey.{m}.{ref}")).seq
            erased = await approve_erasure(nc, m, ref, AUDITOR, PASSWORDS[AUDITOR])
            assert await _escalation_text(client, h, ERASED_JA) == ERASED_JA  # no projection was rewritten
            with pytest.raises(ErasureRefused, match="すでに消去"):
                await approve_erasure(nc, m, ref, AUDITOR, PASSWORDS[AUDITOR])

    # the stream of record keeps the very same message (its hash, the audit chain's proof, unchanged)
    stored_after = await js.get_msg("MG_DESK", ack.seq)
    assert stored_after.data == stored_before.data
    # the key is gone: not in the bucket, and its stored message erased
    assert not await vault.holds(m, ref)
    assert await vault.reveal(m, event.summary) == ERASED_JA
    tomb = await js.get_last_msg(BUCKET, f"mg_textkey.{m}.{ref}")
    assert tomb.data in (b"", None) and tomb.seq > 0  # the tombstone says "erased", not "unknown"
    with pytest.raises(NotFoundError):  # the key's own message: deleted (JetStream's secure erase)
        await js.get_msg(BUCKET, key_seq)
    # the redaction record: who asked, who approved, when, why — no content
    records = await bus.load(nc, erased.subject)
    assert [r.event.type for r in records] == ["admin.text_erasure_requested", "admin.text_erased"]
    last = records[-1].event
    assert last.requested_by == MANAGER and last.actor.id == AUDITOR and last.actor.role == Role.auditor
    assert last.reason == "本人からの削除の申出（窓口）" and last.requested_at == requested.occurred_at
    raw = dump_event(last).decode()
    assert SUMMARY not in raw and "sealed:v1" not in raw
    # a process without a vault never shows ciphertext
    assert event.summary != sealed.SEALED_JA


async def test_sealed_text_field_rules(js, municipality):
    vault = TextVault(js)
    text = "手続きの流れが分かりにくいとのご意見"
    envelope = await vault.seal(municipality, text)
    assert await vault.reveal(municipality, envelope) == text
    # bound to its municipality: the same ciphertext does not open under another one's name
    other = "9" + municipality[1:] if municipality[0] != "9" else "8" + municipality[1:]
    assert await vault.reveal(other, envelope) == ERASED_JA
    # a copy sealed again opens layer by layer; the inner key's erasure reaches every copy
    twice = await vault.seal(municipality, envelope)
    assert await vault.reveal(municipality, twice) == text
    assert await vault.erase(municipality, ref_of(envelope))
    assert await vault.reveal(municipality, twice) == ERASED_JA
    assert not await vault.erase(municipality, ref_of(envelope))  # already gone
    # the event field still refuses personal data in plain text, and a sealed text is not screened
    with pytest.raises(ValueError):
        EscalationRaised(
            municipality=municipality,
            ward="chuo",
            desk="chuo-1",
            deskday_id="chuo-1_2021-03-29",
            escalation_no=1,
            category="other",
            summary="連絡先は〇九〇の一二三四の五六七八",
        )
    ok = EscalationRaised(
        municipality=municipality,
        ward="chuo",
        desk="chuo-1",
        deskday_id="chuo-1_2021-03-29",
        escalation_no=1,
        category="other",
        summary=envelope,
    )
    assert ok.summary == envelope


async def test_every_free_text_of_a_call_is_sealed_nested_and_optional_ones_too(js, municipality):
    from uuid import uuid4

    from madoguchi_shared.events.calls import CallClosed, CallOpinion

    vault = TextVault(js)
    closed = CallClosed(
        municipality=municipality,
        call_id=uuid4(),
        categories=("card",),
        resolution="answered_on_spot",
        duration_seconds=300,
        notes="再発行の手順を説明した",
        opinions=(CallOpinion(kind="opinion", text="窓口の場所が分かりにくい"),),
    )
    sealed_event = await vault.seal_event(closed)
    raw = dump_event(sealed_event).decode()
    assert "再発行" not in raw and "窓口の場所" not in raw and raw.count('"sealed:v1:') == 2
    assert await vault.reveal(municipality, sealed_event.notes) == "再発行の手順を説明した"
    assert await vault.reveal(municipality, sealed_event.opinions[0].text) == "窓口の場所が分かりにくい"
    assert parse_event(raw) == sealed_event
    # sealing is idempotent (a retry of the same event seals nothing twice)
    assert await vault.seal_event(sealed_event) == sealed_event


async def _privacy_cli(settings, *args: str, password: str) -> tuple[int, str]:
    import os
    import sys

    env = dict(os.environ, MADOGUCHI_NATS_URL=settings.nats_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from madoguchi_shared.cli import main; main()",
        "privacy",
        *args,
        "--password-stdin",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(password.encode() + b"\n"), 120)
    return proc.returncode, out.decode() + err.decode()


async def test_the_two_commands_as_people_run_them(settings, js, municipality):
    m = municipality
    await auth.add_staff(js, municipality=m, staff_id="S0811", roles=[Role.manager], password="manager-pass-0811")
    await auth.add_staff(js, municipality=m, staff_id="A0811", roles=[Role.auditor], password="auditor-pass-0811")
    vault = TextVault(js)
    envelope = await vault.seal(m, "説明に時間がかかったとのご意見")
    ref = str(ref_of(envelope))

    code, out = await _privacy_cli(
        settings, "approve", ref, "--staff", "A0811", "--municipality", m, password="auditor-pass-0811"
    )
    assert code == 1 and "申請がありません" in out
    code, out = await _privacy_cli(
        settings,
        "erase",
        ref,
        "--staff",
        "S0811",
        "--reason",
        "本人からの申出",
        "--municipality",
        m,
        password="manager-pass-0811",
    )
    assert code == 0 and "消去を申請しました" in out, out
    assert await vault.reveal(m, envelope) == "説明に時間がかかったとのご意見"
    code, out = await _privacy_cli(
        settings, "approve", ref, "--staff", "A0811", "--municipality", m, password="auditor-pass-0811"
    )
    assert code == 0 and "消去しました" in out and "申請 S0811、承認 A0811" in out, out
    assert await vault.reveal(m, envelope) == ERASED_JA
    assert "説明に時間" not in out
