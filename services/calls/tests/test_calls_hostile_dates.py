"""Dates and instants at the ends of what Python and PostgreSQL can hold, sent to the calls API: refused 422 in
Japanese, and nothing stored. Before, a callback window whose UTC time is before year 1 or after 9999
(0001-01-01T00:00+14:00) was accepted into an event no PostgreSQL driver can write (asyncpg's astimezone(UTC)
overflows), and a day's statistics answered for 9999-12-31 and 0001-01-01."""

from __future__ import annotations

from calls_harness import jst, running_line


async def test_dates_beyond_the_service_years_are_refused_not_a_server_error(settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 30)) as line:
        for url in (
            "/v1/lines/main/days/9999-12-31/stats",
            "/v1/lines/main/days/0001-01-01/stats",
            "/v1/lines/main/never-connected?start=9999-12-31",
            "/v1/lines/main/never-connected?start=0001-01-01&end=0001-01-02",
        ):
            r = await line.client.get(url, headers=line.city)
            assert r.status_code == 422, (url, r.status_code, r.text)
            assert "2000年から2199年まで" in r.json()["detail"], r.text
        r = await line.post("/v1/calls", line.phone_system, {"line": "main"}, expect=201)
        before = await line.raw_messages()
        for window in (
            {"window_start": "0001-01-01T00:00:00+14:00"},
            {"window_end": "9999-12-31T23:59:59-12:00"},
            {"window_start": "2021-04-09T09:00:00+09:00", "window_end": "9999-12-31T20:00:00+09:00"},
        ):
            answer = await line.client.post(
                f"/v1/calls/{r['call_id']}/callback",
                headers=line.phone_system,
                json={"phone": "090-1234-5678", **window},
            )
            assert answer.status_code == 422, (window, answer.status_code, answer.text)
            assert "2000年から2199年まで" in answer.json()["detail"], answer.text
        assert await line.raw_messages() == before
        stats = await line.get("/v1/lines/main/days/2021-04-08/stats", line.city)
        assert stats["received"] == 1
