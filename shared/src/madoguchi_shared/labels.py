"""Japanese labels of the codes that events carry: one definition for the reports and the console,
so the city's report and the screen at the desk name a thing the same way.

Codes are stable (they are in the events); labels are presentation. An unknown code (a
municipality's own inquiry category, a new enum value) is shown as the code itself.
"""

from __future__ import annotations

GENDER = {"female": "女性", "male": "男性", "other": "その他", "not_stated": "回答なし"}
AGE_BAND = {
    "under_20": "20歳未満",
    "20s": "20代",
    "30s": "30代",
    "40s": "40代",
    "50s": "50代",
    "60s": "60代",
    "70s": "70代",
    "80_and_over": "80歳以上",
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
    "electronic_money": "電子マネー",
    "qr_code": "QRコード決済",
    "credit_card": "クレジットカード",
    "debit_card": "デビットカード",
    "prepaid_card": "プリペイドカード",
    "prepaid": "プリペイド",
    "other": "その他",
    "not_chosen": "未選択",
}
# REP-1 意見・要望・話題; DESK-7 where in the procedure citizens struggled (つまずいた点)
OPINION_KIND = {
    "opinion": "意見",
    "request": "要望",
    "topic": "話題",
    "difficulty": "つまずいた点",
    "struggle": "つまずいた点",
}
PROCEDURE_STEP = {
    "understanding_scheme": "制度の理解",
    "pin_entry": "暗証番号入力",
    "card_reading": "カード読取り",
    "app_install": "アプリのインストール",
    "mykey_id_setup": "マイキーID設定",
    "payment_service_choice": "決済サービスの選択",
    "health_insurance_registration": "健康保険証利用登録",
    "other": "その他",
}
ESCALATION_CATEGORY = {
    "complaint": "苦情",
    "procedure": "手続き",
    "system_trouble": "システム障害",
    "card": "カード",
    "payment_service": "決済サービス",
    "city_decision": "市の判断が必要",
    "other": "その他",
}
ESCALATION_STATUS = {
    "raised": "対応中",
    "acknowledged": "責任者確認済",
    "to_city": "市へ照会中",
    "resolved": "解決",
    "city_answered": "市の回答あり・折り返し待ち",
    "failed": "折り返し不通",
    "cancelled": "取消",
}
INCIDENT_KIND = {
    "card_left_behind": "カード置き忘れ",
    "equipment_missing": "備品の紛失",
    "equipment_damaged": "備品の破損",
    "other": "その他",
}
RESOLUTION = {
    "answered_on_spot": "その場で回答",
    "referred_national_call_centre": "国のコールセンターを案内",
    "referred_payment_provider": "決済事業者を案内",
    "guided_to_ward_desk": "区の支援窓口を案内",
    "escalated_callback": "エスカレーション（折り返し）",
}
CONNECTION = {
    "answered": "応答",
    "missed": "不応答",
    "abandoned": "放棄",
    "out_of_hours": "時間外",
    "pending": "処理中",
}
CALL_CATEGORY = {
    "mykey_id": "マイキーIDの設定",
    "mykey_id.setup": "マイキーID：設定の方法",
    "mykey_id.trouble": "マイキーID：設定できない・エラー",
    "mynapoint": "マイナポイント",
    "mynapoint.application": "マイナポイント：申込みの方法",
    "mynapoint.eligibility": "マイナポイント：対象者・期間",
    "mynapoint.points": "マイナポイント：ポイントの付与・確認",
    "card": "マイナンバーカード",
    "card.application": "カード：申請",
    "card.issue": "カード：交付・受取",
    "pin": "暗証番号（ロック・失念）",
    "payment_services": "キャッシュレス決済サービス",
    "desk_locations_hours": "支援窓口の場所・開設時間",
    "health_insurance": "健康保険証利用の初回登録",
    "complaint_card_system": "カード制度への苦情",
    "other": "その他",
}
CALLBACK_STATUS = {"open": "未完了", "done": "完了", "failed": "不通", "cancelled": "取消"}


PIN_KIND = {
    "user_auth": "利用者証明用（4桁）",
    "card_info": "券面事項入力補助用（4桁）",
    "signature": "署名用（6〜16文字）",
}
STOP_REASON = {
    "staff_shortage": "人員不足",
    "equipment_failure": "機器の故障",
    "network_failure": "通信障害",
    "facility": "施設の事情",
    "pandemic": "感染症",
    "weather": "天候",
    "city_instruction": "市の指示",
    "other": "その他",
}
INSTRUCTION_REASON = {
    "pandemic": "感染症",
    "disaster": "災害",
    "facility": "施設の事情",
    "city_decision": "市の判断",
    "other": "その他",
}
ABSENCE_REASON = {
    "restroom": "お手洗い",
    "break": "休憩",
    "helping_elsewhere": "他の対応",
    "fetching_supplies": "備品の補充",
    "other": "その他",
}
SEVERITY = {
    "critical": "緊急",
    "urgent": "緊急",
    "high": "高",
    "warning": "注意",
    "medium": "中",
    "info": "情報",
    "low": "低",
    "normal": "通常",
}


def label(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return table.get(code, code)


ROLE = {
    "manager": "業務責任者",
    "rounder": "ラウンダー",
    "supporter": "支援員",
    "operator": "オペレーター",
    "city_staff": "市職員",
    "auditor": "監査担当",
    "administrator": "管理者",
    "device": "窓口端末",
    "system": "システム",
    "service": "サービス",
}

# The operation log (監査ログ): each event type's Japanese name; the context is the first part of the type.
EVENT_CONTEXT = {
    "desk": "窓口",
    "calls": "電話",
    "device": "窓口端末",
    "audit": "監査",
    "admin": "職員・設定",
    "report": "報告書",
}
EVENT_TYPE = {
    "admin.access_denied": "権限外のアクセス",
    "admin.configuration_changed": "設定の変更",
    "admin.login_failed": "ログイン失敗",
    "admin.login_succeeded": "ログイン",
    "admin.staff_account_created": "職員アカウントの作成",
    "admin.staff_account_disabled": "職員アカウントの無効化",
    "admin.staff_password_changed": "パスワードの変更",
    "admin.staff_roles_changed": "職員の役割の変更",
    "admin.training_item_completed": "研修項目の修了",
    "admin.training_test_recorded": "研修テストの記録",
    "audit.alert_acknowledged": "警報の確認",
    "audit.alert_raised": "警報の発生",
    "audit.alert_reraised": "警報の再通知",
    "audit.alert_resolved": "警報の解消",
    "audit.archive_made": "記録の保管（アーカイブ）",
    "audit.archived_records_deleted": "保管期間を過ぎた記録の削除",
    "audit.checkpoint_signed": "署名付きチェックポイント",
    "audit.query_performed": "監査ログの閲覧",
    "audit.verification_run": "改ざん検証の実行",
    "calls.call_abandoned": "放棄呼",
    "calls.call_answered": "電話の応答",
    "calls.call_closed": "通話の記録",
    "calls.call_missed": "不応答",
    "calls.call_out_of_hours": "時間外の着信",
    "calls.call_received": "着信",
    "calls.callback_attempt_failed": "折り返し（つながらず）",
    "calls.callback_cancelled": "折り返しの取消",
    "calls.callback_completed": "折り返しの完了",
    "calls.callback_contact_erased": "折り返し先の消去",
    "calls.callback_escalated_to_city": "折り返し案件を市へ確認",
    "calls.callback_failed": "折り返しの終了（不通）",
    "calls.callback_number_read": "折り返し先の表示",
    "calls.callback_overdue": "折り返しの期限超過",
    "calls.callback_requested": "折り返しの受付",
    "calls.capacity_threshold_crossed": "入電数の閾値",
    "calls.city_answered": "市の回答の記録",
    "calls.faq_entry_created": "よくある質問の追加",
    "calls.faq_entry_retired": "よくある質問の廃止",
    "calls.faq_entry_revised": "よくある質問の改訂",
    "calls.no_operator_seated": "オペレーター不在",
    "calls.operator_signed_in": "オペレーターの着席",
    "calls.operator_signed_out": "オペレーターの離席",
    "calls.overflow_offered": "混雑・時間外の案内",
    "calls.seat_coverage_restored": "オペレーター不在の解消",
    "desk.capacity_threshold_reached": "来訪者数の閾値",
    "desk.card_handed_to_staff": "カードの預かり",
    "desk.card_left_behind": "カードの置き忘れ",
    "desk.card_returned": "カードの返却",
    "desk.city_instruction_lifted": "市の指示の解除",
    "desk.cleanup_recorded": "片付けの記録",
    "desk.day_cannot_continue": "業務継続不能の報告",
    "desk.day_cannot_start": "業務開始不能の報告",
    "desk.day_ended": "業務終了の確認",
    "desk.day_resumed": "業務の再開",
    "desk.day_started": "業務開始の確認",
    "desk.devices_disinfected": "機器の消毒",
    "desk.equipment_checked": "備品の点検",
    "desk.escalation_acknowledged": "エスカレーションの受付",
    "desk.escalation_escalated_to_city": "エスカレーションを市へ報告",
    "desk.escalation_raised": "エスカレーション",
    "desk.escalation_resolved": "エスカレーションの解決",
    "desk.extended_hours_scheduled": "時間延長の登録",
    "desk.incident_closed": "事案の終了",
    "desk.incident_opened": "事案の発生",
    "desk.incident_step_done": "事案の手順の完了",
    "desk.mask_status_recorded": "マスク着用の記録",
    "desk.opening_delayed": "開設の延期",
    "desk.opening_suspended": "窓口の休止",
    "desk.opinion_recorded": "ご意見・ご要望の記録",
    "desk.pin_failure_recorded": "暗証番号の失敗",
    "desk.pin_lock_warning_issued": "暗証番号ロックの注意",
    "desk.preparation_recorded": "準備の記録",
    "desk.short_absence_ended": "短時間不在の終了",
    "desk.short_absence_started": "短時間不在",
    "desk.special_opening_scheduled": "特別開庁の登録",
    "desk.staff_checked_in": "支援員のチェックイン",
    "desk.staff_checked_out": "支援員のチェックアウト",
    "desk.staffing_breach_detected": "支援員不在の発生",
    "desk.staffing_breach_ended": "支援員不在の解消",
    "desk.ticket_called": "番号の呼出",
    "desk.ticket_issued": "番号札の発行",
    "desk.ticket_no_show": "呼出に不在",
    "desk.ticket_recalled": "番号の再呼出",
    "desk.ticket_served": "対応開始（番号札）",
    "desk.ticket_transferred": "番号札の引継ぎ",
    "desk.visit_corrected": "来訪記録の訂正",
    "desk.visit_details_recorded": "来訪記録",
    "desk.visit_ended": "対応の終了",
    "desk.visit_started": "対応の開始",
    "desk.visit_started_before_disinfection": "消毒前の対応開始",
    "device.agent_started": "端末監視の開始",
    "device.agent_stopped": "端末監視の停止",
    "device.card_inserted": "カードの挿入",
    "device.card_left_in_reader": "カードの取り忘れ（読取機）",
    "device.card_removed": "カードの取出し",
    "device.heartbeat": "端末の死活通知",
    "device.monitoring_notice_acknowledged": "監視の告知の確認",
    "device.monitoring_notice_shown": "監視の告知の表示",
    "device.outbox_size_alarm": "未送信記録の増加",
    "device.personal_data_file_found": "個人情報の可能性があるファイル",
    "device.policy_applied": "端末ポリシーの適用",
    "device.policy_changed": "端末ポリシーの変更",
    "device.process_violation": "許可されていないアプリケーション",
    "device.reader_attached": "読取機の接続",
    "device.reader_detached": "読取機の取外し",
    "device.synthetic_load": "負荷試験の記録",
    "device.usb_device_attached": "USB機器の接続",
    "device.usb_device_removed": "USB機器の取外し",
    "device.usb_violation": "許可されていないUSB機器",
    "report.deliverable_defined": "納入成果物の登録",
    "report.deliverable_overdue": "納入成果物の期限超過",
    "report.deliverable_submitted": "納入成果物の提出",
    "report.report_revision_made": "報告書の改訂",
    "report.report_submitted": "報告書の提出",
    "report.report_updated": "報告書の更新",
}
# Types an auditor rarely wants in a list: shown only when asked for.
ROUTINE_EVENT_TYPES = ("device.heartbeat",)


def event_type_label(event_type: str | None) -> str:
    """'desk.visit_ended' → '対応の終了'; an unknown type → its context's name（その他）."""
    if not event_type:
        return ""
    if event_type in EVENT_TYPE:
        return EVENT_TYPE[event_type]
    context = event_type.partition(".")[0]
    return f"{EVENT_CONTEXT.get(context, 'その他')}（その他の記録）"
