"""The console's routers: login and logout here, one module per screen under `screens/`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from madoguchi_console import domain
from madoguchi_console.deps import COOKIE, read_session, upstream_for
from madoguchi_console.forms import read_form
from madoguchi_console.upstream import ApiError
from madoguchi_console.views import render

router = APIRouter(include_in_schema=False)


def routers() -> list[APIRouter]:
    from madoguchi_console.screens import audit, desk, display, hq, phone, reports

    return [router, desk.router, display.router, hq.router, phone.router, reports.router, audit.router]


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
    return RedirectResponse(domain.home_path(session.roles), status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None, expired: str | None = None):
    """The login form: staff id, password and municipality code."""
    settings = request.app.state.settings
    values = {"municipality": settings.municipality, "next": _safe_next(next) or ""}
    notice = "ログインの有効期限が切れました。もう一度ログインしてください。" if expired else None
    return render(request, "login.html", values=values, notice=notice)


@router.post("/login")
async def login(request: Request):
    """Log in at the desk service (POST /v1/auth/token); the token is kept in an HttpOnly cookie."""
    form = await read_form(request)
    values = {"username": form.get("username", ""), "municipality": form.get("municipality", ""), "next": form.get("next", "")}
    errors: dict[str, str] = {}
    if not values["username"].strip():
        errors["username"] = "職員IDを入力してください。"
    if not form.get("password"):
        errors["password"] = "パスワードを入力してください。"
    if errors:
        return render(request, "login.html", 422, values=values, errors=errors)
    api = upstream_for(request, None)
    body = {"username": values["username"].strip(), "password": form.get("password", ""),
            "municipality": values["municipality"].strip() or None}
    try:
        token = await api.post("desk", "/v1/auth/token", json=body)
    except ApiError as exc:
        errors = exc.field_errors()
        if "username" not in errors and "password" not in errors and "municipality" not in errors:
            errors = {"password": exc.detail} if exc.status == 401 else {}
        return render(request, "login.html", exc.status if exc.status >= 400 else 502, values=values, errors=errors,
                      form_error=None if errors else exc.detail)
    roles = [domain.Role(r) for r in token["roles"]]
    target = _safe_next(values["next"]) or domain.home_path(roles)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token["access_token"], max_age=int(token.get("expires_in") or 8 * 3600), path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request):
    """Forget the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/forbidden")
async def forbidden(request: Request):
    return render(request, "error.html", 403, title="権限がありません", detail="このアカウントで使える画面がありません。管理者に連絡してください。")
