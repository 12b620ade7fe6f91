"""The whole simulation as one stream of events, generated lazily, plus its ground truth.

`Scenario` says what to simulate: municipalities (their wards, desks, calendars and phone line),
the days, the seed and the rates. `iter_events(scenario, truth)` yields every event in time order
within groups of desks (a group's day is generated, sorted and yielded, then the next group's), so
memory stays bounded however many desks and days are simulated, while each aggregate's events
come in order. The truth accumulates as the stream is consumed.

Scale: one municipality from configuration (default Sapporo, 011002), or many synthetic ones built
from it as a template (`scaled_municipalities`), e.g. the national peak day's 1,741 municipalities
and 4,000 desks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event
from madoguchi_shared.municipality import Municipality, load_municipality

from madoguchi_sim import ids
from madoguchi_sim.calls import LineState, simulate_line_day
from madoguchi_sim.desk import simulate_desk_day, staff_setup_events
from madoguchi_sim.profile import DEFAULT, Profile
from madoguchi_sim.truth import Truth


def resize(m: Municipality, desks: int) -> Municipality:
    """`m` with `desks` desks: the first ones of its configuration, or more desks per ward."""
    if desks < 1:
        raise ValueError("at least one desk")
    data = m.model_dump(mode="python")
    wards = [dict(w, desks=[]) for w in data["wards"]]
    config_desks = [(i, d) for i, w in enumerate(data["wards"]) for d in w["desks"]]
    for k in range(desks):
        if k < len(config_desks):
            i, d = config_desks[k]
            wards[i]["desks"].append(d)
        else:
            i = k % len(wards)
            n = len(wards[i]["desks"]) + 1
            wards[i]["desks"].append(
                {
                    "id": f"{wards[i]['id']}-{n}",
                    "ward": wards[i]["id"],
                    "name_ja": f"{wards[i]['name_ja']} 支援窓口{n}",
                    "expected_max_visitors": 80,
                }
            )
    data["wards"] = [w for w in wards if w["desks"]]
    data["special_days"] = [
        sd
        for sd in data["special_days"]
        if not sd["desks"] or set(sd["desks"]) <= {d["id"] for w in data["wards"] for d in w["desks"]}
    ]
    return Municipality.model_validate(data)


def synthetic(template: Municipality, code: str, desks: int) -> Municipality:
    """A municipality like `template` (hours, calendar, phone line, equipment) with its own code
    and `desks` desks, one per branch office (ward)."""
    data = template.model_dump(mode="python")
    data.update(code=code, name_ja=f"模擬市{code}", name_en=f"Simulated {code}", special_days=[])
    data["wards"] = [
        {
            "id": f"b{k:02d}",
            "name_ja": f"第{k}支所",
            "name_en": f"Branch {k}",
            "desks": [
                {
                    "id": f"b{k:02d}-1",
                    "ward": f"b{k:02d}",
                    "name_ja": f"第{k}支所 支援窓口",
                    "expected_max_visitors": 80,
                }
            ],
        }
        for k in range(1, desks + 1)
    ]
    return Municipality.model_validate(data)


def scaled_municipalities(
    template: Municipality,
    municipalities: int,
    desks: int | None,
    *,
    include_template: bool = True,
    codes: list[str] | None = None,
) -> list[Municipality]:
    """`municipalities` municipalities with `desks` desks in all (spread evenly).

    The first is the template itself (resized) when `include_template`; the others are synthetic,
    with codes that no real municipality has (see ids.synthetic_codes) unless `codes` are given.
    """
    if municipalities < 1:
        raise ValueError("at least one municipality")
    total = desks if desks is not None else len(template.desks) * municipalities
    if total < municipalities:
        raise ValueError("at least one desk per municipality")
    base, extra = divmod(total, municipalities)
    counts = [base + (1 if i < extra else 0) for i in range(municipalities)]
    out: list[Municipality] = []
    synthetic_n = municipalities - (1 if include_template else 0)
    pool = list(codes) if codes is not None else [c for c in ids.synthetic_codes(synthetic_n + 1) if c != template.code]
    if len(pool) < synthetic_n:
        raise ValueError(f"{synthetic_n} municipality codes needed, {len(pool)} given")
    for i, n in enumerate(counts):
        if i == 0 and include_template:
            out.append(template if n == len(template.desks) else resize(template, n))
        else:
            out.append(synthetic(template, pool.pop(0), n))
    return out


@dataclass(frozen=True)
class Scenario:
    municipalities: tuple[Municipality, ...]
    start: date
    days: int = 1  # days on which some desk opens, from `start`; the nights and weekends between come too
    seed: int | str = 1
    profile: Profile = DEFAULT
    desks: bool = True
    lines: bool = True
    devices: bool = True
    setup: bool = True  # staff accounts and training (ORG-4) before the first day
    group_desks: int = 20  # desks whose day is generated and time-sorted together
    only_desks: frozenset[str] = field(default_factory=frozenset)  # limit to these desk ids (API mode tests)

    @classmethod
    def default(cls, **changes) -> Scenario:
        return cls(municipalities=(load_municipality("011002"),), start=today(), **changes)

    def dates(self) -> list[date]:
        """Every date simulated: from `start` to the `days`-th date on which a desk opens."""
        if self.days < 1:
            return []
        calendars = [(m, m.calendar()) for m in self.municipalities[:50]]  # synthetic ones share the template's
        out: list[date] = []
        opened = 0
        day = self.start
        for _ in range(self.days * 7 + 400):
            out.append(day)
            if any(cal.hours(day, d.id).open_day for m, cal in calendars for d in m.desks):
                opened += 1
                if opened == self.days:
                    return out
            day += timedelta(days=1)
        raise ValueError("no opening day found")

    def groups(self) -> list[list[Municipality]]:
        groups: list[list[Municipality]] = [[]]
        size = 0
        for m in self.municipalities:
            if groups[-1] and size + len(m.desks) > self.group_desks:
                groups.append([])
                size = 0
            groups[-1].append(m)
            size += len(m.desks)
        return groups


def today() -> date:
    return datetime.now(TOKYO).date()


def iter_events(scenario: Scenario, truth: Truth | None = None) -> Iterator[Event]:
    """Every event of the scenario: time-ordered per group of desks and day (see module doc)."""
    truth = truth if truth is not None else Truth()
    p = scenario.profile
    line_states: dict[str, LineState] = {}
    calendars = {}
    if scenario.setup:
        for m in scenario.municipalities:
            at = datetime.combine(scenario.start - timedelta(days=1), time(18, 0), TOKYO)
            desks = [d for d in m.desks if not scenario.only_desks or d.id in scenario.only_desks]
            events = staff_setup_events(scenario.seed, m, desks, at, p.supporters_per_desk)
            truth.add_events(Counter(e.type for e in events))
            yield from events
    for day in scenario.dates():
        for group in scenario.groups():
            batch: list[Event] = []
            for m in group:
                cal = calendars.get(m.code)
                if cal is None:
                    cal = calendars[m.code] = (m.calendar(), m.phone_calendar())
                if scenario.desks:
                    for desk in m.desks:
                        if scenario.only_desks and desk.id not in scenario.only_desks:
                            continue
                        res = simulate_desk_day(scenario.seed, m, desk, day, p, cal[0])
                        truth.add_desk_day(res)
                        if scenario.devices:
                            batch.extend(res.events)
                        else:
                            batch.extend(e for e in res.events if e.context != "device")
                if scenario.lines:
                    state = line_states.setdefault(m.code, LineState())
                    res_line = simulate_line_day(scenario.seed, m, day, p, state, cal[1])
                    truth.add_line_day(res_line)
                    batch.extend(res_line.events)
            batch.sort(key=lambda e: e.occurred_at)  # stable: each aggregate keeps its order
            truth.add_events(Counter(e.type for e in batch))
            yield from batch


def generate(scenario: Scenario) -> tuple[list[Event], Truth]:
    """The whole scenario in memory (tests, small runs)."""
    truth = Truth()
    events = list(iter_events(scenario, truth))
    return events, truth
