"""DESK-9 as pure functions: is a citizen's card left in the reader?

The agent sees cards (PC/SC) and, from the desk's events on the bus, whether a visit is in
progress. A card still in the reader when the visit it belongs to ends, or for longer than the
policy's limit while no visit is in progress, is "left in reader": one alert per insertion.

    state = evolve(state, fact); alerts = decide(state, fact, limit_s); state = evolve(state, alert)

A card inserted while visits are open belongs to the most recently started one; a card inserted
before any visit is open is claimed by the next visit that starts (the citizen hands the card
over, then the supporter opens the visit). Desk events replayed at start (they happened before)
never raise an alert for a card inserted after them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# A visit left open longer than this (a desk client that crashed) no longer hides a card.
STALE_VISIT = timedelta(hours=4)
# The desk's clock (occurred_at of its events) and the PC's may differ a little: a card counts as
# inserted after a visit's end only when later than this.
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class CardSlot:
    reader: str
    atr: str
    inserted_at: datetime
    visit_id: str | None = None
    alerted: bool = False


@dataclass(frozen=True)
class DeskState:
    cards: tuple[CardSlot, ...] = ()
    open_visits: tuple[tuple[str, datetime], ...] = ()  # (visit id, started at), oldest first
    last_visit_end: datetime | None = None

    def card(self, reader: str) -> CardSlot | None:
        return next((c for c in self.cards if c.reader == reader), None)

    @property
    def current_visit(self) -> str | None:
        return self.open_visits[-1][0] if self.open_visits else None


# Facts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardSeen:
    reader: str
    atr: str
    at: datetime


@dataclass(frozen=True)
class CardGone:
    reader: str
    at: datetime


@dataclass(frozen=True)
class VisitStarted:
    visit_id: str
    at: datetime


@dataclass(frozen=True)
class VisitEnded:
    visit_id: str
    at: datetime


@dataclass(frozen=True)
class Tick:
    at: datetime


@dataclass(frozen=True)
class CardLeft:
    """The decision: raise DESK-9's alert for this card."""

    reader: str
    atr: str
    inserted_at: datetime
    reason: str  # visit_ended | no_visit
    visit_id: str | None
    seconds: float


Fact = CardSeen | CardGone | VisitStarted | VisitEnded | Tick | CardLeft


def decide(state: DeskState, fact: Fact, limit_s: float) -> list[CardLeft]:
    """Alerts that follow from `fact` given `state` (already evolved with the fact)."""
    if isinstance(fact, VisitEnded):
        still_open = {v for v, _ in state.open_visits}
        out: list[CardLeft] = []
        for card in state.cards:
            if card.alerted or card.inserted_at > fact.at + CLOCK_SKEW:
                continue  # already alerted, or inserted after this (replayed) end
            if card.visit_id == fact.visit_id or not still_open:
                out.append(
                    CardLeft(
                        card.reader,
                        card.atr,
                        card.inserted_at,
                        "visit_ended",
                        card.visit_id or fact.visit_id,
                        _seconds(card.inserted_at, fact.at),
                    )
                )
        return out
    if isinstance(fact, Tick):
        if _live_visits(state, fact.at):
            return []
        out: list[CardLeft] = []
        for card in state.cards:
            if card.alerted:
                continue
            idle_from = max(card.inserted_at, state.last_visit_end) if state.last_visit_end else card.inserted_at
            if _seconds(idle_from, fact.at) >= limit_s:
                out.append(
                    CardLeft(
                        card.reader, card.atr, card.inserted_at, "no_visit", None, _seconds(card.inserted_at, fact.at)
                    )
                )
        return out
    return []


def evolve(state: DeskState, fact: Fact) -> DeskState:
    if isinstance(fact, CardSeen):
        others = tuple(c for c in state.cards if c.reader != fact.reader)
        return replace(state, cards=(*others, CardSlot(fact.reader, fact.atr, fact.at, state.current_visit)))
    if isinstance(fact, CardGone):
        return replace(state, cards=tuple(c for c in state.cards if c.reader != fact.reader))
    if isinstance(fact, VisitStarted):
        if any(v == fact.visit_id for v, _ in state.open_visits):
            return state
        cards = tuple(c if c.visit_id or c.alerted else replace(c, visit_id=fact.visit_id) for c in state.cards)
        return replace(state, cards=cards, open_visits=(*state.open_visits, (fact.visit_id, fact.at)))
    if isinstance(fact, VisitEnded):
        # A card of the ended visit inserted after the end (replay) belongs to no visit.
        cards = tuple(
            replace(c, visit_id=None) if c.visit_id == fact.visit_id and c.inserted_at > fact.at + CLOCK_SKEW else c
            for c in state.cards
        )
        last = max(state.last_visit_end, fact.at) if state.last_visit_end else fact.at
        return replace(
            state,
            cards=cards,
            open_visits=tuple(v for v in state.open_visits if v[0] != fact.visit_id),
            last_visit_end=last,
        )
    if isinstance(fact, CardLeft):
        return replace(
            state, cards=tuple(replace(c, alerted=True) if c.reader == fact.reader else c for c in state.cards)
        )
    live = _live_visits(state, fact.at)  # a Tick
    return state if len(live) == len(state.open_visits) else replace(state, open_visits=live)


def _live_visits(state: DeskState, now: datetime) -> tuple[tuple[str, datetime], ...]:
    return tuple(v for v in state.open_visits if now - v[1] < STALE_VISIT)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
