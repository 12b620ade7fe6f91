"""Nothing a client puts in a path or a header comes back verbatim, or reaches a log line, when it
holds personal data: the problem document's `instance` (RFC 9457) and the request id are echoed
on every error, so a My Number in a path segment or an X-Request-Id must be left out of both."""

from __future__ import annotations

import json
import re
from typing import Annotated

import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, Request

from madoguchi_shared.auth import Principal, Role, require
from madoguchi_shared.pii import my_number_check_digit
from madoguchi_shared.web import create_service_app
from tests.utils.auth import staff_headers

FIRST11 = "98765432101"
MN = FIRST11 + str(my_number_check_digit(FIRST11))


def router() -> APIRouter:
    r = APIRouter(prefix="/v1")

    @r.get("/items/{item}")
    async def item(item: str, principal: Annotated[Principal, Depends(require())]):
        from madoguchi_shared.errors import Invalid

        raise Invalid(f"備品一覧にない項目です: {item}")  # a refusal quoting what was typed

    @r.get("/wards/{ward}/summary")
    async def summary(ward: str, request: Request, principal: Annotated[Principal, Depends(require())]):
        await principal.check_ward(request, ward)
        return {"ward": ward}

    return r


@pytest.fixture
async def client(settings):
    app = create_service_app("echo", settings, routers=[router()], use_db=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c


@pytest.fixture
def log_lines():
    """The JSON log lines the test's requests write (rendered as in production), then the session's
    logging back as it was."""
    saved = structlog.get_config()
    factory = structlog.testing.CapturingLoggerFactory()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    lines: list[str] = []
    yield lines, factory
    structlog.configure(**saved)


def logged(log_lines) -> str:
    _, factory = log_lines
    text = "\n".join(str(call.args[0]) for call in factory.logger.calls)
    assert '"event": "request"' in text  # the request's own line was captured
    return text


def assert_absent(text: str) -> None:
    compact = re.sub(r"[^0-9]", "", text)
    assert MN not in compact, text


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/wards/{MN}/summary",  # a route, refused (403: not the supporter's ward)
        f"/v1/nowhere/{MN}",  # no route (404)
        f"/v1/nowhere/{MN[:4]}-{MN[4:8]}-{MN[8:]}",
        "/v1/nowhere/" + "".join(f"%{ord(c):02X}" for c in MN),
        f"/v1/nowhere/{MN}/" + "1/" * 4000,  # too long to be read through the guard: not echoed at all
    ],
)
async def test_a_path_holding_a_my_number_is_not_echoed(client, log_lines, settings, js, municipality, path) -> None:
    headers = await staff_headers(js, settings, municipality, "S9", [Role.supporter], ["chuo"])
    answer = await client.get(path, headers=headers)
    assert answer.status_code in (403, 404)
    body = answer.json()
    assert body["instance"]  # still says where: the route, or a redacted path
    assert_absent(json.dumps(body, ensure_ascii=False))
    assert_absent(str(dict(answer.headers)))
    assert_absent(logged(log_lines))
    if answer.status_code == 403:  # the refusal is recorded for the auditors, without the value
        stored = await _admin_stream_text(js, municipality)
        assert "admin.access_denied" in stored
        assert_absent(stored.replace(municipality, ""))


@pytest.mark.parametrize("header", ["x-request-id", "x-correlation-id"])
async def test_an_id_header_holding_a_my_number_is_replaced(
    client, log_lines, settings, js, municipality, header
) -> None:
    headers = await staff_headers(js, settings, municipality, "S9", [Role.supporter], ["chuo"])
    answer = await client.get("/v1/wards/kita/summary", headers={**headers, header: f"req-{MN}"})
    assert answer.status_code == 403
    assert_absent(json.dumps(answer.json(), ensure_ascii=False))
    assert_absent(str(dict(answer.headers)))
    assert answer.headers["x-request-id"]  # a fresh id instead
    assert_absent(logged(log_lines))


async def test_an_ordinary_request_id_is_kept(client, settings, js, municipality) -> None:
    headers = await staff_headers(js, settings, municipality, "S9", [Role.supporter], ["chuo"])
    answer = await client.get("/v1/wards/kita/summary", headers={**headers, "x-request-id": "trace-0192f0a4"})
    assert answer.headers["x-request-id"] == "trace-0192f0a4"
    assert answer.json()["request_id"] == "trace-0192f0a4"
    assert answer.json()["instance"] == "/v1/wards/kita/summary"


async def _admin_stream_text(js, municipality: str) -> str:
    from madoguchi_shared import bus, subjects

    found = []
    async for _seq, subject, data, _h in bus.load_filter(js, subjects.context_filter("admin", municipality)):
        found.append(subject + " " + bytes(data).decode())
    return "\n".join(found)


@pytest.mark.parametrize("username", [MN, "09012345678", f"{MN[:4]}-{MN[4:8]}-{MN[8:]}"])
async def test_a_login_with_personal_data_as_the_username_records_no_value(
    client, log_lines, js, municipality, username
) -> None:
    answer = await client.post(
        "/v1/auth/token", json={"username": username, "password": "x" * 12, "municipality": municipality}
    )
    assert answer.status_code == 401
    assert_absent(json.dumps(answer.json(), ensure_ascii=False))
    stored = await _admin_stream_text(js, municipality)
    assert "admin.login_failed" in stored  # the attempt is still recorded for the auditors
    digits = re.sub(r"[^0-9]", "", username)
    assert digits not in re.sub(r"[^0-9]", "", stored.replace(municipality, ""))
    assert_absent(logged(log_lines).replace(municipality, ""))


@pytest.mark.parametrize("staff_id", [MN, "09012345678", "S" + MN])
async def test_a_staff_id_holding_personal_data_is_refused(client, settings, js, municipality, staff_id) -> None:
    headers = await staff_headers(js, settings, municipality, "M9", [Role.manager])
    answer = await client.post("/v1/staff", json={"staff_id": staff_id, "roles": ["auditor"]}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert_absent(json.dumps(answer.json(), ensure_ascii=False))
    assert re.sub(r"[^0-9]", "", staff_id) not in re.sub(r"[^0-9]", "", await _admin_stream_text(js, municipality))
    ok = await client.post("/v1/staff", json={"staff_id": "S0101", "roles": ["auditor"]}, headers=headers)
    assert ok.status_code in (200, 201), ok.text


async def test_a_refusal_quoting_personal_data_leaves_it_out(client, settings, js, municipality) -> None:
    headers = await staff_headers(js, settings, municipality, "S9", [Role.supporter], ["chuo"])
    for typed in (MN, "090-1234-5678", "taro@example.jp"):
        answer = await client.get(f"/v1/items/{typed}", headers=headers)
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert detail.startswith("備品一覧にない項目です: ") and "個人情報のため省略" in detail, detail
        assert typed not in answer.text and "5678" not in answer.text
    answer = await client.get("/v1/items/tv", headers=headers)
    assert answer.json()["detail"] == "備品一覧にない項目です: tv"
