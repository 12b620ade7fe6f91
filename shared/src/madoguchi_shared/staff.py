"""Staff administration (ORG-2, ORG-4): accounts, roles and wards, disabling, password resets and
the training record that clears a person for duty.

Shared code: every service serves `/v1/staff` over the same account store (`mg_staff`) and admin
stream, and the console calls these functions in its own process, so administration does not
depend on any one service being up. Every change is an admin event naming staff ids only.

    rows = await list_staff(js, directory, plan, "011002")
    await change_roles(js, "011002", "S0001", [Role.operator], ["chuo"], actor)
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from nats.js import JetStreamContext
from pydantic import AfterValidator, BaseModel, Field

from madoguchi_shared.errors import Conflict, Forbidden, Invalid, NotFound
from madoguchi_shared import auth, bus, subjects, training
from madoguchi_shared.web import problems
from madoguchi_shared.auth import Account, AccountDirectory, Principal, Role
from madoguchi_shared.events.admin import (
    DisableReason,
    StaffAccountCreated,
    StaffAccountDisabled,
    StaffAccountEnabled,
    StaffPasswordReset,
    StaffRolesChanged,
    TrainingItemCompleted,
    TrainingTestRecorded,
)
from madoguchi_shared.events import Event
from madoguchi_shared.events.base import Actor, Ident
from madoguchi_shared.municipality import Municipality, MunicipalityNotFound, TrainingPlan, load_municipality
from madoguchi_shared.nats_typed import client_of
from madoguchi_shared.pii import find_personal_data
from madoguchi_shared.settings import Settings

ADMIN_ROLES = (Role.manager, Role.administrator)
# Roles a manager may give; `administrator` only by an administrator.
ASSIGNABLE = (
    Role.manager,
    Role.rounder,
    Role.supporter,
    Role.operator,
    Role.city_staff,
    Role.auditor,
    Role.administrator,
)
WARD_ROLES = frozenset({Role.supporter, Role.operator})


def municipality_config(settings: Settings, municipality: str) -> Municipality | None:
    """The municipality's configuration: its own file, else the deployment's file under its code."""
    try:
        return load_municipality(municipality)
    except MunicipalityNotFound:
        pass
    try:
        if settings.config_file:
            return load_municipality(settings.config_file, code=municipality)
        return load_municipality(settings.municipality, code=municipality)
    except MunicipalityNotFound:
        return None


def training_plan(settings: Settings, municipality: str) -> TrainingPlan:
    m = municipality_config(settings, municipality)
    return m.training if m else TrainingPlan()


def _check_roles_and_wards(
    roles: tuple[Role, ...], wards: tuple[str, ...], m: Municipality | None, actor_roles: Collection[Role]
) -> None:
    if not roles:
        raise Invalid("役割を1つ以上選んでください。", field="roles")
    unknown = [r for r in roles if r not in ASSIGNABLE]
    if unknown:
        raise Invalid("この役割は職員には付けられません。", field="roles")
    if Role.administrator in roles and Role.administrator not in actor_roles:
        raise Forbidden("管理者の役割は管理者だけが付けられます。", field="roles")
    if m is not None:
        known = {w.id for w in m.wards}
        bad = [w for w in wards if w not in known]
        if bad:
            raise Invalid(f"設定にない区です: {', '.join(bad)}", field="wards")
    if set(roles) & WARD_ROLES and not set(roles) - WARD_ROLES and not wards:
        raise Invalid("支援員・オペレーターには担当区を指定してください。", field="wards")


async def _account(js: JetStreamContext, municipality: str, staff_id: str) -> Account:
    account = await auth.read_account(js, municipality, staff_id)
    if account is None:
        raise NotFound(f"職員 {staff_id} は登録されていません。")
    return account


async def staff_events(js: JetStreamContext, municipality: str, staff_id: str) -> list[Event]:
    subject = subjects.aggregate_subject("admin", municipality, "staff", staff_id)
    return [s.event for s in await bus.load(client_of(js), subject)]


async def training_status(
    js: JetStreamContext, plan: TrainingPlan, municipality: str, staff_id: str
) -> training.TrainingStatus:
    return training.status(plan, await staff_events(js, municipality, staff_id))


def _row(account: Account, st: training.TrainingStatus) -> dict[str, Any]:
    row = account.public()
    row["training"] = st.as_dict()
    row["cleared"] = row["training"]["cleared"]
    return row


async def list_staff(
    js: JetStreamContext, directory: AccountDirectory, plan: TrainingPlan, municipality: str
) -> list[dict[str, Any]]:
    """Every account of the municipality with role, ward scope, status and duty clearance."""
    rows: list[dict[str, Any]] = []
    for account in directory.of_municipality(municipality):
        rows.append(_row(account, await training_status(js, plan, municipality, account.staff_id)))
    return rows


async def staff_detail(js: JetStreamContext, plan: TrainingPlan, municipality: str, staff_id: str) -> dict[str, Any]:
    account = await _account(js, municipality, staff_id)
    return _row(account, await training_status(js, plan, municipality, staff_id))


async def create_staff(
    js: JetStreamContext,
    m: Municipality | None,
    municipality: str,
    staff_id: str,
    roles: tuple[Role, ...],
    wards: tuple[str, ...],
    actor: Actor,
    actor_roles: Collection[Role],
) -> str:
    """A new account with a temporary password (returned once; replaced at the first login)."""
    _check_roles_and_wards(roles, wards, m, actor_roles)
    if find_personal_data(staff_id):
        raise Invalid("職員IDに個人番号・電話番号と思われる数字は使えません（例: S0101）。")
    if await auth.read_account(js, municipality, staff_id) is not None:
        raise Conflict(f"職員ID {staff_id} はすでに登録されています。")
    temporary = auth.temporary_password()
    account = Account(
        municipality=municipality,
        staff_id=staff_id,
        roles=roles,
        wards=wards,
        password_hash=await auth.hash_password_async(temporary),
        must_change_password=True,
    )
    try:
        await auth.write_account(js, account, create=True)
    except bus.ConcurrencyConflict:
        raise Conflict(f"職員ID {staff_id} はすでに登録されています。") from None
    await bus.append(
        js, StaffAccountCreated(municipality=municipality, staff_id=staff_id, roles=roles, wards=wards, actor=actor)
    )
    return temporary


async def change_roles(
    js: JetStreamContext,
    m: Municipality | None,
    municipality: str,
    staff_id: str,
    roles: tuple[Role, ...],
    wards: tuple[str, ...],
    actor: Actor,
    actor_roles: Collection[Role],
) -> Account:
    _check_roles_and_wards(roles, wards, m, actor_roles)
    account = await _account(js, municipality, staff_id)
    if Role.administrator in account.roles and Role.administrator not in actor_roles:
        raise Forbidden("管理者のアカウントは管理者だけが変更できます。")
    account.roles, account.wards = roles, wards
    account.version += 1
    await auth.write_account(js, account)
    await bus.append(
        js, StaffRolesChanged(municipality=municipality, staff_id=staff_id, roles=roles, wards=wards, actor=actor)
    )
    return account


async def set_disabled(
    js: JetStreamContext,
    municipality: str,
    staff_id: str,
    disabled: bool,
    actor: Actor,
    actor_roles: Collection[Role],
    reason: DisableReason = "other",
) -> Account:
    account = await _account(js, municipality, staff_id)
    if Role.administrator in account.roles and Role.administrator not in actor_roles:
        raise Forbidden("管理者のアカウントは管理者だけが変更できます。")
    if disabled and staff_id == actor.id:
        raise Invalid("自分のアカウントは無効にできません。")
    if account.disabled == disabled and not (not disabled and account.locked()):
        raise Conflict("すでに無効です。" if disabled else "すでに有効です。")
    account.disabled = disabled
    account.version += 1
    if not disabled:
        account.failures, account.locked_until = 0, 0.0
    await auth.write_account(js, account)
    event = (
        StaffAccountDisabled(municipality=municipality, staff_id=staff_id, reason=reason, actor=actor)
        if disabled
        else StaffAccountEnabled(municipality=municipality, staff_id=staff_id, actor=actor)
    )
    await bus.append(js, event)
    return account


async def reset_password(
    js: JetStreamContext, municipality: str, staff_id: str, actor: Actor, actor_roles: Collection[Role]
) -> str:
    """A temporary password (returned once); the person sets a new one at the next login; every
    token of the account stops working."""
    account = await _account(js, municipality, staff_id)
    if Role.administrator in account.roles and Role.administrator not in actor_roles:
        raise Forbidden("管理者のアカウントは管理者だけが変更できます。")
    temporary = auth.temporary_password()
    account.password_hash = await auth.hash_password_async(temporary)
    account.must_change_password = True
    account.failures, account.locked_until = 0, 0.0
    account.version += 1
    await auth.write_account(js, account)
    await bus.append(js, StaffPasswordReset(municipality=municipality, staff_id=staff_id, actor=actor))
    return temporary


async def record_item(
    js: JetStreamContext,
    plan: TrainingPlan,
    municipality: str,
    staff_id: str,
    item: str,
    completed_on: date,
    trainer: str,
    hours: float | None,
    actor: Actor,
) -> None:
    await _account(js, municipality, staff_id)
    try:
        planned = plan.item(item)
    except KeyError:
        raise Invalid("研修計画にない項目です。", field="item") from None
    await bus.append(
        js,
        TrainingItemCompleted(
            municipality=municipality,
            staff_id=staff_id,
            item=item,
            hours=planned.hours if hours is None else hours,
            completed_on=completed_on,
            trainer=trainer,
            actor=actor,
        ),
    )


async def record_test(
    js: JetStreamContext,
    plan: TrainingPlan,
    municipality: str,
    staff_id: str,
    score: int,
    tested_on: date,
    trainer: str,
    actor: Actor,
) -> bool:
    await _account(js, municipality, staff_id)
    passed = score >= plan.pass_score
    await bus.append(
        js,
        TrainingTestRecorded(
            municipality=municipality,
            staff_id=staff_id,
            score=score,
            passed=passed,
            tested_on=tested_on,
            trainer=trainer,
            actor=actor,
        ),
    )
    return passed


# --- HTTP ------------------------------------------------------------------------------------


def _no_personal_data(staff_id: str) -> str:
    """A staff id is shown on every screen and recorded in every event: never a My Number or a phone number."""
    if find_personal_data(staff_id):
        raise ValueError("職員IDに個人番号・電話番号と思われる数字は使えません（例: S0101）。")
    return staff_id


StaffId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$"), AfterValidator(_no_personal_data)]


class NewStaff(BaseModel):
    staff_id: StaffId = Field(examples=["S0101"])
    roles: list[Role] = Field(min_length=1, max_length=7)
    wards: list[Ident] = Field(default=[], max_length=50)


class RolesBody(BaseModel):
    roles: list[Role] = Field(min_length=1, max_length=7)
    wards: list[Ident] = Field(default=[], max_length=50)


class DisableBody(BaseModel):
    reason: DisableReason = "other"


class TrainingItemBody(BaseModel):
    item: Ident
    completed_on: date
    trainer: Ident  # the trainer's staff id
    hours: float | None = Field(default=None, ge=0, le=40)


class TrainingTestBody(BaseModel):
    score: int = Field(ge=0, le=100)
    tested_on: date
    trainer: Ident


def _admin(request: Request, principal: Principal) -> tuple[JetStreamContext, Settings]:
    return request.app.state.js, request.app.state.settings


Admin = Annotated[Principal, Depends(auth.require(*ADMIN_ROLES))]


class TemporaryPassword(BaseModel):
    """A new account's or a reset account's temporary password, shown once."""

    staff_id: str
    temporary_password: str
    must_change_password: bool = True


class StaffAccount(BaseModel):
    """An account as the administrator sees it (no password material)."""

    staff_id: str
    roles: list[str]
    wards: list[str]
    status: str
    disabled: bool
    must_change_password: bool
    locked_until: float | None
    version: int


def staff_router() -> APIRouter:
    router = APIRouter(prefix="/v1/staff", tags=["staff"], responses=problems(401, 403, 404, 422, 503))

    @router.get("")
    async def list_(request: Request, principal: Admin) -> dict[str, Any]:
        """Every staff account of the municipality: roles, ward scope, status and duty clearance (ORG-2, ORG-4)."""
        js, settings = _admin(request, principal)
        plan = training_plan(settings, principal.municipality)
        return {"staff": await list_staff(js, request.app.state.accounts, plan, principal.municipality)}

    @router.get("/training-plan")
    async def plan_(request: Request, principal: Admin) -> dict[str, Any]:
        """The municipality's training plan (ORG-4) from its configuration."""
        plan = training_plan(request.app.state.settings, principal.municipality)
        return {"items": [i.model_dump() for i in plan.items], "pass_score": plan.pass_score}

    @router.post("", status_code=201, responses=problems(409))
    async def create(body: NewStaff, request: Request, principal: Admin) -> TemporaryPassword:
        """Add a staff member; the temporary password is shown once and replaced at the first login."""
        js, settings = _admin(request, principal)
        m = municipality_config(settings, principal.municipality)
        temporary = await create_staff(
            js,
            m,
            principal.municipality,
            body.staff_id,
            tuple(body.roles),
            tuple(body.wards),
            principal.actor,
            principal.roles,
        )
        return TemporaryPassword(staff_id=body.staff_id, temporary_password=temporary)

    @router.get("/{staff_id}")
    async def detail(staff_id: StaffId, request: Request, principal: Admin) -> dict[str, Any]:
        js, settings = _admin(request, principal)
        return await staff_detail(js, training_plan(settings, principal.municipality), principal.municipality, staff_id)

    @router.put("/{staff_id}/roles", responses=problems(409))
    async def roles(staff_id: StaffId, body: RolesBody, request: Request, principal: Admin) -> StaffAccount:
        """Change roles and ward scope; the person's tokens stop working (they log in again)."""
        js, settings = _admin(request, principal)
        m = municipality_config(settings, principal.municipality)
        account = await change_roles(
            js,
            m,
            principal.municipality,
            staff_id,
            tuple(body.roles),
            tuple(body.wards),
            principal.actor,
            principal.roles,
        )
        return StaffAccount(**account.public())

    @router.post("/{staff_id}/disable", responses=problems(409))
    async def disable(staff_id: StaffId, body: DisableBody, request: Request, principal: Admin) -> StaffAccount:
        """Disable an account: its tokens are refused by every service at once."""
        js, _ = _admin(request, principal)
        account = await set_disabled(
            js, principal.municipality, staff_id, True, principal.actor, principal.roles, body.reason
        )
        return StaffAccount(**account.public())

    @router.post("/{staff_id}/enable", responses=problems(409))
    async def enable(staff_id: StaffId, request: Request, principal: Admin) -> StaffAccount:
        """Enable a disabled account again (also lifts a login lock)."""
        js, _ = _admin(request, principal)
        account = await set_disabled(js, principal.municipality, staff_id, False, principal.actor, principal.roles)
        return StaffAccount(**account.public())

    @router.post("/{staff_id}/password-reset", responses=problems(409))
    async def password_reset(staff_id: StaffId, request: Request, principal: Admin) -> TemporaryPassword:
        """A temporary password, shown once; the person sets a new one at the next login."""
        js, _ = _admin(request, principal)
        temporary = await reset_password(js, principal.municipality, staff_id, principal.actor, principal.roles)
        return TemporaryPassword(staff_id=staff_id, temporary_password=temporary)

    @router.post("/{staff_id}/training", status_code=201, responses=problems(409))
    async def training_item(
        staff_id: StaffId, body: TrainingItemBody, request: Request, principal: Admin
    ) -> dict[str, Any]:
        """Record one item of the training plan as completed, with its date and trainer (ORG-4)."""
        js, settings = _admin(request, principal)
        plan = training_plan(settings, principal.municipality)
        await record_item(
            js,
            plan,
            principal.municipality,
            staff_id,
            body.item,
            body.completed_on,
            body.trainer,
            body.hours,
            principal.actor,
        )
        return await staff_detail(js, plan, principal.municipality, staff_id)

    @router.post("/{staff_id}/training-test", status_code=201, responses=problems(409))
    async def training_test(
        staff_id: StaffId, body: TrainingTestBody, request: Request, principal: Admin
    ) -> dict[str, Any]:
        """Record the training test (理解度テスト) result; passed at the plan's pass score (ORG-4)."""
        js, settings = _admin(request, principal)
        plan = training_plan(settings, principal.municipality)
        await record_test(
            js, plan, principal.municipality, staff_id, body.score, body.tested_on, body.trainer, principal.actor
        )
        return await staff_detail(js, plan, principal.municipality, staff_id)

    return router


DUTY = Literal["desk", "phone"]
