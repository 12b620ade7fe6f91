"""Dependencies of the console's pages: the login session (cookie → token → principal) and the
upstream client carrying the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request

from madoguchi_shared.auth import Principal, decode_token
from madoguchi_shared.events.base import Role

from madoguchi_console import permissions
from madoguchi_console.upstream import Upstream

COOKIE = "mg_session"


class LoginRequired(Exception):
    """No valid session: the page redirects to the login form (with where to come back)."""

    def __init__(self, next_path: str = "/", message: str | None = None):
        self.next_path = next_path
        self.message = message


class ScreenForbidden(Exception):
    def __init__(self, screen: str):
        self.screen = screen


@dataclass(frozen=True)
class Session:
    token: str
    principal: Principal

    @property
    def roles(self) -> frozenset[Role]:
        return self.principal.roles


def _next(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def _session_or_reason(request: Request) -> tuple[Session | None, str | None]:
    token = request.cookies.get(COOKIE)
    if not token:
        return None, None
    try:
        principal = decode_token(request.app.state.settings, token)
    except HTTPException:
        return None, "expired"
    if principal.kind != "staff":
        return None, "expired"
    # Revocable (issue 15): the account's current status and version from the live directory.
    if request.app.state.accounts.verify(principal):
        return None, "revoked"
    return Session(token=token, principal=principal), None


def read_session(request: Request) -> Session | None:
    return _session_or_reason(request)[0]


async def current_session(request: Request) -> Session:
    session, reason = _session_or_reason(request)
    if session is None:
        raise LoginRequired(_next(request), reason)
    return session


def screen(key: str):
    """Dependency: a session whose roles may open screen `key` (ORG-2)."""

    async def dependency(session: Annotated[Session, Depends(current_session)]) -> Session:
        if not permissions.may_open(session.roles, key):
            raise ScreenForbidden(key)
        return session

    return dependency


def upstream_for(request: Request, session: Session | None) -> Upstream:
    return Upstream(
        request.app.state.http,
        request.app.state.service_urls,
        session.token if session else None,
        getattr(request.state, "request_id", None),
    )


async def upstream(request: Request, session: Annotated[Session, Depends(current_session)]) -> Upstream:
    return upstream_for(request, session)


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


StaffSession = Annotated[Session, Depends(screen("staff"))]


CurrentSession = Annotated[Session, Depends(current_session)]
Api = Annotated[Upstream, Depends(upstream)]
DeskSession = Annotated[Session, Depends(screen("desk"))]
HqSession = Annotated[Session, Depends(screen("hq"))]
PhoneSession = Annotated[Session, Depends(screen("phone"))]
ReportsSession = Annotated[Session, Depends(screen("reports"))]
AuditSession = Annotated[Session, Depends(screen("audit"))]
PolicySession = Annotated[Session, Depends(screen("policy"))]
