"""Pure rules of the console: which screens a role sees, where a login lands, Japanese labels.

No I/O here; the pages call these with the principal decoded from the session token.
"""

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
    return "・".join(ROLE_LABELS.get(r, r.value) for r in sorted(roles, key=lambda r: list(ROLE_LABELS).index(r) if r in ROLE_LABELS else 99))


# --- Japanese labels of the services' codes (the events keep stable codes; labels live here) ---

GENDERS = {"female": "女性", "male": "男性", "other": "その他", "not_stated": "回答なし"}
AGE_BANDS = {"under_20": "20歳未満", "20s": "20代", "30s": "30代", "40s": "40代", "50s": "50代", "60s": "60代",
             "70s": "70代", "80_and_over": "80歳以上"}
PURPOSES = {
    "mykey_pc": "マイキーID設定（窓口PC）",
    "mykey_smartphone": "マイキーID設定（スマートフォン）",
    "mynapoint_application": "マイナポイント申込み",
    "health_insurance_registration": "健康保険証利用の初回登録",
    "inquiry_only": "問合せのみ",
    "flyer": "チラシ配布",
}
OUTCOMES = {"completed": "完了", "not_completed": "未完了"}
NOT_COMPLETED_REASONS = {
    "pin_locked_or_forgotten": "暗証番号ロック・失念",
    "card_not_brought": "カード不持参",
    "card_not_issued": "カード未交付",
    "phone_not_nfc": "スマートフォンがNFC非対応",
    "certificate_expired": "電子証明書の有効期限切れ",
    "others_payment_service": "他の決済サービスで申込み済み",
    "other": "その他",
}
PAYMENT_SERVICES = {"electronic_money": "電子マネー", "qr_code": "QRコード決済", "credit_card": "クレジットカード",
                    "debit_card": "デビットカード", "prepaid_card": "プリペイドカード", "other": "その他", "not_chosen": "未選択"}
OPINION_KINDS = {"opinion": "意見", "request": "要望", "topic": "話題", "difficulty": "つまずいた点"}
PROCEDURE_STEPS = {
    "understanding_scheme": "制度の理解", "pin_entry": "暗証番号の入力", "card_reading": "カードの読み取り",
    "app_install": "アプリのインストール", "mykey_id_setup": "マイキーID設定", "payment_service_choice": "決済サービスの選択",
    "health_insurance_registration": "健康保険証利用登録", "other": "その他",
}
PIN_KINDS = {"user_auth": "利用者証明用（4桁）", "card_info": "券面事項入力補助用（4桁）", "signature": "署名用（6〜16文字）"}
PIN_LIMITS = {"user_auth": 3, "card_info": 3, "signature": 5}
STOP_REASONS = {"staff_shortage": "人員不足", "equipment_failure": "機器の故障", "network_failure": "通信障害",
                "facility": "施設の事情", "pandemic": "感染症", "weather": "天候", "city_instruction": "市の指示", "other": "その他"}
INSTRUCTION_REASONS = {"pandemic": "感染症", "disaster": "災害", "facility": "施設の事情", "city_decision": "市の判断", "other": "その他"}
ESCALATION_CATEGORIES = {"complaint": "苦情", "procedure": "手続き", "system_trouble": "システム障害", "card": "カード",
                         "payment_service": "決済サービス", "city_decision": "市の判断が必要", "other": "その他"}
ABSENCE_REASONS = {"restroom": "お手洗い", "break": "休憩", "helping_elsewhere": "他の対応", "fetching_supplies": "備品の補充", "other": "その他"}
SEVERITIES = {"critical": "緊急", "urgent": "緊急", "high": "高", "warning": "注意", "medium": "中", "info": "情報", "low": "低", "normal": "通常"}


def options(mapping: dict[str, str]) -> list[tuple[str, str]]:
    return list(mapping.items())


def label(mapping: dict[str, str], code: object) -> str:
    if code is None:
        return "—"
    return mapping.get(str(code), str(code))
