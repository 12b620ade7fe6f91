"""DESK-9 as stories over the pure functions (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from madoguchi_agent.domain import (
    CardGone,
    CardLeft,
    CardSeen,
    DeskState,
    Tick,
    VisitEnded,
    VisitStarted,
    decide,
    evolve,
)

T0 = datetime(2021, 4, 1, 9, 0, tzinfo=UTC)
R = "Virtual PCD 00 00"
ATR = "3B951381018073FF01000B"
LIMIT = 600.0


def run(facts) -> tuple[DeskState, list[CardLeft]]:
    state, alerts = DeskState(), []
    for fact in facts:
        state = evolve(state, fact)
        for alert in decide(state, fact, LIMIT):
            alerts.append(alert)
            state = evolve(state, alert)
    return state, alerts


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_card_returned_before_the_visit_ends_raises_nothing():
    _, alerts = run(
        [VisitStarted("v1", at(0)), CardSeen(R, ATR, at(1)), CardGone(R, at(5)), VisitEnded("v1", at(6)), Tick(at(30))]
    )
    assert alerts == []


def test_card_still_in_the_reader_when_the_visit_ends():
    state, alerts = run([VisitStarted("v1", at(0)), CardSeen(R, ATR, at(1)), VisitEnded("v1", at(6)), Tick(at(30))])
    assert [(a.reason, a.visit_id, a.seconds) for a in alerts] == [("visit_ended", "v1", 300.0)]  # once only
    assert state.cards[0].alerted


def test_card_handed_over_before_the_supporter_opens_the_visit_belongs_to_it():
    _, alerts = run([CardSeen(R, ATR, at(0)), VisitStarted("v1", at(1)), Tick(at(20)), VisitEnded("v1", at(25))])
    assert [(a.reason, a.visit_id) for a in alerts] == [("visit_ended", "v1")]


def test_card_in_the_reader_with_no_visit_for_longer_than_the_limit():
    _, alerts = run([CardSeen(R, ATR, at(0)), Tick(at(9)), Tick(at(10)), Tick(at(11))])
    assert [(a.reason, a.visit_id, a.seconds) for a in alerts] == [("no_visit", None, 600.0)]


def test_the_no_visit_clock_starts_when_the_last_visit_ended():
    # the card of visit v2 was alerted at v2's end; a new card after the end counts from its insertion
    _, alerts = run(
        [VisitStarted("v1", at(0)), VisitEnded("v1", at(1)), CardSeen(R, ATR, at(2)), Tick(at(11)), Tick(at(12))]
    )
    assert [(a.reason, a.seconds) for a in alerts] == [("no_visit", 600.0)]


def test_another_open_visit_keeps_its_own_card():
    # two supporters at one desk PC: v2's card is not left behind when v1 ends
    _, alerts = run(
        [
            VisitStarted("v1", at(0)),
            VisitStarted("v2", at(1)),
            CardSeen(R, ATR, at(2)),
            VisitEnded("v1", at(3)),
            VisitEnded("v2", at(4)),
        ]
    )
    assert [(a.reason, a.visit_id) for a in alerts] == [("visit_ended", "v2")]


def test_replayed_desk_events_never_alert_for_a_card_inserted_later():
    # at start the agent replays the last hours: a visit that ended long ago says nothing of a card now
    _, alerts = run([CardSeen(R, ATR, at(180)), VisitStarted("old", at(0)), VisitEnded("old", at(10))])
    assert alerts == []


def test_a_visit_left_open_for_hours_no_longer_hides_a_card():
    _, alerts = run([VisitStarted("crashed", at(0)), CardSeen(R, ATR, at(300)), Tick(at(301)), Tick(at(315))])
    assert [a.reason for a in alerts] == ["no_visit"]
