"""A batch as the projection runner reads it: parsed with the read side's fast path
(`madoguchi_shared.read_events.read_batch`), what does not parse kept apart for the dead-letter stream."""

from __future__ import annotations

import asyncio
import bisect
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from madoguchi_shared.bus import Stored
from madoguchi_shared.events import Event
from madoguchi_shared.read_events import read_batch
from madoguchi_shared.reader import StoredMessage

# Messages parsed between turns of the batch being committed: that batch's statements come back while
# a slice is parsed and wait for its end, at every round trip (BEGIN, claim, load, write, COMMIT);
# 1,000 (~12 ms) made BEGIN alone wait ~45 ms a batch under load.
PARSE_SLICE = 250
_SEQ = operator.attrgetter("seq")


@dataclass(slots=True)
class Prepared:
    """A parsed batch: the events to apply, the unreadable messages, the messages it was read
    from (in stream order), the last sequence it covers."""

    good: list[Stored]
    bad: list[tuple[StoredMessage, Event | None, BaseException]]
    messages: list[StoredMessage]
    last: int

    def message(self, seq: int) -> StoredMessage:
        """The message of sequence `seq` (for a dead letter)."""
        return self.messages[bisect.bisect_left(self.messages, seq, key=_SEQ)]


async def parse(msgs: Sequence[StoredMessage], after: int) -> Prepared | None:
    """Parse a batch: its messages past `after` (at or below it: already applied, a redelivery or
    a replay), in stream order, letting the batch being committed take a turn every `PARSE_SLICE`
    messages; None when there are none."""
    kept = sorted((m for m in msgs if m.seq > after), key=_SEQ)
    if not kept:
        return None
    batch = Prepared([], [], kept, kept[-1].seq)
    for i in range(0, len(kept), PARSE_SLICE):
        await asyncio.sleep(0)
        msgs = kept[i : i + PARSE_SLICE]
        events = read_batch([m.data for m in msgs])
        bad = [(m, None, e) for m, e in zip(msgs, events, strict=True) if isinstance(e, ValueError)]
        if not bad:  # every message an event
            batch.good += map(Stored, map(_SEQ, msgs), cast(list[Event], events))
            continue
        batch.bad += bad
        batch.good += [Stored(m.seq, e) for m, e in zip(msgs, events, strict=True) if not isinstance(e, ValueError)]
    return batch
