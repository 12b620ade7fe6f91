"""Identity and access (issue 2 §5): login, role and ward checks, 403s recorded as events, and
the operational endpoints every service shares."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, SecretStr

from madoguchi_shared import auth, bus, subjects
from madoguchi_shared.auth import Principal, Role, issue_token, require
from madoguchi_shared.pii import FreeText
from madoguchi_shared.web import create_service_app
from tests.utils.auth import staff_headers


class Opinion(BaseModel):
    text: FreeText


def demo_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/wards/{ward}/opinions")
    async def post_opinion(
        ward: str,
        body: Opinion,
        request: Request,
        principal: Annotated[Principal, Depends(require(Role.supporter, Role.manager))],
    ):
        await principal.check_ward(request, ward)
        return {"ok": True, "length": len(body.text)}

    @router.get("/wards/{ward}/summary")
    async def summary(ward: str, request: Request, principal: Annotated[Principal, Depends(require())]):
        await principal.check_ward(request, ward)
        return {"ward": ward}

    return router


@pytest.fixture
async def client(settings):
    app = create_service_app("demo", settings, routers=[demo_router()], use_db=True)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            c.app = app
            yield c


async def bearer(js, settings, municipality, roles, wards=()):
    return await staff_headers(js, settings, municipality, "S9", roles, wards)


async def denied_events(js, municipality):
    found = []
    async for _seq, _subject, data, _h in bus.load_filter(js, subjects.context_filter("admin", municipality, "access")):
        from madoguchi_shared.events import parse_event

        found.append(parse_event(data))
    return found


async def test_supporter_of_one_ward_cannot_act_on_another(client, settings, js, municipality):
    headers = await bearer(js, settings, municipality, [Role.supporter], ["chuo"])
    ok = await client.post("/v1/wards/chuo/opinions", json={"text": "番号札の案内がわかりやすい"}, headers=headers)
    assert ok.status_code == 200
    refused = await client.post("/v1/wards/kita/opinions", json={"text": "ok"}, headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "担当区以外の窓口は操作できません。"
    [event] = await denied_events(js, municipality)
    assert event.reason == "ward" and event.target_ward == "kita" and event.path == "/v1/wards/{ward}/opinions"


async def test_auditor_cannot_write_but_can_read_every_ward(client, settings, js, municipality):
    headers = await bearer(js, settings, municipality, [Role.auditor])
    assert (await client.post("/v1/wards/chuo/opinions", json={"text": "x"}, headers=headers)).status_code == 403
    assert (await client.get("/v1/wards/teine/summary", headers=headers)).status_code == 200
    [event] = await denied_events(js, municipality)
    assert event.reason == "role" and set(event.required_roles) == {Role.supporter, Role.manager}


async def test_missing_expired_or_forged_token_is_401(client, settings, municipality):
    assert (await client.get("/v1/wards/chuo/summary")).status_code == 401
    expired = issue_token(settings, staff_id="S1", roles=[Role.manager], municipality=municipality, ttl=-10)
    assert (
        await client.get("/v1/wards/chuo/summary", headers={"Authorization": f"Bearer {expired}"})
    ).status_code == 401
    forged = issue_token(
        settings.model_copy(update={"token_secret": SecretStr("another-secret-another-secret-xx")}),
        staff_id="S1",
        roles=[Role.manager],
        municipality=municipality,
    )
    assert (
        await client.get("/v1/wards/chuo/summary", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401


async def test_login_issues_a_token_and_records_attempts(client, js, municipality):
    await auth.add_staff(
        js, municipality=municipality, staff_id="M0001", roles=[Role.manager], password="correct horse battery"
    )
    bad = await client.post(
        "/v1/auth/token", json={"username": "M0001", "password": "wrong", "municipality": municipality}
    )
    assert bad.status_code == 401
    good = await client.post(
        "/v1/auth/token", json={"username": "M0001", "password": "correct horse battery", "municipality": municipality}
    )
    assert good.status_code == 200
    token = good.json()["access_token"]
    me = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {
        "staff_id": "M0001",
        "roles": ["manager"],
        "wards": [],
        "municipality": municipality,
        "kind": "staff",
    }
    types = [
        s.event.type
        for s in await bus.load(js._nc, subjects.aggregate_subject("admin", municipality, "staff", "M0001"))
    ]
    assert types == ["admin.staff_account_created", "admin.login_failed", "admin.login_succeeded"]


async def test_personal_data_in_free_text_is_a_422_that_does_not_echo_it(client, settings, municipality, js):
    headers = await bearer(js, settings, municipality, [Role.supporter], ["chuo"])
    number = "1234 5678 9018"
    response = await client.post("/v1/wards/chuo/opinions", json={"text": f"番号は{number}です"}, headers=headers)
    assert response.status_code == 422
    body = response.text
    assert "1234" not in body and "9018" not in body
    assert response.json()["errors"][0]["field"] == "text"


async def test_health_readiness_metrics_and_openapi(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"nats": "ok", "postgres": "ok"}
    await client.get("/v1/wards/chuo/summary")
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/v1/wards/{ward}/summary",status="401"}' in metrics
    assert "/v1/auth/token" in (await client.get("/openapi.json")).json()["paths"]
    assert (await client.get("/healthz", headers={"x-request-id": "abc"})).headers["x-request-id"] == "abc"
