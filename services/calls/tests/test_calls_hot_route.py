"""The calls command that every incoming call makes is served by HotRoute's direct handler (issue 19):
the same answers as FastAPI's own handler gives, for a success and for every refusal."""

from __future__ import annotations

from calls_harness import jst, running_line

from madoguchi_calls import api


async def _fastapi_own_handler() -> None:
    """A dependency override of nothing: with any override set, HotRoute hands the request to FastAPI."""


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("instance", "request_id", "correlation_id")}


async def test_receive_call_answers_as_fastapis_own_handler_does(settings, municipality):
    assert next(r for r in api.calls_router.routes if r.path == "/v1/calls").hot
    async with running_line(settings, municipality, jst(2021, 4, 8, 10, 0)) as line:
        requests = [
            (line.phone_system, {"line": "main"}, None),  # 201
            (line.operator, {}, None),  # 201: the default line
            (line.city, {}, None),  # 403: city staff do not record calls
            ({}, {}, None),  # 401
            (line.operator, {"line": "nope"}, None),  # 404: no such line
            (line.operator, {"line": "main", "surprise": 1}, None),  # 422: extra field
            (line.operator, None, b"{not json"),  # 422: not JSON
            (line.operator, None, b""),  # 422: no body
        ]
        for headers, body, raw in requests:
            kwargs = {"json": body} if raw is None else {"content": raw}
            send = {**headers, "Content-Type": "application/json"}
            fast = await line.client.post("/v1/calls", headers=send, **kwargs)
            line.app.dependency_overrides[_fastapi_own_handler] = _fastapi_own_handler
            try:
                own = await line.client.post("/v1/calls", headers=send, **kwargs)
            finally:
                line.app.dependency_overrides.clear()
            assert fast.status_code == own.status_code, (body, raw, fast.text, own.text)
            assert fast.headers["content-type"] == own.headers["content-type"]
            if fast.status_code == 201:
                a, b = fast.json(), own.json()
                assert a.keys() == b.keys() and a["route"] == b["route"] and a["call_id"] != b["call_id"]
                assert [e["type"] for e in a["events"]] == [e["type"] for e in b["events"]]
            else:
                assert _comparable(fast.json()) == _comparable(own.json()), (body, raw)
