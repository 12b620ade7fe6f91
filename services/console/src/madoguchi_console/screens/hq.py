"""HQ dashboard for the rounder and the manager (issue 8 §2; SEC-2, ORG-3, DESK-1/2/5/6, CALL-1/4):
every desk live on one screen, the phone line, the alert feed with acknowledge, escalations to
handle, the day's start/end confirmations, and calendar changes (suspend a desk, special opening).

Reads /v1/desks (+ each desk's status) and /v1/calendar from the desk service, the line state and
callbacks from the calls service, and /v1/alerts from the audit service. A service that does not
answer leaves its panel with a message; the rest of the dashboard still works.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_shared.events.base import Role
from madoguchi_console import domain
from madoguchi_console.deps import Api, HqSession, Session, upstream_for
from madoguchi_console.forms import read_form
from madoguchi_console.live import live_response
from madoguchi_console.screens.phone import _flat, phone_labels, with_cases
from madoguchi_console.upstream import ApiError, Upstream
from madoguchi_console.views import NAMES, fragment, render, set_flash

router = APIRouter(include_in_schema=False)
JST = ZoneInfo("Asia/Tokyo")

ALERT_RULES = {
    "application_violation": "許可されていないアプリケーション",
    "usb_violation": "許可されていないUSB機器",
    "personal_data_file": "個人情報を含む可能性のあるファイル",
    "card_left_in_reader": "カードリーダーにカードが残っています",
    "card_left_behind": "カードの置き忘れ",
    "no_supporter_on_duty": "支援員不在",
    "no_operator_seated": "オペレーター不在",
    "desk_pc_silent": "窓口PCの応答なし",
    "desk_capacity": "来訪者数の閾値",
    "call_capacity": "入電数の閾値",
    "callback_overdue": "折り返し期限超過",
    "repeated_access_denied": "権限外アクセスの繰り返し",
    "monitoring_gap": "監視されていない項目（エージェントが接続できない等）",
    "agent_stopped": "監視エージェントの停止",
    "agent_unclean_restart": "監視エージェントの異常終了",
    "notice_declined": "監視の告知に不同意",
    "file_not_scanned": "検査できなかったファイル",
}
ESC_STATUS = {"raised": "未対応", "acknowledged": "対応中", "escalated_to_city": "市へ報告済み", "resolved": "解決済み"}


async def _safe(coro, default):
    try:
        return await coro, None
    except ApiError as exc:
        if exc.status == 401:
            raise
        return default, exc.detail


def thresholds(request: Request) -> domain.Thresholds:
    m = getattr(request.app.state, "municipality", None)
    if m is None:
        return domain.Thresholds()
    c = m.desk_severity
    return domain.Thresholds(c.wait_amber_minutes, c.wait_red_minutes, c.queue_amber, c.queue_red)


def ward_names(request: Request) -> dict[str, str]:
    m = getattr(request.app.state, "municipality", None)
    return {w.id: w.name_ja for w in m.wards} if m is not None else {}


async def gather_hq(api: Upstream, limits: domain.Thresholds | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, read in parallel from the services."""
    desks_doc, desks_error = await _safe(api.get("desk", "/v1/desks"), {"desks": []})
    desks = desks_doc.get("desks", [])

    async def status(d):
        return await _safe(api.get("desk", f"/v1/desks/{d['desk']}/status"), None)

    results = await asyncio.gather(
        *(status(d) for d in desks),
        _safe(api.get("calls", "/v1/lines/main/state"), None),
        _safe(api.get("audit", "/v1/alerts", {"status": "all", "limit": 60}), {"alerts": []}),
    )
    statuses = [r[0] for r in results[: len(desks)]]
    (line, line_error), (alerts_doc, alerts_error) = results[len(desks) :]
    cards = []
    escalations = []
    incidents = []
    for d, st in zip(desks, statuses, strict=True):
        cards.append(_card(d, st, limits or domain.Thresholds()))
        for a in (st or {}).get("alerts", []):
            if str(a.get("kind", "")).startswith("incident.") and a.get("incident_no"):
                incidents.append(
                    {**a, "desk": d["desk"], "desk_name": d.get("ward_name_ja") or d["desk"], "date": st.get("date")}
                )
        for e in (st or {}).get("escalations", []):
            if e.get("status") != "resolved":
                escalations.append(
                    {**e, "desk": d["desk"], "desk_name": d.get("ward_name_ja") or d["desk"], "date": st.get("date")}
                )
    cards.sort(key=lambda c: (domain.SEVERITY_ORDER[c["severity"]], -c["wait"], -c["waiting"]))
    alerts = [a for a in alerts_doc.get("alerts", []) if a.get("status") != "resolved"]
    callbacks = [
        cb for cb in (line or {}).get("callback_queue", []) if cb.get("needs_city") and not cb.get("city_answered")
    ]
    callbacks = await with_cases(api, callbacks) if callbacks else []
    labels: dict[str, str] = {}
    if callbacks:
        tree, _ = await _safe(api.get("calls", "/v1/categories"), {"categories": []})
        labels = {c: t for c, t, _ in _flat(tree.get("categories") or [])}
    return {
        "cards": cards,
        "desks_error": desks_error,
        "incidents": incidents,
        "line": line,
        "line_error": line_error,
        "alerts": alerts,
        "alerts_error": alerts_error,
        "escalations": escalations,
        "city_callbacks": callbacks,
        "category_labels": labels,
        "open_alerts": sum(1 for a in alerts if a.get("status") == "open"),
    }


def _closing_reached(st: dict) -> bool:
    """ORG-3: the end of the day is confirmed from the desk's closing time on."""
    intervals = (st.get("hours") or {}).get("intervals") or []
    if not intervals:
        return True
    try:
        close = max(datetime.fromisoformat(str(iv[1])) for iv in intervals)
        now = datetime.fromisoformat(str(st.get("at")))
    except (TypeError, ValueError):
        return True
    return now >= close


def _card(desk: dict, st: dict | None, limits: domain.Thresholds) -> dict[str, Any]:
    severity, reasons = domain.desk_severity(st, limits)
    if st is None:
        return {"desk": desk, "status": None, "severity": severity, "reasons": reasons, "wait": 0, "waiting": 0}
    expected = st.get("expected_max") or 1
    ratio = (st.get("visitors") or 0) / expected
    wait = max(float(st.get("estimated_wait_minutes") or 0), float(st.get("longest_wait_minutes") or 0))
    return {
        "desk": desk,
        "status": st,
        "ratio": ratio,
        "pct": min(100, round(ratio * 100)),
        "meter": "bad" if ratio >= 1 else ("warn" if ratio >= 0.8 else ""),
        "severity": severity,
        "severity_label": domain.SEVERITY_LABELS[severity],
        "reasons": reasons,
        "wait": wait,
        "closing_reached": _closing_reached(st),
        "waiting": len(st.get("queue", {}).get("waiting", [])),
        "on_duty": len(st.get("on_duty", [])),
    }


def hq_regions(request: Request, data: dict, session: Session) -> dict[str, str]:
    ctx = {
        **data,
        "is_manager": Role.manager in session.roles,
        "ALERT_RULES": ALERT_RULES,
        "ESC_STATUS": ESC_STATUS,
        **phone_labels(),
    }
    return {
        "hq-desks": fragment(request, "hq/_desks.html", **ctx),
        "hq-line": fragment(request, "hq/_line.html", **ctx),
        "hq-alerts": fragment(request, "hq/_alerts.html", **ctx),
        "hq-escalations": fragment(request, "hq/_escalations.html", **ctx),
    }


async def _page(
    request: Request,
    api: Upstream,
    session: Session,
    *,
    values: dict | None = None,
    errors: dict | None = None,
    form_error: str | None = None,
    status_code: int = 200,
):
    data = await gather_hq(api, thresholds(request))
    instructions, _ = await _safe(
        api.get("desk", "/v1/calendar/instructions"), {"instructions": [], "special_days": []}
    )
    return render(
        request,
        "hq.html",
        status_code,
        active="hq",
        values=values,
        errors=errors,
        form_error=form_error,
        regions=hq_regions(request, data, session),
        data=data,
        instructions=instructions,
        is_manager=Role.manager in session.roles,
        live_url="/hq/live",
    )


@router.get("/hq")
async def hq(request: Request, session: HqSession, api: Api):
    """The HQ dashboard."""
    return await _page(request, api, session)


@router.get("/hq/live")
async def hq_live(request: Request, session: HqSession):
    api = upstream_for(request, session)
    limits = thresholds(request)

    async def regions() -> dict[str, str]:
        return hq_regions(request, await gather_hq(api, limits), session)

    return live_response(request, regions, interval=2.0)


def _done(message: str) -> RedirectResponse:
    response = RedirectResponse("/hq", status_code=303)
    set_flash(response, message)
    return response


@router.post("/hq/alerts/{alert_id}/ack")
async def ack_alert(request: Request, alert_id: str, session: HqSession, api: Api):
    """Acknowledge an alert (HQ takes it on)."""
    try:
        await api.post("audit", f"/v1/alerts/{alert_id}/acknowledge", {})
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, form_error=exc.detail, status_code=exc.status)
    return _done("警報を確認済みにしました。")


@router.post("/hq/alerts/{alert_id}/close")
async def close_alert(request: Request, alert_id: str, session: HqSession, api: Api):
    try:
        await api.post("audit", f"/v1/alerts/{alert_id}/close", {})
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, form_error=exc.detail, status_code=exc.status)
    return _done("警報を対応済みにしました。")


@router.post("/hq/desks/{desk_id}/day")
async def day(request: Request, desk_id: str, session: HqSession, api: Api):
    """ORG-3: the manager confirms the start or the end of a desk's day."""
    form = await read_form(request)
    action = str(form.get("action") or "")
    path = {"start": "day/start", "end": "day/end", "resume": "day/resume"}.get(action)
    if path is None:
        return await _page(request, api, session, form_error="不明な操作です。", status_code=400)
    try:
        await api.post("desk", f"/v1/desks/{desk_id}/{path}")
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(
            request, api, session, form_error=f"{NAMES.desk(desk_id)}：{exc.detail}", status_code=exc.status
        )
    name = NAMES.desk(desk_id)
    return _done(
        {
            "start": f"{name}の業務開始を確認しました。",
            "end": f"{name}の業務終了を確認しました。",
            "resume": f"{name}の業務再開を記録しました。",
        }[action]
    )


@router.post("/hq/escalations/{desk_id}/{no}")
async def escalation(request: Request, desk_id: str, no: int, session: HqSession, api: Api):
    """DESK-6: acknowledge, take to the city, or resolve an escalation."""
    form = await read_form(request)
    action = form.get("action")
    day_q = {"date": form.get("date")} if form.get("date") else None
    base = f"/v1/desks/{desk_id}/escalations/{no}"
    text = (form.get("text") or "").strip()
    try:
        if action == "ack":
            await api.post("desk", f"{base}/acknowledge", {}, params=day_q)
            message = f"エスカレーション{no}を受け付けました。"
        elif action in ("city", "resolve"):
            if not text:
                raise ApiError(422, "入力してください", "内容を入力してください。", field=f"esc-{desk_id}-{no}")
            if action == "city":
                await api.post("desk", f"{base}/escalate-to-city", {"summary": text}, params=day_q)
                message = f"エスカレーション{no}を市へ報告しました。"
            else:
                await api.post("desk", f"{base}/resolve", {"outcome": text}, params=day_q)
                message = f"エスカレーション{no}を解決済みにしました。"
        else:
            raise ApiError(400, "不明な操作です", "不明な操作です。")
    except ApiError as exc:
        if exc.status == 401:
            raise
        key = f"esc-{desk_id}-{no}"
        return await _page(
            request,
            api,
            session,
            values={key: text},
            errors={key: exc.detail},
            status_code=exc.status,
            form_error=exc.detail,
        )
    return _done(message)


@router.post("/hq/incidents/{desk_id}/{no}")
async def incident(request: Request, desk_id: str, no: int, session: HqSession, api: Api):
    """DESK-9/10: tick a step of an incident's checklist, or close the incident."""
    form = await read_form(request)
    action = form.get("action", "")
    day_q = {"date": form.get("date")} if form.get("date") else None
    try:
        if action.startswith("step:"):
            await api.post(
                "desk", f"/v1/desks/{desk_id}/incidents/{no}/steps", {"step": action.partition(":")[2]}, params=day_q
            )
            message = "チェックリストの項目を完了にしました。"
        elif action == "close":
            await api.post("desk", f"/v1/desks/{desk_id}/incidents/{no}/close", {}, params=day_q)
            message = f"{NAMES.desk(desk_id)}の事案{no}を終了しました。"
        else:
            raise ApiError(400, "不明な操作です", "不明な操作です。")
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(request, api, session, form_error=exc.detail, status_code=exc.status)
    return _done(message)


@router.post("/hq/callbacks/{callback_id}")
async def city_callback(request: Request, callback_id: str, session: HqSession, api: Api):
    """CALL-4: the manager asks the city, then records the city's answer."""
    form = await read_form(request)
    text = (form.get("text") or "").strip()
    key = f"cb-{callback_id}"
    try:
        if not text:
            raise ApiError(422, "入力してください", "内容を入力してください。")
        if form.get("action") == "ask":
            await api.post("calls", f"/v1/callbacks/{callback_id}/escalate", {"question": text, "channel": "phone"})
            message = "市へ確認を依頼しました。"
        else:
            await api.post("calls", f"/v1/callbacks/{callback_id}/city-answer", {"answer": text})
            message = "市の回答を記録しました。オペレーターが折り返します。"
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(
            request,
            api,
            session,
            values={key: text},
            errors={key: exc.detail},
            status_code=exc.status,
            form_error=exc.detail,
        )
    return _done(message)


def _at(day: str, hm: str) -> str:
    return datetime.combine(datetime.strptime(day, "%Y-%m-%d").date(), time.fromisoformat(hm), JST).isoformat()


@router.post("/hq/calendar")
async def calendar(request: Request, session: HqSession, api: Api):
    """DESK-1: the city's instructions (suspend a desk, special opening, extended hours, lift)."""
    form = await read_form(request)
    action = form.get("action")
    values = dict(form)
    values["cal_desks"] = form.getlist("cal_desks")
    desks = form.getlist("cal_desks")
    errors: dict[str, str] = {}
    try:
        if action == "lift":
            await api.post("desk", f"/v1/calendar/instructions/{form.get('instruction_id')}/lift", {})
            return _done("市の指示を解除しました。")
        if not form.get("cal_date"):
            errors["cal_date"] = "日付を入力してください。"
        if action == "suspend":
            if not form.get("cal_reason"):
                errors["cal_reason"] = "理由を選択してください。"
            if errors:
                raise ApiError(422, "入力内容に誤りがあります", "入力内容を確認してください。")
            body = {
                "start": _at(form["cal_date"], form.get("cal_open") or "00:00"),
                "end": _at(form["cal_date"], form["cal_close"]) if form.get("cal_close") else None,
                "desks": desks,
                "reason": form["cal_reason"],
                "note": form.get("cal_note") or None,
            }
            await api.post("desk", "/v1/calendar/suspensions", body)
            return _done("窓口の休止を登録しました。")
        if action == "special":
            for name, label in (("cal_open", "開始時刻"), ("cal_close", "終了時刻")):
                if not form.get(name):
                    errors[name] = f"{label}を入力してください。"
            if errors:
                raise ApiError(422, "入力内容に誤りがあります", "入力内容を確認してください。")
            await api.post(
                "desk",
                "/v1/calendar/special-openings",
                {
                    "date": form["cal_date"],
                    "open": form["cal_open"],
                    "close": form["cal_close"],
                    "desks": desks,
                    "note": form.get("cal_note") or None,
                },
            )
            return _done("特別開庁を登録しました。")
        if action == "extend":
            if not form.get("cal_close"):
                errors["cal_close"] = "終了時刻を入力してください。"
            if errors:
                raise ApiError(422, "入力内容に誤りがあります", "入力内容を確認してください。")
            await api.post(
                "desk",
                "/v1/calendar/extended-hours",
                {
                    "date": form["cal_date"],
                    "close": form["cal_close"],
                    "desks": desks,
                    "note": form.get("cal_note") or None,
                },
            )
            return _done("時間延長を登録しました。")
        raise ApiError(400, "不明な操作です", "不明な操作です。")
    except ApiError as exc:
        if exc.status == 401:
            raise
        mapped, form_error = exc.for_form(
            {
                "start": "cal_date",
                "end": "cal_close",
                "date": "cal_date",
                "open": "cal_open",
                "close": "cal_close",
                "hours": "cal_close",
                "reason": "cal_reason",
                "desks": "cal_desks",
                "note": "cal_note",
            }
        )
        return await _page(
            request,
            api,
            session,
            values=values,
            errors={**errors, **mapped},
            form_error=form_error,
            status_code=exc.status,
        )
