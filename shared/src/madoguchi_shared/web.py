"""What every service's FastAPI app shares: lifespan with bus and pool, health, metrics,
request and correlation ids in logs, RFC 9457 problem+json errors, and the login route.

Domain errors map to HTTP here, at one boundary; library errors are mapped to domain errors
where they occur (bus.ConcurrencyConflict is raised by bus.append).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from nats import errors as nats_errors
from nats.js import errors as js_errors
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from madoguchi_shared import auth, bus, hot, logging, sealed
from madoguchi_shared.entropy import take
from madoguchi_shared.errors import Conflict, DomainError, Forbidden, Gone, Invalid, NotFound, Refused, Unavailable
from madoguchi_shared.narrow import is_dict
from madoguchi_shared.nats_typed import jetstream
from madoguchi_shared.pii import PersonalDataFound, find_personal_data
from madoguchi_shared.request_bound import DB_REQUEST_TIMEOUT
from madoguchi_shared.subjects import SubjectError
from madoguchi_shared.settings import Settings

log = logging.get_logger(__name__)

PROBLEM = "application/problem+json"


def _instance(request: Request) -> str:
    """The problem's `instance`: the request's path, unless it holds personal data (a My Number
    typed into an id, percent-encoded or not): then the route it matched, or the redacted path.
    Never the value itself: the problem document is echoed to the client and logged by proxies."""
    path = request.url.path
    if path.isascii() and not any(c.isdigit() for c in path):
        return path
    # (no path of the APIs is this long: a longer one is not read through the guard, which would take seconds)
    if len(path) <= 512 and not find_personal_data(urllib.parse.unquote(path)) and not find_personal_data(path):
        return path
    route = getattr(request.scope.get("route"), "path", None)
    return route or "/［個人情報を含むため省略］"


_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _client_id(raw: bytes) -> str | None:
    """A request or correlation id the client sent, if it is a plain id with no personal data in it
    (it is bound into every log line of the request and echoed in the answer)."""
    value = raw.decode("latin-1")
    if not _SAFE_ID.fullmatch(value):
        return None
    if sum(c.isdigit() for c in value) >= 10 and find_personal_data(value):
        return None
    return value


def _redacted(detail: str) -> str:
    """A refusal's detail may quote what was typed (「備品一覧にない項目です: …」): personal data in it
    is left out, never echoed to the client."""
    for finding in reversed(find_personal_data(detail)):
        detail = detail[: finding.start] + "［個人情報のため省略］" + detail[finding.end :]
    return detail


def problem(status: int, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    detail = _redacted(detail)
    body = {
        "type": f"https://madoguchi.invalid/problems/{status}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": _instance(request),
        "request_id": getattr(request.state, "request_id", None),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class FieldProblem(BaseModel):
    """One refused input of a 422: where (`field`, dotted), what is wrong (Japanese), pydantic's error type."""

    field: str
    message: str
    type: str | None = None


class Problem(BaseModel):
    """Every error every service answers: an RFC 9457 problem document (`application/problem+json`) with a
    Japanese title and detail. A refusal may add `field` (the input concerned), `code` (machine-readable),
    `errors` (a 422's refused inputs) or other members of its own."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://madoguchi.invalid/problems/404"])
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    field: str | None = None
    code: str | None = None
    errors: list[FieldProblem] | None = None


# What each status means in this system, for the `responses=` of every route (see `problems`).
PROBLEMS: dict[int, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in {
        400: "The request cannot be processed as sent.",
        401: "No valid bearer token (missing, expired, revoked or for another municipality).",
        403: "The token's roles or wards do not allow this, or the account must change its password first.",
        404: "Nothing by that id (or an id no record can have).",
        409: "Not in the current state (the record's state, or another command came first).",
        410: "Already erased.",
        422: "The input was refused (`errors` lists each field; the input is never echoed).",
        423: "The account is locked.",
        429: "Too many failed logins from this address; wait for Retry-After seconds.",
        503: "A part the request needs (the bus, the database) is down for a moment; retry after Retry-After.",
    }.items()
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a router or a route: the problem documents it can answer, e.g.
    `APIRouter(responses=problems(401, 403, 422, 503))`, `@router.post(..., responses=problems(404, 409))`."""
    return {status: PROBLEMS[status] for status in statuses}


def downloads(*media_types: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers a file (a report as xlsx, an export as zip) besides JSON."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {status: {"content": {media_type: binary for media_type in media_types}}}


def event_stream(
    description: str = "Server-sent events (text/event-stream), until the client goes.",
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering server-sent events."""
    return {200: {"description": description, "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


# Every route behind a bearer token: no token (401), not allowed (403), a part down (503).
AUTHED = problems(401, 403, 503)
# ... and taking input (a body, a query or a path parameter): refused input (422).
AUTHED_INPUT = problems(401, 403, 422, 503)


def _problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI of an app with every problem body under `application/problem+json`, the media type the
    services send (FastAPI puts a response model under the route's own, application/json), and FastAPI's
    own 422 (HTTPValidationError, never sent) replaced by the problem model. An error response declared
    with a body of its own (e.g. /readyz's 503) keeps it."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not is_dict(operation):
                continue
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation and "400" not in responses:  # a body that is not JSON in UTF-8
                responses["400"] = {"description": PROBLEMS[400]["description"]}
            for status, response in responses.items():
                if status[:1] not in "45":
                    if "text/event-stream" in response.get("content", {}):  # never JSON (FastAPI's default)
                        response["content"].pop("application/json", None)
                    continue
                content = response.setdefault("content", {})
                body = content.get("application/json")
                if not content or (
                    body is not None
                    and body.get("schema", {}).get("$ref", "").endswith(("/Problem", "/HTTPValidationError"))
                ):
                    content.pop("application/json", None)
                    content[PROBLEM] = {"schema": problem_ref}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if "Problem" not in components:
        own = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(own.pop("$defs", {}))
        components["Problem"] = own
    return schema


def _install_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_json(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_TITLES = {
    400: "要求が正しくありません",
    401: "ログインが必要です",
    403: "権限がありません",
    404: "見つかりません",
    405: "許可されていない操作です",
    409: "競合が発生しました",
    422: "入力内容に誤りがあります",
    423: "アカウントがロックされています",
    429: "しばらく待ってからお試しください",
}


# The one place a domain refusal becomes an HTTP status: by its class (the nearest in its MRO), with the
# problem title the person reads. A domain never names a status.
DOMAIN_STATUS: dict[type[DomainError], tuple[int, str]] = {
    Refused: (409, "現在の状態では実行できません"),
    Invalid: (422, "入力内容に誤りがあります"),
    Forbidden: (403, "権限がありません"),
    NotFound: (404, "見つかりません"),
    Conflict: (409, "競合が発生しました"),
    Gone: (410, "既に消去されています"),
    Unavailable: (503, "一時的に利用できません"),
    DomainError: (400, "要求が正しくありません"),
}


def status_of(exc: DomainError) -> tuple[int, str]:
    """The HTTP status and problem title of a domain refusal."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return DOMAIN_STATUS[DomainError]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        status, title = status_of(exc)
        response = problem(status, title, exc.detail, request, field=exc.field, code=exc.code, **exc.extra)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(nats_errors.Error)
    async def bus_error(request: Request, exc: nats_errors.Error):
        # The bus is down or restarting (no connection, no answer in time, JetStream not ready):
        # a 503 the client may retry, never a 500. A JetStream refusal of the request itself is a bug.
        if isinstance(exc, js_errors.APIError) and not isinstance(exc, js_errors.ServiceUnavailableError):
            return await unexpected(request, exc)
        log.warning("request.bus_unavailable", error_type=type(exc).__name__)
        return await domain_error(request, Unavailable(part="bus"))

    @app.exception_handler(OSError)
    async def part_down(request: Request, exc: OSError):
        # A refused or reset connection (the database restarting) or a part that did not answer in
        # time (a live view waiting for the bus that came back): 503, the client may retry.
        if not isinstance(exc, ConnectionError | TimeoutError):
            return await unexpected(request, exc)
        log.warning("request.part_unavailable", error_type=type(exc).__name__)
        return await domain_error(request, Unavailable(part="connection"))

    @app.exception_handler(auth.LoginRefused)
    async def login_refused(request: Request, exc: auth.LoginRefused):
        response = problem(
            exc.status, _TITLES.get(exc.status, "ログインできません"), exc.detail, request, code=exc.code
        )
        if exc.retry_after:
            response.headers["retry-after"] = str(exc.retry_after)
        return response

    @app.exception_handler(bus.ConcurrencyConflict)
    async def conflict(request: Request, exc: bus.ConcurrencyConflict):
        return problem(
            409, "競合が発生しました", "他の操作が先に行われました。画面を更新してからもう一度お試しください。", request
        )

    @app.exception_handler(PersonalDataFound)
    async def personal_data(request: Request, exc: PersonalDataFound):
        return problem(422, "個人情報が含まれています", str(exc), request)

    @app.exception_handler(SubjectError)
    async def no_such_id(request: Request, exc: SubjectError):
        # An id in the path that no record can have (a dot, a space, a character outside the id
        # alphabet): nothing by that id exists. Never echo it: it may be anything.
        return problem(
            404, "見つかりません", "指定された識別子の記録はありません（識別子は英数字・ハイフン・下線のみ）。", request
        )

    @app.exception_handler(ValidationError)
    async def event_invalid(request: Request, exc: ValidationError):
        # An event (or another model built from the request) refused its own contents, e.g. free
        # text the PII guard refused: a 422 that never echoes the input.
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "message": _clean_msg(e.get("msg", ""), e.get("type"), e.get("ctx")),
                "type": e.get("type"),
            }
            for e in exc.errors(include_input=False)
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:1000]
        return problem(422, "入力内容に誤りがあります", detail, request, errors=errors)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError):
        # Never echo the input back: it may be the very personal data that was refused.
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": _clean_msg(e.get("msg", ""), e.get("type"), e.get("ctx")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:1000]
        return problem(422, "入力内容に誤りがあります", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's and the router's own (no route: 404, 405)
    async def http_error(request: Request, exc: StarletteHTTPException):
        response = problem(exc.status_code, _TITLES.get(exc.status_code, "エラー"), str(exc.detail), request)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("request.failed", error_type=type(exc).__name__)
        return problem(
            500, "システムエラー", "予期しないエラーが発生しました。時間をおいてもう一度お試しください。", request
        )

    try:
        from asyncpg import exceptions as pg_errors
    except ImportError:  # a service without a database
        return

    async def database_down(request: Request, exc: Exception):
        log.warning("request.database_unavailable", error_type=type(exc).__name__)
        return await domain_error(request, Unavailable(part="database"))

    async def connection_lost(request: Request, exc: Exception):
        # A pooled connection whose server died under it (kill -9, a failover): asyncpg says the
        # connection is closed, or that its protocol is in a state it cannot leave. 503, never 500
        # (a report asked for the moment PostgreSQL was killed answered 500 with InternalClientError).
        log.warning("request.database_connection_lost", error_type=type(exc).__name__, error=str(exc)[:200])
        return await domain_error(request, Unavailable(part="database"))

    for cls in (
        pg_errors.PostgresConnectionError,
        pg_errors.CannotConnectNowError,
        pg_errors.AdminShutdownError,
        pg_errors.CrashShutdownError,
    ):
        app.add_exception_handler(cls, database_down)
    for cls in (pg_errors.InterfaceError, pg_errors.InternalClientError):
        app.add_exception_handler(cls, connection_lost)

    from madoguchi_shared.db import NoAnswer

    # a frozen server: a request's statement or its wait for a connection ran out of its bound (before the
    # OSError handler, which would call it a connection to "a part")
    app.add_exception_handler(NoAnswer, database_down)


# Pydantic's messages in Japanese, by error type (ctx fills the limits); our own validators'
# messages (value_error / assertion_error) are Japanese already and pass through.
_MESSAGES_JA = {
    "missing": "必須の項目です。",
    "extra_forbidden": "この項目は指定できません。",
    "string_type": "文字列で指定してください。",
    "string_too_short": "{min_length}文字以上で指定してください。",
    "string_too_long": "{max_length}文字以内で指定してください。",
    "string_pattern_mismatch": "形式が正しくありません。",
    "int_type": "整数で指定してください。",
    "int_parsing": "整数で指定してください。",
    "int_from_float": "整数で指定してください。",
    "float_type": "数値で指定してください。",
    "float_parsing": "数値で指定してください。",
    "bool_type": "真偽値（true / false）で指定してください。",
    "bool_parsing": "真偽値（true / false）で指定してください。",
    "greater_than": "{gt}より大きい値を指定してください。",
    "greater_than_equal": "{ge}以上の値を指定してください。",
    "less_than": "{lt}より小さい値を指定してください。",
    "less_than_equal": "{le}以下の値を指定してください。",
    "too_short": "{min_length}件以上指定してください。",
    "too_long": "{max_length}件以内で指定してください。",
    "list_type": "一覧（配列）で指定してください。",
    "dict_type": "オブジェクトで指定してください。",
    "model_type": "オブジェクトで指定してください。",
    "model_attributes_type": "オブジェクトで指定してください。",
    "literal_error": "指定できる値のいずれかを選んでください（{expected}）。",
    "enum": "指定できる値のいずれかを選んでください（{expected}）。",
    "date_type": "日付（YYYY-MM-DD）で指定してください。",
    "date_parsing": "日付（YYYY-MM-DD）で指定してください。",
    "date_from_datetime_parsing": "日付（YYYY-MM-DD）で指定してください。",
    "date_from_datetime_inexact": "日付（YYYY-MM-DD）で指定してください。",
    "datetime_type": "日時（ISO 8601）で指定してください。",
    "datetime_parsing": "日時（ISO 8601）で指定してください。",
    "datetime_from_date_parsing": "日時（ISO 8601）で指定してください。",
    "timezone_aware": "時差（+09:00 など）付きの日時で指定してください。",
    "timezone_naive": "時差を付けずに指定してください。",
    "time_type": "時刻（HH:MM）で指定してください。",
    "time_parsing": "時刻（HH:MM）で指定してください。",
    "uuid_type": "UUID で指定してください。",
    "uuid_parsing": "UUID で指定してください。",
    "json_invalid": "JSON として読めません。",
    "json_type": "JSON で指定してください。",
    "union_tag_invalid": "種類（{discriminator}）の値が正しくありません。",
    "union_tag_not_found": "種類（{discriminator}）を指定してください。",
    "url_parsing": "URL の形式が正しくありません。",
    "decimal_parsing": "数値で指定してください。",
    "multiple_of": "{multiple_of}の倍数を指定してください。",
    "finite_number": "有限の数値を指定してください。",
    "frozen_field": "この項目は変更できません。",
}


def _clean_msg(msg: str, kind: str | None = None, ctx: dict[str, Any] | None = None) -> str:
    template = _MESSAGES_JA.get(kind or "")
    if template is None:
        own = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        # our validators speak Japanese; anything else (a library's English) gets a plain Japanese line
        return "値が正しくありません。" if own.isascii() else own
    try:
        return template.format(**{k: v for k, v in (ctx or {}).items()})
    except (KeyError, IndexError, ValueError):
        return template.split("{")[0].rstrip("（") + ("。" if "{" in template else "")


def _in_service_years(value: date) -> date:
    if not SERVICE_DATES[0] <= value <= SERVICE_DATES[1]:
        raise ValueError(f"{SERVICE_DATES[0].year}年から{SERVICE_DATES[1].year}年までの日付を指定してください。")
    return value


# The days a report, a calendar or a statistic can be asked for: wide enough for any contract,
# narrow enough that a date is never before the Gregorian calendar in Japan (和暦) or near the
# end of the representable range (a week or a month after it must still be a date).
SERVICE_DATES = (date(2000, 1, 1), date(2199, 12, 31))
ServiceDate = Annotated[date, AfterValidator(_in_service_years)]


def _instant_in_service_years(value: datetime) -> datetime:
    try:
        day = value.astimezone(UTC).date()
    except OverflowError:  # (0001-01-01T00:00+14:00 is no UTC instant: PostgreSQL's driver and every local time fail)
        day = None
    if day is None or not SERVICE_DATES[0] <= day <= SERVICE_DATES[1]:
        raise ValueError(f"{SERVICE_DATES[0].year}年から{SERVICE_DATES[1].year}年までの日時を指定してください。")
    return value


# An instant a command or a query can carry (a suspension's start, a callback window, an auditor's time filter): with
# its UTC offset, in the same years as ServiceDate, so that its UTC and Tokyo times are dates too.
ServiceInstant = Annotated[AwareDatetime, AfterValidator(_instant_in_service_years)]


class LoginRequest(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["S0001"])
    password: str = Field(min_length=1, max_length=200)
    municipality: str | None = Field(default=None, pattern=r"^[0-9]{6}$", examples=["011002"])
    new_password: str | None = Field(
        default=None, max_length=200, description="after a password reset: the new password (10+ characters)"
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    roles: list[str]
    wards: list[str]


class Health(BaseModel):
    status: str = "ok"


class Me(BaseModel):
    staff_id: str
    roles: list[str]
    wards: list[str]
    municipality: str
    kind: str


class LoginThrottle:
    """Failed logins per client address in a sliding window (in this process); over the limit the
    address waits (HTTP 429 with Retry-After) before its next attempt is even checked."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.failures: dict[str, list[float]] = {}

    def wait(self, client: str) -> int:
        now = time.monotonic()
        recent = [t for t in self.failures.get(client, ()) if t > now - self.window]
        if recent:
            self.failures[client] = recent
        else:
            self.failures.pop(client, None)
        if len(recent) >= self.limit:
            return int(recent[0] + self.window - now) + 1
        return 0

    def failed(self, client: str) -> None:
        if len(self.failures) > 10000:  # bounded memory under a spray from many addresses
            self.failures.clear()
        self.failures.setdefault(client, []).append(time.monotonic())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_with_throttle(
    request: Request, *, username: str, password: str, municipality: str | None, new_password: str | None = None
) -> auth.LoginResult:
    """The login every service (and the console) serves: throttled per client address, counted and
    locked per account (auth.login)."""
    settings: Settings = request.app.state.settings
    throttle: LoginThrottle = request.app.state.login_throttle
    client = client_address(request)
    wait = throttle.wait(client)
    if wait:
        raise auth.LoginRefused(
            429,
            "rate_limited",
            f"ログインの失敗が多すぎます。{wait}秒ほど待ってからもう一度お試しください。",
            retry_after=wait,
        )
    try:
        return await auth.login(
            request.app.state.js,
            settings,
            municipality=municipality or settings.municipality,
            staff_id=username,
            password=password,
            new_password=new_password,
            service=request.app.state.service_name,
        )
    except auth.LoginRefused as exc:
        if exc.code in ("bad_credentials", "locked"):
            throttle.failed(client)
        raise


def _auth_router() -> APIRouter:
    router = APIRouter(prefix="/v1/auth", tags=["auth"])

    @router.post("/token", response_model=TokenResponse, responses=problems(401, 403, 422, 423, 429, 503))
    async def login(body: LoginRequest, request: Request) -> TokenResponse:
        """Log in with staff id and password; returns a short-lived bearer token. After a password
        reset, send `new_password` too (403 `password_change_required` without it)."""
        result = await login_with_throttle(
            request,
            username=body.username,
            password=body.password,
            municipality=body.municipality,
            new_password=body.new_password,
        )
        return TokenResponse(
            access_token=result.token,
            expires_in=result.expires_in,
            roles=[r.value for r in result.account.roles],
            wards=list(result.account.wards),
        )

    @router.post("/logout", status_code=204, responses=AUTHED)
    async def logout(request: Request, principal: auth.Principal = Depends(auth.current_principal)) -> None:
        """Revoke this token in every service."""
        await auth.logout(request.app.state.js, principal, request.app.state.service_name)
        # refused here at once, not only when this service's own watch brings the revocation back
        request.app.state.accounts.revoke_locally(principal)

    @router.get("/me", responses=AUTHED)
    async def me(principal: auth.Principal = Depends(auth.current_principal)) -> Me:
        """Who the bearer token belongs to."""
        return Me(
            staff_id=principal.staff_id,
            roles=sorted(r.value for r in principal.roles),
            wards=list(principal.wards),
            municipality=principal.municipality,
            kind=principal.kind,
        )

    return router


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health()

    @router.get(
        "/readyz",
        responses={
            200: {"description": "Ready (or degraded: serving, some detail not ok)."},
            503: {
                "description": "Not ready: the bus or the database is unreachable.",
                "content": {"application/json": {}},
            },
        },
    )
    async def readyz(request: Request):
        """Readiness: the bus (and the database, where used) are reachable; plus the service's details."""
        checks: dict[str, str] = {}
        nc = getattr(request.app.state, "nc", None)
        checks["nats"] = "ok" if nc is not None and nc.is_connected else "down"
        pool = getattr(request.app.state, "pool", None)
        if request.app.state.use_db:
            try:
                if pool is None:
                    raise RuntimeError("no database pool")
                async with pool.acquire(timeout=2) as conn:
                    # bounded: a frozen server (stopped, a stalled disk) keeps a pooled connection open
                    # and never answers; /readyz hung 40 s+ and more instead of saying "down"
                    await conn.fetchval("SELECT 1", timeout=2)
                checks["postgres"] = "ok"
            except Exception:  # noqa: BLE001
                checks["postgres"] = "down"
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        # Details a service adds (e.g. its projections: behind the stream, dead letters since start).
        # A detail that is not "ok" makes the status "degraded" (still 200: the service serves).
        for name, detail in getattr(request.app.state, "ready_details", {}).items():
            body[name] = section = detail()
            if ready and any(v.get("status", "ok") != "ok" for v in section.values()):
                body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return router


# Security headers on every response (issue 15): no framing, no sniffing, no referrer leaving the
# site, and a CSP. An API answers JSON and runs no script at all; the console sets its own policy
# (`app.state.security_headers`, see security_headers()) and /docs its own (Swagger UI's one inline
# script allowed by hash).
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def security_headers(csp: str = API_CSP) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


_API_HEADERS = security_headers()
# Over HTTPS (uvicorn with a certificate, or a reverse proxy on loopback saying X-Forwarded-Proto:
# https): browsers keep to HTTPS for a year. Never sent over plain HTTP, where it means nothing.
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _random_id() -> str:
    """A random UUID (version 4) as 32 hex digits, what uuid.uuid4().hex gives without building a UUID
    object (a fifth of its cost): a request's id, and its correlation id when the client sent none."""
    raw = bytearray(take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class RequestContext:
    """Request and correlation ids bound into every log line of a request, the x-request-id
    response header, and the request metrics. Plain ASGI: BaseHTTPMiddleware costs a task group
    and two memory streams per request, which shows on every command."""

    QUIET = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(
        self, app: ASGIApp, *, service: str, requests: Counter, latency: Histogram, db_timeout: float | None = None
    ):
        self.app = app
        self.db_timeout = db_timeout  # DB_REQUEST_TIMEOUT for the time of each request (None: no database)
        self.service = service
        self.requests = requests
        self.latency = latency
        # the metric children by label values, looked up once (prometheus' labels() validates and locks each call)
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent_id = sent_correlation = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                sent_id = value
            elif key == b"x-correlation-id":
                sent_correlation = value
        request_id = (_client_id(sent_id) if sent_id else None) or _random_id()
        correlation = (_client_id(sent_correlation) if sent_correlation else None) or request_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation
        logging.clear()
        logging.bind(request_id=request_id, correlation_id=correlation, service=self.service)
        start = time.perf_counter()
        status = 500

        app_state = getattr(scope.get("app"), "state", None)
        secure = (
            auth.state_value(app_state, "security_headers", _API_HEADERS) if app_state is not None else _API_HEADERS
        )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.extend(h for h in secure if h[0] not in present)
                if scope.get("scheme") == "https":
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        bound = DB_REQUEST_TIMEOUT.set(self.db_timeout)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            DB_REQUEST_TIMEOUT.reset(bound)
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            method = scope["method"]
            counted = self._counted.get((method, route, status))
            if counted is None:
                counted = self._counted[(method, route, status)] = self.requests.labels(method, route, str(status))
            counted.inc()
            timed = self._timed.get((method, route))
            if timed is None:
                timed = self._timed[(method, route)] = self.latency.labels(method, route)
            timed.observe(elapsed)
            if route not in self.QUIET:
                log.info("request", method=method, route=route, status=status, ms=round(elapsed * 1000, 1))


class ServiceApp(FastAPI):
    """A service's FastAPI app whose hot routes (madoguchi_shared.hot) are dispatched before the router."""

    hot_dispatch: hot.HotDispatch | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self.hot_dispatch = hot.install(stack, self.router)
        return stack


def create_service_app(
    name: str,
    settings: Settings,
    *,
    routers: list[APIRouter],
    first: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[object]] | None = None,
    use_db: bool = False,
    version: str = "0.1.0",
    description: str = "",
    command_ids: bool = False,
) -> FastAPI:
    """A service app: bus (and pool) opened in the lifespan, shared routes, error mapping.

    `first`: the routers of the busiest commands, matched before every other route (FastAPI tries
    the routes in order, an included router's twice: a command at the end of seventy routes paid a
    fifth of its CPU time for finding its route). Their paths must not overlap the shared routes.
    `command_ids`: a POST with an Idempotency-Key is answered once (madoguchi_shared.command_ids)."""

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        logging.configure(settings.log_level, settings.log_json)
        app.state.nc = await bus.connect(settings.nats_url_for(name), name=f"madoguchi-{name}")
        sealed.use(sealed.TextVault(jetstream(app.state.nc)))  # reports and screens reveal free text
        app.state.js = jetstream(app.state.nc)
        await bus.ensure_streams(app.state.js, settings.stream_replicas)
        app.state.accounts = await auth.AccountDirectory(app.state.js).start(settings.stream_replicas)
        app.state.pool = None
        if use_db:
            from madoguchi_shared import db

            app.state.pool = await db.create_pool(settings.resolved_pg_dsn())
        log.info("service.started", service=name)
        try:
            if lifespan is None:
                _freeze_startup_heap()
                yield
            else:
                async with lifespan(app):
                    _freeze_startup_heap()
                    yield
        finally:
            await app.state.accounts.stop()
            if app.state.pool is not None:
                await app.state.pool.close()
            try:
                await app.state.nc.drain()
            except Exception:  # noqa: BLE001 - already closed
                pass
            log.info("service.stopped", service=name)

    app = ServiceApp(
        title=f"Madoguchi {name}",
        version=version,
        description=description,
        lifespan=app_lifespan,
        docs_url=None,
        redoc_url=None,
        # no OpenTelemetry here (Prometheus at /metrics, structlog): FastAPI otherwise asks the
        # global providers on every request whether they are configured (issue 19)
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    for router in first:
        app.include_router(router)
    _docs_route(app)
    app.state.settings = settings
    app.state.service_name = name
    app.state.use_db = use_db
    app.state.ready_details = {}  # name -> () -> {item: {"status": "ok" | ..., ...}}, shown by /readyz
    app.state.login_throttle = LoginThrottle(settings.login_rate_limit, settings.login_rate_window_seconds)
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    requests = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=registry)

    def gauge(name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=registry)

    app.state.metrics = {"requests": requests, "latency": latency, "gauge": gauge}

    if command_ids:  # inside RequestContext: a repeated command's answer gets the ids and security headers too
        from madoguchi_shared.command_ids import CommandIds

        app.add_middleware(CommandIds, state=app.state, replicas=settings.stream_replicas)
    app.add_middleware(
        RequestContext,
        service=name,
        requests=requests,
        latency=latency,
        db_timeout=settings.db_request_timeout if use_db else None,
    )

    _install_error_handlers(app)
    _install_openapi(app)
    app.include_router(_ops_router())
    app.include_router(_auth_router())
    from madoguchi_shared.staff import staff_router

    app.include_router(staff_router())
    for router in routers:
        app.include_router(router)
    return app


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, pydantic schemas, configuration) out of every later garbage
    collection: a full collection otherwise walks that whole heap again and again under load, a
    pause of milliseconds landing on whichever request allocated at the time. The holiday tables are
    loaded first: the `holidays` package imports every country's module on first use, a second or
    more of CPU that otherwise fell on the first command deciding on a date."""
    from madoguchi_shared.calendar import holiday_name

    holiday_name(date.today())
    gc.collect()
    gc.freeze()
    # A young collection every 10,000 allocations instead of 700: a command's objects mostly die by
    # reference count before one runs. Measured (gc.callbacks, process CPU) under the bench's 64
    # clients: 0.06 ms of collector time per desk command with the defaults, 0.01 ms with these.
    gc.set_threshold(10_000, 20, 20)


def _docs_route(app: FastAPI) -> None:
    """Swagger UI at /docs under a CSP of its own: its assets from the CDN FastAPI uses, its one
    inline script allowed by hash (no 'unsafe-inline')."""
    from fastapi.openapi.docs import get_swagger_ui_html

    @app.get("/docs", include_in_schema=False)
    async def docs():
        page = get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API")
        scripts = re.findall(r"<script>(.*?)</script>", bytes(page.body).decode(), re.S)
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts
        )
        page.headers["content-security-policy"] = (
            f"default-src 'none'; script-src https://cdn.jsdelivr.net {hashes}; style-src https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'"
        )
        return page


def correlation_id(request: Request) -> uuid.UUID | None:
    """The request's correlation id as a UUID when the client sent one that is a UUID."""
    try:
        return uuid.UUID(request.state.correlation_id)
    except (ValueError, AttributeError):
        return None


__all__ = ["create_service_app", "DOMAIN_STATUS", "status_of", "problem", "correlation_id"]
