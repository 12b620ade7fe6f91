"""Seeded corpora for the personal-data guard: hostile spellings (My Number, phone, e-mail) and
ordinary desk writing. Written from the point of view of a careless or hurried person and of an
independent tester, not from the detector's rules: every digit may be written in any of several
ways, any separator may sit between any digits, and the number may be split across a sentence.

Run ``python shared/tests/pii_corpus.py [N] [SEED]`` to print the measured rates per class
(and a few examples of what was missed or wrongly refused).
"""

from __future__ import annotations

import random
import sys

from madoguchi_shared.pii import find_personal_data

# --------------------------------------------------------------------------------------------
# How one digit gets written
# --------------------------------------------------------------------------------------------

KANJI = "〇一二三四五六七八九"
DAIJI = ["〇零", "壱壹", "弐貳", "参參", "肆四", "伍五", "陸六", "漆七", "捌八", "玖九"]
CIRCLED = "⓪①②③④⑤⑥⑦⑧⑨"
NEG_CIRCLED = "⓿❶❷❸❹❺❻❼❽❾"
FULLWIDTH = "０１２３４５６７８９"
READINGS = [
    ["ゼロ", "レイ", "マル"],
    ["イチ"],
    ["ニ", "ニー"],
    ["サン"],
    ["ヨン", "ヨン", "シ"],
    ["ゴ", "ゴー"],
    ["ロク"],
    ["ナナ", "シチ"],
    ["ハチ"],
    ["キュウ", "キュー", "ク"],
]
HALFWIDTH_KANA = {
    "ゼ": "ｾﾞ",
    "ロ": "ﾛ",
    "レ": "ﾚ",
    "イ": "ｲ",
    "チ": "ﾁ",
    "ニ": "ﾆ",
    "ー": "ｰ",
    "サ": "ｻ",
    "ン": "ﾝ",
    "ヨ": "ﾖ",
    "シ": "ｼ",
    "ゴ": "ｺﾞ",
    "ク": "ｸ",
    "ナ": "ﾅ",
    "ハ": "ﾊ",
    "キ": "ｷ",
    "ュ": "ｭ",
    "ウ": "ｳ",
    "マ": "ﾏ",
    "ル": "ﾙ",
}


def to_hiragana(s: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in s)


def to_halfwidth_kana(s: str) -> str:
    return "".join(HALFWIDTH_KANA.get(c, c) for c in s)


def digit_writer(rng: random.Random) -> str:
    return rng.choice(
        [
            "arabic",
            "fullwidth",
            "kanji",
            "kanji_rei",
            "daiji",
            "circled",
            "neg_circled",
            "katakana",
            "hiragana",
            "halfkana",
            "mixed",
            "mixed",
        ]
    )


def write_digit(d: int, style: str, rng: random.Random) -> str:
    if style == "mixed":
        style = rng.choice(["arabic", "fullwidth", "kanji", "daiji", "circled"])
    if style == "arabic":
        return str(d)
    if style == "fullwidth":
        return FULLWIDTH[d]
    if style == "kanji":
        return KANJI[d]
    if style == "kanji_rei":
        return "零" if d == 0 else KANJI[d]
    if style == "daiji":
        return rng.choice(DAIJI[d])
    if style == "circled":
        return CIRCLED[d]
    if style == "neg_circled":
        return NEG_CIRCLED[d]
    reading = rng.choice(READINGS[d])
    if style == "hiragana":
        return to_hiragana(reading)
    if style == "halfkana":
        return to_halfwidth_kana(reading)
    return reading


SEPARATORS = [
    " ",
    "  ",
    "    ",
    "      ",
    "\u3000",
    "\u3000\u3000",
    "-",
    "‐",
    "−",
    "–",
    "—",
    "ー",
    "－",
    "ｰ",
    ".",
    "．",
    "/",
    "／",
    ",",
    "，",
    "、",
    "〜",
    "～",
    "~",
    "・",
    "\n",
    "\r\n",
    " \n ",
    "\t",
    " - ",
    " / ",
    "_",
    ":",
    "：",
    "\u200b",
]
KANA_STYLES = {"katakana", "hiragana", "halfkana"}


def grouping(rng: random.Random, n: int, typical: list[list[int]]) -> list[int]:
    choice = rng.random()
    if choice < 0.55:
        return rng.choice(typical)
    if choice < 0.7:
        return [n]
    if choice < 0.8:
        return [1] * n
    sizes, left = [], n
    while left:
        k = rng.randint(1, min(5, left))
        sizes.append(k)
        left -= k
    return sizes


def spell(rng: random.Random, digits: str, groups: list[int]) -> str:
    style = digit_writer(rng)
    per_group_sep = rng.random() < 0.7
    sep = rng.choice(SEPARATORS)
    brackets = rng.random() < 0.1
    out, i = [], 0
    for gi, size in enumerate(groups):
        part = "".join(write_digit(int(c), style, rng) for c in digits[i : i + size])
        if style in KANA_STYLES and rng.random() < 0.3:
            part = "・".join(write_digit(int(c), style, rng) for c in digits[i : i + size])
        i += size
        if brackets and gi == 0 and len(groups) > 1:
            part = rng.choice(["({})", "（{}）", "[{}]", "「{}」", "【{}】"]).format(part)
        out.append(part)
        if gi < len(groups) - 1:
            out.append(sep if per_group_sep else rng.choice(SEPARATORS))
            if style in KANA_STYLES and out[-1] in ("ー", "ｰ", "\u200b"):
                out[-1] = " "  # a long-vowel mark after a reading lengthens it: not a separator there
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Hostile: My Numbers
# --------------------------------------------------------------------------------------------

WEIGHTS = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def check_digit(first11: str) -> int:
    r = sum(int(c) * w for c, w in zip(first11, WEIGHTS, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


MY_NUMBER_TEMPLATES = [
    "{}",
    "個人番号は{}です。",
    "マイナンバー：{}",
    "マイナンバー {} の確認済み",
    "お客様の番号{}を控えました",
    "番号 {} で照会",
    "{} の方が来庁",
    "カード記載の番号（{}）を読み上げてもらった",
    "個人番号{}、本人確認OK",
    "念のためメモ→{}",
    "申請者: {} 様",
    "番号は\n{}\nです",
    "確認用 {}。",
    "{}（本人申告）",
]
SPLIT_TEMPLATES_2 = [
    "番号は{}で、続きは{}です",
    "前半{}、後半{}",
    "個人番号の上6桁は{}、下6桁は{}",
    "{} と {} をつなげた番号",
    "最初が{}で最後が{}でした",
    "番号{}…いや{}の続き",
    "カードの番号は {} の後に {}",
]
SPLIT_TEMPLATES_3 = [
    "番号は{}、{}、それと{}",
    "{}の{}の{}",
    "最初{}、次{}、最後{}",
    "個人番号 {} / 次は {} / 最後 {}",
]


def hostile_my_number(rng: random.Random) -> str:
    first11 = "".join(rng.choice("0123456789") for _ in range(11))
    digits = first11 + str(check_digit(first11))
    if rng.random() < 0.15:
        if rng.random() < 0.6:
            cut = rng.choice([4, 6, 6, 8])
            a = spell(rng, digits[:cut], grouping(rng, cut, [[cut]]))
            b = spell(rng, digits[cut:], grouping(rng, 12 - cut, [[12 - cut]]))
            return rng.choice(SPLIT_TEMPLATES_2).format(a, b)
        parts = [spell(rng, digits[k : k + 4], [4]) for k in (0, 4, 8)]
        return rng.choice(SPLIT_TEMPLATES_3).format(*parts)
    spelled = spell(rng, digits, grouping(rng, 12, [[4, 4, 4], [4, 4, 4], [6, 6], [3, 3, 3, 3], [2] * 6, [4, 8]]))
    return rng.choice(MY_NUMBER_TEMPLATES).format(spelled)


# --------------------------------------------------------------------------------------------
# Hostile: phone numbers (Japanese numbering plan)
# --------------------------------------------------------------------------------------------


def rand_digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def phone_number(rng: random.Random) -> tuple[str, list[int], bool]:
    """(digits, typical grouping, international?)"""
    kind = rng.choice(
        [
            "mobile",
            "mobile",
            "mobile",
            "ip",
            "tokyo",
            "osaka",
            "sapporo",
            "rural",
            "rural5",
            "free",
            "free0800",
            "navi",
            "intl",
            "intl",
        ]
    )
    if kind == "mobile":
        return rng.choice(["070", "080", "090"]) + rand_digits(rng, 8), [3, 4, 4], False
    if kind == "ip":
        return "050" + rand_digits(rng, 8), [3, 4, 4], False
    if kind == "tokyo":
        return "03" + rng.choice("123456789") + rand_digits(rng, 7), [2, 4, 4], False
    if kind == "osaka":
        return "06" + rng.choice("123456789") + rand_digits(rng, 7), [2, 4, 4], False
    if kind == "sapporo":
        return "011" + rng.choice("123456789") + rand_digits(rng, 6), [3, 3, 4], False
    if kind == "rural":
        return "0" + rng.choice("123456789") + rand_digits(rng, 2) + rand_digits(rng, 6), [4, 2, 4], False
    if kind == "rural5":
        return "0" + rng.choice("123456789") + rand_digits(rng, 3) + rand_digits(rng, 5), [5, 1, 4], False
    if kind == "free":
        return "0120" + rand_digits(rng, 6), [4, 3, 3], False
    if kind == "free0800":
        return "0800" + rand_digits(rng, 7), [4, 3, 4], False
    if kind == "navi":
        return "0570" + rand_digits(rng, 6), [4, 3, 3], False
    national = rng.choice(["90", "80", "70", "3", "6", "11"])
    rest = (
        rand_digits(rng, 10 - len(national)) if national in ("90", "80", "70") else rand_digits(rng, 9 - len(national))
    )
    return "81" + national + rest, [2, len(national), len(rest) - 4, 4], True


PHONE_TEMPLATES = [
    "{}",
    "電話番号は{}です。",
    "連絡先：{}",
    "TEL {}",
    "tel:{}",
    "携帯 {} に折り返し希望",
    "お客様の電話{}へ連絡",
    "{}（自宅）",
    "☎{}",
    "折返し先は {} とのこと",
    "電話 {} 夕方以降",
    "番号{}までお願いします",
]
PHONE_SPLIT = ["市外局番は{}、その後{}", "電話は{}の{}", "{}から始まる番号で{}", "携帯{}、続きが{}"]


def hostile_phone(rng: random.Random) -> str:
    digits, typical, intl = phone_number(rng)
    if intl:
        national = digits[2:]
        style = rng.random()
        if style < 0.3:
            body = "+81" + rng.choice([" ", "-", ""]) + spell(rng, national, typical[1:]).replace("\n", " ")
        elif style < 0.5:
            body = "+81 (0)" + spell(rng, national, typical[1:]).replace("\n", " ")
        elif style < 0.7:
            body = "＋８１" + rng.choice(["　", "－", ""]) + "".join(FULLWIDTH[int(c)] for c in national)
        else:
            body = (
                "+81"
                + rng.choice([" ", "-"])
                + "-".join([national[: typical[1]], national[typical[1] : -4], national[-4:]])
            )
        return rng.choice(PHONE_TEMPLATES).format(body)
    if rng.random() < 0.12:
        cut = typical[0]
        return rng.choice(PHONE_SPLIT).format(spell(rng, digits[:cut], [cut]), spell(rng, digits[cut:], typical[1:]))
    if rng.random() < 0.1:
        a, b = typical[0], typical[1]
        spelled = rng.choice(["({}){}-{}", "{}({}){}", "（{}）{}－{}"]).format(
            digits[:a], digits[a : a + b], digits[a + b :]
        )
    else:
        spelled = spell(rng, digits, grouping(rng, len(digits), [typical, typical, [len(digits)]]))
    return rng.choice(PHONE_TEMPLATES).format(spelled)


# --------------------------------------------------------------------------------------------
# Hostile: e-mail addresses
# --------------------------------------------------------------------------------------------

LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
NAMES = ["taro", "hanako", "yamada", "suzuki", "k.tanaka", "sato_ichiro", "info", "m-ito", "yui1985", "kenji.w"]
ASCII_DOMAINS = [
    ["example", "com"],
    ["example", "co", "jp"],
    ["docomo", "ne", "jp"],
    ["ezweb", "ne", "jp"],
    ["gmail", "com"],
    ["i", "softbank", "jp"],
    ["city", "sapporo", "lg", "jp"],
    ["mail", "example", "org"],
    ["yahoo", "co", "jp"],
    ["icloud", "com"],
    ["outlook", "jp"],
    ["au", "com"],
]
IDN_DOMAINS = [
    ["例え", "jp"],
    ["例え", "テスト"],
    ["山田商店", "jp"],
    ["市役所", "日本"],
    ["ドメイン名例", "jp"],
    ["さくら", "ne", "jp"],
    ["お店", "みんな"],
    ["日本語", "コム"],
]
AT_FORMS = [
    "@",
    "@",
    "＠",
    " @ ",
    "＠ ",
    " at ",
    " AT ",
    "(at)",
    " (at) ",
    "[at]",
    " [at] ",
    "アットマーク",
    " アットマーク ",
    "あっとまーく",
    "(アットマーク)",
    "＠マーク",
    "★",
    "アット",
    " at mark ",
]
DOT_FORMS = [".", ".", "．", " . ", " dot ", " DOT ", "(dot)", "[dot]", "ドット", " ドット ", "どっと", "。", " ． "]
EMAIL_TEMPLATES = [
    "{}",
    "メールは{}です",
    "連絡先 {}",
    "mail: {}",
    "メールアドレス：{}（本人）",
    "{} に送付希望",
    "返信先は {} とのこと",
    "お客様のアドレス{}を控えた",
]


def hostile_email(rng: random.Random) -> str:
    local = (
        rng.choice(NAMES) if rng.random() < 0.6 else "".join(rng.choice(LOCAL_CHARS) for _ in range(rng.randint(3, 12)))
    )
    labels = rng.choice(IDN_DOMAINS) if rng.random() < 0.25 else rng.choice(ASCII_DOMAINS)
    at = rng.choice(AT_FORMS)
    if at == "＠マーク":
        at = "＠"
    same_dot = rng.random() < 0.7
    dot = rng.choice(DOT_FORMS)
    if any(not lab.isascii() for lab in labels) and dot == "。":
        dot = "."
    domain = labels[0]
    for lab in labels[1:]:
        domain += (
            dot if same_dot else rng.choice([d for d in DOT_FORMS if d != "。" or all(x.isascii() for x in labels)])
        ) + lab
    address = local + at + domain
    r = rng.random()
    if r < 0.15:
        address = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in address)
    elif r < 0.25:
        address = address.upper()
    return rng.choice(EMAIL_TEMPLATES).format(address)


HOSTILE = {"my_number": hostile_my_number, "phone": hostile_phone, "email": hostile_email}


def hostile_corpus(kind: str, n: int, seed: int) -> list[str]:
    rng = random.Random(f"{kind}-{seed}")
    return [HOSTILE[kind](rng) for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Ordinary desk writing
# --------------------------------------------------------------------------------------------


def _fw(rng: random.Random, s: str) -> str:
    return "".join(FULLWIDTH[int(c)] if "0" <= c <= "9" else c for c in s) if rng.random() < 0.2 else s


def ordinary_fragment(rng: random.Random) -> str:
    y, mo, d = rng.randint(2019, 2031), rng.randint(1, 12), rng.randint(1, 28)
    h, mi = rng.randint(0, 23), rng.choice([0, 5, 10, 15, 20, 30, 45, rng.randint(0, 59)])
    wd = rng.choice("月火水木金土日")
    kind = rng.choice(
        [
            "wareki",
            "wareki_kanji",
            "iso",
            "slash",
            "dot",
            "md",
            "md_kanji",
            "time",
            "time_kanji",
            "range",
            "datetime",
            "ticket",
            "ticket_letter",
            "no",
            "seiri",
            "count",
            "people",
            "yen",
            "yen_big",
            "man_yen",
            "points",
            "postal",
            "postal_kanji",
            "step",
            "step_circled",
            "step_paren",
            "pin",
            "pin_kanji",
            "percent",
            "minutes",
            "window",
            "floor",
            "age",
            "version",
            "counts_list",
            "page",
            "duration",
            "wait",
            "kanji_word",
            "kana_word",
            "name",
            "reiwa_short",
            "year_only",
            "month_range",
        ]
    )
    kanji_num = "〇一二三四五六七八九"
    f = {
        "wareki": f"令和{y - 2018}年{mo}月{d}日",
        "wareki_kanji": f"令和{kanji_num[(y - 2018) % 10]}年{kanji_num[mo % 10]}月",
        "iso": f"{y}-{mo:02d}-{d:02d}",
        "slash": f"{y}/{mo:02d}/{d:02d}" if rng.random() < 0.5 else f"{y}/{mo}/{d}",
        "dot": f"{y}.{mo}.{d}" if rng.random() < 0.5 else f"R{y - 2018}.{mo}.{d}",
        "md": f"{mo}/{d}({wd})",
        "md_kanji": f"{mo}月{d}日（{wd}）",
        "time": f"{h}:{mi:02d}",
        "time_kanji": f"{h}時{mi}分",
        "range": f"{h}:{mi:02d}〜{rng.randint(h, 23)}:{rng.randint(0, 59):02d}",
        "datetime": f"{y}/{mo:02d}/{d:02d} {h:02d}:{mi:02d}",
        "ticket": f"受付番号{rng.randint(1, 999)}",
        "ticket_letter": f"{rng.choice('ABCDEF')}-{rng.randint(1, 300):03d}",
        "no": f"No.{rng.randint(1, 9999)}",
        "seiri": f"整理券{rng.randint(1, 400)}番",
        "count": f"{rng.randint(1, 9999)}{rng.choice(['件', '枚', '通', '回', '個', '冊', '台'])}",
        "people": f"{rng.randint(1, 500)}{rng.choice(['人', '名'])}",
        "yen": f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}円",
        "yen_big": f"{rng.randint(1, 9)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}円",
        "man_yen": f"{rng.randint(1, 99)}万円",
        "points": f"{rng.choice(['5,000', '7,500', '15,000', '20,000', '20000', '2万'])}ポイント",
        # (an office's own postal code: a person's, 〒060-0001, narrows a home down and is refused)
        "postal": f"〒{rng.randint(0, 999):03d}-{rng.randint(8000, 9999):04d}",
        "postal_kanji": f"郵便番号{rng.randint(0, 999):03d}-{rng.randint(8000, 9999):04d}",
        "step": f"{rng.choice(['手順', 'ステップ', 'STEP'])}{rng.randint(1, 9)}",
        "step_circled": rng.choice("①②③④⑤⑥⑦⑧⑨") + rng.choice(["受付", "本人確認", "写真撮影", "交付", "暗証番号設定"]),
        "step_paren": f"({rng.randint(1, 9)}){rng.choice(['申請書記入', '確認', '署名'])}",
        "pin": f"暗証番号を{rng.randint(1, 5)}回間違えた",
        "pin_kanji": f"暗証番号の入力ミス{kanji_num[rng.randint(1, 3)]}回",
        "percent": f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%",
        "minutes": f"{rng.randint(1, 120)}分",
        "window": f"窓口{rng.randint(1, 12)}",
        "floor": f"{rng.randint(1, 9)}階の{rng.randint(1, 30)}番窓口",
        "age": f"{rng.randint(18, 99)}歳",
        "version": f"第{rng.randint(1, 12)}版",
        "counts_list": f"{rng.randint(1, 50)}件、{rng.randint(1, 50)}件、{rng.randint(1, 50)}件",
        "page": f"{rng.randint(1, 300)}ページ",
        "duration": f"約{rng.randint(1, 60)}分{rng.randint(0, 59)}秒",
        "wait": f"待ち時間{rng.randint(1, 90)}分",
        "kanji_word": rng.choice(
            [
                "一般",
                "一部",
                "統一",
                "三名",
                "一人",
                "二重",
                "四国",
                "九州",
                "一緒",
                "参加",
                "持参",
                "参照",
                "五十音",
                "一度",
                "唯一",
                "七五三",
                "八百屋",
                "一番",
                "同一",
                "六本木",
                "十分",
            ]
        ),
        "kana_word": rng.choice(
            [
                "サービス",
                "データ",
                "カード",
                "マイナポイント",
                "ログイン",
                "パスワード",
                "よろしく",
                "詳しく",
                "ください",
                "いちご",
                "しごと",
                "ごご",
                "いちにち",
                "さん",
                "くに",
                "しく",
            ]
        ),
        "name": rng.choice(["山田さん", "佐藤さま", "鈴木様", "担当の高橋", "お客様"]),
        "reiwa_short": f"R{y - 2018}年度",
        "year_only": f"{y}年",
        "month_range": f"{mo}月{d}日〜{mo}月{min(28, d + rng.randint(1, 9))}日",
    }[kind]
    return _fw(rng, f)


CONNECTORS = [
    "、",
    "。",
    "に",
    "で",
    "の",
    "から",
    "まで",
    " と ",
    "（",
    "）",
    "について、",
    "、その後",
    "。次に",
    "\n",
    " ",
    "を確認。",
    "は",
    "も",
    "→",
    " / ",
]
PHRASES = [
    "来庁",
    "受付",
    "交付完了",
    "申請受理",
    "本人確認済み",
    "再来庁予定",
    "電話で問い合わせあり",
    "予約",
    "暗証番号再設定",
    "署名用電子証明書の更新",
    "券面事項の確認",
    "マイナポイントの申込支援",
    "住所変更",
    "転入手続き",
]


def ordinary_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(2, 7)):
        if rng.random() < 0.3:
            parts.append(rng.choice(PHRASES))
        else:
            parts.append(ordinary_fragment(rng))
        parts.append(rng.choice(CONNECTORS))
    return "".join(parts)


def desk_sentence(rng: random.Random) -> str:
    """Whole sentences as a desk writes them (a second, differently built ordinary source)."""

    def n(a: int, b: int) -> int:
        return rng.randint(a, b)

    wd = rng.choice("月火水木金")
    templates = [
        lambda: (
            f"{n(8, 17)}時{n(0, 59)}分に来庁。受付番号{n(1, 300)}番。暗証番号（{rng.choice([4, 6])}桁）を{n(1, 3)}回間違えロック。再設定を案内した"
        ),
        lambda: f"令和{n(1, 8)}年{n(1, 12)}月{n(1, 28)}日（{wd}）の来庁者は計{n(10, 400)}名（うち交付{n(1, 200)}件）",
        lambda: f"電話での問い合わせ {n(1, 300)}件、うち折り返し {n(0, 30)}件",
        lambda: (
            f"ポイント付与は最大{rng.choice(['5,000', '20,000', '15,000'])}円分。申込期限は{n(2021, 2025)}年{n(1, 12)}月{n(1, 28)}日まで"
        ),
        # an office's address: its own postal code (事業所の個別番号, 8000-9999); a bare address is read as a home
        lambda: (
            f"〒{n(0, 999):03d}-{n(8000, 9999):04d} 札幌市中央区北{n(1, 30)}条西{n(1, 20)}丁目{n(1, 30)}-{n(1, 30)}"
        ),
        lambda: f"{n(1, 9)}番窓口→{n(1, 9)}番窓口へ移動（{n(8, 17)}:{n(0, 59):02d}）",
        lambda: f"待ち人数 {n(0, 60)}人、平均待ち {n(0, 60)}分、最大 {n(0, 120)}分",
        lambda: f"{n(2021, 2025)}/{n(1, 12):02d}/{n(1, 28):02d} {n(8, 10):02d}:00-{n(16, 19)}:30",
        lambda: f"No.{n(1, 50)}〜No.{n(51, 200)} の整理券を配布",
        lambda: f"手順{n(1, 5)}〜{n(6, 9)}を確認、手順{n(1, 9)}で署名",
        lambda: f"カード {n(1, 9)}枚、通知書 {n(1, 9)}通、申請書 {n(1, 50)}部",
        lambda: f"R{n(1, 6)}.{n(1, 12)}.{n(1, 28)} {n(9, 11)}:00 〜 R{n(1, 6)}.{n(1, 12)}.{n(1, 28)} {n(12, 17)}:00",
        lambda: f"1日あたり{n(100, 400)}人×{n(2, 9)}日＝{n(1, 3)},{n(0, 999):03d}人",
        lambda: f"受付 {n(100, 999)}、{n(100, 999)}、{n(100, 999)} を呼出",
        lambda: f"{n(1, 12)}/{n(1, 28)}({wd}) {n(9, 16)}:{n(0, 5)}0 来庁予約 {n(1, 30)}件",
        lambda: f"交付番号 {n(1000, 9999)}-{n(10, 99)} の方は{n(2, 5)}日後に再来庁",
        lambda: f"来庁者{n(1, 99)}名中、{n(1, 40)}名が{n(60, 90)}歳以上（{n(10, 99)}.{n(0, 9)}%）",
        lambda: f"第{n(1, 30)}回 研修（{n(1, 12)}/{n(1, 28)} {n(9, 15)}:00〜）に{n(3, 20)}名参加",
    ]
    return rng.choice(["。", "、", " ", "\n"]).join(rng.choice(templates)() for _ in range(rng.randint(1, 3))) + "。"


def ordinary_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(f"ordinary-{seed}")
    return [ordinary_text(rng) if i % 2 else desk_sentence(rng) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------


def rates(n: int = 2000, seed: int = 14) -> dict[str, tuple[float, list[str]]]:
    out = {}
    for kind in HOSTILE:
        texts = hostile_corpus(kind, n, seed)
        missed = [t for t in texts if not find_personal_data(t)]
        out[kind] = (1 - len(missed) / n, missed)
    texts = ordinary_corpus(n, seed)
    wrong = [t for t in texts if find_personal_data(t)]
    out["ordinary"] = (len(wrong) / n, wrong)
    return out


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 14
    for name, (rate, bad) in rates(size, seed).items():
        label = "false refusals" if name == "ordinary" else "refused"
        print(f"{name:10s} {label}: {rate * 100:.2f} % of {size}")
        for text in bad[:8]:
            print("    ", repr(text))
