"""Policy from the bus (JetStream key-value `mg_policy`, key <municipality>.<role>), cached locally:
a change while running is applied and recorded; a restart without a link enforces the cache."""

from __future__ import annotations

import asyncio
import json

from agent_harness import make_config, of_type, running_agent, wait_for

from madoguchi_agent.agent import Agent
from madoguchi_agent.policy import Policy, load_cache, publish
from madoguchi_shared import subjects
from madoguchi_shared.events import parse_event


async def test_policy_from_the_bus_is_applied_cached_and_used_offline(nats_server, nc, js, municipality, tmp_path):
    config = make_config(tmp_path, nats_server.url, municipality)
    rev1 = await publish(js, "mg_policy", config.policy_key, Policy(heartbeat_s=0.5, card_left_s=120))
    async with running_agent(config) as agent:
        await wait_for(nc, municipality, lambda es: of_type(es, "device.policy_changed"), what="policy changed")
        assert agent.policy.card_left_s == 120
        rev2 = await publish(js, "mg_policy", config.policy_key, Policy(heartbeat_s=0.5, card_left_s=60))
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.policy_changed")) == 2, what="second policy change"
        )
        await wait_for(
            nc,
            municipality,
            lambda es: any(h.policy_version == rev2 for h in of_type(es, "device.heartbeat")),
            what="heartbeat with the new policy version",
        )
    applied = of_type(events, "device.policy_applied")[0]
    assert (applied.source, applied.policy_version) == ("default", 0)
    changes = of_type(events, "device.policy_changed")
    assert [(c.from_version, c.policy_version) for c in changes] == [(0, rev1), (rev1, rev2)]
    cached = load_cache(config.policy_cache_path)
    assert cached.version == rev2 and cached.policy.card_left_s == 60

    # no link at all (nothing listens there): the agent starts with the cached policy
    offline = config.model_copy(update={"nats_url": "nats://127.0.0.1:9"})
    agent = Agent(offline)
    task = asyncio.create_task(agent.run(install_signals=False))
    await asyncio.sleep(0.3)
    assert agent.policy.card_left_s == 60
    agent.request_stop()
    await task
    from madoguchi_agent.outbox import Outbox

    outbox = Outbox(config.outbox_path)
    queued = [parse_event(r.data) for r in outbox.peek(100)]
    outbox.close()
    started = [e for e in queued if e.type == "device.agent_started"][-1]
    applied = [e for e in queued if e.type == "device.policy_applied"][-1]
    assert started.previous_run == "clean"
    assert (applied.source, applied.policy_version) == ("cache", rev2)
    assert queued[-1].type == "device.agent_stopped"  # kept for the next link, not lost


async def test_heartbeat_carries_versions_and_outbox_depth(nats_server, nc, municipality, tmp_path):
    config = make_config(tmp_path, nats_server.url, municipality)
    async with running_agent(config):
        await wait_for(nc, municipality, lambda es: of_type(es, "device.heartbeat"), what="heartbeat")
    events = await wait_for(nc, municipality, lambda es: of_type(es, "device.agent_stopped"), what="stopped")
    hb = of_type(events, "device.heartbeat")[0]
    assert hb.agent_version and hb.policy_version == 0 and hb.outbox_depth >= 1 and hb.uptime_s >= 0
    assert [e.type for e in events][:2] == ["device.agent_started", "device.policy_applied"]
    assert events[-1].type == "device.agent_stopped" and events[-1].reason == "requested"


def test_the_built_in_policy_protects():
    p = Policy()
    assert p.process_enforce and p.usb_block_mass_storage and p.usb_block_not_allowed and p.quarantine
    assert [(f.label, f.path) for f in p.watched_folders] == [
        ("desktop", "~/Desktop"),
        ("documents", "~/Documents"),
        ("downloads", "~/Downloads"),
    ]
    assert "06" not in p.usb_allowed_classes and "ff" not in p.usb_allowed_classes  # MTP phones, vendor classes


def test_watched_folders_are_each_desk_users_own(tmp_path):
    """ "~/Desktop" is the Desktop of every desk user; a Japanese desktop's XDG names apply."""
    from madoguchi_agent.files import resolve_folders

    en, ja = tmp_path / "desk1", tmp_path / "desk2"
    (en / "Desktop").mkdir(parents=True)
    (ja / ".config").mkdir(parents=True)
    (ja / ".config" / "user-dirs.dirs").write_text(
        'XDG_DESKTOP_DIR="$HOME/デスクトップ"\nXDG_DOWNLOAD_DIR="$HOME/ダウンロード"\n', encoding="utf-8"
    )
    folders = resolve_folders(Policy(removable_globs=()), (str(en), str(ja)))
    assert {path: f.label for path, f in folders.items()} == {
        str(en / "Desktop"): "desktop",
        str(en / "Documents"): "documents",
        str(en / "Downloads"): "downloads",
        str(ja / "デスクトップ"): "desktop",
        str(ja / "Documents"): "documents",
        str(ja / "ダウンロード"): "downloads",
    }


async def test_policy_command_publishes_per_desk_with_an_admin_event(
    nats_server, nc, js, municipality, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from madoguchi_agent.policy_cli import app
    from madoguchi_shared import bus

    monkeypatch.setenv("MADOGUCHI_NATS_URL", nats_server.url)
    monkeypatch.setenv("MADOGUCHI_MUNICIPALITY", municipality)

    def run(*args):
        return CliRunner().invoke(app, list(args))

    shown = await asyncio.to_thread(run, "show", "--desk", "chuo-1")
    assert shown.exit_code == 0, shown.output
    assert "組み込みの既定値" in shown.output and '"process_enforce": true' in shown.output
    config = make_config(tmp_path, nats_server.url, municipality)
    async with running_agent(config) as agent:
        done = await asyncio.to_thread(
            run,
            "set",
            "--desk",
            "chuo-1",
            "--by",
            "S0001",
            "--set",
            "card_left_s=90",
            "--set",
            'usb_allowed_devices=["054c:06c3"]',
        )
        assert done.exit_code == 0, done.output
        await wait_for(nc, municipality, lambda es: of_type(es, "device.policy_changed"), what="policy applied")
        assert agent.policy.card_left_s == 90 and agent.policy.usb_allowed_devices == ("054c:06c3",)
        assert agent.policy.process_enforce  # the rest kept from the policy in force (the default)
        # hostile input: refused with a reason, nothing stored
        for bad in (["--set", "card_left_s=-5"], ["--set", "no_such=1"], ["--set", 'allow=[{"name": 3}]']):
            refused = await asyncio.to_thread(run, "set", "--desk", "chuo-1", "--by", "S0001", *bad)
            assert refused.exit_code == 2, refused.output
        other = await asyncio.to_thread(run, "show", "--desk", "chuo-2", "--json")
        assert json.loads(other.output)["card_left_s"] == 600  # another desk keeps the default
        mine = await asyncio.to_thread(run, "show", "--desk", "chuo-1")
        assert "窓口「chuo-1」個別のポリシー" in mine.output and '"card_left_s": 90' in mine.output
    changes = [
        s.event
        for s in await bus.load(
            nc, subjects.aggregate_subject("admin", municipality, "config", "agent_policy-desk-chuo-1")
        )
    ]
    assert len(changes) == 1
    change = changes[0]
    assert change.actor.id == "S0001" and change.actor.role.value == "administrator" and change.desk == "chuo-1"
    assert change.revision == agent.loaded.version and change.sha256 == agent.loaded.sha256


async def test_a_connection_failure_is_a_warning_with_its_reason_and_a_gap_for_hq(tmp_path, capsys):
    """No link (here: nothing listens): logged at WARNING with the reason at every attempt, and
    recorded as a monitoring gap (monitor link) that HQ shows as "agent cannot connect" once it
    arrives; the agent keeps working offline meanwhile."""
    from madoguchi_agent.outbox import Outbox
    from madoguchi_shared.logging import configure

    configure("INFO", json_logs=True)
    config = make_config(tmp_path, "nats://127.0.0.1:9", "011002")
    agent = Agent(config)
    task = asyncio.create_task(agent.run(install_signals=False))
    for _ in range(100):
        if agent._connect_failures >= 2:
            break
        await asyncio.sleep(0.05)
    agent.request_stop()
    await task
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    with capsys.disabled():
        configure("INFO", json_logs=True)  # the logger back on the real stderr
    failures = [entry for entry in logged if entry.get("event") == "agent.connect_failed"]
    assert failures and all(entry["level"] == "warning" for entry in failures)
    assert "ConnectionRefused" in failures[0]["reason"] or "ECONNREFUSED" in failures[0]["reason"]
    outbox = Outbox(config.outbox_path)
    queued = [parse_event(r.data) for r in outbox.peek(100)]
    outbox.close()
    gaps = [e for e in queued if e.type == "device.monitoring_gap"]
    assert [(g.monitor, g.reason) for g in gaps] == [("link", "connect_failed")] and gaps[0].detail
