"""SEC-2: at a staff login the monitoring notice is shown and acknowledged, and both are recorded
(the `notice` command writes to the outbox; the running agent drains it)."""

from __future__ import annotations

from agent_harness import make_config, of_type, running_agent, wait_for
from typer.testing import CliRunner

from madoguchi_agent.cli import app
from madoguchi_agent.notice import NOTICE_SHA256


async def test_notice_shown_and_acknowledged_at_login(nats_server, nc, municipality, tmp_path):
    config = make_config(tmp_path, nats_server.url, municipality)
    path = tmp_path / "agent.json"
    path.write_text(config.model_dump_json())
    result = CliRunner().invoke(app, ["notice", "--config", str(path), "--staff-id", "S0012"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "監視" in result.output
    declined = CliRunner().invoke(app, ["notice", "--config", str(path), "--staff-id", "S0013"], input="n\n")
    assert declined.exit_code == 1

    async with running_agent(config):  # the agent drains what the login session wrote
        events = await wait_for(nc, municipality, lambda es: len(of_type(es, "device.monitoring_notice_shown")) == 2,
                                what="notice events")
    shown = of_type(events, "device.monitoring_notice_shown")
    acked = of_type(events, "device.monitoring_notice_acknowledged")
    assert [e.staff_id for e in shown] == ["S0012", "S0013"]
    assert [e.staff_id for e in acked] == ["S0012"]  # S0013 did not acknowledge
    assert acked[0].causation_id == shown[0].event_id and acked[0].notice_sha256 == NOTICE_SHA256
