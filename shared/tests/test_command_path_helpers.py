"""The command path's cheaper helpers (issue 19) answer exactly as what they replace: the frozen
dataclass copy (madoguchi_shared.frozen.replace), the event id (events.base.new_id), the NUL check
of every event built, the calendar's memoised hours, and the pooled random bytes of the ids."""

from __future__ import annotations

import dataclasses
import enum
import os
import pickle
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from madoguchi_shared import entropy
from madoguchi_shared.calendar import Calendar, Instruction
from madoguchi_shared.events.base import _holds_nul, new_id
from madoguchi_shared.frozen import replace


@dataclasses.dataclass(frozen=True)
class Plain:
    a: int
    b: tuple[str, ...] = ()
    c: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Checked:
    a: int

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("negative")


def test_replace_is_dataclasses_replace_for_the_domains_states():
    from madoguchi_calls import domain as calls
    from madoguchi_desk import domain as desk

    day = desk.DeskDay(id="w0-0_2021-04-06", desk="w0-0", ward="w0", day=date(2021, 4, 6))
    ticket = desk.Ticket(1, datetime(2021, 4, 6, 1, tzinfo=UTC))
    call = calls.Call(
        call_id=uuid.uuid4(),
        line="main",
        received_at=datetime(2021, 4, 6, 1, tzinfo=UTC),
        within_hours=True,
        status="ringing",
    )
    cases = [
        (day, {"events": 3, "tickets": {1: ticket}}),
        (day, {"status": "started"}),
        (ticket, {"status": "no_show"}),
        (call, {"status": "answered", "seat": "s1"}),
        (Plain(1), {"b": ("x",)}),
        (Plain(1), {}),
    ]
    for value, changes in cases:
        ours, theirs = replace(value, **changes), dataclasses.replace(value, **changes)
        assert ours == theirs and type(ours) is type(theirs) and ours is not value
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(day, events=1).events = 2  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue] - what the test checks
    assert day.events == 0  # the original is untouched


def test_replace_refuses_an_unknown_field_and_runs_a_post_init():
    with pytest.raises(TypeError):
        replace(Plain(1), d=2)
    with pytest.raises(ValueError, match="negative"):
        replace(Checked(1), a=-1)  # a class with __post_init__ goes through dataclasses.replace
    assert replace(Checked(1), a=2) == Checked(2)


def test_new_id_is_a_time_ordered_uuid7():
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # time-ordered, also within one millisecond
    for i in ids:
        assert i.version == 7 and i.variant == uuid.RFC_4122 and type(i) is uuid.UUID
    assert (ids[0].int >> 80) >= before
    assert uuid.UUID(str(ids[0])) == ids[0]


def test_the_nul_check_finds_nul_anywhere_and_nothing_else():
    assert _holds_nul("a\x00")
    assert _holds_nul({"k": "v\x00"})
    assert _holds_nul({"k\x00": 1})
    assert _holds_nul({"k": [1, ("x", {"deep": ["\x00"]})]})
    assert not _holds_nul({"k": [1, ("x", {"deep": ["ok"]})], "n": None, "u": uuid.uuid4()})
    assert not _holds_nul(7)


def test_the_nul_check_reads_subclasses_of_str_and_of_the_containers():
    """Values passed over by their exact type (a UUID, a datetime, a number) hold no string; a subclass
    of str (an enum's value) or of a container is still read."""

    class Code(str, enum.Enum):
        bad = "x\x00"
        good = "x"

    class Items(list):
        pass

    class Mapping(dict):
        pass

    now = datetime.now(UTC)
    assert _holds_nul({"k": Code.bad}) and not _holds_nul({"k": Code.good})
    assert _holds_nul({"k": Items(["\x00"])}) and _holds_nul([Mapping({"a\x00": 1})])
    assert _holds_nul((1, True, 2.5, None, now, now.date(), now.time(), uuid.uuid4(), "\x00"))
    assert not _holds_nul({"a": 1, "b": True, "c": 2.5, "d": None, "e": now, "f": now.date(), "g": uuid.uuid4()})
    assert _holds_nul({1: "a", "b": ("c", ["d", {"e": "\x00"}])})


def test_memoised_hours_are_the_hours_of_the_calendar_they_belong_to():
    day = date(2021, 4, 6)
    plain = Calendar()
    assert plain.hours(day, "w0-0") is plain.hours(day, "w0-0")
    assert plain.hours(day, "w0-0").kind == "regular"
    start = datetime(2021, 4, 6, 10, tzinfo=plain.tz)
    suspended = plain.with_instructions(
        [Instruction(id="i1", kind="suspend", start=start, end=start + timedelta(hours=1))]
    )
    assert suspended.hours(day, "w0-0") != plain.hours(day, "w0-0")
    assert suspended.hours(day, "w0-0") == suspended._day_hours(day, "w0-0")
    assert plain == Calendar() and hash(plain) == hash(Calendar())


def test_the_entropy_pool_hands_out_bytes_once_and_a_forked_child_its_own():
    seen = [entropy.take(10) for _ in range(3 * entropy.POOL_SIZE // 10)]  # across refills of the pool
    assert all(len(b) == 10 for b in seen)
    assert len(set(seen)) == len(seen)
    assert len(entropy.take(entropy.POOL_SIZE + 1)) == entropy.POOL_SIZE + 1
    entropy.take(1)  # the pool holds unused bytes when the process forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it takes next, to the parent
        os.write(write, entropy.take(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != entropy.take(16)


def test_a_uuid_built_from_an_int_is_the_uuid_of_that_int():
    value = uuid.uuid4().int
    built = entropy.uuid_from_int(value)
    plain = uuid.UUID(int=value)
    assert type(built) is uuid.UUID and built == plain and hash(built) == hash(plain)
    assert str(built) == str(plain) and built.version == 4 and built.is_safe == plain.is_safe
    assert pickle.loads(pickle.dumps(built)) == plain
    with pytest.raises(TypeError):
        built.int = 1  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue] - immutable like any UUID


def test_state_value_reads_as_getattr_does():
    from types import SimpleNamespace

    from starlette.datastructures import State

    from madoguchi_shared.auth import state_value

    state = State()
    state.desk = "the service"
    state.nothing = None
    for holder in (state, SimpleNamespace(desk="the service", nothing=None)):
        assert state_value(holder, "desk") == holder.desk == "the service"
        assert state_value(holder, "nothing", "default") is None
        assert state_value(holder, "security_headers", "default") == "default"
        with pytest.raises(AttributeError):
            state_value(holder, "security_headers")
    state.desk = "replaced"  # set after start-up (tests do): read as it is now
    assert state_value(state, "desk") == "replaced"
