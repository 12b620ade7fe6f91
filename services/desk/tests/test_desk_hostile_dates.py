"""Dates and instants at the ends of what Python and PostgreSQL can hold, sent to the desk API: each is refused 422 in
Japanese. Before, a calendar day of 9999-12-31 (the day after it is no date), a range ending there, 400 business days
before 0001-01-01, and an instant whose UTC or Tokyo time is before year 1 or after 9999 (0001-01-01T00:00+14:00,
9999-12-31T23:59:59-12:00) raised OverflowError in the service: a 500."""

from __future__ import annotations

from datetime import datetime

import pytest
from desk_api import FakeClock, desk_app

from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from tests.utils.auth import staff_headers

GETS = [
    "/v1/calendar/days/9999-12-31",
    "/v1/calendar/days/0001-01-01",
    "/v1/calendar/next-business-day?after=9999-12-31",
    "/v1/calendar/add-business-days?date=9999-12-31&n=400",
    "/v1/calendar/add-business-days?date=0001-01-01&n=-400",
    "/v1/calendar/business-days?start=9999-12-01&end=9999-12-31",
    "/v1/desks/higashi-1/open?at=9999-12-31T23:59:59-12:00",
    "/v1/desks/higashi-1/open?at=0001-01-01T00:00:00%2B14:00",
    "/v1/desks/higashi-1/open?at=9999-12-31T20:00:00%2B09:00",
    "/v1/desks/higashi-1/status?date=9999-12-31",
]
POSTS = [
    ("/v1/calendar/suspensions", {"start": "0001-01-01T00:00:00+14:00", "reason": "pandemic"}),
    (
        "/v1/calendar/suspensions",
        {"start": "2021-04-06T12:00:00+09:00", "end": "9999-12-31T23:59:59-12:00", "reason": "pandemic"},
    ),
    ("/v1/calendar/delays", {"until": "9999-12-31T23:59:59.999999-23:59", "reason": "disaster"}),
    ("/v1/calendar/special-openings", {"date": "9999-12-31", "open": "09:00", "close": "12:00"}),
    ("/v1/desks/higashi-1/day/preparation", {"start": "0001-01-01T00:00:00+14:00", "end": "2021-04-06T08:45:00+09:00"}),
]


@pytest.mark.timeout(120)
async def test_dates_beyond_the_service_years_are_refused_not_a_server_error(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 11, 0, tzinfo=TOKYO))
    both = await staff_headers(js, settings, municipality, "S1", [Role.supporter, Role.manager], ("higashi",))
    async with desk_app(settings, municipality, clock) as (_app, client):
        for url in GETS:
            r = await client.get(url, headers=both)  # (the test client raises what the service raised)
            assert r.status_code == 422, (url, r.status_code, r.text)
            assert "2000年から2199年まで" in r.json()["detail"], (url, r.text)
        for url, body in POSTS:
            r = await client.post(url, headers=both, json=body)
            assert r.status_code == 422, (url, body, r.status_code, r.text)
            assert "2000年から2199年まで" in r.json()["detail"], (url, r.text)
        # the years themselves still work
        r = await client.get("/v1/calendar/days/2199-12-30", headers=both)
        assert r.status_code == 200, r.text
        r = await client.get("/v1/desks/higashi-1/open?at=2021-04-06T10:00:00%2B09:00", headers=both)
        assert r.status_code == 200, r.text
