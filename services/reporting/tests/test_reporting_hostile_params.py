"""Parameters an API fuzzer (schemathesis) found turning into 500s: dates before the Gregorian calendar
in Japan or at the end of the representable range, revisions beyond the column's range, ids that cannot
be a subject token. Each is a clear Japanese refusal now, never a server error."""

from __future__ import annotations

from madoguchi_shared.events.base import Role

from reporting_harness import headers, reporting_settings, running_app


async def test_out_of_range_and_impossible_parameters_are_refused_in_japanese(settings, municipality, js):
    s = reporting_settings(settings)
    async with running_app(s) as (_app, client):
        manager = await headers(js, s, municipality, Role.manager, ())

        async def status(method: str, path: str, params: dict | None = None) -> tuple[int, dict]:
            r = await client.request(method, path, params=params, headers=manager)
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
            return r.status_code, r.json()

        for path, params in (
            ("/v1/reports/weekly", {"week_start": "0007-02-01"}),
            ("/v1/reports/weekly", {"week_start": "9999-12-31"}),
            ("/v1/reports/final", {"from": "0225-12-09"}),
            ("/v1/reports/line/daily", {"date": "0262-11-20", "line": "Dm"}),
            ("/v1/reports/daily", {"desk": "chuo-1", "date": "1872-12-31"}),
        ):
            code, body = await status("GET", path, params)
            assert code == 422, (path, params, body)
            assert body["errors"][0]["message"] == "2000年から2199年までの日付を指定してください。"
        code, body = await status("GET", "/v1/reports/x/submissions/4307782778874834026758144", {"format": "csv"})
        assert code == 422 and body["errors"][0]["message"] == "2147483647以下の値を指定してください。"
        code, body = await status("POST", "/v1/deliverables/%22%C3%BD/submit")
        assert code == 404 and body["title"] == "見つかりません"
        # pydantic's own refusals come back in Japanese too
        code, body = await status("GET", "/v1/reports/weekly", {"week_start": "next monday"})
        assert code == 422 and body["errors"][0]["message"] == "日付（YYYY-MM-DD）で指定してください。"
        code, body = await status("GET", "/v1/reports/weekly", {})
        assert code == 422 and body["errors"][0]["message"] == "必須の項目です。"
