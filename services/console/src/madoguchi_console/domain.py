"""Pure rules of the console: which screens a role sees, where a login lands, Japanese labels.

No I/O here; the pages call these with the principal decoded from the session token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from madoguchi_shared.events.base import Role
from madoguchi_shared import labels as L

ROLE_LABELS = {
    Role.manager: "業務責任者",
    Role.rounder: "ラウンダー",
    Role.supporter: "支援員",
    Role.operator: "オペレーター",
    Role.city_staff: "市職員",
    Role.auditor: "監査担当",
    Role.administrator: "管理者",
}


@dataclass(frozen=True)
class Screen:
    key: str
    path: str
    label: str
    roles: frozenset[Role]


# ORG-2: who works where. Order = navigation order.
SCREENS = (
    Screen("desk", "/desk", "窓口", frozenset({Role.supporter, Role.manager, Role.rounder, Role.administrator})),
    Screen("hq", "/hq", "本部ダッシュボード", frozenset({Role.manager, Role.rounder, Role.administrator})),
    Screen("phone", "/phone", "電話対応", frozenset({Role.operator, Role.manager, Role.administrator})),
    Screen("reports", "/reports", "報告書", frozenset({Role.city_staff, Role.manager, Role.administrator})),
    Screen("audit", "/audit", "監査ログ", frozenset({Role.auditor, Role.administrator})),
    Screen("staff", "/staff", "職員管理", frozenset({Role.manager, Role.administrator})),
    Screen("policy", "/policy", "窓口PC監視", frozenset({Role.manager, Role.administrator})),
)
SCREEN_BY_KEY = {s.key: s for s in SCREENS}

# Where each role lands after login, most specific first.
_HOME_ORDER = (
    (Role.supporter, "desk"),
    (Role.operator, "phone"),
    (Role.manager, "hq"),
    (Role.rounder, "hq"),
    (Role.city_staff, "reports"),
    (Role.auditor, "audit"),
    (Role.administrator, "hq"),
)


def home_path(roles: Iterable[Role]) -> str:
    roles = set(roles)
    for role, key in _HOME_ORDER:
        if role in roles:
            return SCREEN_BY_KEY[key].path
    return "/forbidden"


def nav_items(roles: Iterable[Role]) -> list[Screen]:
    roles = set(roles)
    return [s for s in SCREENS if s.roles & roles]


def may_open(roles: Iterable[Role], key: str) -> bool:
    return bool(SCREEN_BY_KEY[key].roles & set(roles))


def role_label(roles: Iterable[Role]) -> str:
    return "・".join(
        ROLE_LABELS.get(r, r.value)
        for r in sorted(roles, key=lambda r: list(ROLE_LABELS).index(r) if r in ROLE_LABELS else 99)
    )


# --- Japanese labels of the services' codes (the events keep stable codes; labels live here) ---

GENDERS = L.GENDER
AGE_BANDS = L.AGE_BAND
PURPOSES = L.PURPOSE
OUTCOMES = L.OUTCOME
NOT_COMPLETED_REASONS = L.NOT_COMPLETED_REASON
PAYMENT_SERVICES = {k: v for k, v in L.PAYMENT_SERVICE.items() if k != "prepaid"}  # the form offers the event's codes
OPINION_KINDS = {k: v for k, v in L.OPINION_KIND.items() if k != "struggle"}
PROCEDURE_STEPS = L.PROCEDURE_STEP
PIN_KINDS = L.PIN_KIND
PIN_LIMITS = {"user_auth": 3, "card_info": 3, "signature": 5}
STOP_REASONS = L.STOP_REASON
INSTRUCTION_REASONS = L.INSTRUCTION_REASON
ESCALATION_CATEGORIES = L.ESCALATION_CATEGORY
ABSENCE_REASONS = L.ABSENCE_REASON
SEVERITIES = L.SEVERITY


def options(mapping: dict[str, str]) -> list[tuple[str, str]]:
    return list(mapping.items())


def label(mapping: dict[str, str], code: object) -> str:
    if code is None:
        return "—"
    return mapping.get(str(code), str(code))


# --- HQ: how much trouble a desk is in (issue 16) ---

SEVERITY_ORDER = {"red": 0, "amber": 1, "ok": 2, "closed": 3, "unknown": 4}
SEVERITY_LABELS = {"red": "要対応", "amber": "注意", "ok": "通常", "closed": "時間外", "unknown": "不明"}


@dataclass(frozen=True)
class Thresholds:
    wait_amber_minutes: float = 30
    wait_red_minutes: float = 60
    queue_amber: int = 8
    queue_red: int = 15


def desk_severity(status: dict | None, t: Thresholds) -> tuple[str, list[str]]:
    """(red | amber | ok | closed | unknown, the reasons in Japanese) from a desk's status: the
    wait (the longest current wait or the estimate for a newcomer, whichever is longer), the
    queue, staffing and the desk's own alerts."""
    if status is None:
        return "unknown", ["状態を取得できません"]
    waiting = len((status.get("queue") or {}).get("waiting") or [])
    wait = max(float(status.get("estimated_wait_minutes") or 0), float(status.get("longest_wait_minutes") or 0))
    red: list[str] = []
    amber: list[str] = []
    if (status.get("staffing") or {}).get("breach_open"):
        red.append("支援員不在")
    if any(a.get("level") == "urgent" for a in status.get("alerts") or []):
        red.append("緊急のお知らせ")
    if status.get("day_status") in ("halted", "cannot_start"):
        red.append("業務停止")
    if wait > t.wait_red_minutes:
        red.append(f"待ち時間{round(wait)}分")
    elif wait > t.wait_amber_minutes:
        amber.append(f"待ち時間{round(wait)}分")
    if waiting >= t.queue_red:
        red.append(f"待ち{waiting}人")
    elif waiting >= t.queue_amber:
        amber.append(f"待ち{waiting}人")
    link = status.get("edge_link") or {}
    if link and not link.get("online", True):  # the desk's laptop works offline: HQ sees its last known queue
        amber.append(link.get("label_ja") or "オフライン")
    if status.get("marked"):
        amber.append(f"オフライン中の記録 要確認{len(status['marked'])}件")
    if red:
        return "red", red + amber
    if amber:
        return "amber", amber
    if not status.get("open_now") and not waiting:
        return "closed", []
    return "ok", []
