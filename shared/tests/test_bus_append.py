"""ARCHITECTURE rules 1 and 2: idempotent publish, optimistic concurrency per aggregate."""

from __future__ import annotations

import asyncio

import pytest
from nats import errors as nats_errors
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError

from madoguchi_shared import bus, subjects
from madoguchi_shared.nats_typed import publish
from madoguchi_shared.events.admin import StaffAccountCreated, TrainingItemCompleted
from madoguchi_shared.events.base import Role
from tests.utils.servers import unique_municipality


def staff_created(municipality: str, staff_id: str = "S0001") -> StaffAccountCreated:
    return StaffAccountCreated(municipality=municipality, staff_id=staff_id, roles=(Role.supporter,), wards=("chuo",))


async def test_duplicate_event_id_published_three_times_leaves_one_message(js, nc, municipality):
    event = staff_created(municipality)
    acks = [await bus.append(js, event) for _ in range(3)]
    assert [bool(a.duplicate) for a in acks] == [False, True, True]
    assert len({a.seq for a in acks}) == 1
    stored = await bus.load(nc, event.subject)
    assert [s.event for s in stored] == [event]


async def test_stale_expected_sequence_raises_conflict_and_stores_nothing(js, nc, municipality):
    first = staff_created(municipality)
    ack = await bus.append(js, first, expected=0)
    second = TrainingItemCompleted(municipality=municipality, staff_id="S0001", item="compliance", hours=2)
    await bus.append(js, second, expected=ack.seq)
    stale = TrainingItemCompleted(municipality=municipality, staff_id="S0001", item="system", hours=1)
    with pytest.raises(bus.ConcurrencyConflict):
        await bus.append(js, stale, expected=ack.seq)
    with pytest.raises(bus.ConcurrencyConflict):
        await bus.append(js, staff_created(municipality), expected=0)  # "must be new" on an existing subject
    assert [s.event.event_id for s in await bus.load(nc, first.subject)] == [first.event_id, second.event_id]


async def test_append_all_chains_expectations_and_load_reads_in_order(js, nc, municipality):
    events = [staff_created(municipality, "S0002")] + [
        TrainingItemCompleted(municipality=municipality, staff_id="S0002", item=item, hours=1)
        for item in ("compliance", "system", "escalation")
    ]
    seqs = await bus.append_all(js, events, expected=0)
    assert seqs == sorted(seqs)
    assert await bus.last_sequence(js, events[0].subject) == seqs[-1]
    loaded = await bus.load(nc, events[0].subject)
    assert [s.event for s in loaded] == events
    assert [s.seq for s in await bus.load(nc, events[0].subject, after=seqs[1])] == seqs[2:]


async def test_load_reads_aggregates_longer_than_one_batch(js, nc, municipality):
    events = [staff_created(municipality, "S0003")] + [
        TrainingItemCompleted(municipality=municipality, staff_id="S0003", item="role_play", hours=0.5)
        for _ in range(30)
    ]
    await bus.publish_many(js, events)
    loaded = await bus.load(nc, events[0].subject, batch=7)
    assert [s.event.event_id for s in loaded] == [e.event_id for e in events]


async def test_unknown_subject_is_empty(js, nc, municipality):
    subject = staff_created(municipality, "nobody").subject
    assert await bus.last_sequence(js, subject) == 0
    assert await bus.load(nc, subject) == []


async def test_the_stream_s_last_sequence_and_a_filter_s_next_message(js, nc, municipality):
    """bus.stream_last_sequence (the stream's state) and bus.next_sequence (a forward read of a filter)."""
    elsewhere = unique_municipality()
    mine = await bus.append(js, staff_created(municipality))
    other = await bus.append(js, staff_created(elsewhere))  # another municipality's, after it
    assert await bus.stream_last_sequence(js, "MG_ADMIN") == other.seq
    mine_only = subjects.context_filter("admin", municipality)
    assert await bus.next_sequence(js, "MG_ADMIN", mine_only, 1) is not None
    assert await bus.next_sequence(js, "MG_ADMIN", mine_only, mine.seq) == mine.seq
    assert await bus.next_sequence(js, "MG_ADMIN", mine_only, mine.seq + 1) is None  # other.seq is not its
    assert await bus.next_sequence(js, "MG_ADMIN", subjects.context_filter("admin", elsewhere), mine.seq) == other.seq
    with pytest.raises(NotFoundError):
        await bus.stream_last_sequence(js, "MG_NO_SUCH_STREAM")


async def test_the_lean_publish_answers_as_nats_py_does(js, nc, municipality):
    """nats_typed.publish (bus.append's publish): the ack, a refusal as its APIError class with its
    code, no stream for the subject, and no answer in time, each as js.publish gives them."""
    event = staff_created(municipality, "S0009")
    data = event.__pydantic_serializer__.to_json(event)
    headers = {"Nats-Msg-Id": str(event.event_id), "Nats-Expected-Last-Subject-Sequence": "0"}
    ack = await publish(js, event.subject, data, dict(headers), 5.0)
    again = await publish(js, event.subject, data, {"Nats-Msg-Id": str(event.event_id)}, 5.0)
    assert ack.stream == bus.stream_for(event.subject) and ack.seq > 0 and not ack.duplicate
    assert again.seq == ack.seq and again.duplicate
    conflict = {"Nats-Msg-Id": "another", "Nats-Expected-Last-Subject-Sequence": "0"}
    with pytest.raises(APIError) as refused:
        await publish(js, event.subject, data, conflict, 5.0)
    with pytest.raises(APIError) as by_nats_py:
        await js.publish(event.subject, data, headers=dict(conflict))
    assert type(refused.value) is type(by_nats_py.value) is BadRequestError
    assert refused.value.err_code == by_nats_py.value.err_code == 10071  # wrong last sequence
    with pytest.raises(NoStreamResponseError):
        await publish(js, "nowhere.nobody.listens", b"{}", {}, 5.0)
    silent = await nc.subscribe("nowhere.silent.subscriber")  # a subscriber that never answers
    started = asyncio.get_running_loop().time()
    with pytest.raises(nats_errors.TimeoutError):
        await publish(js, "nowhere.silent.subscriber", b"{}", {}, 0.3)
    assert 0.25 < asyncio.get_running_loop().time() - started < 3
    await silent.unsubscribe()
    assert not nc._resp_map  # every answer's future is gone from the connection's map
    # the HPUB line built by hand: a header value with a line break goes through nats-py, no header injected
    other = staff_created(municipality, "S0015")
    sneaky = {"Nats-Msg-Id": str(other.event_id), "Mg-Type": "x\r\nNats-Expected-Last-Subject-Sequence: 99"}
    stored = await publish(js, other.subject, other.__pydantic_serializer__.to_json(other), sneaky, 5.0)
    raw = await js.get_msg(bus.stream_for(other.subject), seq=stored.seq, direct=True)
    assert "Nats-Expected-Last-Subject-Sequence" not in (raw.headers or {})
    assert raw.headers["Nats-Msg-Id"] == str(other.event_id)


def training(municipality: str, staff_id: str, item: str = "compliance") -> TrainingItemCompleted:
    return TrainingItemCompleted(municipality=municipality, staff_id=staff_id, item=item, hours=1)


def one_command(municipality: str, staff_id: str) -> list:
    """A command's three events on one subject (the pipeline's case)."""
    return [
        staff_created(municipality, staff_id),
        training(municipality, staff_id),
        training(municipality, staff_id, "system"),
    ]


async def assert_stored_in_order(nc, events, seqs) -> None:
    stored = await bus.load(nc, events[0].subject)
    assert [s.event.event_id for s in stored] == [e.event_id for e in events]
    assert [s.seq for s in stored] == seqs


def between(monkeypatch, after: int, write):
    """bus.append_all's pipeline with `write()` run once its `after`-th publish is stored, before the
    next one goes out: another writer's message lands between two events of one command."""
    real = bus.send
    sent = 0

    async def send(*args, **kwargs):
        nonlocal sent
        answer = await real(*args, **kwargs)
        sent += 1
        if sent == after:
            await asyncio.wait([answer])
            await write()
        return answer

    monkeypatch.setattr(bus, "send", send)


async def test_a_pipelined_command_refused_on_its_first_event_stores_none_of_them(js, nc, municipality):
    """Rule 2 with the pipeline: the events after the first go out before its ack, each expecting the
    one before it as the stream's last message; the first refused (stale), none of them is stored."""
    taken = staff_created(municipality, "S0010")
    await bus.append(js, taken, expected=0)
    events = [staff_created(municipality, "S0010"), training(municipality, "S0010"), training(municipality, "S0010")]
    with pytest.raises(bus.ConcurrencyConflict):
        await bus.append_all(js, events, expected=0)
    assert [s.event.event_id for s in await bus.load(nc, taken.subject)] == [taken.event_id]
    assert not nc._resp_map


async def test_a_pipeline_split_by_another_subject_s_message_still_stores_all_in_order(
    js, nc, municipality, monkeypatch
):
    """Another writer's message between two events (on another subject) refuses the rest of the
    pipeline; they are appended one by one with the expected sequence, as without it."""
    other = staff_created(municipality, "S0012")
    between(monkeypatch, 1, lambda: bus.append(js, other, expected=0))
    events = one_command(municipality, "S0011")
    seqs = await bus.append_all(js, events, expected=0)
    await assert_stored_in_order(nc, events, seqs)
    [foreign] = await bus.load(nc, other.subject)
    assert seqs[0] < foreign.seq < seqs[1]  # it came between: the chain was refused and re-appended
    assert not nc._resp_map


async def test_a_pipeline_meeting_another_write_on_its_subject_is_a_conflict_not_an_overwrite(
    js, nc, municipality, monkeypatch
):
    """Another writer appends to the same aggregate between the command's first and second event: the
    second is not stored after it (that writer's event was never seen by the command): a conflict."""
    first = staff_created(municipality, "S0013")
    intruder = training(municipality, "S0013", "escalation")

    async def write():
        await bus.append(js, intruder, expected=await bus.last_sequence(js, first.subject))  # after the first

    between(monkeypatch, 1, write)
    with pytest.raises(bus.ConcurrencyConflict):
        await bus.append_all(js, [first, training(municipality, "S0013"), training(municipality, "S0013", "system")], 0)
    stored = await bus.load(nc, first.subject)
    assert [s.event.event_id for s in stored] == [first.event_id, intruder.event_id]


async def test_a_pipelined_event_whose_answer_was_lost_is_recognised_as_stored(js, nc, municipality, monkeypatch):
    """The second event's ack lost (a timeout) though JetStream stored it: appended again with its
    expectation, it meets itself, which is its success, not a conflict, and not a second copy."""
    real = bus.send
    sent = 0

    async def send(*args, **kwargs):
        nonlocal sent
        answer = await real(*args, **kwargs)
        sent += 1
        if sent != 2:
            return answer
        await asyncio.wait([answer])  # stored and answered, but the answer never reaches the command
        lost = asyncio.get_running_loop().create_future()
        lost.set_exception(nats_errors.TimeoutError())
        return lost

    monkeypatch.setattr(bus, "send", send)
    events = one_command(municipality, "S0014")
    seqs = await bus.append_all(js, events, expected=0)
    await assert_stored_in_order(nc, events, seqs)


def test_the_header_parse_reads_as_nats_py_s_own():
    from nats.aio.client import Client

    original = Client._original_parse_header_lines  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue] - set by the patch
    assert Client._parse_header_lines is bus._parse_header_lines
    blocks = [
        b"Nats-Msg-Id: 0193\r\nMg-Type: desk.ticket_issued\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n",
        b"A:b\r\nC:\tD \r\n:x\r\nnocolon\r\n\r\n",
        "Na\u00efve: 1\r\nK: v\u00e4l\r\n".encode(),
        b"K: \xff\xfe\r\n  Spaced  :  x  \r\n",
    ]
    blocks += [f"A{chr(c)}B: v\r\nZ: {chr(c)}\r\n".encode("latin-1") for c in range(128)]
    for _ in range(2):  # the second time every name is one remembered (or, past the limit, not)
        for raw in blocks:
            assert bus._parse_header_lines(raw) == original(raw), raw
    assert 0 < len(bus._header_names) <= bus._HEADER_NAMES_KEPT


async def test_log_streams_deny_delete_and_purge(js):
    for name in bus.LOG_STREAMS:
        info = await js.stream_info(name)
        assert info.config.deny_delete and info.config.deny_purge and info.config.allow_direct


async def test_a_tool_gets_a_clear_error_when_no_nats_server_answers(monkeypatch):
    """Command-line tools give up on the first connect after the setting MADOGUCHI_NATS_CONNECT_TIMEOUT, with a
    message saying what to check; services (no timeout) keep waiting, as a service must outlive a restarting
    nats-server."""
    import time

    from madoguchi_shared.runtime import free_port

    monkeypatch.setenv("MADOGUCHI_NATS_CONNECT_TIMEOUT", "1.5")
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(bus.BusUnreachable, match=r"cannot reach NATS at .* within 1.5 s: is the system running"):
        await bus.connect_tool(url, name="test-cli")
    assert time.monotonic() - started < 5
    with pytest.raises(bus.BusUnreachable, match=r"within 1 s"):
        await bus.connect_tool(url, name="test-cli", timeout=1.0)


def test_the_command_line_says_so_and_exits_2(tmp_path):
    import os
    import subprocess
    import sys

    from madoguchi_shared.runtime import free_port

    env = {
        **os.environ,
        "MADOGUCHI_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "MADOGUCHI_DATA_DIR": str(tmp_path),
        "MADOGUCHI_NATS_CONNECT_TIMEOUT": "1",  # the setting, not the 10 s a person at the command line gets
    }
    done = subprocess.run(
        [sys.executable, "-m", "madoguchi_shared.cli", "streams"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: cannot reach NATS at" in done.stderr and "within 1 s" in done.stderr
    assert "Traceback" not in done.stderr
