"""Staff administration screens for the manager (issue 15; ORG-2, ORG-4): the staff list with role,
ward scope, status and duty clearance; adding a person; changing role and wards; disabling and
enabling; resetting a password; recording training items and the test with date and trainer.

The console does this in its own process with the shared staff code over the shared account store
(madoguchi_shared.staff), so it works whichever service is down. Every change is an admin event
naming staff ids only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_shared import staff as st
from madoguchi_shared.errors import DomainError
from madoguchi_shared.events.base import Role
from madoguchi_shared.training import DUTY_LABELS
from madoguchi_shared.web import status_of

from madoguchi_console import permissions
from madoguchi_console.deps import Session, StaffSession
from madoguchi_console.forms import read_form
from madoguchi_console.views import render, set_flash

router = APIRouter(include_in_schema=False)
JST = ZoneInfo("Asia/Tokyo")
IDENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
STATUS_LABELS = {"active": "有効", "disabled": "無効", "locked": "ロック中", "password_reset": "パスワード再設定待ち"}
STATUS_CLASS = {"active": "ok", "disabled": "bad", "locked": "warn", "password_reset": "info"}
DISABLE_REASONS = {"left": "退職", "suspended": "一時停止", "compromised": "不正利用の疑い", "other": "その他"}
# The roles a manager gives on this screen (administrator only by an administrator).
ROLE_CHOICES = (Role.supporter, Role.operator, Role.rounder, Role.manager, Role.city_staff, Role.auditor)


def _role_text(codes: Iterable[str]) -> str:
    return "・".join(permissions.ROLE_LABELS.get(Role(c), c) for c in codes)


def _context(request: Request, session: Session) -> dict:
    settings = request.app.state.settings
    m = st.municipality_config(settings, session.principal.municipality)
    roles = ROLE_CHOICES + ((Role.administrator,) if Role.administrator in session.roles else ())
    return {
        "active": "staff",
        "role_choices": [(r.value, permissions.ROLE_LABELS.get(r, r.value)) for r in roles],
        "wards": [(w.id, w.name_ja) for w in m.wards] if m else [],
        "ward_names": {w.id: w.name_ja for w in m.wards} if m else {},
        "status_labels": STATUS_LABELS,
        "status_class": STATUS_CLASS,
        "duty_labels": DUTY_LABELS,
        "disable_reasons": DISABLE_REASONS,
        "role_text": _role_text,
        "today": datetime.now(JST).date().isoformat(),
    }


def _plan(request: Request, session: Session):
    return st.training_plan(request.app.state.settings, session.principal.municipality)


async def _list_page(request: Request, session: Session, status_code: int = 200, **extra):
    rows = await st.list_staff(
        request.app.state.js, request.app.state.accounts, _plan(request, session), session.principal.municipality
    )
    return render(request, "staff.html", status_code, rows=rows, **_context(request, session), **extra)


async def _detail_page(request: Request, session: Session, staff_id: str, status_code: int = 200, **extra):
    person = await st.staff_detail(
        request.app.state.js, _plan(request, session), session.principal.municipality, staff_id
    )
    return render(request, "staff_detail.html", status_code, person=person, **_context(request, session), **extra)


@router.get("/staff")
async def staff_list(request: Request, session: StaffSession):
    """Every staff account: role, wards, status and who is cleared for which duty."""
    return await _list_page(request, session)


@router.post("/staff")
async def staff_add(request: Request, session: StaffSession):
    """Add a person; the temporary password is shown once, on the page that answers."""
    form = await read_form(request)
    staff_id = (form.get("staff_id") or "").strip()
    values = {"staff_id": staff_id, "role": form.get("role", ""), "wards": form.getlist("wards")}
    errors: dict[str, str] = {}
    if not staff_id:
        errors["staff_id"] = "職員IDを入力してください。"
    elif not _ident(staff_id):
        errors["staff_id"] = "職員IDは半角英数字（と - _）64文字以内で入力してください。氏名は入力しないでください。"
    try:
        role = Role(values["role"])
    except ValueError:
        errors["role"] = "役割を選んでください。"
        role = None
    if errors or role is None:  # (role is None only with an error)
        return await _list_page(request, session, 422, values=values, errors=errors)
    try:
        temporary = await st.create_staff(
            request.app.state.js,
            st.municipality_config(request.app.state.settings, session.principal.municipality),
            session.principal.municipality,
            staff_id,
            (role,),
            tuple(values["wards"]),
            session.principal.actor,
            session.roles,
        )
    except DomainError as exc:
        field = {"roles": "role"}.get(exc.field or "", exc.field or "")
        errors = {field: exc.detail} if field in ("staff_id", "role", "wards") else {}
        return await _list_page(
            request, session, status_of(exc)[0], values=values, errors=errors, form_error=None if errors else exc.detail
        )
    return await _detail_page(
        request, session, staff_id, 201, temporary_password=temporary, flash="職員を追加しました。"
    )


def _ident(value: str) -> bool:
    return bool(IDENT.fullmatch(value))


@router.get("/staff/{staff_id}")
async def staff_detail(staff_id: str, request: Request, session: StaffSession):
    """One person: account, role and wards, and the training record (ORG-4)."""
    if not _ident(staff_id):
        return render(request, "error.html", 404, title="見つかりません", detail="職員IDが正しくありません。")
    return await _detail_page(request, session, staff_id)


async def _act(request: Request, session: Session, staff_id: str, action, done: str):
    """Run one change; back to the person's page with a message, or the page again with the refusal."""
    if not _ident(staff_id):
        return render(request, "error.html", 404, title="見つかりません", detail="職員IDが正しくありません。")
    try:
        extra = await action()
    except DomainError as exc:
        return await _detail_page(request, session, staff_id, status_of(exc)[0], form_error=exc.detail)
    if extra:
        return await _detail_page(request, session, staff_id, 200, flash=done, **extra)
    response = RedirectResponse(f"/staff/{staff_id}", status_code=303)
    set_flash(response, done)
    return response


@router.post("/staff/{staff_id}/roles")
async def staff_roles(staff_id: str, request: Request, session: StaffSession):
    form = await read_form(request)
    try:
        role = Role(form.get("role", ""))
    except ValueError:
        return await _detail_page(request, session, staff_id, 422, form_error="役割を選んでください。")
    wards = tuple(form.getlist("wards"))
    m = st.municipality_config(request.app.state.settings, session.principal.municipality)

    async def go():
        await st.change_roles(
            request.app.state.js,
            m,
            session.principal.municipality,
            staff_id,
            (role,),
            wards,
            session.principal.actor,
            session.roles,
        )

    return await _act(request, session, staff_id, go, "役割・担当区を変更しました。本人は再ログインが必要です。")


@router.post("/staff/{staff_id}/disable")
async def staff_disable(staff_id: str, request: Request, session: StaffSession):
    form = await read_form(request)
    reason = form.get("reason") if form.get("reason") in DISABLE_REASONS else "other"

    async def go():
        await st.set_disabled(
            request.app.state.js,
            session.principal.municipality,
            staff_id,
            True,
            session.principal.actor,
            session.roles,
            reason,  # type: ignore[arg-type]
        )

    return await _act(
        request, session, staff_id, go, "アカウントを無効にしました。ログイン中の画面も使えなくなります。"
    )


@router.post("/staff/{staff_id}/enable")
async def staff_enable(staff_id: str, request: Request, session: StaffSession):
    async def go():
        await st.set_disabled(
            request.app.state.js,
            session.principal.municipality,
            staff_id,
            False,
            session.principal.actor,
            session.roles,
        )

    return await _act(request, session, staff_id, go, "アカウントを有効にしました。")


@router.post("/staff/{staff_id}/password-reset")
async def staff_password_reset(staff_id: str, request: Request, session: StaffSession):
    async def go():
        temporary = await st.reset_password(
            request.app.state.js, session.principal.municipality, staff_id, session.principal.actor, session.roles
        )
        return {"temporary_password": temporary}

    return await _act(request, session, staff_id, go, "パスワードをリセットしました。")


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        return None


@router.post("/staff/{staff_id}/training")
async def staff_training(staff_id: str, request: Request, session: StaffSession):
    """Record the checked training items as completed on a date, taught by a trainer (ORG-4)."""
    form = await read_form(request)
    items = form.getlist("items")
    on = _day(form.get("completed_on"))
    trainer = (form.get("trainer") or "").strip()
    if not items:
        return await _detail_page(request, session, staff_id, 422, form_error="修了した研修項目を選んでください。")
    if on is None:
        return await _detail_page(request, session, staff_id, 422, form_error="実施日を入力してください。")
    if not _ident(trainer):
        return await _detail_page(request, session, staff_id, 422, form_error="講師の職員IDを入力してください。")
    plan = _plan(request, session)

    async def go():
        for item in items:
            await st.record_item(
                request.app.state.js,
                plan,
                session.principal.municipality,
                staff_id,
                item,
                on,
                trainer,
                None,
                session.principal.actor,
            )

    return await _act(request, session, staff_id, go, f"研修 {len(items)} 項目の修了を記録しました。")


@router.post("/staff/{staff_id}/training-test")
async def staff_training_test(staff_id: str, request: Request, session: StaffSession):
    """Record the training test (理解度テスト) with score, date and trainer."""
    form = await read_form(request)
    score = form.integer("score")
    on = _day(form.get("tested_on"))
    trainer = (form.get("trainer") or "").strip()
    if score is None or not 0 <= score <= 100:
        return await _detail_page(request, session, staff_id, 422, form_error="点数は0〜100で入力してください。")
    if on is None:
        return await _detail_page(request, session, staff_id, 422, form_error="実施日を入力してください。")
    if not _ident(trainer):
        return await _detail_page(request, session, staff_id, 422, form_error="講師の職員IDを入力してください。")
    plan = _plan(request, session)

    async def go():
        await st.record_test(
            request.app.state.js,
            plan,
            session.principal.municipality,
            staff_id,
            score,
            on,
            trainer,
            session.principal.actor,
        )

    verdict = "合格" if score >= plan.pass_score else "不合格"
    return await _act(request, session, staff_id, go, f"理解度テストの結果（{score}点・{verdict}）を記録しました。")
