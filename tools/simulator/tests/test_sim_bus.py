"""Bus mode on the real nats-server: the streams hold exactly what was generated, a repeat of
the same seed adds nothing (Nats-Msg-Id), and the national fill streams a slice of the peak day."""

from __future__ import annotations

from collections import Counter
from datetime import date

from sim_harness import fresh_codes, scenario

from madoguchi_shared import subjects
from madoguchi_shared import bus
from madoguchi_shared.events import parse_event

from madoguchi_sim import national
from madoguchi_sim.busmode import publish
from madoguchi_sim.generator import generate, iter_events
from madoguchi_sim.truth import Truth


async def _count(js, municipality: str) -> int:
    """Messages stored for one municipality, across every stream of record (per-subject counts)."""
    total = 0
    for context, stream in (("desk", "MG_DESK"), ("calls", "MG_CALLS"), ("device", "MG_DEVICE"), ("admin", "MG_ADMIN")):
        info = await js.stream_info(stream, subjects_filter=subjects.context_filter(context, municipality))
        total += sum((info.state.subjects or {}).values())
    return total


async def _stored(js, municipality: str) -> Counter:
    """Event types stored for one municipality, read back from every stream of record."""
    found: Counter = Counter()
    for context in ("desk", "calls", "device", "admin"):
        async for _seq, _subject, data, _headers in bus.load_filter(
            js, subjects.context_filter(context, municipality), 1
        ):
            found[parse_event(data).type] += 1
    return found


async def test_bus_mode_stream_holds_exactly_the_generated_events(js, municipality):
    sc = scenario(municipality, days=2, desks=2, seed=21)
    expected, truth = generate(sc)
    streamed = Truth()
    report = await publish(js, iter_events(sc, streamed))
    assert report.events == len(expected) and report.rate > 0
    stored = await _stored(js, municipality)
    assert stored == Counter(e.type for e in expected)
    assert sum(stored.values()) == len(expected)
    assert streamed.reports() == truth.reports()

    again = await publish(js, iter_events(sc))  # the same seed: the same event ids, deduplicated
    assert again.events == len(expected)
    assert await _count(js, municipality) == len(expected)


async def test_paced_bus_mode_keeps_the_day_in_order(js, municipality):
    sc = scenario(municipality, days=1, desks=1, seed=5, lines=False, setup=False)
    events, _ = generate(sc)
    window = [e for e in events if e.occurred_at <= events[0].occurred_at.replace(hour=9, minute=0)]
    report = await publish(js, window, speed=20_000.0)  # ~75 minutes of the morning in a fraction of a second
    assert report.events == len(window)
    assert await _count(js, municipality) == len(window)


async def test_national_fill_streams_a_slice_of_the_peak_day(js):
    codes = fresh_codes(30)
    # counted per municipality of the fill in the streams of record it writes, before and after: other tests
    # share the servers (a random code may be one an earlier test used, and a service still running may
    # raise alerts about the fill's municipalities in the audit stream)
    before = {code: await _count(js, code) for code in codes}
    report = await national.fill(
        js, 6_000, municipalities=30, desks=60, day=date(2021, 9, 30), seed=2, workers=1, codes=codes, with_truth=True
    )
    assert {m.code for m in report.plan.municipalities} <= set(codes)
    added = sum([await _count(js, m.code) - before[m.code] for m in report.plan.municipalities])
    assert added == report.fill.events == sum(report.by_type.values())
    assert report.plan.desks < 60 and len(report.plan.municipalities) < 30  # a slice, spread over the list
    assert 4_000 < report.fill.events < 12_000
    assert report.as_dict()["by_context"]["device"] > report.as_dict()["by_context"]["desk"]
    assert set(report.truth) == {m.code for m in report.plan.municipalities}
