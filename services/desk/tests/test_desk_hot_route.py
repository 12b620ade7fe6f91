"""The busiest desk commands are served by HotRoute's direct handler (issue 19): the same answers as
FastAPI's own handler gives for the same requests, for a success and for every refusal."""

from __future__ import annotations

from datetime import datetime

from desk_api import FakeClock, auth, desk_app

from madoguchi_desk import api
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO


async def _fastapi_own_handler() -> None:
    """A dependency override of nothing: with any override set, HotRoute hands the request to FastAPI."""


def _comparable(body: dict) -> dict:
    """A problem document without what differs between two requests."""
    return {k: v for k, v in body.items() if k not in ("instance", "request_id", "correlation_id")}


async def test_hot_routes_answer_as_fastapis_own_handler_does(settings, municipality):
    hot = {r.path.removeprefix("/v1/desks") for r in api.queue_router.routes if getattr(r, "hot", False)}
    assert {"/{desk_id}/tickets", "/{desk_id}/tickets/call-next", "/{desk_id}/walk-in"} <= hot
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    async with desk_app(settings, municipality, clock) as (app, client):
        js = app.state.js
        supporter = await auth(js, settings, municipality, "S1", Role.supporter, ("kita",))
        operator = await auth(js, settings, municipality, "O1", Role.operator)
        requests = [
            ("/v1/desks/kita-1/tickets", supporter, None),  # 201
            ("/v1/desks/kita-1/tickets", {}, None),  # 401: no token
            ("/v1/desks/kita-1/tickets", {"Authorization": "Bearer not-a-token"}, None),  # 401
            ("/v1/desks/kita-1/tickets", operator, None),  # 403: role (recorded)
            ("/v1/desks/chuo-1/tickets", supporter, None),  # 403: another ward (recorded)
            ("/v1/desks/nowhere-1/tickets", supporter, None),  # 404
            ("/v1/desks/kita-1/tickets/call-next", supporter, {"version": "x"}),  # 422 (FastAPI's own)
            ("/v1/desks/kita-1/tickets/call-next", supporter, {"surprise": 1}),  # 422: extra field
        ]
        dispatch = app.hot_dispatch
        served = dispatch.served if dispatch is not None else 0
        for path, headers, body in requests:
            fast = await client.post(path, headers=headers, json=body)
            app.dependency_overrides[_fastapi_own_handler] = _fastapi_own_handler
            try:
                own = await client.post(path, headers=headers, json=body)
            finally:
                app.dependency_overrides.clear()
            assert fast.status_code == own.status_code, (path, fast.text, own.text)
            assert fast.headers["content-type"] == own.headers["content-type"]
            if fast.status_code == 201:
                a, b = fast.json(), own.json()
                assert b["ticket_no"] == a["ticket_no"] + 1 and b["version"] == a["version"] + 1
                assert a.keys() == b.keys() and a["events"][0].keys() == b["events"][0].keys()
                assert a["events"][0]["type"] == "desk.ticket_issued" and a["events"][0]["seq"] == a["version"]
            else:
                assert _comparable(fast.json()) == _comparable(own.json()), path
        # the first six went past the router (HotDispatch); the 422s and every overridden request through it
        assert app.hot_dispatch is not None and app.hot_dispatch.served - served == 6
