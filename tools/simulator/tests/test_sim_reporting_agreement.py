"""The ground truth speaks the reporting service's language: for a simulated week, every daily
figure of the simulator's truth equals what the reporting service's own independent recount
(`madoguchi_reporting.recount`, the REP-5 verifier) computes from the same events, key by key."""

from __future__ import annotations

from datetime import date

from sim_harness import scenario

from madoguchi_reporting import recount as reporting

from madoguchi_sim.generator import generate


def test_every_daily_figure_matches_the_reporting_recount():
    events, truth = generate(scenario(days=4, seed=13))
    fold = reporting.fold([e for e in events if e.context == "desk"], [e for e in events if e.context == "calls"])
    theirs = reporting.expected(fold, date(2021, 4, 5), date(2021, 4, 11))
    ours = truth.reports()["011002"]
    # the city-wide daily report is the desks' dailies side by side: checked against them below
    city = {rid: figures for rid, figures in theirs.items() if rid.startswith("daily_city_")}
    assert len(city) == 4
    for rid, figures in city.items():
        day = rid.removeprefix("daily_city_")
        for key, value in figures.items():
            if key.startswith("desks.") and key.endswith(".visitors"):
                desk = key.split(".")[1]
                assert value == ours[f"daily_{desk}_{day}"]["visitors"], (rid, key)
    assert set(ours) == {rid for rid in theirs if rid.startswith("daily_") and rid not in city}
    mismatches = [
        (rid, key, figures.get(key), theirs[rid].get(key))
        for rid, figures in ours.items()
        for key in set(figures) | set(theirs[rid])
        if (figures.get(key) or 0) != (theirs[rid].get(key) or 0)
    ]
    assert mismatches == []
    assert sum(len(f) for f in ours.values()) > 3000
