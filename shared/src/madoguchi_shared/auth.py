"""Identity and access: staff accounts, login, short-lived signed tokens, role and ward checks.

- Staff accounts live in the JetStream key-value bucket `mg_staff` (key `<municipality>.<staff_id>`)
  with an argon2 password hash; their creation and changes are also events (admin context).
  A staff account has a staff id, roles and a ward scope, never a name.
- A token is an HS256 JWT: sub, kind (staff | service | device), roles, wards, municipality, exp.
- `require(*roles)` is the FastAPI dependency every service uses; a refusal is a 403 and an
  `admin.access_denied` event (repeated 403s are an HQ alert).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from madoguchi_shared import bus
from madoguchi_shared.events.admin import AccessDenied, StaffAccountCreated, StaffPasswordChanged, StaffRolesChanged
from madoguchi_shared.events.base import Actor, Role
from madoguchi_shared.logging import get_logger
from madoguchi_shared.settings import Settings

log = get_logger(__name__)

ALGORITHM = "HS256"
STAFF_BUCKET = "mg_staff"
# Roles whose empty ward list means "every ward" (HQ and the city); a supporter or operator
# must be given wards explicitly.
HQ_ROLES = frozenset({Role.manager, Role.rounder, Role.city_staff, Role.auditor, Role.administrator, Role.service})

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    staff_id: str
    roles: frozenset[Role]
    wards: tuple[str, ...]
    municipality: str
    kind: str = "staff"
    desk: str | None = None
    token_id: str = field(default="", compare=False)

    @property
    def actor(self) -> Actor:
        role = next(iter(sorted(self.roles, key=lambda r: _ROLE_ORDER.index(r))), Role.system)
        return Actor(id=self.staff_id, role=role)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def sees_ward(self, ward: str | None) -> bool:
        if ward is None or ward in self.wards:
            return True
        return not self.wards and bool(self.roles & HQ_ROLES)

    async def check_ward(self, request: Request, ward: str | None) -> None:
        """403 (recorded) when `ward` is outside this principal's scope."""
        if not self.sees_ward(ward):
            await deny(request, self, "ward", target_ward=ward)

    async def check_municipality(self, request: Request, municipality: str) -> None:
        if municipality != self.municipality:
            await deny(request, self, "municipality")


_ROLE_ORDER = [
    Role.manager, Role.rounder, Role.supporter, Role.operator, Role.city_staff, Role.auditor,
    Role.administrator, Role.service, Role.device, Role.system,
]


class Unauthorized(HTTPException):
    def __init__(self, detail: str = "ログインが必要です（トークンがないか、期限切れです）。"):
        super().__init__(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def issue_token(
    settings: Settings,
    *,
    staff_id: str,
    roles: Iterable[Role | str],
    wards: Iterable[str] = (),
    municipality: str | None = None,
    kind: str = "staff",
    desk: str | None = None,
    ttl: int | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "sub": staff_id,
        "kind": kind,
        "roles": [Role(r).value for r in roles],
        "wards": list(wards),
        "mun": municipality or settings.municipality,
        "iat": now,
        "exp": now + (ttl if ttl is not None else settings.token_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if desk:
        claims["desk"] = desk
    return jwt.encode(claims, settings.resolved_token_secret(), algorithm=ALGORITHM)


@functools.lru_cache(maxsize=8192)
def _verified_claims(secret: str, token: str) -> dict:
    """Signature and claims checked once per token (~100 µs); expiry is re-checked on every use."""
    return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        claims = _verified_claims(settings.resolved_token_secret(), token)
        if claims["exp"] < time.time():
            raise jwt.ExpiredSignatureError("expired")
        return Principal(
            staff_id=claims["sub"],
            roles=frozenset(Role(r) for r in claims.get("roles", [])),
            wards=tuple(claims.get("wards", [])),
            municipality=claims["mun"],
            kind=claims.get("kind", "staff"),
            desk=claims.get("desk"),
            token_id=claims.get("jti", ""),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("トークンの有効期限が切れています。もう一度ログインしてください。") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
        raise Unauthorized("トークンが無効です。") from exc


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized()
    return decode_token(request.app.state.settings, credentials.credentials)


async def deny(request: Request, principal: Principal, reason: str, *, required: Iterable[Role] = (), target_ward: str | None = None):
    """Record an access refusal as an event, then raise 403."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)[:300]
    event = AccessDenied(
        municipality=principal.municipality,
        subject_id=principal.staff_id,
        service=request.app.state.service_name,
        method=request.method if request.method in ("GET", "POST", "PUT", "PATCH", "DELETE") else "GET",
        path=path,
        required_roles=tuple(required),
        target_ward=target_ward,
        reason=reason,
        actor=principal.actor,
    )
    try:
        await bus.append(request.app.state.js, event)
    except Exception as exc:  # noqa: BLE001 - the refusal stands even if recording it failed
        log.error("access_denied.not_recorded", error=str(exc))
    messages = {
        "role": "この操作を行う権限がありません。",
        "ward": "担当区以外の窓口は操作できません。",
        "municipality": "他の自治体のデータは操作できません。",
        "token": "このトークンでは操作できません。",
    }
    raise HTTPException(status_code=403, detail=messages.get(reason, "権限がありません。"))


def require(*roles: Role):
    """Dependency: a principal holding one of `roles` (any authenticated principal if none given)."""

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if roles and not principal.has(*roles):
            await deny(request, principal, "role", required=roles)
        return principal

    dependency.__name__ = "require_" + "_".join(r.value for r in roles)
    return dependency


# --- staff store -----------------------------------------------------------------------------


async def staff_bucket(js: JetStreamContext, replicas: int = 1):
    try:
        return await js.key_value(STAFF_BUCKET)
    except BucketNotFoundError:
        from nats.js.api import KeyValueConfig

        return await js.create_key_value(KeyValueConfig(bucket=STAFF_BUCKET, history=5, replicas=replicas))


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise ValueError("パスワードは10文字以上にしてください。")
    return _hasher.hash(password)


async def add_staff(
    js: JetStreamContext,
    *,
    municipality: str,
    staff_id: str,
    roles: Iterable[Role],
    wards: Iterable[str] = (),
    password: str,
    actor: Actor | None = None,
) -> None:
    """Create or replace a staff account (KV) and record it as events."""
    roles = tuple(Role(r) for r in roles)
    wards = tuple(wards)
    kv = await staff_bucket(js)
    key = f"{municipality}.{staff_id}"
    try:
        existing = await kv.get(key)
    except KeyNotFoundError:
        existing = None
    record = {"password_hash": hash_password(password), "roles": [r.value for r in roles], "wards": list(wards), "disabled": False}
    await kv.put(key, json.dumps(record).encode())
    common: dict[str, Any] = {"municipality": municipality, "staff_id": staff_id}
    if actor:
        common["actor"] = actor
    if existing is None:
        await bus.append(js, StaffAccountCreated(roles=roles, wards=wards, **common))
    else:
        await bus.append(js, StaffRolesChanged(roles=roles, wards=wards, **common))
        await bus.append(js, StaffPasswordChanged(**common))


async def authenticate(js: JetStreamContext, municipality: str, staff_id: str, password: str) -> tuple[dict | None, str]:
    """Return (record, "") on success or (None, reason)."""
    kv = await staff_bucket(js)
    try:
        entry = await kv.get(f"{municipality}.{staff_id}")
    except KeyNotFoundError:
        _hasher.hash("timing-equaliser")  # same cost as a real check
        return None, "unknown_staff"
    record = json.loads(entry.value)
    try:
        _hasher.verify(record["password_hash"], password)
    except (VerifyMismatchError, VerificationError):
        return None, "bad_password"
    if record.get("disabled"):
        return None, "disabled"
    return record, ""


__all__ = [
    "Principal", "Role", "Unauthorized", "issue_token", "decode_token", "current_principal", "require", "deny",
    "add_staff", "authenticate", "hash_password", "staff_bucket",
]
