"""Phone screen for operators (issue 8 §3; CALL-1..5): seat sign-in, the call form with the
inquiry categories and the resolution, the FAQ search beside it, and the callbacks due.

Data from the calls service (/v1/lines, /v1/calls, /v1/callbacks, /v1/faq, /v1/categories).
The callback's phone number goes straight to the calls service (which keeps it encrypted outside
the event log); the console never stores it and its pages are sent with `no-store`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

import re

from markupsafe import Markup, escape

from madoguchi_shared.events.base import Role
from madoguchi_shared import labels as L

from madoguchi_console.deps import Api, PhoneSession, Session, upstream_for
from madoguchi_console.forms import FormValues, read_form
from madoguchi_console.live import live_response
from madoguchi_console.upstream import ApiError, Upstream
from madoguchi_console.views import fragment, render, set_flash

router = APIRouter(include_in_schema=False)

RESOLUTIONS = {
    "answered_on_spot": "その場で回答",
    "referred_national_call_centre": "国のコールセンター（マイナンバー総合フリーダイヤル）を案内",
    "referred_payment_provider": "決済事業者の問い合わせ先を案内",
    "guided_to_ward_desk": "区役所の支援窓口を案内",
    "escalated_callback": "業務責任者へエスカレーション（折り返し）",
}
PROVIDERS = {
    "electronic_money": "電子マネー",
    "qr_code": "QRコード決済",
    "credit_card": "クレジットカード",
    "debit_card": "デビットカード",
    "prepaid_card": "プリペイドカード",
    "other": "その他",
}
CALLBACK_STATUS = {
    "pending": "折り返し待ち",
    "awaiting_city": "市へ確認中",
    "ready": "折り返し可能",
    "due": "折り返し待ち",
    "done": "完了",
    "failed": "不通",
    "cancelled": "取消",
}
CALLBACK_REASONS = {
    "out_of_hours": "時間外",
    "overflow": "混雑",
    "missed": "不応答",
    "abandoned": "放棄呼",
    "escalation": "エスカレーション",
}
ATTEMPT_FAILURES = {
    "no_answer": "応答なし",
    "busy": "話し中",
    "voicemail": "留守番電話",
    "wrong_number": "番号違い",
    "other": "その他",
}
CALL_API_FIELDS = {
    "categories": "categories",
    "resolution": "resolution",
    "provider_category": "provider_category",
    "ward": "ward",
    "duration_seconds": "duration_minutes",
    "notes": "notes",
    "text": "opinion_text",
    "opinions": "opinion_text",
    "kind": "opinion_kind",
    "step": "opinion_step",
    "phone": "callback_phone",
    "callback": "callback_phone",
    "window_start": "callback_window",
    "window_end": "callback_window",
    "topic": "categories",
}
NO_STORE = {"cache-control": "no-store"}


CITY_CHANNELS = {"phone": "電話", "email": "メール", "meeting": "打合せ", "other": "その他"}


def phone_labels() -> dict[str, Any]:
    return {
        "RESOLUTIONS": RESOLUTIONS,
        "PROVIDERS": PROVIDERS,
        "CALLBACK_STATUS": CALLBACK_STATUS,
        "CALLBACK_REASONS": CALLBACK_REASONS,
        "ATTEMPT_FAILURES": ATTEMPT_FAILURES,
        "CITY_CHANNELS": CITY_CHANNELS,
    }


def current_notices(state: dict) -> list[dict]:
    """The line's notices that still hold now: 「オペレーター不在」 only while no one is seated, a
    callback's 「市へ確認中」 only until the city's answer, an overdue callback only while open, the
    latest capacity notice only. Newest first, at most three."""
    queue = {cb.get("callback_id"): cb for cb in state.get("callback_queue") or []}
    alerts = list(state.get("alerts") or [])
    out: list[dict] = []
    seen_capacity = False
    for i, a in enumerate(reversed(alerts)):
        kind = a.get("kind") or ""
        if kind == "no_operator_seated" and not state.get("breach_open"):
            continue
        if kind == "seat_coverage_restored" and i > 0:
            continue
        if kind == "callback_escalated":
            cb = queue.get(a.get("ref"))
            if cb is None or cb.get("city_answered"):
                continue
        if kind == "callback_overdue":
            cb = queue.get(a.get("ref"))
            if cb is None or not cb.get("overdue"):
                continue
        if kind.startswith("capacity_"):
            if seen_capacity:
                continue
            seen_capacity = True
        text = re.sub(r"^電話回線「[^」]*」:\s*", "", str(a.get("message_ja") or ""))
        out.append({**a, "message_ja": text})
        if len(out) == 3:
            break
    return out


def _who(actor: dict | None) -> Markup:
    """'業務責任者 M0001' with the staff id marked as an id."""
    if not actor:
        return Markup("")
    role = L.ROLE.get(str(actor.get("role")), "")
    return Markup(f'{escape(role)} <span class="id">{escape(actor.get("id", ""))}</span>')


async def callback_case(api: Upstream, cb: dict) -> dict[str, Any]:
    """Everything the operator and the manager need about one callback: the call's topic and
    categories, the operator's notes, the question to the city and its answer (who, when), the
    attempts so far. Never the number (that is asked for separately, and recorded)."""
    case: dict[str, Any] = {
        "categories": [],
        "notes": None,
        "resolution": None,
        "question": None,
        "answer": None,
        "attempts": [],
        "topic": None,
        "escalated": False,
    }
    try:
        detail = await api.get("calls", f"/v1/callbacks/{cb['callback_id']}")
    except ApiError as exc:
        if exc.status == 401:
            raise
        detail = {"events": []}
    for e in detail.get("events") or []:
        kind = e.get("type")
        if kind == "calls.callback_requested":
            case["topic"] = e.get("topic")
        elif kind == "calls.callback_escalated_to_city":
            case["escalated"] = True
            case["question"] = {
                "text": e.get("question"),
                "channel": e.get("channel"),
                "at": e.get("occurred_at"),
                "by": _who(e.get("actor")),
            }
        elif kind == "calls.city_answered":
            case["answer"] = {"text": e.get("answer"), "at": e.get("occurred_at"), "by": _who(e.get("actor"))}
        elif kind == "calls.callback_attempt_failed":
            case["attempts"].append(
                {
                    "at": e.get("occurred_at"),
                    "by": _who(e.get("actor")),
                    "reached": False,
                    "result": ATTEMPT_FAILURES.get(e.get("reason"), "不通"),
                }
            )
        elif kind == "calls.callback_completed":
            case["attempts"].append(
                {"at": e.get("occurred_at"), "by": _who(e.get("actor")), "reached": True, "result": "つながりました"}
            )
    try:
        call = await api.get("calls", f"/v1/calls/{cb['call_id']}")
    except ApiError as exc:
        if exc.status == 401:
            raise
        call = {"events": []}
    for e in call.get("events") or []:
        if e.get("type") == "calls.call_closed":
            case["categories"] = list(e.get("categories") or [])
            case["notes"] = e.get("notes")
            case["resolution"] = e.get("resolution")
            case["call_at"] = e.get("occurred_at")
            case["operator"] = _who(e.get("actor"))
    case["state"] = (
        "ready"
        if cb.get("ready_to_call")
        else "awaiting_city"
        if case["escalated"] and not cb.get("city_answered")
        else "awaiting_manager"
        if cb.get("needs_city") and not cb.get("city_answered")
        else "open"
    )
    return case


async def with_cases(api: Upstream, callbacks: list[dict], limit: int = 12) -> list[dict]:
    import asyncio

    shown = list(callbacks)[:limit]
    cases = await asyncio.gather(*(callback_case(api, cb) for cb in shown))
    return [{**cb, "case": case} for cb, case in zip(shown, cases, strict=True)]


def _my_seat(state: dict, me: str) -> str | None:
    return next((s["seat"] for s in state.get("seats", []) if s.get("operator") == me), None)


async def _wards(api: Upstream) -> list[tuple[str, str]]:
    try:
        desks = (await api.get("desk", "/v1/desks"))["desks"]
    except ApiError:
        return []
    seen: dict[str, str] = {}
    for d in desks:
        seen.setdefault(d["ward"], d.get("ward_name_ja") or d["ward"])
    return list(seen.items())


def _flat(tree: list[dict], depth: int = 0) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for node in tree:
        out.append((node["code"], node["label_ja"], depth))
        out += _flat(node.get("children") or [], depth + 1)
    return out


async def _page(
    request: Request,
    api: Upstream,
    session: Session,
    line: str,
    *,
    call_id: str | None = None,
    values: dict | None = None,
    errors: dict | None = None,
    form_error: str | None = None,
    status_code: int = 200,
    faq_query: str = "",
):
    state = await api.get("calls", f"/v1/lines/{line}/state")
    call = None
    if call_id:
        try:
            call = await api.get("calls", f"/v1/calls/{call_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        if call and call.get("status") not in ("answered",):
            call = None
    categories = _flat((await api.get("calls", "/v1/categories"))["categories"])
    faq = (await api.get("calls", "/v1/faq", {"q": faq_query, "limit": 8}))["results"]
    values = values or {}
    values.setdefault("categories", [])
    values.setdefault("faq_used", [])
    response = render(
        request,
        "phone.html",
        status_code,
        active="phone",
        values=values,
        errors=errors,
        form_error=form_error,
        state=state,
        line=line,
        call=call,
        callbacks=await with_cases(api, state.get("callback_queue") or []),
        notices=current_notices(state),
        category_labels=dict((c, t) for c, t, _ in categories),
        categories=categories,
        wards=await _wards(api),
        faq=faq,
        faq_query=faq_query,
        my_seat=_my_seat(state, session.principal.staff_id),
        live_url=f"/phone/live?line={line}",
        **phone_labels(),
        is_manager=bool({Role.manager, Role.administrator} & set(session.roles)),
    )
    response.headers.update(NO_STORE)
    return response


@router.get("/phone")
async def phone_page(
    request: Request, session: PhoneSession, api: Api, line: str = "main", call: str | None = None, q: str = ""
):
    """The phone screen."""
    return await _page(request, api, session, line, call_id=call, faq_query=q)


@router.get("/phone/live")
async def phone_live(request: Request, session: PhoneSession, line: str = "main"):
    """Live regions: seats and calls, callbacks due, the line's alerts and today's counts."""
    api = upstream_for(request, session)
    labels = dict((c, t) for c, t, _ in _flat((await api.get("calls", "/v1/categories"))["categories"]))

    async def regions() -> dict[str, str]:
        state = await api.get("calls", f"/v1/lines/{line}/state")
        ctx = {
            "state": state,
            "line": line,
            "my_seat": _my_seat(state, session.principal.staff_id),
            **phone_labels(),
            "callbacks": await with_cases(api, state.get("callback_queue") or []),
            "notices": current_notices(state),
            "category_labels": labels,
        }
        return {
            "line-state": fragment(request, "phone/_line.html", **ctx),
            "callbacks": fragment(request, "phone/_callbacks.html", **ctx),
        }

    return live_response(request, regions)


@router.get("/phone/faq")
async def faq_search(request: Request, session: PhoneSession, api: Api, q: str = "", fragment_only: str | None = None):
    """FAQ search beside the call form (fragment for the as-you-type search)."""
    results = (await api.get("calls", "/v1/faq", {"q": q[:200], "limit": 8}))["results"]
    return HTMLResponse(fragment(request, "phone/_faq.html", faq=results, faq_query=q))


@router.post("/phone/seat")
async def seat(request: Request, session: PhoneSession, api: Api):
    """Sign in at a seat, or sign out (CALL-1)."""
    form = await read_form(request)
    line = form.get("line") or "main"
    seat_id = (form.get("seat") or "1").strip()
    try:
        if form.get("action") == "sign_out":
            await api.post(
                "calls", f"/v1/lines/{line}/seats/{seat_id}/sign-out", {"reason": form.get("reason") or "end_of_shift"}
            )
            message = f"{seat_id}番席から離席しました。"
        else:
            await api.post("calls", f"/v1/lines/{line}/seats/{seat_id}/sign-in")
            message = f"{seat_id}番席に着席しました。"
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, line, form_error=exc.detail, status_code=exc.status)
    response = RedirectResponse(f"/phone?line={line}", status_code=303)
    set_flash(response, message)
    return response


@router.post("/phone/calls")
async def take_call(request: Request, session: PhoneSession, api: Api):
    """A call comes in and the operator answers it at their seat."""
    form = await read_form(request)
    line = form.get("line") or "main"
    try:
        state = await api.get("calls", f"/v1/lines/{line}/state")
        seat_id = _my_seat(state, session.principal.staff_id)
        if seat_id is None:
            raise ApiError(409, "着席していません", "電話を受けるには、先に席に着席してください。")
        received = await api.post("calls", "/v1/calls", {"line": line})
        call_id = received["call_id"]
        if received.get("route") == "ring":
            await api.post("calls", f"/v1/calls/{call_id}/answer", {"seat": seat_id})
        else:
            raise ApiError(409, "応答できません", "この着信は応答できる状態ではありません（時間外または全席応答中）。")
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, line, form_error=exc.detail, status_code=exc.status)
    response = RedirectResponse(f"/phone?line={line}&call={call_id}", status_code=303)
    set_flash(response, "通話を開始しました。終了したら内容を記録してください。")
    return response


def _close_body(form: FormValues) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    categories = form.getlist("categories")
    if not categories:
        errors["categories"] = "問い合わせ分類を1つ以上選択してください。"
    resolution = form.get("resolution")
    if resolution not in RESOLUTIONS:
        errors["resolution"] = "対応結果を選択してください。"
    body: dict[str, Any] = {"categories": categories, "resolution": resolution}
    if resolution == "referred_payment_provider":
        if not form.get("provider_category"):
            errors["provider_category"] = "案内した決済サービスの種類を選択してください。"
        body["provider_category"] = form.get("provider_category") or None
    if form.get("ward"):
        body["ward"] = form["ward"]
    minutes = form.integer("duration_minutes")
    if form.get("duration_minutes") and minutes is None:
        errors["duration_minutes"] = "通話時間は分単位の数字で入力してください。"
    elif minutes is not None:
        body["duration_seconds"] = minutes * 60
    if form.text("notes"):
        body["notes"] = form.text("notes")
    if form.text("opinion_text"):
        if not form.get("opinion_kind"):
            errors["opinion_kind"] = "意見の種類を選択してください。"
        body["opinions"] = [
            {
                "kind": form.get("opinion_kind") or "opinion",
                "step": form.get("opinion_step") or None,
                "text": form.text("opinion_text"),
            }
        ]
    faq_used = []
    for ref in form.getlist("faq_used"):
        faq_id, _, revision = ref.partition(":")
        if faq_id and revision.isdigit():
            faq_used.append({"faq_id": faq_id, "revision": int(revision)})
    if faq_used:
        body["faq_used"] = faq_used
    if resolution == "escalated_callback":
        phone = (form.get("callback_phone") or "").strip()
        if not phone:
            errors["callback_phone"] = "折り返し先の電話番号を入力してください。"
        body["callback"] = {
            "phone": phone,
            "needs_city": form.get("needs_city", "yes") == "yes",
            "topic": categories[0] if categories else None,
        }
    return body, errors


FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９－ー", "0123456789--")


@router.post("/phone/calls/{call_id}/repeat-of")
async def link_repeat(request: Request, call_id: str, session: PhoneSession, api: Api):
    """A caller calls again and quotes the reference given on the earlier call: the two are linked
    (no phone number is kept), so unconnected callers are counted as people in the line report."""
    form = await read_form(request)
    line = form.get("line") or "main"
    reference = (form.get("reference") or "").strip().translate(FULL_WIDTH_DIGITS)
    if not re.fullmatch(r"[0-9]{4}-?[0-9]{4}", reference):
        message = "受付番号は8桁の数字で入力してください（例：4821-0937）。"
    else:
        try:
            linked = await api.post("calls", f"/v1/calls/{call_id}/repeat-of", {"reference": reference})
            message = f"以前のお電話（受付番号 {linked['repeat_of']}）と結び付けました。"
        except ApiError as exc:
            if exc.status == 401:
                raise
            message = f"結び付けられません：{exc.detail}"
    response = RedirectResponse(f"/phone?line={line}&call={call_id}", status_code=303)
    set_flash(response, message)
    return response


@router.post("/phone/calls/{call_id}/close")
async def close_call(request: Request, call_id: str, session: PhoneSession, api: Api):
    """Record the call: categories, resolution, notes, opinions, FAQ used; a callback when escalated."""
    form = await read_form(request)
    line = form.get("line") or "main"
    values: dict[str, Any] = dict(form)
    values["categories"] = form.getlist("categories")
    values["faq_used"] = form.getlist("faq_used")
    body, errors = _close_body(form)
    if errors:
        return await _page(
            request,
            api,
            session,
            line,
            call_id=call_id,
            values=values,
            errors=errors,
            form_error="入力内容を確認してください。",
            status_code=422,
        )
    try:
        out = await api.post("calls", f"/v1/calls/{call_id}/close", body)
    except ApiError as exc:
        if exc.status == 401:
            raise
        errors, form_error = exc.for_form(CALL_API_FIELDS)
        return await _page(
            request,
            api,
            session,
            line,
            call_id=call_id,
            values=values,
            errors=errors,
            form_error=form_error or "入力内容を確認してください。",
            status_code=exc.status,
        )
    response = RedirectResponse(f"/phone?line={line}", status_code=303)
    set_flash(response, "通話を記録しました。" + ("折り返しの予定を登録しました。" if out.get("callback_id") else ""))
    return response


@router.post("/phone/callbacks/{callback_id}/attempt")
async def callback_attempt(request: Request, callback_id: str, session: PhoneSession, api: Api):
    """The result of calling the citizen back."""
    form = await read_form(request)
    line = form.get("line") or "main"
    reached = form.get("reached") == "yes"
    body: dict[str, Any] = {"reached": reached}
    if not reached:
        body["failure"] = form.get("failure") or "no_answer"
    try:
        out = await api.post("calls", f"/v1/callbacks/{callback_id}/attempts", body)
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, line, form_error=exc.detail, status_code=exc.status)
    response = RedirectResponse(f"/phone?line={line}", status_code=303)
    status = {"open": "次の折り返しを予定しました", "failed": "規定の回数つながらず終了しました"}.get(
        str(out.get("status")), "記録しました"
    )
    set_flash(response, "折り返しが完了しました。" if reached else f"つながりませんでした。{status}。")
    return response


@router.post("/phone/callbacks/{callback_id}/number")
async def callback_number(request: Request, callback_id: str, session: PhoneSession, api: Api):
    """Show the number to call back (the read is recorded by the calls service)."""
    form = await read_form(request)
    line = form.get("line") or "main"
    try:
        number = (await api.get("calls", f"/v1/callbacks/{callback_id}/phone"))["phone"]
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, line, form_error=exc.detail, status_code=exc.status)
    cb = await api.get("calls", f"/v1/callbacks/{callback_id}")
    response = render(
        request,
        "phone_number.html",
        active="phone",
        number=number,
        callback_id=callback_id,
        line=line,
        cb=cb,
        case=await callback_case(api, cb),
        **phone_labels(),
        category_labels=dict((c, t) for c, t, _ in _flat((await api.get("calls", "/v1/categories"))["categories"])),
    )
    response.headers.update(NO_STORE)
    return response
