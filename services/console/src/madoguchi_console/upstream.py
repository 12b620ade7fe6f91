"""Calls to the services' HTTP APIs on behalf of the logged-in user.

The console has no data of its own: every page is built from the desk, calls, reporting and
audit APIs, with the user's bearer token forwarded, so each service applies its own role and
ward checks (ORG-2). Errors come back as RFC 9457 problem+json with a Japanese `detail` and,
for 422, `errors: [{field, message}]`; they become `ApiError`, which the pages show next to
the field concerned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

SERVICES = ("desk", "calls", "reporting", "audit")
_COMMAND_ID = re.compile(r"^[0-9a-f]{32}$")
SERVICE_LABELS = {"desk": "窓口", "calls": "電話", "reporting": "報告", "audit": "監査"}


def default_urls(settings) -> dict[str, str]:
    """Base URLs from settings; tests replace `app.state.service_urls` with their own servers."""
    return {name: f"http://{settings.host}:{getattr(settings, f'{name}_port')}" for name in SERVICES}


@dataclass
class ApiError(Exception):
    status: int
    title: str
    detail: str
    errors: list[dict] = field(default_factory=list)
    field: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.detail

    def field_errors(self) -> dict[str, str]:
        """{form field: message}; the API's dotted paths keep their last meaningful part too."""
        out: dict[str, str] = {}
        for e in self.errors:
            path = str(e.get("field") or "")
            message = _japanese(str(e.get("message") or self.detail), str(e.get("type") or ""))
            if not path:
                continue
            out.setdefault(path, message)
            parts = [p for p in path.split(".") if not p.isdigit()]
            if parts:
                out.setdefault(parts[0], message)
                out.setdefault(parts[-1], message)
        for hint in (self.field, self.code):
            if hint:
                out.setdefault(hint, self.detail)
        return out

    def for_form(self, names: dict[str, str]) -> tuple[dict[str, str], str | None]:
        """Errors keyed by the form's own field names (`names` maps API field -> form field), and
        the message for the top of the form when no field of this form is concerned."""
        found = self.field_errors()
        errors = {form: found[api] for api, form in names.items() if api in found}
        return errors, (None if errors else self.detail)


def _japanese_lines(message: str) -> str:
    """Bilingual messages (the PII guard's: Japanese lines, then English) shown in Japanese only."""
    lines = message.split("\n")
    kept = [line for line in lines if not line.isascii()]
    return "\n".join(kept) if kept and len(kept) < len(lines) else message


def _japanese(message: str, kind: str) -> str:
    """pydantic's own type messages are English; the people using the console read Japanese."""
    if not message.isascii():
        return _japanese_lines(message)
    if kind == "missing":
        return "入力してください。"
    if kind in ("literal_error", "enum"):
        return "選択肢から選んでください。"
    if kind.startswith(("int_", "float_", "greater", "less")):
        return "数値の範囲を確認してください。"
    if kind.startswith(("string_too_short", "too_short")):
        return "入力してください。"
    if kind.startswith(("string_too_long", "too_long")):
        return "長すぎます。短くしてください。"
    if kind.startswith(("datetime", "date", "time")):
        return "日時の形式を確認してください。"
    return "入力内容を確認してください。"


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail")
    if isinstance(detail, list):  # a bare FastAPI validation list
        errors = [
            {"field": ".".join(str(p) for p in d.get("loc", ()) if p != "body"), "message": d.get("msg", "")}
            for d in detail
        ]
        detail = "入力内容に誤りがあります。"
        body["errors"] = errors
    return ApiError(
        status=response.status_code,
        title=str(body.get("title") or "エラー"),
        detail=_japanese_lines(str(detail or f"サービスがエラーを返しました（{response.status_code}）。")),
        errors=list(body.get("errors") or []),
        field=body.get("field"),
        code=body.get("code") if isinstance(body.get("code"), str) else None,
    )


class Upstream:
    """One user's view of the services: their token is sent with every call."""

    def __init__(
        self, client: httpx.AsyncClient, urls: dict[str, str], token: str | None, request_id: str | None = None
    ):
        self.client = client
        self.urls = urls
        self.token = token
        self.request_id = request_id
        self._command: str | None = None
        self._posts = 0

    def command(self, command_id: str | None) -> None:
        """The form's client-made command id (a hidden field, one per rendered form): every POST of
        this submission carries `Idempotency-Key: <id>-<n>`, so a form sent twice (a double click, a
        retry after a dropped answer) is answered from the desk edge's journal, not decided again
        (services/desk/EDGE.md)."""
        self._command = command_id if command_id and _COMMAND_ID.match(command_id) else None
        self._posts = 0

    def headers(self) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if self.request_id:
            headers["x-correlation-id"] = self.request_id
        return headers

    def url(self, service: str, path: str) -> str:
        return self.urls[service].rstrip("/") + path

    async def request(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        timeout: float | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        headers = self.headers() | ({"idempotency-key": key} if key else {})
        try:
            response = await self.client.request(
                method,
                self.url(service, path),
                params=_clean(params),
                json=json,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise _unreachable(service) from exc
        if response.status_code >= 400:
            raise _problem(response)
        return response

    async def open_stream(
        self, service: str, path: str, *, params: dict | None = None, timeout: float | None = None
    ) -> httpx.Response:
        """GET whose body is read as it arrives (a large export passes through without being held in memory):
        an error answer is raised as `ApiError` before anything is sent on; the caller closes the response."""
        request = self.client.build_request(
            "GET",
            self.url(service, path),
            params=_clean(params),
            headers=self.headers(),
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _unreachable(service) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise _problem(response)
        return response

    async def get(self, service: str, path: str, params: dict | None = None) -> Any:
        response = await self.request("GET", service, path, params=params)
        return response.json() if response.content else None

    async def post(self, service: str, path: str, json: Any = None, params: dict | None = None) -> Any:
        key = None
        if self._command is not None:
            self._posts += 1
            key = f"{self._command}-{self._posts}"
        response = await self.request(
            "POST", service, path, json=json if json is not None else {}, params=params, key=key
        )
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    async def put(self, service: str, path: str, json: Any = None) -> Any:
        response = await self.request("PUT", service, path, json=json if json is not None else {})
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None


def _unreachable(service: str) -> ApiError:
    return ApiError(
        503,
        "サービスに接続できません",
        f"{SERVICE_LABELS.get(service, service)}サービスに接続できません。しばらくしてからもう一度お試しください。",
    )


def _clean(params: dict | None) -> dict | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v not in (None, "")}
