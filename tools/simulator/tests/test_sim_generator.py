"""The generator, without servers: repeatable, valid, in order, plausible, and its ground truth
equals a recount of the events it generated (REP-5)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import time

import pytest
from sim_harness import order_problems, scenario

from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import calls as cl
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events import dump_event, parse_event
from madoguchi_shared.pii import check_free_text, find_personal_data

from madoguchi_sim import texts
from madoguchi_sim.generator import generate, iter_events
from madoguchi_reporting.recount import differences, recount


@pytest.fixture(scope="module")
def week():
    """Five opening days at Sapporo's 10 desks and the phone line (the weekend between comes too)."""
    return generate(scenario(days=5, seed=11))


def test_same_seed_same_events_different_seed_different():
    a, _ = generate(scenario(days=1, desks=2, seed=3))
    b, _ = generate(scenario(days=1, desks=2, seed=3))
    c, _ = generate(scenario(days=1, desks=2, seed=4))
    assert [dump_event(e) for e in a] == [dump_event(e) for e in b]
    assert len({e.event_id for e in a}) == len(a)
    assert [dump_event(e) for e in a] != [dump_event(e) for e in c]


def test_grouping_does_not_change_a_single_event():
    """Streaming in groups of desks (bounded memory) only reorders across desks."""
    one = list(iter_events(scenario(days=1, seed=5, group_desks=1)))
    all_ = list(iter_events(scenario(days=1, seed=5, group_desks=100)))
    assert sorted(dump_event(e) for e in one) == sorted(dump_event(e) for e in all_)
    assert not order_problems(one)


def test_every_event_validates_and_passes_the_pii_guard(week):
    events, _ = week
    free_text_fields = ("text", "summary", "outcome", "note", "notes", "question", "answer")
    seen: Counter = Counter()
    for e in events:
        seen[e.type] += 1
        if seen[e.type] <= 300:  # every type, a few hundred of each: the JSON round trip
            assert parse_event(dump_event(e)) == e
        for name in free_text_fields:
            value = getattr(e, name, None)
            if (isinstance(value, str) and name != "outcome") or (
                name == "outcome" and e.type == "desk.escalation_resolved"
            ):
                check_free_text(value)
        for op in getattr(e, "opinions", ()) or ():
            check_free_text(op.text)


def test_simulated_texts_hold_no_digits_at_all():
    for text in texts.all_texts():
        assert not re.search(r"\d", text), text
        assert not find_personal_data(text)


def test_each_aggregate_is_in_a_valid_order(week):
    events, _ = week
    assert order_problems(events) == []


def test_events_happen_in_tokyo_business_hours(week):
    events, _ = week
    # the hours the city extended during a day (DESK-1): tickets until the new closing time
    closes = {(d, e.day): e.close for e in events if isinstance(e, dk.ExtendedHoursScheduled) for d in e.desks}
    for e in events:
        local = e.occurred_at.astimezone(TOKYO)
        assert e.occurred_at.utcoffset() is not None
        if e.type == "desk.ticket_issued":
            close = closes.get((e.desk, local.date()), time(19, 0))
            assert time(8, 30) <= local.time() < close, e
        elif e.context in ("desk", "device") and e.type.startswith(("desk.", "device.")) and e.desk:
            assert 7 <= local.hour < 22, e
        if isinstance(e, dk.ExtendedHoursScheduled):  # the city's calendar: no ward, no desk in the envelope
            assert e.ward is None and e.desk is None and e.desks and local.date() == e.day, e
            assert (11, 0) <= (local.hour, local.minute) < (15, 0), e  # decided during the day
        else:
            assert (e.ward is not None and e.desk is not None) or e.context in ("calls", "admin")


def test_run_time_extensions_offer_choices_and_repeat_calls_are_valid(week):
    """The city extends a desk's hours during the day (the desk then serves into the evening);
    a caller's choice is one the offer gave; a repeat call quotes the reference of an earlier call
    of the line that never got through and left no callback, and each such call is repeated once."""
    events, truth = week
    extended = [e for e in events if isinstance(e, dk.ExtendedHoursScheduled)]
    assert extended
    for x in extended:
        (desk,) = x.desks
        late = [
            e
            for e in events
            if e.type == "desk.ticket_issued" and e.desk == desk and e.occurred_at.astimezone(TOKYO).date() == x.day
        ]
        assert max(e.occurred_at.astimezone(TOKYO).time() for e in late) > time(17, 15)
    offered: dict = {}
    calls: dict[str, cl.CallReceived] = {}
    status: dict = {}
    repeated: Counter = Counter()
    for e in events:
        if isinstance(e, cl.CallReceived):
            calls[cl.call_reference(e.call_id)] = e
        elif isinstance(e, cl.OverflowOffered):
            offered[e.call_id] = e.options if e.reason == "out_of_hours" else ("wait", "callback", "call_again")
        elif isinstance(e, cl.OfferChoiceRecorded):
            assert e.choice in offered.pop(e.call_id), e
        elif isinstance(
            e, cl.CallAnswered | cl.CallMissed | cl.CallAbandoned | cl.CallOutOfHours | cl.CallbackRequested
        ):
            status[e.call_id] = e  # how the call ended, or the callback it left
        elif isinstance(e, cl.RepeatCallLinked):
            earlier = calls[e.earlier_reference]
            assert earlier.occurred_at < e.occurred_at and earlier.call_id != e.call_id
            assert not isinstance(status[earlier.call_id], cl.CallAnswered | cl.CallbackRequested), e
            repeated[e.earlier_reference] += 1
    assert repeated and max(repeated.values()) == 1
    figures = truth.reports()["011002"]
    lines = [f for rid, f in figures.items() if rid.startswith("daily_line-")]
    assert sum(f["repeat_calls"] for f in lines) == sum(repeated.values())


def test_envelopes_name_ward_desk_and_actor(week):
    events, _ = week
    for e in events:
        if isinstance(e, dk.ExtendedHoursScheduled):
            assert e.actor.role.value == "manager" and e.desks, e
        elif e.context == "desk":
            assert e.ward and e.desk and e.actor.role.value in ("supporter", "manager", "rounder"), e
        if e.context == "device":
            assert e.actor.role.value == "device" and e.device_id == f"{e.desk}-pc"


def test_the_mix_is_plausible(week):
    events, truth = week
    reports = truth.reports()["011002"]
    desk_days = [r for k, r in reports.items() if not k.startswith("daily_line-")]
    lines = [r for k, r in reports.items() if k.startswith("daily_line-") and r["received_in_hours"]]
    assert len(desk_days) == 50
    visitors = [r["visitors"] for r in desk_days]
    assert min(visitors) >= 20 and max(visitors) <= 130 and 45 <= sum(visitors) / len(visitors) <= 80
    assert sum(r["capacity_alerts"] for r in desk_days) > 0  # some days pass 80 % of the 80 expected
    older = sum(
        r.get("by_age_band.60s", 0) + r.get("by_age_band.70s", 0) + r.get("by_age_band.80_and_over", 0)
        for r in desk_days
    )
    assert older / sum(visitors) > 0.5
    reasons = Counter()
    for r in desk_days:
        reasons.update({k.split(".", 1)[1]: v for k, v in r.items() if k.startswith("not_completed_reasons.")})
    assert reasons.most_common(1)[0][0] == "pin_locked_or_forgotten"
    assert {"card_not_brought", "phone_not_nfc"} <= set(reasons)
    assert sum(r["pin_lock_warnings"] for r in desk_days) > 0
    assert sum(r["escalations"] for r in desk_days) > 0 and sum(r["opinions"] for r in desk_days) > 0
    assert sum(r["disinfection_misses"] for r in desk_days) > 0
    assert sum(r["disinfections"] for r in desk_days) > 0.9 * sum(visitors)
    assert all(10 <= r["received_in_hours"] <= 30 for r in lines) and len(lines) == 5
    assert sum(r["out_of_hours"] for r in lines) > 0 and sum(r["callbacks.opened"] for r in lines) > 0
    assert sum(r["callbacks.done"] for r in lines) > 0
    types = Counter(e.type for e in events)
    assert types["device.heartbeat"] > 50 * 500  # every minute per desk PC
    assert types["desk.ticket_no_show"] > 0 and types["desk.short_absence_started"] > 0


def test_the_ground_truth_equals_a_recount_of_the_events(week):
    events, truth = week
    recounted = recount(events)
    assert set(recounted["011002"]) == set(truth.reports()["011002"])
    assert differences(truth.reports(), recounted) == []
    assert sum(truth.event_types.values()) == len(events)
    assert truth.event_types == Counter(e.type for e in events)


def test_truth_json_names_the_reporting_figures(week):
    _, truth = week
    doc = truth.as_json(seed=11)
    report = doc["reports"]["011002"]["daily_chuo-1_2021-04-06"]
    for figure in (
        "visitors",
        "support_needed",
        "support_given",
        "support_given_ratio",
        "completed",
        "by_hour.09",
        "by_gender.female",
        "by_age_band.70s",
        "escalations",
        "opinions",
        "wait.p90_s",
    ):
        assert figure in report
    line = doc["reports"]["011002"]["daily_line-main_2021-04-06"]
    for figure in (
        "received",
        "answered",
        "missed",
        "abandoned",
        "out_of_hours",
        "never_connected_share",
        "callbacks.opened",
    ):
        assert figure in line
    assert doc["notes"]["011002"]["daily_chuo-1_2021-04-06"]["opinions"]


def test_scale_options_make_synthetic_municipalities():
    from madoguchi_shared.municipality import load_municipality

    from madoguchi_sim.generator import scaled_municipalities

    munis = scaled_municipalities(load_municipality("011002"), 5, 17)
    assert [len(m.desks) for m in munis] == [4, 4, 3, 3, 3]
    assert munis[0].code == "011002" and all(m.code.startswith("8") for m in munis[1:])
    events, truth = generate(replace(scenario(days=1), municipalities=tuple(munis)))
    assert {e.municipality for e in events} == {m.code for m in munis}
    assert differences(truth.reports(), recount(events)) == []


def test_the_profile_speaks_the_event_vocabularies():
    """A renamed code in the shared events must fail here, not in the middle of a national fill."""
    from typing import get_args

    from madoguchi_calls.categories import DEFAULT_TREE, codes

    from madoguchi_shared.events import calls as cev
    from madoguchi_shared.events import desk as dev

    from madoguchi_sim.profile import DEFAULT

    def keys(pairs):
        return {k for k, _ in pairs}

    assert keys(DEFAULT.genders) <= set(get_args(dev.Gender))
    assert keys(DEFAULT.age_bands) <= set(get_args(dev.AgeBand))
    assert {p for s, _ in DEFAULT.purpose_sets for p in s} <= set(get_args(dev.Purpose))
    assert keys(DEFAULT.not_completed_reasons) <= set(get_args(dev.NotCompletedReason))
    assert keys(DEFAULT.payment_services) <= set(get_args(dev.PaymentServiceCategory))
    assert keys(DEFAULT.opinion_kinds) <= set(get_args(dev.OpinionKind))
    assert {s for steps in texts.OPINIONS.values() for s in steps} <= set(get_args(dev.ProcedureStep))
    assert keys(DEFAULT.escalation_categories) <= set(get_args(dev.EscalationCategory)) and set(
        texts.ESCALATIONS
    ) <= set(get_args(dev.EscalationCategory))
    assert keys(DEFAULT.resolutions) <= set(get_args(cev.Resolution))
    assert keys(DEFAULT.provider_categories) <= set(get_args(cev.ProviderCategory))
    assert keys(DEFAULT.call_categories) <= codes(DEFAULT_TREE)
