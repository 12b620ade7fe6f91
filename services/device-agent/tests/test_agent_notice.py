"""SEC-2: at a staff login the monitoring notice is shown and answered, and both are recorded
(the `notice` command writes to the outbox; the running agent drains it). The text follows the
policy in force; the staff id must exist; declining is recorded (HQ and the desk act on it)."""

from __future__ import annotations

import asyncio

from agent_harness import make_config, of_type, running_agent, wait_for, write_policy_cache
from typer.testing import CliRunner

from madoguchi_agent.cli import app
from madoguchi_agent.config import Monitors
from madoguchi_agent.notice import notice_for
from madoguchi_agent.policy import Policy
from madoguchi_shared import bus
from madoguchi_shared.events.admin import StaffAccountCreated
from madoguchi_shared.events.base import Role


async def test_notice_answers_are_recorded_for_known_staff_only(nats_server, nc, js, municipality, tmp_path):
    await bus.ensure_streams(js)
    for staff in ("S0012", "S0013"):
        await bus.append(js, StaffAccountCreated(municipality=municipality, staff_id=staff, roles=(Role.supporter,)))
    config = make_config(tmp_path, nats_server.url, municipality)
    path = tmp_path / "agent.json"  # the PC's config: every monitor on (the notice names them)
    on_pc = config.model_copy(update={"monitors": Monitors()})
    path.write_text(on_pc.model_dump_json())

    def answer(staff_id: str, reply: str):
        return CliRunner().invoke(app, ["notice", "--config", str(path), "--staff-id", staff_id], input=reply)

    accepted = await asyncio.to_thread(answer, "S0012", "y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "直ちに終了されます" in accepted.output  # the built-in policy enforces
    declined = await asyncio.to_thread(answer, "S0013", "n\n")
    assert declined.exit_code == 1 and "受付を開始できません" in declined.output
    unknown = await asyncio.to_thread(answer, "S9999", "y\n")
    assert unknown.exit_code == 2 and "登録されていません" in unknown.output
    hostile = await asyncio.to_thread(answer, "S0012; rm -rf /", "y\n")
    assert hostile.exit_code == 2

    async with running_agent(config):  # the agent drains what the login session wrote
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.monitoring_notice_shown")) == 2, what="notice events"
        )
    shown = of_type(events, "device.monitoring_notice_shown")
    acked = of_type(events, "device.monitoring_notice_acknowledged")
    refused = of_type(events, "device.monitoring_notice_declined")
    assert [e.staff_id for e in shown] == ["S0012", "S0013"]  # nothing for S9999
    assert all(e.staff_verified and e.policy_version == 0 for e in shown)
    assert [e.staff_id for e in acked] == ["S0012"] and [e.staff_id for e in refused] == ["S0013"]
    _, digest, _ = notice_for(on_pc)
    assert acked[0].causation_id == shown[0].event_id and acked[0].notice_sha256 == digest
    assert refused[0].causation_id == shown[1].event_id


def test_the_text_follows_the_policy(tmp_path):
    config = make_config(
        tmp_path, "nats://127.0.0.1:9", "011002", monitors={"processes": True, "usb": True, "files": True, "card": True}
    )
    enforcing, digest, version = notice_for(config)
    assert version == 0 and "直ちに終了されます" in enforcing and "スマートフォン" in enforcing
    assert "デスクトップ・ドキュメント・ダウンロードフォルダ" in enforcing and "隔離されます" in enforcing
    write_policy_cache(config, Policy(process_enforce=False, usb_block_not_allowed=False, quarantine=False), version=7)
    lenient, other, version = notice_for(config)
    assert version == 7 and other != digest
    assert "直ちに終了" not in lenient and "記録され、本部に通知されます" in lenient
    assert "スマートフォン" not in lenient and "隔離" not in lenient
    only_card = make_config(tmp_path, "nats://127.0.0.1:9", "011002", monitors={"card": True})
    assert "アプリケーション" not in notice_for(only_card)[0]  # no promise of what is not monitored
