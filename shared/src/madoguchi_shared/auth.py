"""Identity and access: staff accounts, login, short-lived signed tokens, role and ward checks.

- Staff accounts live in the JetStream key-value bucket `mg_staff` (key `<municipality>.<staff_id>`)
  with an argon2 password hash, a status and a version; every change is also an admin event
  (staff ids only). A staff account has a staff id, roles and a ward scope, never a name.
- A token is an HS256 JWT: sub, kind (staff | service | device), roles, wards, municipality, exp,
  jti and `ver`, the account's version when it was issued.
- Revocable: every service keeps an `AccountDirectory`, a local copy of `mg_staff` (and of the
  revoked token ids in `mg_revoked`) kept live by a KV watch. A staff token is accepted only while
  its account exists, is enabled and still has the token's version; disabling an account, changing
  its roles or wards and resetting its password bump the version, so the watch invalidates every
  token of it in every service within milliseconds. Logout puts the token id into `mg_revoked`.
- Login (`login`) is shared code every service serves (and the console itself): failed attempts
  are counted on the account, N of them lock it for a period (ASVS 6.3) with an
  `admin.staff_account_locked` event that the audit service turns into an HQ alert.
- `require(*roles)` is the FastAPI dependency every service uses; a refusal is a 403 and an
  `admin.access_denied` event (repeated 403s are an HQ alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict, TypeVar, cast

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from starlette.applications import Starlette

from madoguchi_shared import bus
from madoguchi_shared.events.admin import (
    AccessDenied,
    DenialReason,
    LoginFailed,
    LoginFailure,
    LoginSucceeded,
    StaffAccountCreated,
    StaffAccountLocked,
    StaffLoggedOut,
    StaffPasswordChanged,
    StaffRolesChanged,
)
from madoguchi_shared.events.base import Actor, Role
from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import create_key_value, stop_watch, watch_all, watched
from madoguchi_shared.settings import Settings

log = get_logger(__name__)

ALGORITHM = "HS256"
STAFF_BUCKET = "mg_staff"
REVOKED_BUCKET = "mg_revoked"
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
    version: int = field(default=0, compare=False)
    expires: int = field(default=0, compare=False)

    @functools.cached_property
    def actor(self) -> Actor:  # a principal is cached per token (_verified): built once
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
    Role.manager,
    Role.rounder,
    Role.supporter,
    Role.operator,
    Role.city_staff,
    Role.auditor,
    Role.administrator,
    Role.service,
    Role.device,
    Role.system,
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
    version: int = 0,
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
        "ver": version,
    }
    if desk:
        claims["desk"] = desk
    return jwt.encode(claims, settings.resolved_token_secret(), algorithm=ALGORITHM)


@functools.lru_cache(maxsize=8192)
def _verified(secret: str, token: str) -> Principal:
    """Signature and claims checked, and the principal built, once per token (~100 µs); the expiry is
    re-checked on every use (decode_token) and revocation by the account directory on every request
    (check_account), so a cached token is refused as soon as it expires or is revoked."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    return Principal(
        staff_id=claims["sub"],
        roles=frozenset(Role(r) for r in claims.get("roles", [])),
        wards=tuple(claims.get("wards", [])),
        municipality=claims["mun"],
        kind=claims.get("kind", "staff"),
        desk=claims.get("desk"),
        token_id=claims.get("jti", ""),
        version=int(claims.get("ver", 0)),
        expires=int(claims["exp"]),
    )


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        principal = _verified(settings.resolved_token_secret(), token)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("トークンの有効期限が切れています。もう一度ログインしてください。") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("トークンが無効です。") from exc
    if principal.expires < time.time():
        raise Unauthorized("トークンの有効期限が切れています。もう一度ログインしてください。")
    return principal


_bearer = HTTPBearer(auto_error=False)

_MISSING = object()


def state_value(state: Any, name: str, default: Any = _MISSING) -> Any:
    """`getattr(state, name[, default])` for a starlette State, read from the dict it keeps (issue 19):
    State answers through `__getattr__`, called only after the ordinary lookup failed, so each read of
    `app.state.x` on a request's path raised and caught an AttributeError inside (~1 us), and a name
    not there (`security_headers` of an API service) a second, Python-level one (~4 us)."""
    kept: Any = state.__dict__.get("_state") if hasattr(state, "__dict__") else None
    if type(kept) is not dict:
        return getattr(state, name) if default is _MISSING else getattr(state, name, default)
    found: Any = cast(dict[str, Any], kept).get(name, _MISSING)
    if found is _MISSING:
        if default is _MISSING:
            raise AttributeError(name)
        return default
    return found


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized()
    principal = decode_token(state_value(request.app.state, "settings"), credentials.credentials)
    await check_account(request.app, principal)
    return principal


async def check_account(app: Starlette, principal: Principal) -> None:
    """401 unless a staff token's account exists, is enabled, has the token's version and the
    token was not revoked (logout). Device and service credentials are not staff accounts, but they are
    revocable by their id as well: a desk PC's or the PBX's credential (valid 30 days) logged out kept
    working at every service until it expired (a lost laptop, SEC-4)."""
    directory: AccountDirectory | None = state_value(app.state, "accounts", None)
    if principal.kind != "staff":
        if directory is not None and principal.token_id and principal.token_id in directory.revoked:
            raise Unauthorized("この認証情報は失効しています。新しい認証情報を発行してください。")
        return
    if directory is None:
        raise Unauthorized("アカウントを確認できません。しばらくしてからもう一度お試しください。")
    await directory.check(principal)


DENIAL_RECORD_WAIT = 1.0  # seconds a 403 waits for its admin.access_denied event to be stored
_DENIALS_IN_FLIGHT: set[asyncio.Task[None]] = set()


async def _record_denial(js: JetStreamContext, event: AccessDenied) -> None:
    try:
        await bus.append(js, event)
    except Exception as exc:  # noqa: BLE001 - the refusal stands even if recording it failed
        log.error("access_denied.not_recorded", error=str(exc))


async def deny(
    request: Request,
    principal: Principal,
    reason: DenialReason,
    *,
    required: Iterable[Role] = (),
    target_ward: str | None = None,
):
    """Record an access refusal as an event, then raise 403."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)[:300]
    if target_ward is not None and _holds_personal_data(target_ward):
        target_ward = REDACTED_ID  # a My Number typed as a ward id is not recorded
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
    # Recorded before answering when the bus answers at once; a frozen bus (no answer until the
    # publish times out, ~16 s) does not hold the 403: the recording goes on in the background.
    task = asyncio.create_task(_record_denial(request.app.state.js, event))
    _DENIALS_IN_FLIGHT.add(task)
    task.add_done_callback(_DENIALS_IN_FLIGHT.discard)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), DENIAL_RECORD_WAIT)
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


PASSWORD_MIN = 10


@dataclass
class Account:
    """One staff account as stored in `mg_staff` (the password hash never leaves this module's callers)."""

    municipality: str
    staff_id: str
    roles: tuple[Role, ...]
    wards: tuple[str, ...] = ()
    disabled: bool = False
    version: int = 1
    must_change_password: bool = False
    failures: int = 0
    locked_until: float = 0.0
    password_hash: str | None = None
    revision: int = 0  # the KV revision it was read at

    @property
    def key(self) -> str:
        return f"{self.municipality}.{self.staff_id}"

    def locked(self, now: float | None = None) -> bool:
        return self.locked_until > (now if now is not None else time.time())

    @property
    def status(self) -> str:
        if self.disabled:
            return "disabled"
        if self.locked():
            return "locked"
        if self.must_change_password:
            return "password_reset"
        return "active"

    def record(self) -> bytes:
        return json.dumps(
            {
                "password_hash": self.password_hash,
                "roles": [r.value for r in self.roles],
                "wards": list(self.wards),
                "disabled": self.disabled,
                "version": self.version,
                "must_change_password": self.must_change_password,
                "failures": self.failures,
                "locked_until": self.locked_until,
            }
        ).encode()

    @classmethod
    def from_entry(cls, key: str, value: bytes, revision: int = 0) -> Account:
        municipality, _, staff_id = key.partition(".")
        data = json.loads(value)
        return cls(
            municipality=municipality,
            staff_id=staff_id,
            roles=tuple(Role(r) for r in data.get("roles", ())),
            wards=tuple(data.get("wards", ())),
            disabled=bool(data.get("disabled")),
            version=int(data.get("version", 0)),
            must_change_password=bool(data.get("must_change_password")),
            failures=int(data.get("failures", 0)),
            locked_until=float(data.get("locked_until", 0)),
            password_hash=data.get("password_hash"),
            revision=revision,
        )

    def public(self) -> dict[str, Any]:
        return {
            "staff_id": self.staff_id,
            "roles": [r.value for r in self.roles],
            "wards": list(self.wards),
            "status": self.status,
            "disabled": self.disabled,
            "must_change_password": self.must_change_password,
            "locked_until": self.locked_until if self.locked() else None,
            "version": self.version,
        }


async def staff_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    try:
        return await js.key_value(STAFF_BUCKET)
    except BucketNotFoundError:
        from nats.js.api import KeyValueConfig

        return await create_key_value(js, KeyValueConfig(bucket=STAFF_BUCKET, history=5, replicas=replicas))


REVOKED_MARGIN_S = 3600  # a revocation is kept this long past its token's expiry (clocks differ)


async def revoked_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """Revoked token ids (logout). No age limit for the bucket: each entry lives as long as its own token
    (a per-message TTL, `revoke`), so a device's or service's credential of 30 days (or a year) stays
    revoked to its end; a bucket-wide age of 7 days let a revoked 30-day credential work again."""
    try:
        return await js.key_value(REVOKED_BUCKET)
    except BucketNotFoundError:
        from nats.js.api import KeyValueConfig

        return await create_key_value(js, KeyValueConfig(bucket=REVOKED_BUCKET, history=1, replicas=replicas))


async def revoke(js: JetStreamContext, principal: Principal) -> None:
    """Put the token id into `mg_revoked` until its token expires (plus a margin)."""
    expires = int(principal.expires or time.time() + 86400)
    rkv = await revoked_bucket(js)
    ttl = max(60, expires - int(time.time()) + REVOKED_MARGIN_S)
    try:
        await rkv.create(principal.token_id, str(expires).encode(), msg_ttl=ttl)
    except KeyWrongLastSequenceError:
        pass  # revoked already


def hash_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise ValueError(f"パスワードは{PASSWORD_MIN}文字以上にしてください。")
    if len(password) > 200:
        raise ValueError("パスワードは200文字以内にしてください。")
    return _hasher.hash(password)


async def hash_password_async(password: str) -> str:
    """hash_password off the event loop: argon2 takes about a second of CPU on a busy 2-core
    machine, and the service keeps answering other requests meanwhile."""
    return await asyncio.to_thread(hash_password, password)


async def _verify(password_hash: str | None, password: str) -> bool:
    """Check a password off the event loop; an unknown account costs the same as a known one."""

    def check() -> bool:
        if not password_hash:
            _hasher.hash("timing-equaliser")
            return False
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError):
            return False

    return await asyncio.to_thread(check)


def temporary_password() -> str:
    """A one-time password for a new or reset account (the person replaces it at the first login)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(14))


async def read_account(js: JetStreamContext, municipality: str, staff_id: str) -> Account | None:
    kv = await staff_bucket(js)
    try:
        entry = await kv.get(f"{municipality}.{staff_id}")
    except KeyNotFoundError:
        return None
    if entry.value is None or entry.operation in ("DEL", "PURGE"):
        return None
    return Account.from_entry(entry.key, entry.value, entry.revision or 0)


async def write_account(js: JetStreamContext, account: Account, *, create: bool = False) -> Account:
    """Store `account` if nobody changed it since it was read (compare-and-set on the KV revision);
    raises bus.ConcurrencyConflict otherwise (HTTP 409)."""
    kv = await staff_bucket(js)
    try:
        if create:
            revision = await kv.create(account.key, account.record())
        else:
            revision = await kv.update(account.key, account.record(), last=account.revision)
    except BadRequestError as exc:
        if isinstance(exc, KeyWrongLastSequenceError) or exc.err_code in (10071, 10164):
            raise bus.ConcurrencyConflict(f"{STAFF_BUCKET}.{account.key}", account.revision) from exc
        raise
    account.revision = revision
    return account


async def add_staff(
    js: JetStreamContext,
    *,
    municipality: str,
    staff_id: str,
    roles: Iterable[Role],
    wards: Iterable[str] = (),
    password: str,
    actor: Actor | None = None,
) -> Account:
    """Create or replace a staff account (KV) and record it as events (the command line's `staff add`).

    Replacing one bumps its version: every token issued before is refused from then on."""
    roles = tuple(Role(r) for r in roles)
    wards = tuple(wards)
    existing = await read_account(js, municipality, staff_id)
    account = Account(
        municipality=municipality,
        staff_id=staff_id,
        roles=roles,
        wards=wards,
        password_hash=await hash_password_async(password),
        version=(existing.version + 1) if existing else 1,
        revision=existing.revision if existing else 0,
    )
    await write_account(js, account, create=existing is None)
    common: dict[str, Any] = {"municipality": municipality, "staff_id": staff_id}
    if actor:
        common["actor"] = actor
    if existing is None:
        await bus.append(js, StaffAccountCreated(roles=roles, wards=wards, **common))
    else:
        await bus.append(js, StaffRolesChanged(roles=roles, wards=wards, **common))
        await bus.append(js, StaffPasswordChanged(**common))
    return account


async def ensure_account(
    js: JetStreamContext, *, municipality: str, staff_id: str, roles: Iterable[Role], wards: Iterable[str] = ()
) -> Account:
    """An account with these roles and wards, created without a password if there is none (it cannot
    log in: its tokens come from `issue_token`, e.g. tools and tests acting as a staff member)."""
    roles = tuple(Role(r) for r in roles)
    wards = tuple(wards)
    existing = await read_account(js, municipality, staff_id)
    if (
        existing is not None
        and set(existing.roles) == set(roles)
        and set(existing.wards) == set(wards)
        and not existing.disabled
    ):
        return existing
    if existing is None:
        account = Account(municipality=municipality, staff_id=staff_id, roles=roles, wards=wards)
        try:
            await write_account(js, account, create=True)
        except bus.ConcurrencyConflict:
            return await ensure_account(js, municipality=municipality, staff_id=staff_id, roles=roles, wards=wards)
        await bus.append(
            js, StaffAccountCreated(municipality=municipality, staff_id=staff_id, roles=roles, wards=wards)
        )
        return account
    existing.roles, existing.wards, existing.disabled = roles, wards, False
    existing.version += 1
    await write_account(js, existing)
    await bus.append(js, StaffRolesChanged(municipality=municipality, staff_id=staff_id, roles=roles, wards=wards))
    return existing


async def token_for(
    js: JetStreamContext,
    settings: Settings,
    *,
    municipality: str,
    staff_id: str,
    roles: Iterable[Role],
    wards: Iterable[str] = (),
    ttl: int | None = None,
) -> str:
    """A staff token for an account made sure of with `ensure_account` (tools, tests, the simulator)."""
    account = await ensure_account(js, municipality=municipality, staff_id=staff_id, roles=roles, wards=wards)
    return issue_token(
        settings,
        staff_id=staff_id,
        roles=account.roles,
        wards=account.wards,
        municipality=municipality,
        version=account.version,
        ttl=ttl,
    )


# --- the live directory every service checks tokens against --------------------------------


class AccountDirectory:
    """A local copy of `mg_staff` and `mg_revoked`, kept live by KV watches.

    `check(principal)` is a dictionary lookup on the request path. An account the copy does not
    know yet (created a moment ago) is read from the KV once."""

    def __init__(self, js: JetStreamContext):
        self.js = js
        self.accounts: dict[str, Account] = {}
        self.revoked: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[KeyValue.KeyWatcher] = []

    async def start(self, replicas: int = 1, timeout: float = 10.0) -> AccountDirectory:
        kv = await staff_bucket(self.js, replicas)
        rkv = await revoked_bucket(self.js, replicas)
        for bucket, apply in ((kv, self._apply_account), (rkv, self._apply_revoked)):
            watcher = await watch_all(bucket)
            ready = asyncio.Event()
            self._watchers.append(watcher)
            self._tasks.append(asyncio.create_task(self._follow(watcher, apply, ready)))
            try:
                await asyncio.wait_for(ready.wait(), timeout)
            except TimeoutError:
                log.warning("accounts.initial_load_slow", bucket=bucket._name)  # pyright: ignore[reportPrivateUsage] - nats-py: a bucket's name is private
        return self

    async def stop(self) -> None:
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await stop_watch(watcher)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _follow(
        self, watcher: KeyValue.KeyWatcher, apply: Callable[[KeyValue.Entry], None], ready: asyncio.Event
    ) -> None:
        async for entry in watched(watcher):
            if entry is None:
                ready.set()
                continue
            try:
                apply(entry)
            except Exception as exc:  # noqa: BLE001 - one unreadable record must not stop the watch
                log.error("accounts.bad_record", key=entry.key, error=type(exc).__name__)
            if entry.delta == 0:
                ready.set()

    def _apply_account(self, entry: KeyValue.Entry) -> None:
        if entry.operation in ("DEL", "PURGE") or entry.value is None:
            self.accounts.pop(entry.key, None)
            return
        current = self.accounts.get(entry.key)
        revision = entry.revision or 0  # a watched entry always has one (its stream sequence)
        if current is None or current.revision <= revision:
            account = Account.from_entry(entry.key, entry.value, revision)
            account.password_hash = None  # never kept in memory beyond a login
            self.accounts[entry.key] = account

    def _apply_revoked(self, entry: KeyValue.Entry) -> None:
        if entry.operation in ("DEL", "PURGE") or entry.value is None:
            self.revoked.pop(entry.key, None)
            return
        try:
            self.revoked[entry.key] = float(entry.value.decode() or 0)
        except ValueError:
            self.revoked[entry.key] = time.time() + 86400

    async def account(self, municipality: str, staff_id: str) -> Account | None:
        key = f"{municipality}.{staff_id}"
        found = self.accounts.get(key)
        if found is None:
            found = await read_account(self.js, municipality, staff_id)
            if found is not None:
                found.password_hash = None
                current = self.accounts.get(key)
                if current is None or current.revision < found.revision:
                    self.accounts[key] = found
                else:
                    found = current
        return found

    def revoke_locally(self, principal: Principal) -> None:
        """The token is refused by this copy from now on (its revocation also reaches the watch)."""
        if principal.token_id:
            self.revoked[principal.token_id] = float(principal.expires or time.time() + 86400)

    def of_municipality(self, municipality: str) -> list[Account]:
        prefix = municipality + "."
        return sorted((a for k, a in self.accounts.items() if k.startswith(prefix)), key=lambda a: a.staff_id)

    def verify(self, principal: Principal) -> str | None:
        """Why this staff principal's token is refused by the local copy (None = accepted). Synchronous:
        an account the copy does not hold is refused (see `check` for the KV read of a new one)."""
        account = self.accounts.get(f"{principal.municipality}.{principal.staff_id}")
        return self._refusal(principal, account)

    @staticmethod
    def _reason(principal: Principal, account: Account | None, revoked: dict[str, float]) -> str | None:
        if account is None:
            return "このアカウントは登録されていません。"
        if account.disabled:
            return "このアカウントは無効になっています。業務責任者に連絡してください。"
        if principal.version != account.version:
            return "アカウントの設定が変更されました。もう一度ログインしてください。"
        if principal.token_id and principal.token_id in revoked:
            return "ログアウトしました。もう一度ログインしてください。"
        return None

    def _refusal(self, principal: Principal, account: Account | None) -> str | None:
        return self._reason(principal, account, self.revoked)

    async def check(self, principal: Principal) -> Account:
        account = await self.account(principal.municipality, principal.staff_id)
        reason = self._refusal(principal, account)
        if reason:
            raise Unauthorized(reason)
        return account  # type: ignore[return-value]


T = TypeVar("T")


async def revocable(
    app: Starlette, principal: Principal, source: AsyncGenerator[T, None], check_every: float = 0.25
) -> AsyncGenerator[T | dict[str, str], None]:
    """Pass a server-sent event stream through while the token that opened it stays valid: when the
    account is disabled, changed or the token revoked, send `expired` and end (within `check_every`
    plus the directory's watch delay), instead of streaming to a revoked token for hours."""
    directory: AccountDirectory | None = getattr(app.state, "accounts", None)
    it = source  # an async generator is its own iterator
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            reason = directory.verify(principal) if directory is not None and principal.kind == "staff" else None
            if reason:
                yield {"event": "expired", "data": json.dumps({"detail": reason}, ensure_ascii=False)}
                return
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=check_every)
            if pending in done:
                task, pending = pending, None
                try:
                    item = task.result()
                except StopAsyncIteration:
                    return
                yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await it.aclose()


# --- login and logout ------------------------------------------------------------------------


class LoginRefused(Exception):
    """A refused login: HTTP status, a code for clients, a Japanese message."""

    def __init__(self, status: int, code: str, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after


BAD_CREDENTIALS = "職員IDまたはパスワードが正しくありません。"


@dataclass(frozen=True)
class LoginResult:
    token: str
    account: Account
    expires_in: int


async def _count_failure(js: JetStreamContext, settings: Settings, account: Account, service: str) -> Account:
    """One more failed attempt on the account (compare-and-set, so services never lose a count);
    at `login_max_failures` the account locks for `login_lock_seconds` and HQ is alerted."""
    for _ in range(8):
        account.failures += 1
        locked_now = account.failures >= settings.login_max_failures
        failures = 0  # the count the lock reports, when this attempt locks the account
        if locked_now:
            account.locked_until = time.time() + settings.login_lock_seconds
            failures, account.failures = account.failures, 0
        try:
            await write_account(js, account)
        except bus.ConcurrencyConflict:
            fresh = await read_account(js, account.municipality, account.staff_id)
            if fresh is None:
                return account
            account = fresh
            continue
        if locked_now:
            from datetime import UTC, datetime

            await bus.append(
                js,
                StaffAccountLocked(
                    municipality=account.municipality,
                    staff_id=account.staff_id,
                    failures=failures,
                    until=datetime.fromtimestamp(account.locked_until, UTC),
                ),
            )
            log.warning("login.account_locked", staff_id=account.staff_id, service=service)
        return account
    return account


# The id recorded for a login attempt whose id held personal data (never the value itself).
REDACTED_ID = "redacted-personal-data"


def _holds_personal_data(staff_id: str) -> bool:
    from madoguchi_shared.pii import find_personal_data

    return sum(c.isdigit() for c in staff_id) >= 10 and bool(find_personal_data(staff_id))


async def login(
    js: JetStreamContext,
    settings: Settings,
    *,
    municipality: str,
    staff_id: str,
    password: str,
    service: str,
    new_password: str | None = None,
) -> LoginResult:
    """Check a staff id and password, record the attempt, and issue a token (or raise LoginRefused).

    An account whose password was reset logs in only with `new_password`, which replaces the
    temporary one."""

    async def failed(reason: LoginFailure) -> None:
        await bus.append(js, LoginFailed(municipality=municipality, staff_id=staff_id, service=service, reason=reason))

    if _holds_personal_data(staff_id):
        # Someone typed their My Number or phone number as the id: no account has such an id (they
        # are refused when made), and the attempt is recorded without the value.
        await _verify(None, password)  # same cost as a real check
        await bus.append(
            js,
            LoginFailed(municipality=municipality, staff_id=REDACTED_ID, service=service, reason="unknown_staff"),
        )
        raise LoginRefused(401, "bad_credentials", BAD_CREDENTIALS)
    account = await read_account(js, municipality, staff_id)
    if account is None or not account.password_hash:
        await _verify(None, password)  # same cost as a real check
        await failed("unknown_staff")
        raise LoginRefused(401, "bad_credentials", BAD_CREDENTIALS)
    now = time.time()
    if account.locked(now):
        await failed("locked")
        minutes = max(1, int((account.locked_until - now + 59) // 60))
        raise LoginRefused(
            423,
            "locked",
            f"ログインの失敗が続いたため、このアカウントはロックされています。約{minutes}分後にもう一度お試しください。",
            retry_after=int(account.locked_until - now) + 1,
        )
    if not await _verify(account.password_hash, password):
        account = await _count_failure(js, settings, account, service)
        await failed("bad_password")
        if account.locked():
            raise LoginRefused(
                423,
                "locked",
                "ログインの失敗が続いたため、このアカウントはロックされました。しばらくしてからもう一度お試しください。",
                retry_after=settings.login_lock_seconds,
            )
        raise LoginRefused(401, "bad_credentials", BAD_CREDENTIALS)
    if account.disabled:
        await failed("disabled")
        raise LoginRefused(403, "disabled", "このアカウントは無効になっています。業務責任者に連絡してください。")
    actor = Actor(id=staff_id, role=account.roles[0] if account.roles else Role.system)
    changed = False
    if account.must_change_password:
        if not new_password:
            raise LoginRefused(
                403,
                "password_change_required",
                "パスワードがリセットされています。新しいパスワードを設定してください。",
            )
        if new_password == password:
            raise LoginRefused(422, "password_unchanged", "新しいパスワードは仮のパスワードと別のものにしてください。")
        try:
            account.password_hash = await hash_password_async(new_password)
        except ValueError as exc:
            raise LoginRefused(422, "weak_password", str(exc)) from None
        account.must_change_password = False
        changed = True
    if changed or account.failures:
        account.failures = 0
        account = await write_account(js, account)
    if changed:
        await bus.append(js, StaffPasswordChanged(municipality=municipality, staff_id=staff_id, actor=actor))
    await bus.append(js, LoginSucceeded(municipality=municipality, staff_id=staff_id, service=service, actor=actor))
    token = issue_token(
        settings,
        staff_id=staff_id,
        roles=account.roles,
        wards=account.wards,
        municipality=municipality,
        version=account.version,
    )
    return LoginResult(token=token, account=account, expires_in=settings.token_ttl_seconds)


async def logout(js: JetStreamContext, principal: Principal, service: str) -> None:
    """Revoke this token everywhere (its id into `mg_revoked`, seen by every service's watch): a staff
    member's, and a device's or service's credential as well (its holder revokes it)."""
    if not principal.token_id:
        return
    await revoke(js, principal)
    await bus.append(
        js,
        StaffLoggedOut(
            municipality=principal.municipality,
            staff_id=principal.staff_id,
            token_id=principal.token_id,
            actor=principal.actor,
        ),
    )


class Authenticated(TypedDict):
    """What `authenticate` says of a staff member whose password is right."""

    roles: list[str]
    wards: list[str]
    version: int


async def authenticate(
    js: JetStreamContext, municipality: str, staff_id: str, password: str
) -> tuple[Authenticated | None, str]:
    """Check a password without counting or recording anything: (record, "") or (None, reason)."""
    account = await read_account(js, municipality, staff_id)
    if account is None or not account.password_hash:
        await _verify(None, password)
        return None, "unknown_staff"
    if not await _verify(account.password_hash, password):
        return None, "bad_password"
    if account.disabled:
        return None, "disabled"
    return {"roles": [r.value for r in account.roles], "wards": list(account.wards), "version": account.version}, ""


__all__ = [
    "Principal",
    "Role",
    "Unauthorized",
    "issue_token",
    "decode_token",
    "current_principal",
    "require",
    "deny",
    "add_staff",
    "authenticate",
    "hash_password",
    "staff_bucket",
    "Account",
    "AccountDirectory",
    "LoginRefused",
    "login",
    "logout",
    "ensure_account",
    "token_for",
    "read_account",
    "write_account",
    "check_account",
]
