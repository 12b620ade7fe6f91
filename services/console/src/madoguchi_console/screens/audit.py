"""Audit screen for auditors (issue 8 §5; SEC-2, REP-5): search the operation log with filters,
open a record with its hash and position, run the verification and see its result, export.

Everything comes from the audit service (/v1/audit/...), which records every read as an event
(who looked at what); the console adds nothing to the log itself.
"""

from __future__ import annotations

import json
from datetime import datetime
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from madoguchi_shared import labels as L

from madoguchi_console.deps import Api, AuditSession
from madoguchi_console.forms import read_form
from madoguchi_console.upstream import ApiError
from madoguchi_console.views import render

router = APIRouter(include_in_schema=False)
JST = ZoneInfo("Asia/Tokyo")
FILTERS = (
    "time_from",
    "time_to",
    "ward",
    "desk",
    "device",
    "actor",
    "event_type",
    "correlation_id",
    "position_from",
    "position_to",
    "show_routine",
)
FIELD_LABELS = {
    "time_from": "開始日時",
    "time_to": "終了日時",
    "ward": "区",
    "desk": "窓口",
    "device": "端末",
    "actor": "操作者ID",
    "event_type": "種類",
    "correlation_id": "相関ID",
    "position_from": "位置（から）",
    "position_to": "位置（まで）",
    "show_routine": "端末の死活通知も表示",
}


def type_options() -> list[tuple[str, list[tuple[str, str]]]]:
    """The type filter by Japanese name: each category (all of it) and its types."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for context, name in L.EVENT_CONTEXT.items():
        types = sorted(
            ((t, label) for t, label in L.EVENT_TYPE.items() if t.startswith(context + ".")), key=lambda x: x[1]
        )
        groups.append((name, [(context + ".", f"{name}のすべて"), *types]))
    return groups


FAULTS = {  # every kind the verifier reports (madoguchi_shared.events.audit.Fault) and its older names
    "edited": "記録の改変",
    "deleted": "記録の削除",
    "reordered": "記録の順序の入れ替え",
    "inserted": "記録の挿入",
    "truncated": "末尾の記録の削除",
    "chain_replaced": "チェーンの置換",
    "bad_signature": "チェックポイントの署名不正",
    "head_missing": "先頭の記録の欠落",
    "missing": "記録漏れ（ストリームにあり記録にない）",
    "extra": "余分な記録（どのストリームにもない）",
    "altered": "記録の内容がストリームと不一致",
    "duplicate": "記録の重複",
    "untrusted_key": "登録されていない鍵による署名",
    "copies_disagree": "チェックポイントの写しの不一致",
    "hash_mismatch": "ハッシュ不一致",
    "chain_broken": "チェーンの断絶",
    "gap": "欠番",
    "checkpoint_bad_signature": "チェックポイントの署名不正",
    "checkpoint_mismatch": "チェックポイント不一致",
}


def _aware(value: str) -> str:
    """<input type=datetime-local> gives Japan time without a zone; the API wants an aware time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)).isoformat()


def _filters(values: dict[str, str]) -> dict[str, str]:
    out = {}
    for name in FILTERS:
        if name == "show_routine":
            continue
        value = (values.get(name) or "").strip()
        if value:
            out[name] = _aware(value) if name.startswith("time_") else value
    if not values.get("show_routine"):
        out["hide_routine"] = "true"
    return out


async def _page(
    request: Request,
    api,
    *,
    values: dict[str, Any],
    verification: dict | None = None,
    status_code: int = 200,
    form_error: str | None = None,
):
    params = _filters(values)
    errors: dict[str, str] = {}
    result = None
    if values.get("before"):
        params["before"] = values["before"]
    try:
        result = await api.get("audit", "/v1/audit/records", {**params, "limit": 50, "newest_first": "true"})
    except ApiError as exc:
        if exc.status == 401:
            raise
        errors, form_error = exc.for_form({n: n for n in FILTERS} | {"before": "position_to"})
    checkpoints = None
    try:
        checkpoints = await api.get("audit", "/v1/audit/checkpoints", {"limit": 5})
    except ApiError as exc:
        if exc.status == 401:
            raise
    query = urlencode(params)
    return render(
        request,
        "audit.html",
        status_code if not errors else 422,
        active="audit",
        values=values,
        errors=errors,
        form_error=form_error,
        result=result,
        checkpoints=checkpoints,
        verification=verification,
        export_query=query,
        FIELD_LABELS=FIELD_LABELS,
        FAULTS=FAULTS,
        type_options=type_options(),
        next_query=urlencode(
            {**{k: v for k, v in values.items() if k in FILTERS and v}, "before": result["next_before"]}
        )
        if result and result.get("next_before")
        else None,
    )


@router.get("/audit")
async def audit(request: Request, session: AuditSession, api: Api):
    """Search the operation log."""
    return await _page(request, api, values=dict(request.query_params))


@router.post("/audit/verify")
async def run_verification(request: Request, session: AuditSession, api: Api):
    """Recompute the hash chain and check the signed checkpoints; show the result."""
    form = await read_form(request)
    values = {k: form.get(k, "") for k in FILTERS}
    try:
        verification = await api.post("audit", "/v1/audit/verify", {"from_checkpoint": form.flag("from_checkpoint")})
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, values=values, form_error=exc.detail, status_code=exc.status)
    return await _page(request, api, values=values, verification=verification)


@router.get("/audit/records/{position}")
async def record(request: Request, position: int, session: AuditSession, api: Api):
    """One record with its hash, the previous hash, its position and the covering checkpoint."""
    doc = await api.get("audit", f"/v1/audit/records/{position}")
    rec = doc["record"]
    pretty = (
        json.dumps(rec.get("event"), ensure_ascii=False, indent=2) if rec.get("event") is not None else rec.get("data")
    )
    return render(
        request,
        "audit_record.html",
        active="audit",
        rec=rec,
        checkpoint=doc.get("checkpoint"),
        pretty=pretty,
        header=json.dumps(rec.get("header"), ensure_ascii=False, indent=2) if rec.get("header") else None,
    )


@router.get("/audit/export")
async def export(request: Request, session: AuditSession, api: Api):
    """The search result as JSON Lines or a zip of CSV, with the covering signed checkpoint."""
    values = dict(request.query_params)
    fmt = values.get("format") if values.get("format") in ("csv", "jsonl") else "jsonl"
    # streamed through as the audit service writes it (parts of a large export are never held here whole)
    upstream = await api.open_stream(
        "audit", "/v1/audit/export", params={**_filters(values), "format": fmt}, timeout=120
    )
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-disposition", "content-type")}
    headers["cache-control"] = "no-store"

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(body(), headers=headers)
