"""The offline outbox: written before sent, deleted after the ack, resends deduplicated, size alarms."""

from __future__ import annotations

from agent_harness import agent_subject, make_config

from madoguchi_agent.agent import Agent
import asyncio

from madoguchi_agent.outbox import Outbox, _acked_as_they_come, drain_once
from madoguchi_shared.events import device as ev

ENVELOPE = dict(ward="chuo", desk="chuo-1", device_id="chuo-1-pc")


def _load_events(municipality: str, n: int, run_id: str = "unit") -> list[ev.SyntheticLoad]:
    return [ev.SyntheticLoad(municipality=municipality, run_id=run_id, seq=i, **ENVELOPE) for i in range(n)]


def test_journal_counts_rows_and_ignores_a_repeated_event(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    events = _load_events("900000", 5)
    assert outbox.put_many(events) == 5
    assert outbox.put_many(events[:2]) == 0  # the same event ids: nothing new
    depth, size = outbox.depth()
    assert depth == 5 and size == sum(len(r.data) for r in outbox.peek(10))
    rows = outbox.peek(3)
    outbox.delete(rows)
    outbox.delete(rows[:1] + outbox.peek(1))  # one of them was gone already: the counts are redone
    assert outbox.depth() == (1, len(outbox.peek(1)[0].data))
    assert outbox.put_many(events[4:] + events[3:4]) == 1  # event 4 still waits; event 3 comes back
    assert [r.event_id for r in outbox.peek(10)] == [str(events[4].event_id), str(events[3].event_id)]
    assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # a second process (the notice command) sees the same counts
    other = Outbox(tmp_path / "outbox.db")
    assert other.depth()[0] == 2


async def test_drain_deletes_after_ack_and_a_resend_is_deduplicated(nc, js, municipality, tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    events = _load_events(municipality, 2500)
    outbox.put_many(events)
    assert await drain_once(js, outbox, batch=2000) == (2000, 0)
    assert await drain_once(js, outbox, batch=2000) == (500, 0)
    assert outbox.depth() == (0, 0)
    # a kill -9 between the ack and the delete: the rows come back and are sent again
    outbox.put_many(events[:1000])
    assert await drain_once(js, outbox, batch=2000) == (1000, 0)
    info = await js.stream_info("MG_DEVICE", subjects_filter=agent_subject(municipality))
    assert info.state.subjects[agent_subject(municipality)] == 2500


async def test_size_alarms_long_before_the_cap_and_shedding_is_counted(tmp_path, municipality):
    config = make_config(tmp_path, "nats://127.0.0.1:1", municipality, outbox_max_bytes=40_000)
    agent = Agent(config)
    levels = []
    for i in range(200):
        agent.emit(
            ev.Heartbeat, agent_version="t", policy_version=0, outbox_depth=i, outbox_bytes=0, link_up=False, uptime_s=i
        )
    violation = agent.emit(ev.ProcessViolation, pid=1, name="x", enforce=False, enforced=False)
    rows = agent.outbox.peek(10_000)
    alarms = [ev.OutboxSizeAlarm.model_validate_json(r.data) for r in rows if r.type == "device.outbox_size_alarm"]
    levels = [a.level for a in alarms]
    assert levels == ["warning", "critical", "shedding"]
    assert alarms[0].bytes < 0.3 * 40_000  # raised at a quarter of the cap
    assert violation is not None  # violations are never shed
    heartbeats = sum(1 for r in rows if r.type == "device.heartbeat")
    assert heartbeats < 200 and agent.shed == 200 - heartbeats  # refused, counted for the next alarm
    agent.outbox.close()


async def test_each_row_is_deleted_when_its_own_ack_arrives_not_with_its_batch(tmp_path, municipality):
    """The acks of one batch arrive one by one: each row leaves the journal with its own ack, while
    the others still wait; a row whose ack never comes stays for the next try."""
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put_many(_load_events(municipality, 4))
    rows = outbox.peek(10)
    loop = asyncio.get_running_loop()
    acks = [loop.create_future() for _ in rows]
    waiting = asyncio.create_task(_acked_as_they_come(outbox, list(zip(rows, acks, strict=True)), timeout=2.0))
    depths = []
    for i in (2, 0, 1):
        acks[i].set_result(object())
        for _ in range(5):
            await asyncio.sleep(0)
        depths.append(outbox.depth()[0])
    assert depths == [3, 2, 1]  # one row less per ack, while the batch is still in flight
    assert not waiting.done()
    acked, errors = await waiting  # the fourth ack never comes: timed out, its future cancelled
    assert acked == 3 and errors == set() and acks[3].cancelled()
    assert [r.event_id for r in outbox.peek(10)] == [rows[3].event_id]
