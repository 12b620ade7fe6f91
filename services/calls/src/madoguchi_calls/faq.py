"""The operators' Q&A (電話対応Q&A): an in-memory search index over the FAQ entries.

The entries are versioned by events (``calls.faq_entry_*``, one ``faq`` aggregate per entry);
the index is rebuilt from them when the service starts and updated on every change, so there is
no table to keep in step. Search is what an operator needs with a caller waiting: simple,
predictable, fast for a few hundred entries. The query and the texts are normalised (NFKC, so
full-width ＡＢＣ and half-width ｶﾀｶﾅ match their usual forms; case folded; katakana folded to
hiragana, so まいなぽいんと finds マイナポイント), the query is split on spaces, and every token must
occur as a substring of the question, the answer or the keywords. Matches in the question
weigh most. Japanese text has no spaces, so substring matching (not word matching) is the point.

Seed entries for a new municipality: `SEED` (see ``madoguchi calls faq-seed``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from uuid import UUID

from madoguchi_calls.domain import Faq, evolve_faq
from madoguchi_shared.events import Event
from madoguchi_shared.events import calls as ev

_KATA_TO_HIRA = {cp: cp - 0x60 for cp in range(ord("ァ"), ord("ヶ") + 1)}


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_KATA_TO_HIRA)


@dataclass(frozen=True)
class Hit:
    entry: Faq
    score: int


class FaqIndex:
    def __init__(self) -> None:
        self.entries: dict[UUID, Faq] = {}
        self.history: dict[UUID, dict[int, Faq]] = {}  # every revision, for old call records
        self._norm: dict[UUID, tuple[str, str, str]] = {}

    def apply(self, event: Event) -> None:
        if not isinstance(event, ev.FaqEntryCreated | ev.FaqEntryRevised | ev.FaqEntryRetired):
            return
        entry = evolve_faq(self.entries.get(event.faq_id), event)
        self.entries[entry.faq_id] = entry
        self.history.setdefault(entry.faq_id, {})[entry.revision] = entry
        self._norm[entry.faq_id] = (
            normalize(entry.question),
            normalize(entry.answer),
            normalize(" ".join(entry.keywords)),
        )

    def get(self, faq_id: UUID, revision: int | None = None) -> Faq | None:
        if revision is None:
            return self.entries.get(faq_id)
        return self.history.get(faq_id, {}).get(revision)

    def active(self) -> list[Faq]:
        return sorted((e for e in self.entries.values() if not e.retired), key=lambda e: e.question)

    def search(
        self, query: str, *, category: str | None = None, limit: int = 20, include_retired: bool = False
    ) -> list[Hit]:
        tokens = [t for t in normalize(query).split() if t]
        hits: list[Hit] = []
        for faq_id, entry in self.entries.items():
            if entry.retired and not include_retired:
                continue
            if category and not any(c == category or c.startswith(category + ".") for c in entry.categories):
                continue
            question, answer, keywords = self._norm[faq_id]
            score = 0
            for token in tokens:
                s = 3 * question.count(token) + 2 * keywords.count(token) + answer.count(token)
                if s == 0:
                    break
                score += s
            else:
                hits.append(Hit(entry, score))
        hits.sort(key=lambda h: (-h.score, h.entry.question))
        return hits[:limit]


# Seed Q&A for a new line, written from the specification's scope (窓口の場所、国のマニュアル、
# マイナポイントのホームページの範囲; beyond that the national call centre or the payment provider).
# No phone numbers here: the PII guard refuses them in free text; referral numbers belong to the
# operators' directory, not to the Q&A.
SEED: tuple[dict, ...] = (
    {
        "question": "マイキーIDとは何ですか？",
        "answer": "マイナポイントの申込みに必要なIDです。マイナンバーカードと暗証番号（数字4桁）を使い、"
        "パソコンやスマートフォン、区役所の支援窓口で設定できます。",
        "categories": ["mykey_id.setup"],
        "keywords": ["マイキー", "ID設定"],
    },
    {
        "question": "マイナポイントの申込みには何が必要ですか？",
        "answer": "マイナンバーカード、利用者証明用電子証明書の暗証番号（数字4桁）、"
        "対応するスマートフォンまたはパソコンとICカードリーダー、選んだキャッシュレス決済サービスが必要です。",
        "categories": ["mynapoint.application"],
        "keywords": ["持ち物", "必要なもの", "申込み"],
    },
    {
        "question": "暗証番号を忘れた、またはロックされてしまいました。",
        "answer": "暗証番号の再設定・ロック解除はお住まいの区の区役所戸籍住民課で行います。"
        "ご本人がマイナンバーカードをお持ちのうえ、お越しください。電話では手続きできません。",
        "categories": ["pin"],
        "keywords": ["暗証番号", "ロック", "忘れた", "パスワード"],
    },
    {
        "question": "支援窓口はどこにありますか？開設時間は？",
        "answer": "各区役所に支援窓口があります。開設時間は区役所の開庁日の8:45〜17:15です"
        "（特別開庁・時間延長の日はお知らせのとおり）。混雑時は受付番号札をお渡しします。",
        "categories": ["desk_locations_hours"],
        "keywords": ["場所", "窓口", "時間", "区役所"],
    },
    {
        "question": "選んだキャッシュレス決済サービスのポイント還元や使い方を知りたい。",
        "answer": "各キャッシュレス決済サービス独自の還元内容や使い方は、その決済事業者の問い合わせ先にご確認ください。"
        "当窓口では申込み手続きの流れをご案内します。",
        "categories": ["payment_services"],
        "keywords": ["決済", "チャージ", "還元", "QRコード", "電子マネー"],
    },
    {
        "question": "マイナンバーカードを健康保険証として使う登録はできますか？",
        "answer": "はい。マイナポイントの申込みに続けて、健康保険証利用の初回登録もご案内できます。"
        "支援窓口でもお手伝いします。",
        "categories": ["health_insurance"],
        "keywords": ["保険証", "健康保険"],
    },
    {
        "question": "マイナンバーカードの制度について意見・苦情を伝えたい。",
        "answer": "制度に関するご意見やご質問は、国のコールセンター（マイナンバー総合フリーダイヤル）をご案内します。"
        "いただいたご意見は記録し、委託者（市）へ報告します。",
        "categories": ["complaint_card_system"],
        "keywords": ["苦情", "制度", "総合フリーダイヤル", "コールセンター"],
    },
    {
        "question": "マイナンバーカードの申請・受取はどうすればよいですか？",
        "answer": "カードの申請は郵送・スマートフォン・パソコン・証明用写真機から行えます。"
        "交付通知書が届いたら、記載の会場で受け取ってください。詳しくは国のコールセンターをご案内します。",
        "categories": ["card.application", "card.issue"],
        "keywords": ["申請", "受取", "交付"],
    },
)
