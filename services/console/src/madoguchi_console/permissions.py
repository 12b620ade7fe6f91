"""Who sees which screen (ORG-2): the screens in navigation order with the roles that may open each,
where a login lands, and the Japanese names of the roles. Pure; the pages call these with the principal
decoded from the session token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from madoguchi_shared.events.base import Role

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
