"""Group commit per desk-day (issue 19): commands waiting on one aggregate are decided in order on
the cached state and stored as one atomic batch with the subject's expected sequence; a stale cache
(another process wrote meanwhile) costs a conflict and a re-decision, never a wrong write."""

from __future__ import annotations

import asyncio
from datetime import datetime

from desk_api import SAPPORO_TOML, FakeClock

from madoguchi_desk import domain as d
from madoguchi_desk.service import DeskService
from madoguchi_shared.errors import DomainError
from madoguchi_shared import bus
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Actor, Role, new_id
from madoguchi_shared.municipality import load_municipality

SUPPORTER = Actor(id="S1", role=Role.supporter)


async def test_group_commit_under_conflicts_numbers_every_ticket_once_in_stream_order(nc, js, municipality):
    m = load_municipality(SAPPORO_TOML, code=municipality)
    desk = m.desk("kita-1")
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    here, there = DeskService(nc, js, m, clock), DeskService(nc, js, m, clock)  # two processes, two caches

    def issue(service: DeskService):
        return service.deskday_command(desk, None, d.IssueTicket(), SUPPORTER)

    await issue(here)  # `here` caches the desk-day at ticket 1 ...
    for _ in range(3):
        await issue(there)  # ... which is stale once the other process issued 2-4
    refused_call = here.deskday_command(desk, None, d.CallNext("S1", new_id(), 999), SUPPORTER)
    answers = await asyncio.gather(
        *[issue(here) for _ in range(10)],
        refused_call,
        *[issue(here) for _ in range(10)],
        *[issue(there) for _ in range(10)],
        return_exceptions=True,
    )

    assert isinstance(answers[10], DomainError)  # refused on its own, the commands around it stored
    issued = [a for i, a in enumerate(answers) if i != 10]
    assert all(isinstance(a, list) and len(a) == 1 for a in issued), [a for a in issued if not isinstance(a, list)][:3]
    assert here.group_stats.largest > 1 and here.group_stats.batches < 21  # grouped, not one by one
    assert here.group_stats.conflicts >= 1  # the stale cache was found out by the expected sequence
    subject = here.deskday_subject(desk.id, clock().date())
    stored = {s.seq: s.event for s in await bus.load(nc, subject)}
    numbers = [e.ticket_no for e in stored.values() if e.type == "desk.ticket_issued"]
    assert numbers == list(range(1, 35))  # 4 + 30, in stream order: no gap, no duplicate
    for [appended] in issued:  # each command was answered with its own stored event and sequence
        assert stored[appended.seq].event_id == appended.event.event_id
        assert stored[appended.seq].ticket_no == appended.event.ticket_no
    assert sorted(a[0].event.ticket_no for a in issued) == list(range(5, 35))


async def test_a_batch_is_stored_whole_or_not_at_all(nc, js, municipality):
    m = load_municipality(SAPPORO_TOML, code=municipality)
    desk = m.desk("chuo-1")
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    service = DeskService(nc, js, m, clock)
    await service.deskday_command(desk, None, d.IssueTicket(), SUPPORTER)
    subject = service.deskday_subject(desk.id, clock().date())
    loaded = await service.deskday(desk, clock().date())
    events = d.decide_deskday(
        loaded.state, d.IssueTicket(), d.Ctx(m, clock(), SUPPORTER, desk, m.calendar().hours(clock().date(), desk.id))
    )
    second = d.decide_deskday(
        d.evolve_deskday(loaded.state, events[0]),
        d.IssueTicket(),
        d.Ctx(m, clock(), SUPPORTER, desk, m.calendar().hours(clock().date(), desk.id)),
    )
    stale = loaded.seq - 1
    try:
        await bus.append_batch(js, [*events, *second], {subject: stale})
    except bus.ConcurrencyConflict:
        pass
    else:
        raise AssertionError("a stale batch was stored")
    assert [s.seq for s in await bus.load(nc, subject)] == [loaded.seq]  # nothing of it stored
    seqs = await bus.append_batch(js, [*events, *second], {subject: loaded.seq})
    stored = await bus.load(nc, subject)
    assert [s.seq for s in stored][1:] == seqs and [s.event.ticket_no for s in stored] == [1, 2, 3]
