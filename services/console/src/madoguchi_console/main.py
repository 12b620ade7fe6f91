"""The web console: server-rendered pages in Japanese over the services' HTTP APIs (issue 8).

`create_app(settings)` builds the FastAPI app with the shared service shell (health, metrics,
problem+json, request ids). The console keeps no data: an httpx client opened in the lifespan
calls the desk, calls, reporting and audit services with the user's bearer token. Their base URLs
are `app.state.service_urls` (from settings; tests point them at their own servers).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from madoguchi_shared.settings import Settings
from madoguchi_shared.web import create_service_app, security_headers

from madoguchi_console import api
from madoguchi_console.deps import COOKIE, LoginRequired, ScreenForbidden, login_url
from madoguchi_console.upstream import ApiError, default_urls
from madoguchi_console.views import HERE, make_templates, render


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=3.0)) as client:
        app.state.http = client
        yield


# Scripts and styles only from the console itself: no inline script, no event-handler attributes,
# no javascript: URLs, nothing loaded from elsewhere, never framed. Style attributes stay allowed
# (style-src-attr): they cannot run code, and the screens use a few for layout.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src-elem 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def _answered(answer: Response | Awaitable[Response]) -> Response:
    """What an exception handler answered: Starlette takes plain and async handlers alike."""
    return await answer if inspect.isawaitable(answer) else answer


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        "console", settings, routers=api.routers(), lifespan=_lifespan, description="窓口コンソール（Web画面）"
    )
    app.state.service_urls = default_urls(settings)
    app.state.municipality = _municipality(settings)
    app.state.templates = make_templates(app.state.municipality)
    app.state.security_headers = security_headers(CONSOLE_CSP)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _install_page_errors(app)

    @app.middleware("http")
    async def same_origin_posts(request: Request, call_next):
        # The session cookie is SameSite=Strict; refusing cross-origin form posts as well costs
        # nothing and covers browsers that ignore SameSite.
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
                return PlainTextResponse("他のサイトからの送信は受け付けません。", status_code=403)
        response = await call_next(request)
        if not request.url.path.startswith("/static/"):
            # Pages carry live data and, after a refused form, what was typed: never cached.
            response.headers.setdefault("cache-control", "no-store")
        return response

    return app


def _municipality(settings: Settings):
    """The municipality's configuration (ward names, HQ thresholds); None when it cannot be read
    (the console then falls back to the services' own names and default thresholds)."""
    from madoguchi_shared.municipality import load_municipality

    try:
        if settings.config_file:
            return load_municipality(settings.config_file, code=settings.municipality)
        return load_municipality(settings.municipality, config_dir=settings.extra.get("config_dir"))
    except Exception:  # noqa: BLE001 - a console without the file still works
        return None


_MACHINE_PATHS = ("/v1/", "/health", "/metrics", "/ready", "/docs", "/openapi")
_PAGE_ERRORS = {
    404: (
        "ページが見つかりません",
        "お探しのページは見つかりませんでした。アドレスを確かめるか、上のメニューから画面を選んでください。",
    ),
    405: ("この操作はできません", "この画面ではその操作はできません。画面を更新してもう一度お試しください。"),
    422: (
        "入力内容に誤りがあります",
        "アドレスまたは入力の形式が正しくありません。画面を更新してもう一度お試しください。",
    ),
}


def _install_page_errors(app: FastAPI) -> None:
    """People get Japanese HTML pages for errors (404, 500...); machines keep problem+json."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from madoguchi_shared import logging

    log = logging.get_logger(__name__)
    machine_http = app.exception_handlers.get(StarletteHTTPException)
    machine_any = app.exception_handlers.get(Exception)
    machine_validation = app.exception_handlers.get(RequestValidationError)

    def for_machines(request: Request) -> bool:
        return request.url.path.startswith(_MACHINE_PATHS) or "text/html" not in request.headers.get(
            "accept", "text/html"
        )

    @app.exception_handler(StarletteHTTPException)
    async def page_http_error(request: Request, exc: StarletteHTTPException):
        if for_machines(request) and machine_http is not None:
            return await _answered(machine_http(request, exc))
        title, detail = _PAGE_ERRORS.get(
            exc.status_code, ("エラーが発生しました", "処理できませんでした。画面を更新してもう一度お試しください。")
        )
        return render(request, "error.html", exc.status_code, title=title, detail=detail)

    @app.exception_handler(RequestValidationError)
    async def page_validation_error(request: Request, exc: RequestValidationError):
        if for_machines(request) and machine_validation is not None:
            return await _answered(machine_validation(request, exc))
        title, detail = _PAGE_ERRORS[422]
        return render(request, "error.html", 422, title=title, detail=detail)

    @app.exception_handler(Exception)
    async def page_unexpected(request: Request, exc: Exception):
        if for_machines(request) and machine_any is not None:
            return await _answered(machine_any(request, exc))
        log.exception("request.failed", error_type=type(exc).__name__)
        return render(
            request,
            "error.html",
            500,
            title="システムエラー",
            detail="予期しないエラーが発生しました。時間をおいてもう一度お試しください。問題が続く場合は業務責任者に連絡してください。",
        )

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        url = login_url(exc.next_path)
        if exc.message:
            url += "&expired=" + ("revoked" if exc.message == "revoked" else "1")
        response = RedirectResponse(url, status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.exception_handler(ScreenForbidden)
    async def forbidden(request: Request, exc: ScreenForbidden):
        return render(
            request,
            "error.html",
            403,
            title="権限がありません",
            detail="この画面を開く権限がありません。上のメニューから担当の画面を選んでください。",
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        if exc.status == 401:
            response = RedirectResponse(login_url(request.url.path) + "&expired=1", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response
        return render(
            request, "error.html", exc.status if exc.status >= 400 else 502, title=exc.title, detail=exc.detail
        )
