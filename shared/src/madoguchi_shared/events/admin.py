"""Administration events: staff accounts, access, training records (ORG-2, ORG-4), configuration.

Staff are identified by a staff id (e.g. "S0012"); names are not kept in events. A password hash
lives in the identity store, never in an event.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from madoguchi_shared.events.base import Event, Ident, Role
from madoguchi_shared.pii import FreeText


DenialReason = Literal["role", "ward", "municipality", "token"]
LoginFailure = Literal["unknown_staff", "bad_password", "disabled", "locked", "rate_limited"]


class _StaffEvent(Event):
    context: ClassVar[str] = "admin"
    aggregate: ClassVar[str] = "staff"
    aggregate_field: ClassVar[str] = "staff_id"
    staff_id: Ident


class StaffAccountCreated(_StaffEvent):
    type: Literal["admin.staff_account_created"] = "admin.staff_account_created"
    roles: tuple[Role, ...] = Field(min_length=1, max_length=10)
    wards: tuple[Ident, ...] = Field(default=(), max_length=50)  # empty = every ward of the municipality


class StaffRolesChanged(_StaffEvent):
    type: Literal["admin.staff_roles_changed"] = "admin.staff_roles_changed"
    roles: tuple[Role, ...] = Field(min_length=1, max_length=10)
    wards: tuple[Ident, ...] = Field(default=(), max_length=50)


DisableReason = Literal["left", "suspended", "compromised", "other"]


class StaffAccountDisabled(_StaffEvent):
    type: Literal["admin.staff_account_disabled"] = "admin.staff_account_disabled"
    reason: DisableReason = "other"


class StaffAccountEnabled(_StaffEvent):
    """A disabled (or locked) account is usable again; its old tokens stay invalid."""

    type: Literal["admin.staff_account_enabled"] = "admin.staff_account_enabled"


class StaffPasswordChanged(_StaffEvent):
    type: Literal["admin.staff_password_changed"] = "admin.staff_password_changed"


class StaffPasswordReset(_StaffEvent):
    """A manager reset the password: a temporary one, to be replaced by the person at the next login."""

    type: Literal["admin.staff_password_reset"] = "admin.staff_password_reset"


class StaffAccountLocked(_StaffEvent):
    """Too many failed logins (ASVS 6.3): the account refuses logins until `until` (an HQ alert)."""

    type: Literal["admin.staff_account_locked"] = "admin.staff_account_locked"
    failures: int = Field(ge=1, le=1_000)
    until: AwareDatetime


class StaffLoggedOut(_StaffEvent):
    """A token was revoked at logout (its id only)."""

    type: Literal["admin.staff_logged_out"] = "admin.staff_logged_out"
    token_id: str = Field(default="", max_length=64, pattern=r"^[0-9a-f]*$")


class LoginSucceeded(_StaffEvent):
    type: Literal["admin.login_succeeded"] = "admin.login_succeeded"
    service: Ident


class LoginFailed(_StaffEvent):
    type: Literal["admin.login_failed"] = "admin.login_failed"
    service: Ident
    reason: LoginFailure


TRAINING_ITEMS = (
    "compliance",  # 個人情報・マイナンバー法・守秘義務
    "scheme_overview",  # 制度概要（キャッシュレス決済サービスを含む）
    "work_flow",  # 業務フロー
    "customer_service",  # 接遇
    "talk_script_faq",  # トークスクリプト・FAQ
    "role_play",  # ロールプレイング
    "system",  # システム操作
    "escalation",  # エスカレーション
    "complaints",  # クレーム対応
    "security_policy",  # 情報セキュリティポリシー (SEC-1)
)
TrainingItem = Literal[
    "compliance",
    "scheme_overview",
    "work_flow",
    "customer_service",
    "talk_script_faq",
    "role_play",
    "system",
    "escalation",
    "complaints",
    "security_policy",
]


class TrainingItemCompleted(_StaffEvent):
    """ORG-4: one item of the municipality's training plan completed, with its date and trainer.

    `item` is a key of the plan in the municipality's configuration (TRAINING_ITEMS is the default plan)."""

    type: Literal["admin.training_item_completed"] = "admin.training_item_completed"
    item: Ident
    hours: float = Field(ge=0, le=40)
    completed_on: date | None = None
    trainer: Ident | None = None  # the trainer's staff id


class TrainingTestRecorded(_StaffEvent):
    """ORG-4: the test at the end of training (理解度テスト), with its date and trainer."""

    type: Literal["admin.training_test_recorded"] = "admin.training_test_recorded"
    score: int = Field(ge=0, le=100)
    passed: bool
    tested_on: date | None = None
    trainer: Ident | None = None


class AccessDenied(Event):
    """An attempt outside one's role or ward (HTTP 403), recorded for the auditors (repeated 403s alert)."""

    context: ClassVar[str] = "admin"
    aggregate: ClassVar[str] = "access"
    aggregate_field: ClassVar[str] = "subject_id"
    type: Literal["admin.access_denied"] = "admin.access_denied"
    subject_id: Ident  # the staff id, device id or service name that was refused
    service: Ident
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(max_length=300)  # the route template, e.g. /v1/desks/{desk}/tickets
    required_roles: tuple[Role, ...] = Field(default=(), max_length=10)
    target_ward: Ident | None = None
    reason: DenialReason


class ConfigurationChanged(Event):
    """A change of the municipality's configuration (wards, desks, capacities, categories, policy)."""

    context: ClassVar[str] = "admin"
    aggregate: ClassVar[str] = "config"
    aggregate_field: ClassVar[str] = "key"
    type: Literal["admin.configuration_changed"] = "admin.configuration_changed"
    key: Ident  # e.g. "desks", "call_categories", "agent_policy"
    revision: int = Field(ge=1, le=1_000_000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


# --- erasure of sealed free text (crypto-shredding): mg.admin.<m>.text.<ref> ----------------------


class _TextEvent(Event):
    """About one sealed free text (madoguchi_shared.sealed), named by its reference; never its content."""

    context: ClassVar[str] = "admin"
    aggregate: ClassVar[str] = "text"
    aggregate_field: ClassVar[str] = "text_ref"
    text_ref: UUID


class TextErasureRequested(_TextEvent):
    """A manager asks for a free text to be erased (the first of two roles)."""

    type: Literal["admin.text_erasure_requested"] = "admin.text_erasure_requested"
    reason: Annotated[FreeText, StringConstraints(min_length=1, max_length=400)]


class TextErased(_TextEvent):
    """The redaction record: an auditor approved, the text's key was destroyed. Who asked, who
    approved (the actor), when and why — no content. Events that carry the ciphertext stay in the
    streams and the audit chain unchanged; every read of them shows 「削除済み」."""

    type: Literal["admin.text_erased"] = "admin.text_erased"
    requested_by: Ident
    requested_at: AwareDatetime
    reason: Annotated[FreeText, StringConstraints(min_length=1, max_length=400)]
