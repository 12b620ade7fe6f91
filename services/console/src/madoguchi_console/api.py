"""The console's routers: login and logout here, one module per screen under `screens/`."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_shared import auth
from madoguchi_shared.auth import LoginRefused
from madoguchi_shared.web import login_with_throttle

from madoguchi_console import permissions
from madoguchi_console.deps import COOKIE, read_session
from madoguchi_console.forms import read_form
from madoguchi_console.views import render

router = APIRouter(include_in_schema=False)


def routers() -> list[APIRouter]:
    from madoguchi_console.screens import audit, desk, display, faq, hq, phone, policy, reports, staff

    return [
        router,
        desk.router,
        display.router,
        hq.router,
        faq.router,
        phone.router,
        reports.router,
        audit.router,
        staff.router,
        policy.router,
    ]


def _safe_next(value: str | None) -> str | None:
    # Only paths on this site: never an absolute URL or a scheme-relative one.
    if value and value.startswith("/") and not value.startswith("//") and not value.startswith("/login"):
        return value
    return None


@router.get("/")
async def home(request: Request):
    """Each role lands on its own screen."""
    session = read_session(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(permissions.home_path(session.roles), status_code=303)


NOTICES = {
    "1": "ログインの有効期限が切れました。もう一度ログインしてください。",
    "revoked": "このログインは無効になりました（アカウントの無効化・役割の変更・パスワードのリセット・ログアウト）。もう一度ログインしてください。",
}
USERNAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MUNICIPALITY = re.compile(r"^[0-9]{6}$")


@router.get("/login")
async def login_form(request: Request, next: str | None = None, expired: str | None = None):
    """The login form: staff id, password and municipality code."""
    settings = request.app.state.settings
    values = {"municipality": settings.municipality, "next": _safe_next(next) or ""}
    notice = NOTICES.get(expired or "", NOTICES["1"]) if expired else None
    return render(request, "login.html", values=values, notice=notice)


@router.post("/login")
async def login(request: Request):
    """Log in here, with the shared login code over the shared account store (no other service
    needed); the token is kept in an HttpOnly cookie. After a password reset the form asks for a
    new password and logs in with it."""
    form = await read_form(request)
    values = {
        "username": form.get("username", "").strip(),
        "municipality": form.get("municipality", "").strip(),
        "next": form.get("next", ""),
    }
    change = bool(form.get("change"))
    errors: dict[str, str] = {}
    if not values["username"]:
        errors["username"] = "職員IDを入力してください。"
    elif not USERNAME.match(values["username"]):
        errors["username"] = "職員IDは半角英数字（と - _）で入力してください。"
    if not form.get("password"):
        errors["password"] = "パスワードを入力してください。"
    if values["municipality"] and not MUNICIPALITY.match(values["municipality"]):
        errors["municipality"] = "自治体コードは6桁の数字で入力してください。"
    new_password = form.get("new_password") or None
    if change:
        if not new_password:
            errors["new_password"] = "新しいパスワードを入力してください。"
        elif new_password != form.get("new_password2"):
            errors["new_password2"] = "確認用のパスワードが一致しません。"
    if errors:
        return render(request, "login.html", 422, values=values, errors=errors, change=change)
    try:
        result = await login_with_throttle(
            request,
            username=values["username"],
            password=form.get("password", ""),
            municipality=values["municipality"] or None,
            new_password=new_password if change else None,
        )
    except LoginRefused as exc:
        if exc.code == "password_change_required":
            return render(
                request,
                "login.html",
                200,
                values=values,
                change=True,
                notice="パスワードがリセットされています。仮のパスワードと、新しいパスワード（10文字以上）を入力してください。",
            )
        if exc.code in ("weak_password", "password_unchanged"):
            return render(
                request, "login.html", exc.status, values=values, change=True, errors={"new_password": exc.detail}
            )
        response = render(
            request, "login.html", exc.status, values=values, change=change, errors={"password": exc.detail}
        )
        if exc.retry_after:
            response.headers["retry-after"] = str(exc.retry_after)
        return response
    roles = list(result.account.roles)
    target = _safe_next(values["next"]) or permissions.home_path(roles)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        result.token,
        max_age=int(result.expires_in),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request):
    """Revoke the session's token in every service and forget the cookie."""
    session = read_session(request)
    if session is not None:
        await auth.logout(request.app.state.js, session.principal, request.app.state.service_name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/forbidden")
async def forbidden(request: Request):
    return render(
        request,
        "error.html",
        403,
        title="権限がありません",
        detail="このアカウントで使える画面がありません。管理者に連絡してください。",
    )
