"""A batch as the projection runner reads it: parsed with the read side's fast path
(`madoguchi_shared.read_events`), what does not parse kept apart for the dead-letter stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from madoguchi_shared.bus import Stored
from madoguchi_shared.events import Event
from madoguchi_shared.read_events import read_event
from madoguchi_shared.reader import StoredMessage

PARSE_SLICE = 500  # messages parsed between turns of the batch being committed


@dataclass(slots=True)
class Prepared:
    """A parsed batch: the events to apply, the unreadable messages, the last sequence it covers."""

    good: list[Stored]
    bad: list[tuple[StoredMessage, Event | None, BaseException]]
    by_seq: dict[int, StoredMessage]
    last: int


def prepare(msgs: Sequence[StoredMessage], after: int) -> Prepared | None:
    """Parse a batch (messages at or below `after` are skipped: already applied or prepared)."""
    good: list[Stored] = []
    bad: list[tuple[StoredMessage, Event | None, BaseException]] = []
    by_seq: dict[int, StoredMessage] = {}
    last = after
    for msg in msgs:
        if msg.seq <= after:
            continue  # already applied: a redelivery or a replay
        last = max(last, msg.seq)
        try:
            event = read_event(msg.data)  # the fast path: validated when written
        except Exception as exc:  # noqa: BLE001 - any parse failure is a dead letter
            bad.append((msg, None, exc))
            continue
        good.append(Stored(msg.seq, event))
        by_seq[msg.seq] = msg
    return None if last == after else Prepared(good, bad, by_seq, last)


async def parse(msgs: Sequence[StoredMessage], after: int) -> Prepared | None:
    """`prepare`, letting the batch being committed take a turn every `PARSE_SLICE` messages."""
    good: list[Stored] = []
    bad: list[tuple[StoredMessage, Event | None, BaseException]] = []
    by_seq: dict[int, StoredMessage] = {}
    last = after
    for i, msg in enumerate(msgs):
        if i % PARSE_SLICE == 0:
            await asyncio.sleep(0)
        if msg.seq <= after:
            continue  # already applied: a redelivery or a replay
        last = max(last, msg.seq)
        try:
            event = read_event(msg.data)  # the fast path: validated when written
        except Exception as exc:  # noqa: BLE001 - any parse failure is a dead letter
            bad.append((msg, None, exc))
            continue
        good.append(Stored(msg.seq, event))
        by_seq[msg.seq] = msg
    return None if last == after else Prepared(good, bad, by_seq, last)
