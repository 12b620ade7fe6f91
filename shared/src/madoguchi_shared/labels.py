"""Japanese labels of the codes that events carry: one definition for the reports and the console,
so the city's report and the screen at the desk name a thing the same way.

Codes are stable (they are in the events); labels are presentation. An unknown code (a
municipality's own inquiry category, a new enum value) is shown as the code itself.
"""

from __future__ import annotations

GENDER = {"female": "女性", "male": "男性", "other": "その他", "not_stated": "回答なし"}
AGE_BAND = {
    "under_20": "20歳未満", "20s": "20代", "30s": "30代", "40s": "40代", "50s": "50代",
    "60s": "60代", "70s": "70代", "80_and_over": "80歳以上",
}
PURPOSE = {
    "mykey_pc": "マイキーID設定（窓口PC）",
    "mykey_smartphone": "マイキーID設定（スマートフォン）",
    "mynapoint_application": "マイナポイント申込み",
    "health_insurance_registration": "健康保険証利用の初回登録",  # DESK-4
    "inquiry_only": "問合せのみ",
    "flyer": "チラシ配布",
}
OUTCOME = {"completed": "完了", "not_completed": "未完了"}
NOT_COMPLETED_REASON = {
    "pin_locked_or_forgotten": "暗証番号ロック・失念",
    "card_not_brought": "カード不持参",
    "card_not_issued": "カード未交付",
    "phone_not_nfc": "スマートフォンがNFC非対応",
    "certificate_expired": "電子証明書の有効期限切れ",
    "others_payment_service": "他の決済サービスで申込み済み",
    "other": "その他",
}
PAYMENT_SERVICE = {
    "electronic_money": "電子マネー", "qr_code": "QRコード決済", "credit_card": "クレジットカード",
    "debit_card": "デビットカード", "prepaid_card": "プリペイドカード", "prepaid": "プリペイド",
    "other": "その他", "not_chosen": "未選択",
}
# REP-1 意見・要望・話題; DESK-7 where in the procedure citizens struggled (つまずいた点)
OPINION_KIND = {"opinion": "意見", "request": "要望", "topic": "話題", "difficulty": "つまずいた点", "struggle": "つまずいた点"}
PROCEDURE_STEP = {
    "understanding_scheme": "制度の理解", "pin_entry": "暗証番号入力", "card_reading": "カード読取り",
    "app_install": "アプリのインストール", "mykey_id_setup": "マイキーID設定",
    "payment_service_choice": "決済サービスの選択", "health_insurance_registration": "健康保険証利用登録",
    "other": "その他",
}
ESCALATION_CATEGORY = {
    "complaint": "苦情", "procedure": "手続き", "system_trouble": "システム障害", "card": "カード",
    "payment_service": "決済サービス", "city_decision": "市の判断が必要", "other": "その他",
}
ESCALATION_STATUS = {"raised": "対応中", "acknowledged": "責任者確認済", "to_city": "市へ照会中", "resolved": "解決"}
INCIDENT_KIND = {
    "card_left_behind": "カード置き忘れ", "equipment_missing": "備品の紛失", "equipment_damaged": "備品の破損",
    "other": "その他",
}
RESOLUTION = {
    "answered_on_spot": "その場で回答",
    "referred_national_call_centre": "国のコールセンターを案内",
    "referred_payment_provider": "決済事業者を案内",
    "guided_to_ward_desk": "区の支援窓口を案内",
    "escalated_callback": "エスカレーション（折り返し）",
}
CONNECTION = {"answered": "応答", "missed": "不応答", "abandoned": "放棄", "out_of_hours": "時間外", "pending": "処理中"}
CALL_CATEGORY = {
    "mykey_id": "マイキーIDの設定", "mykey_id.setup": "マイキーID：設定の方法", "mykey_id.trouble": "マイキーID：設定できない・エラー",
    "mynapoint": "マイナポイント", "mynapoint.application": "マイナポイント：申込みの方法",
    "mynapoint.eligibility": "マイナポイント：対象者・期間", "mynapoint.points": "マイナポイント：ポイントの付与・確認",
    "card": "マイナンバーカード", "card.application": "カード：申請", "card.issue": "カード：交付・受取",
    "pin": "暗証番号（ロック・失念）", "payment_services": "キャッシュレス決済サービス",
    "desk_locations_hours": "支援窓口の場所・開設時間", "health_insurance": "健康保険証利用の初回登録",
    "complaint_card_system": "カード制度への苦情", "other": "その他",
}
CALLBACK_STATUS = {"open": "未完了", "done": "完了", "failed": "不通", "cancelled": "取消"}


PIN_KIND = {"user_auth": "利用者証明用（4桁）", "card_info": "券面事項入力補助用（4桁）", "signature": "署名用（6〜16文字）"}
STOP_REASON = {"staff_shortage": "人員不足", "equipment_failure": "機器の故障", "network_failure": "通信障害",
               "facility": "施設の事情", "pandemic": "感染症", "weather": "天候", "city_instruction": "市の指示", "other": "その他"}
INSTRUCTION_REASON = {"pandemic": "感染症", "disaster": "災害", "facility": "施設の事情", "city_decision": "市の判断", "other": "その他"}
ABSENCE_REASON = {"restroom": "お手洗い", "break": "休憩", "helping_elsewhere": "他の対応", "fetching_supplies": "備品の補充",
                  "other": "その他"}
SEVERITY = {"critical": "緊急", "urgent": "緊急", "high": "高", "warning": "注意", "medium": "中", "info": "情報", "low": "低",
            "normal": "通常"}


def label(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return table.get(code, code)
