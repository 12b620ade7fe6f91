"""Japanese free text for opinions, escalation summaries, call notes and city answers.

Written as staff would write them, with no digits at all: the PII guard refuses any run of
12 digits, phone numbers and e-mail addresses (ARCHITECTURE rule 5), and a simulator that never
writes digits can never trip it by accident. A test checks every text against the guard.
"""

from __future__ import annotations

from madoguchi_shared.events.desk import OpinionKind, ProcedureStep

# DESK-7: opinions, requests, topics and where in the procedure citizens struggled, by step.
OPINIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "difficulty": {
        "understanding_scheme": (
            "マイナポイントの仕組みが分かりにくく、何をすればポイントがもらえるのか理解するのに時間がかかった。",
            "マイキーIDとマイナポイントの違いが分からなかった。",
        ),
        "pin_entry": (
            "暗証番号を覚えておらず、入力に何度も失敗して不安になった。",
            "数字四桁の暗証番号と署名用の暗証番号の区別がつかなかった。",
        ),
        "card_reading": (
            "カードを読み取り機に置く位置が分からず、何度もやり直した。",
            "スマートフォンでカードがなかなか読み取れなかった。",
        ),
        "app_install": (
            "スマートフォンにアプリを入れる手順が難しかった。",
            "アプリのパスワードを忘れてしまい、先に進めなかった。",
        ),
        "mykey_id_setup": (
            "マイキーIDの設定画面の文字が小さくて読みにくかった。",
            "設定の途中で画面が変わり、どこまで進んだのか分からなくなった。",
        ),
        "payment_service_choice": (
            "どの決済サービスを選べばよいか迷った。比較できる表があると助かる。",
            "普段使っている決済サービスが一覧のどれに当たるのか分からなかった。",
        ),
        "health_insurance_registration": ("健康保険証として登録する意味がよく分からなかった。",),
        "other": ("窓口の場所が分かりにくく、庁舎の中で迷った。",),
    },
    "opinion": {
        "understanding_scheme": (
            "丁寧に説明してもらえて安心した。",
            "ポイントの申込みは家でできると思っていたが、窓口で手伝ってもらえて良かった。",
        ),
        "other": (
            "職員の対応が親切で分かりやすかった。",
            "待ち時間が長かったが、説明は丁寧だった。",
        ),
    },
    "request": {
        "other": (
            "土曜日や日曜日にも窓口を開けてほしい。",
            "予約ができるようにしてほしい。待ち時間が長かった。",
            "高齢者向けの説明会を地域の会館でも開いてほしい。",
        ),
        "payment_service_choice": ("決済サービスごとの特典を一枚にまとめた案内が欲しい。",),
    },
    "topic": {
        "understanding_scheme": (
            "家族の分もまとめて申し込めるか知りたいとのこと。",
            "ポイントの申込み期限がいつまでか知りたいとのこと。",
        ),
        "health_insurance_registration": ("健康保険証の利用登録をすると病院でどう変わるのか聞かれた。",),
        "other": ("カードの更新手続きについても質問があった。",),
    },
}

# DESK-6: escalation summaries by category, and what the manager or the city decided.
ESCALATIONS: dict[str, tuple[str, ...]] = {
    "complaint": (
        "待ち時間が長いとの苦情。業務責任者が事情を説明した。",
        "説明が分かりにくいとの苦情。担当を交代して対応した。",
    ),
    "procedure": (
        "代理人による申込みができるか判断が必要な相談。",
        "施設に入所している家族の手続きについての相談。",
    ),
    "system_trouble": (
        "申込みサイトが表示されず手続きが進まない。",
        "読み取り機がカードを認識しない状態が続いた。",
    ),
    "card": (
        "カードの券面の記載が変わっているとの相談。",
        "電子証明書の有効期限が切れているため区役所の窓口を案内した件。",
    ),
    "payment_service": ("決済サービスの登録内容を変更したいとの相談。",),
    "city_decision": ("市の判断が必要な個別の事情がある相談。",),
    "other": ("その他、業務責任者の判断を求めた件。",),
}
ESCALATION_TO_CITY: tuple[str, ...] = (
    "業務責任者から市の担当課へ電話で報告し、対応の指示を求めた。",
    "個別の事情があるため、市の判断を仰いだ。",
)
ESCALATION_OUTCOMES: dict[str, tuple[str, ...]] = {
    "manager": (
        "業務責任者が説明し、了解を得た。",
        "手順を案内し直し、手続きを完了した。",
        "後日あらためて来庁いただくことで了解を得た。",
    ),
    "city": (
        "市の指示に従い案内し、了解を得た。",
        "市の担当課から直接連絡することになった。",
    ),
}

# CALL-5: notes of an answered call, by category (optional), and the caller's opinions.
CALL_NOTES: tuple[str, ...] = (
    "手続きの流れを説明し、了解を得た。",
    "最寄りの区役所の窓口を案内した。",
    "よくある質問の内容で回答した。",
    "決済サービスの問合せ先を案内した。",
    "国のコールセンターを案内した。",
    "再度の来庁は不要であることを説明した。",
)
# (kind, procedure step or None, text): the same kinds and steps as at the desk (CALL-5, DESK-7).
CALL_OPINIONS: tuple[tuple[OpinionKind, ProcedureStep | None, str], ...] = (
    ("opinion", None, "電話で丁寧に教えてもらえて助かった。"),
    ("request", None, "窓口の開設時間を延ばしてほしい。"),
    ("request", None, "電話がつながりにくいので回線を増やしてほしい。"),
    ("topic", "understanding_scheme", "家族の分の手続きについて質問があった。"),
    ("difficulty", "mykey_id_setup", "申込みサイトの操作が分かりにくいとのこと。"),
    ("difficulty", "pin_entry", "暗証番号の再設定の方法が分からないとのこと。"),
)
CITY_QUESTIONS: tuple[str, ...] = (
    "市の判断が必要な問合せのため、対応方法を確認したい。",
    "制度の対象になるかどうかの判断をお願いしたい。",
)
CITY_ANSWERS: tuple[str, ...] = (
    "市の担当課から回答があり、その内容で案内する。",
    "対象となるため、窓口での手続きを案内する。",
)
CALLBACK_NOTES: tuple[str, ...] = (
    "折り返しの電話で回答し、了解を得た。",
    "折り返しで窓口の場所と開設時間を案内した。",
)

INCIDENT_MESSAGE_CARD = "マイナンバーカードの置き忘れがありました。至急、市へ電話で連絡してください。"
INCIDENT_MESSAGE_EQUIPMENT = "備品が見当たりません。業務責任者へ連絡し、所在を確認してください。"
# The desk service's checklists (services/desk domain.py), so bus-mode incidents look the same.
CARD_CHECKLIST: tuple[tuple[str, str], ...] = (
    ("phone_city", "委託者（市）へ電話で速やかに報告する"),
    ("keep_card_safe", "カードを施錠できる場所で安全に保管する（複数人で確認）"),
    ("record_handover", "カードの引渡し（市職員への受け渡し）を記録する"),
)
EQUIPMENT_CHECKLIST: tuple[tuple[str, str], ...] = (
    ("search_site", "窓口周辺と保管場所を確認する"),
    ("report_city", "盗難・紛失の可能性を委託者（市）へ報告する"),
    ("arrange_replacement", "代替機器を手配する"),
)
INCIDENT_CLOSED_NOTE = "対応を終え、市へ報告した。"
EXTENDED_HOURS_NOTE = "来場者が多いため、市の指示で本日の開設時間を延長する。"
CAPACITY_MESSAGE = "来場者数が想定の上限に近づいています。業務責任者は市と協議してください。"
BREACH_MESSAGE = "開設時間中に支援員が不在です。至急、窓口に戻ってください。"
PIN_WARNING = "あと一回間違えると暗証番号がロックされます。ロックされた場合は区役所で初期化の手続きが必要です。"


def all_texts() -> list[str]:
    """Every text the simulator can write (for the PII-guard test)."""
    out: list[str] = []
    for by_step in OPINIONS.values():
        for texts in by_step.values():
            out.extend(texts)
    for texts in ESCALATIONS.values():
        out.extend(texts)
    out.extend(ESCALATION_TO_CITY)
    for texts in ESCALATION_OUTCOMES.values():
        out.extend(texts)
    out.extend(CALL_NOTES)
    out.extend(t for _, _, t in CALL_OPINIONS)
    out.extend(CITY_QUESTIONS + CITY_ANSWERS + CALLBACK_NOTES)
    out.extend(t for _, t in CARD_CHECKLIST + EQUIPMENT_CHECKLIST)
    out.extend(
        [
            INCIDENT_MESSAGE_CARD,
            INCIDENT_MESSAGE_EQUIPMENT,
            INCIDENT_CLOSED_NOTE,
            EXTENDED_HOURS_NOTE,
            CAPACITY_MESSAGE,
            BREACH_MESSAGE,
            PIN_WARNING,
        ]
    )
    return out
