"""Desk screen for supporters (issue 8 §1; DESK-3/4/5/6/7/8/9): the desk's state and staff on
duty, the queue, the visit form, disinfection and escalation. Built for a 10-inch tablet.

All data comes from the desk service (/v1/desks, /v1/visits). Actions are plain form posts:
a success redirects back (post/redirect/get); a refusal shows the page again with everything
that was typed and the service's Japanese message next to the field concerned.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_console import domain
from madoguchi_console.deps import Api, DeskSession, Session, upstream_for
from madoguchi_console.forms import FormValues, read_form
from madoguchi_console.live import live_response
from madoguchi_console.upstream import ApiError, Upstream
from madoguchi_console.views import fragment, render, set_flash

router = APIRouter(include_in_schema=False)

VISIT_COOKIE = "mg_visit"  # "<desk>:<visit id>": the visit this browser is serving (ids only, no personal data)
DONE_COOKIE = (
    "mg_done"  # "<desk>:<visit id>:<ticket>": the visit this browser finished, until its disinfection is recorded
)
PURPOSES_COOKIE = "mg_purposes"  # the purposes of this browser's last visit, offered again (codes only)
DETAIL_FIELDS = ("gender", "age_band", "purposes", "support_needed", "support_given", "payment_service")
VISIT_API_FIELDS = {
    **{f: f for f in DETAIL_FIELDS},
    "text": "opinion_text",
    "kind": "opinion_kind",
    "step": "opinion_step",
    "outcome": "outcome",
    "reason": "reason",
    "pin": "pin",
}
ESCALATION_API_FIELDS = {"category": "esc_category", "summary": "esc_summary"}


async def desks_in_scope(api: Upstream) -> list[dict]:
    return (await api.get("desk", "/v1/desks"))["desks"]


def desk_view(status: dict, session: Session, in_visit: bool = False, done: dict | None = None) -> dict[str, Any]:
    """What the desk's partial templates need, from GET /v1/desks/{id}/status."""
    me = session.principal.staff_id
    on_duty = {p["staff_id"]: p for p in status.get("on_duty", [])}
    absent = {p["staff_id"]: p for p in status.get("absent", [])}
    queue = status.get("queue", {})
    expected = status.get("expected_max") or 0
    visitors = status.get("visitors") or 0
    return {
        "status": status,
        "desk_id": status["desk"],
        "queue": queue,
        "me": me,
        "me_on_duty": me in on_duty,
        "me_absent": me in absent,
        "me_mask": (on_duty.get(me) or {}).get("mask"),
        "my_called": [c for c in queue.get("called", []) if c.get("staff_id") == me],
        "others_called": [c for c in queue.get("called", []) if c.get("staff_id") != me],
        "capacity_pct": round(100 * visitors / expected) if expected else 0,
        # DESK-8: asked once per visit this browser finished, until its disinfection is recorded.
        "pending_disinfection": None if in_visit else done,
    }


def _visit_values(visit: dict | None) -> dict[str, Any]:
    if not visit or not visit.get("details"):
        return {}
    d = visit["details"]
    return {
        "gender": d.get("gender") or "",
        "age_band": d.get("age_band") or "",
        "purposes": list(d.get("purposes") or []),
        "support_needed": _yes_no(d.get("support_needed")),
        "support_given": _yes_no(d.get("support_given")),
        "payment_service": d.get("payment_service") or "",
    }


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _form_values(form: FormValues) -> dict[str, Any]:
    values: dict[str, Any] = dict(form)
    values["purposes"] = form.getlist("purposes")
    return values


async def _page(
    request: Request,
    api: Upstream,
    session: Session,
    desk_id: str,
    *,
    visit_id: str | None = None,
    values: dict | None = None,
    errors: dict | None = None,
    form_error: str | None = None,
    esc_values: dict | None = None,
    esc_errors: dict | None = None,
    status: int = 200,
    flash: str | None = None,
    warning: str | None = None,
):
    desk_status = await api.get("desk", f"/v1/desks/{desk_id}/status")
    visit = None
    if visit_id:
        try:
            visit = await api.get("desk", f"/v1/visits/{visit_id}")
        except ApiError as exc:
            if exc.status not in (404, 422):
                raise
        if visit and visit.get("ended_at"):
            visit = None
    if values is None:
        values = _visit_values(visit)
        if visit and not visit.get("details"):
            values["purposes"] = _remembered_purposes(request)
    values.setdefault("purposes", [])
    flags = (desk_status.get("disinfection") or {}).get("flags") or []
    visit_flag = next((f for f in flags if visit and f.get("visit_id") == visit.get("visit_id")), None)
    return render(
        request,
        "desk.html",
        status,
        active="desk",
        values=values,
        errors=errors,
        form_error=form_error,
        flash=flash,
        visit=visit,
        warning=warning or _pin_warning(visit),
        esc_values=esc_values or {},
        esc_errors=esc_errors or {},
        visit_flag=visit_flag,
        live_url=f"/desk/{desk_id}/live",
        **desk_view(desk_status, session, in_visit=visit is not None, done=_done_visit(request, desk_id)),
    )


def _pin_warning(visit: dict | None) -> str | None:
    if not visit:
        return None
    for kind, failures in (visit.get("pin_failures") or {}).items():
        limit = domain.PIN_LIMITS.get(kind, 3)
        if failures >= limit:
            return f"{domain.label(domain.PIN_KINDS, kind)}の暗証番号はロックされています。市区町村の窓口での再設定をご案内ください。"
        if limit - failures == 1:
            return f"{domain.label(domain.PIN_KINDS, kind)}の暗証番号をあと1回間違えるとロックされます。無理に入力しないようご案内ください。"
    return None


def _done_visit(request: Request, desk_id: str) -> dict | None:
    desk, _, rest = request.cookies.get(DONE_COOKIE, "").partition(":")
    visit_id, _, ticket = rest.partition(":")
    return {"visit_id": visit_id, "ticket_no": ticket} if desk == desk_id and visit_id else None


def _remembered_purposes(request: Request) -> list[str]:
    raw = request.cookies.get(PURPOSES_COOKIE, "")
    return [p for p in raw.split(",") if p in domain.PURPOSES]


def _current_visit(request: Request, desk_id: str) -> str | None:
    raw = request.cookies.get(VISIT_COOKIE, "")
    desk, _, visit = raw.partition(":")
    return visit if desk == desk_id and visit else None


@router.get("/desk")
async def choose_desk(request: Request, session: DeskSession, api: Api):
    """The desks of the user's wards; a supporter with one desk goes straight to it."""
    desks = await desks_in_scope(api)
    if len(desks) == 1:
        return RedirectResponse(f"/desk/{desks[0]['desk']}", status_code=303)
    return render(request, "desk_choose.html", active="desk", desks=desks)


@router.get("/desk/{desk_id}")
async def desk_page(request: Request, desk_id: str, session: DeskSession, api: Api, visit: str | None = None):
    """The desk screen."""
    return await _page(request, api, session, desk_id, visit_id=visit or _current_visit(request, desk_id))


@router.get("/desk/{desk_id}/live")
async def desk_live(request: Request, desk_id: str, session: DeskSession):
    """Live regions of the desk screen (state, queue, alerts)."""
    api = upstream_for(request, session)

    async def regions() -> dict[str, str]:
        view = desk_view(
            await api.get("desk", f"/v1/desks/{desk_id}/status"),
            session,
            in_visit=_current_visit(request, desk_id) is not None,
            done=_done_visit(request, desk_id),
        )
        return {
            "desk-head": fragment(request, "desk/_head.html", **view),
            "queue": fragment(request, "desk/_queue.html", **view),
            "desk-alerts": fragment(request, "desk/_alerts.html", **view),
        }

    return live_response(request, regions)


async def _desk_action(api: Upstream, desk_id: str, action: str, form: FormValues) -> tuple[str, str | None]:
    """Run one desk action; returns (flash message, visit id when a visit started)."""
    base = f"/v1/desks/{desk_id}"
    verb, _, arg = action.partition(":")
    match verb:
        case "check_in":
            await api.post("desk", f"{base}/staff/check-in", {})
            return "チェックインしました。窓口で従事中です。", None
        case "check_out":
            await api.post("desk", f"{base}/staff/check-out", {})
            return "チェックアウトしました。", None
        case "absence_start":
            await api.post(
                "desk",
                f"{base}/staff/absence/start",
                {
                    "reason": form.get("absence_reason") or "other",
                    "expected_minutes": form.integer("absence_minutes", 5),
                },
            )
            return "短時間不在を表示しました。戻ったら「戻りました」を押してください。", None
        case "absence_end":
            await api.post("desk", f"{base}/staff/absence/end", {})
            return "不在表示を終了しました。", None
        case "mask_on" | "mask_off":
            await api.post("desk", f"{base}/staff/mask", {"wearing": verb == "mask_on"})
            return "マスク着用を記録しました。" if verb == "mask_on" else "マスク未着用を記録しました。", None
        case "issue":
            out = await api.post("desk", f"{base}/tickets")
            return f"番号札 {out['ticket_no']}番を発行しました。", None
        case "call_next":
            # Whoever is next when the button is pressed (no 409 when a colleague took the number shown).
            out = await api.post("desk", f"{base}/tickets/call-next", {"whoever_is_next": True})
            return f"{out['ticket_no']}番の方をお呼びしました。", None
        case "walk_in":
            out = await api.post("desk", f"{base}/walk-in")
            return f"受付しました（{out['ticket_no']}番）。対応を記録してください。", out["visit_id"]
        case "inquiry_only":
            errors = {}
            if form.get("quick_gender") not in domain.GENDERS:
                errors["quick_gender"] = "性別を選択してください。"
            if form.get("quick_age") not in domain.AGE_BANDS:
                errors["quick_age"] = "年代を選択してください。"
            if errors:
                raise FormRefused(errors)
            out = await api.post("desk", f"{base}/walk-in")
            path = f"/v1/visits/{out['visit_id']}"
            await api.post(
                "desk",
                f"{path}/details",
                {
                    "gender": form["quick_gender"],
                    "age_band": form["quick_age"],
                    "purposes": ["inquiry_only"],
                    "support_needed": False,
                    "support_given": False,
                },
            )
            await api.post("desk", f"{path}/end", {"outcome": "completed"})
            return f"問合せのみとして記録しました（{out['ticket_no']}番）。", None
        case "recall":
            await api.post("desk", f"{base}/tickets/{int(arg)}/recall", {})
            return f"{int(arg)}番の方をもう一度お呼びしました。", None
        case "no_show":
            await api.post("desk", f"{base}/tickets/{int(arg)}/no-show", {})
            return f"{int(arg)}番を不在として記録しました。", None
        case "serve":
            out = await api.post("desk", f"{base}/tickets/{int(arg)}/visit")
            return f"{int(arg)}番の方の対応を開始しました。", out["visit_id"]
        case "disinfect":
            after = form.get("after_visit") or None
            await api.post("desk", f"{base}/disinfections", {"after_visit_id": after} if after else {})
            return "機器の消毒を記録しました。次の方をお呼びできます。", None
    raise ApiError(400, "不明な操作です", "不明な操作です。画面を更新してください。")


class FormRefused(Exception):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors


@router.post("/desk/{desk_id}/act")
async def desk_act(request: Request, desk_id: str, session: DeskSession, api: Api):
    """Queue, staffing and disinfection buttons."""
    form = await read_form(request)
    action = form.get("action", "")
    api.command(form.get("command_id"))
    try:
        message, visit_id = await _desk_action(api, desk_id, action, form)
    except FormRefused as exc:
        return await _page(
            request,
            api,
            session,
            desk_id,
            visit_id=_current_visit(request, desk_id),
            values=dict(form),
            errors=exc.errors,
            form_error="入力内容を確認してください。",
            status=422,
        )
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _page(
            request,
            api,
            session,
            desk_id,
            visit_id=_current_visit(request, desk_id),
            form_error=exc.detail,
            status=exc.status,
        )
    target = f"/desk/{desk_id}" + (f"?visit={visit_id}" if visit_id else "")
    response = RedirectResponse(target, status_code=303)
    if visit_id:
        response.set_cookie(
            VISIT_COOKIE, f"{desk_id}:{visit_id}", path="/", httponly=True, samesite="strict", max_age=12 * 3600
        )
    if action == "disinfect":
        response.delete_cookie(DONE_COOKIE, path="/")
    set_flash(response, message)
    return response


def _details_body(form: FormValues) -> tuple[dict[str, Any] | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not form.get("gender"):
        errors["gender"] = "性別を選択してください。"
    if not form.get("age_band"):
        errors["age_band"] = "年代を選択してください。"
    if not form.getlist("purposes"):
        errors["purposes"] = "来訪目的を1つ以上選択してください。"
    for name, text in (("support_needed", "支援が必要だったか"), ("support_given", "支援を行ったか")):
        if form.get(name) not in ("yes", "no"):
            errors[name] = f"{text}を選択してください。"
    if errors:
        return None, errors
    return {
        "gender": form["gender"],
        "age_band": form["age_band"],
        "purposes": form.getlist("purposes"),
        "support_needed": form["support_needed"] == "yes",
        "support_given": form["support_given"] == "yes",
        "payment_service": form.get("payment_service") or None,
    }, {}


def _any_details(form: FormValues) -> bool:
    return any(form.get(f) for f in DETAIL_FIELDS) or bool(form.getlist("purposes"))


@router.post("/desk/{desk_id}/visit/{visit_id}")
async def visit_act(request: Request, desk_id: str, visit_id: str, session: DeskSession, api: Api):
    """The visit form: save, PIN failures, card custody, end of the visit."""
    form = await read_form(request)
    api.command(form.get("command_id"))
    action = form.get("action", "save")
    values = _form_values(form)
    path = f"/v1/visits/{visit_id}"

    async def again(
        errors: dict | None = None,
        form_error: str | None = None,
        status: int = 200,
        flash: str | None = None,
        warning: str | None = None,
    ):
        return await _page(
            request,
            api,
            session,
            desk_id,
            visit_id=visit_id,
            values=values,
            errors=errors,
            form_error=form_error,
            status=status,
            flash=flash,
            warning=warning,
        )

    try:
        if action.startswith("pin:"):
            out = await api.post("desk", f"{path}/pin-failures", {"pin": action.partition(":")[2]})
            return await again(flash="暗証番号の失敗を記録しました。", warning=out.get("warning_ja"))
        if action in ("card_handed", "card_returned", "card_left"):
            sub = {"card_handed": "card/handed", "card_returned": "card/returned", "card_left": "card/left-behind"}[
                action
            ]
            out = await api.post("desk", f"{path}/{sub}")
            flash = {
                "card_handed": "カードをお預かりしました。対応後は必ずお返しください。",
                "card_returned": "カードの返却を記録しました。",
                "card_left": "カードの置き忘れを本部へ緊急連絡しました。手順に従ってください。",
            }[action]
            warning = (out.get("incident") or {}).get("message_ja") if action == "card_left" else None
            return await again(flash=flash, warning=warning)

        # save / end: the details, then the opinion, then (for end) the outcome.
        ending = action == "end"
        details, errors = (None, {})
        if ending or _any_details(form):
            details, errors = _details_body(form)
        if ending:
            if form.get("outcome") not in ("completed", "not_completed"):
                errors["outcome"] = "対応結果を選択してください。"
            elif form.get("outcome") == "not_completed" and not form.get("reason"):
                errors["reason"] = "未完了の理由を選択してください。"
        if form.text("opinion_text") and not form.get("opinion_kind"):
            errors["opinion_kind"] = "意見の種類を選択してください。"
        if errors:
            return await again(errors=errors, form_error="入力内容を確認してください。", status=422)
        if details is not None:
            await api.post("desk", f"{path}/details", details)
        if form.text("opinion_text"):
            await api.post(
                "desk",
                f"{path}/opinions",
                {
                    "kind": form["opinion_kind"],
                    "step": form.get("opinion_step") or None,
                    "text": form.text("opinion_text"),
                },
            )
            values["opinion_text"] = ""
            values["opinion_kind"] = ""
            values["opinion_step"] = ""
        if not ending:
            response = RedirectResponse(f"/desk/{desk_id}?visit={visit_id}", status_code=303)
            set_flash(response, "記録を保存しました。")
            return response
        outcome = form["outcome"]
        await api.post(
            "desk",
            f"{path}/end",
            {"outcome": outcome, "reason": form.get("reason") if outcome == "not_completed" else None},
        )
    except ApiError as exc:
        if exc.status == 401:
            raise
        errors, form_error = exc.for_form(VISIT_API_FIELDS)
        return await again(errors=errors, form_error=form_error or "入力内容を確認してください。", status=exc.status)
    response = RedirectResponse(f"/desk/{desk_id}", status_code=303)
    response.delete_cookie(VISIT_COOKIE, path="/")
    ticket = values.get("ticket_no") or ""
    response.set_cookie(
        DONE_COOKIE, f"{desk_id}:{visit_id}:{ticket}", path="/", httponly=True, samesite="strict", max_age=12 * 3600
    )
    response.set_cookie(
        PURPOSES_COOKIE,
        ",".join(p for p in form.getlist("purposes") if p in domain.PURPOSES),
        path="/",
        httponly=True,
        samesite="strict",
        max_age=30 * 24 * 3600,
    )
    set_flash(response, "対応を終了しました。次の方の前に機器を消毒してください。")
    return response


@router.post("/desk/{desk_id}/escalate")
async def escalate(request: Request, desk_id: str, session: DeskSession, api: Api):
    """DESK-6: raise a case to the manager."""
    form = await read_form(request)
    api.command(form.get("command_id"))
    esc_values = {"esc_category": form.get("esc_category", ""), "esc_summary": form.get("esc_summary", "")}
    visit_id = form.get("visit_id") or None
    errors: dict[str, str] = {}
    if not esc_values["esc_category"]:
        errors["esc_category"] = "種類を選択してください。"
    if not esc_values["esc_summary"].strip():
        errors["esc_summary"] = "概要を入力してください。"
    if not errors:
        try:
            out = await api.post(
                "desk",
                f"/v1/desks/{desk_id}/escalations",
                {
                    "category": esc_values["esc_category"],
                    "summary": esc_values["esc_summary"].strip(),
                    "visit_id": visit_id,
                },
            )
        except ApiError as exc:
            if exc.status == 401:
                raise
            errors, form_error = exc.for_form(ESCALATION_API_FIELDS)
            if form_error:
                errors = {"esc_summary": form_error}
        else:
            target = f"/desk/{desk_id}" + (f"?visit={visit_id}" if visit_id else "")
            response = RedirectResponse(target, status_code=303)
            set_flash(response, f"業務責任者へエスカレーションしました（{out.get('escalation_no')} 件目）。")
            return response
    return await _page(
        request, api, session, desk_id, visit_id=visit_id, esc_values=esc_values, esc_errors=errors, status=422
    )
