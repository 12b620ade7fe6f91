"""Tests of the personal-data guard (madoguchi_shared.pii). No server needed."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from madoguchi_shared.pii import (
    Finding,
    FreeText,
    PersonalDataFound,
    check_free_text,
    find_personal_data,
    is_valid_my_number,
    my_number_check_digit,
    normalize_digits,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FW_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def fullwidth(s: str) -> str:
    """ASCII -> full-width (digits, letters, @ . - +), for spelling variants."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def check_digit_by_hand(first11: str) -> int:
    """The formula of the architecture, written out independently of the module."""
    weights = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    total = 0
    for digit, weight in zip(first11, weights, strict=True):
        total += int(digit) * weight
    r = total % 11
    return 0 if r <= 1 else 11 - r


def refused(text: str) -> PersonalDataFound:
    with pytest.raises(PersonalDataFound) as info:
        check_free_text(text)
    return info.value


def assert_not_echoed(message: str, *values: str) -> None:
    for value in values:
        assert value not in message
        assert value.translate(FW_DIGITS) not in message
        compact = re.sub(r"[^0-9]", "", normalize_digits(value))
        if len(compact) >= 5:
            assert compact not in message
    # Positions are at most 4 digits long; any longer digit run would be an echo.
    assert not re.search(r"[0-9]{5}", normalize_digits(message))


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

# Surrounding text: Japanese and ASCII, with no digits, and none of + @ ( ) [ ] (which could
# turn the surroundings into a phone number or an e-mail address by themselves).
SURROUNDING_ALPHABET = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"
    "窓口受付番号申請交付暗証再設定来庁者電話相談住所氏名確認完了予約"
    "、。！？「」・：／"
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;!?/'\"-_\n\u3000"
)
# Kana that begin a reading of a digit (ニ, サン, ゴ, ...) are left out: the guard reads them as digits.
_READING_STARTS = set("ゼレマイワニツサスヨシフゴロナセハエキク") | set("ぜれまいわにつさすよしふごろなせはえきく")
# 氏 (of 氏名) is left out too: after a few kana or kanji it is an honorific, and the guard rightly
# refuses e.g. 了了ああ氏 as a name (a second finding beside the one under test).
SURROUNDING_ALPHABET = "".join(c for c in SURROUNDING_ALPHABET if c not in _READING_STARTS and c != "氏")
surrounding = st.text(alphabet=SURROUNDING_ALPHABET, max_size=40)
japanese_only = st.text(
    alphabet="あうえおかけこ窓口受付番号申請交付、。「」 \u3000", max_size=30
)  # no い(ち), き(ゅう), く

SPACES = [" ", "\u3000"]
HYPHENS = ["-", "‐", "‑", "–", "—", "―", "−", "ー", "ｰ", "－"]
SEPARATORS = SPACES + HYPHENS


@st.composite
def valid_my_numbers(draw: st.DrawFn) -> str:
    first11 = draw(st.text(alphabet="0123456789", min_size=11, max_size=11))
    return first11 + str(check_digit_by_hand(first11))


@st.composite
def invalid_twelve_digits(draw: st.DrawFn) -> str:
    first11 = draw(st.text(alphabet="0123456789", min_size=11, max_size=11))
    good = check_digit_by_hand(first11)
    last = draw(st.sampled_from([d for d in range(10) if d != good]))
    return first11 + str(last)


@st.composite
def spellings(draw: st.DrawFn, digits: str) -> str:
    """One of the ways a 12-digit number gets written."""
    style = draw(st.sampled_from(["plain", "fullwidth", "grouped", "random_separators"]))
    if draw(st.booleans()) or style == "fullwidth":
        digits = digits.translate(FW_DIGITS)
    if style in ("plain", "fullwidth"):
        return digits
    if style == "grouped":
        sep = draw(st.sampled_from(SEPARATORS))
        return sep.join([digits[0:4], digits[4:8], digits[8:12]])
    out = [digits[0]]
    for d in digits[1:]:
        gap = draw(st.lists(st.sampled_from(SEPARATORS), max_size=3))
        out.append("".join(gap) + d)
    return "".join(out)


def ndigits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


# --------------------------------------------------------------------------------------------
# Check digit
# --------------------------------------------------------------------------------------------


def test_check_digit_known_vectors() -> None:
    # 1 2 3 4 5 6 7 8 9 0 1 x 6 5 4 3 2 7 6 5 4 3 2
    # = 6+10+12+12+10+42+42+40+36+0+2 = 212; 212 mod 11 = 3; 11-3 = 8
    assert my_number_check_digit("12345678901") == 8
    assert is_valid_my_number("123456789018")
    # all zeros: sum 0, r = 0 <= 1 -> 0
    assert my_number_check_digit("00000000000") == 0
    # all ones: sum of the weights = 47; 47 mod 11 = 3 -> 8
    assert my_number_check_digit("11111111111") == 8
    # all nines: 9*47 = 423; 423 mod 11 = 5 -> 6
    assert my_number_check_digit("99999999999") == 6
    # last digit 6 (weight 2): sum 12, r = 1 <= 1 -> 0
    assert my_number_check_digit("00000000006") == 0
    # last digit 5: sum 10, r = 10 -> 1
    assert my_number_check_digit("00000000005") == 1
    # first digit 1 (weight 6): r = 6 -> 5
    assert my_number_check_digit("10000000000") == 5
    # full-width input is accepted
    assert my_number_check_digit("１２３４５６７８９０１") == 8
    for good in ["123456789018", "000000000000", "111111111118", "999999999996", "000000000060"]:
        assert is_valid_my_number(good), good
    for bad in ["123456789017", "12345678901", "1234567890180", "１２３４５６７８９０１８", "12345678901a"]:
        assert not is_valid_my_number(bad), bad
    with pytest.raises(ValueError):
        my_number_check_digit("1234")


@PROPERTY
@given(ndigits(11))
def test_check_digit_matches_formula(first11: str) -> None:
    c = my_number_check_digit(first11)
    assert c == check_digit_by_hand(first11)
    assert is_valid_my_number(first11 + str(c))
    assert sum(is_valid_my_number(first11 + str(d)) for d in range(10)) == 1


def test_normalize_digits_keeps_length() -> None:
    text = "受付１２番、２０２１年４月１日 8:45 ٣"
    out = normalize_digits(text)
    assert out == "受付12番、2021年4月1日 8:45 3"
    assert len(out) == len(text)


# --------------------------------------------------------------------------------------------
# Twelve digits
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(valid_my_numbers().flatmap(lambda n: st.tuples(st.just(n), spellings(n))), surrounding, surrounding)
def test_valid_my_number_refused_in_every_spelling(pair: tuple[str, str], before: str, after: str) -> None:
    number, spelled = pair
    text = before + spelled + after
    exc = refused(text)
    assert exc.findings == [Finding("my_number", len(before), len(before) + len(spelled))]
    message = str(exc)
    assert_not_echoed(message, number, spelled)
    assert "個人番号の可能性が高い" in message
    assert f"{len(before) + 1} 文字目" in message
    assert f"character {len(before) + 1}" in message
    assert find_personal_data(text) == exc.findings


@PROPERTY
@given(invalid_twelve_digits().flatmap(lambda n: st.tuples(st.just(n), spellings(n))), surrounding, surrounding)
def test_invalid_check_digit_still_refused(pair: tuple[str, str], before: str, after: str) -> None:
    number, spelled = pair
    exc = refused(before + spelled + after)
    assert exc.findings == [Finding("twelve_digits", len(before), len(before) + len(spelled))]
    assert_not_echoed(str(exc), number, spelled)


@PROPERTY
@given(st.integers(min_value=13, max_value=30).flatmap(ndigits), surrounding, surrounding)
def test_longer_digit_runs_refused(digits: str, before: str, after: str) -> None:
    exc = refused(before + digits + after)
    assert exc.findings == [Finding("twelve_digits", len(before), len(before) + len(digits))]
    assert_not_echoed(str(exc), digits)


def test_twelve_digit_edge_cases() -> None:
    # Deliberate: a date and a time glued together by separators only are 12 digits joined by
    # separators, which the architecture refuses (nothing tells "2021 0401 0845" from a My Number).
    for glued in ["2021 04 01 0845", "2021-04-01 0845 来庁", "2021/04/01 0845"]:
        assert [f.kind for f in find_personal_data(glued)] == ["twelve_digits"], glued
    exc = refused("2021 04 01 0845")
    assert "年月日" in str(exc)
    # ... but a date with a time written as a time, or with 年月日, is ordinary writing.
    for ok in ["2021-04-01 8:45", "2021-04-01 08:45", "2021/04/01 08:45", "2021年4月1日 0845", "2021/4/1〜2021/4/30"]:
        assert check_free_text(ok) == ok
    # 11 digits are not refused, unless they are a phone number.
    assert find_personal_data("12345678901") == []
    # A line break inside a number does not hide it; a blank line (a new paragraph) separates.
    assert [f.kind for f in find_personal_data("123456\n789018")] == ["my_number"]
    assert find_personal_data("123456\n\n789018") == []
    # Zero-width spaces do not hide a number.
    assert [f.kind for f in find_personal_data("1234\u200b5678\u200b9018")] == ["my_number"]
    # Two numbers: two findings, in order.
    text = "1234 5678 9018 と 1234 5678 9017"
    assert [(f.kind, f.start) for f in find_personal_data(text)] == [("my_number", 0), ("twelve_digits", 17)]


# --------------------------------------------------------------------------------------------
# Phone numbers and e-mail addresses
# --------------------------------------------------------------------------------------------

PHONE_EXAMPLES = [
    "090-1234-5678",
    "080 1234 5678",
    "070‐1234‐5678",
    "09012345678",
    "０９０－１２３４－５６７８",
    "０９０１２３４５６７８",
    "011-123-4567",
    "(011)123-4567",
    "（０１１）１２３－４５６７",
    "03-1234-5678",
    "03(1234)5678",
    "0312345678",
    "0120-123-456",
    "0570-123-456",
    "0800-123-4567",
    "050-1234-5678",
    "+81 90-1234-5678",
    "+81-3-1234-5678",
    "+81 (0)3 1234 5678",
    "+819012345678",
    "＋８１　９０　１２３４　５６７８",
]


@pytest.mark.parametrize("phone", PHONE_EXAMPLES)
def test_phone_examples_refused(phone: str) -> None:
    before = "お客様の連絡先は "
    exc = refused(before + phone + " です。")
    assert [f.kind for f in exc.findings] == ["phone"]
    start = exc.findings[0].start
    assert start in (len(before), len(before) + 1)  # "(011)": the number starts after "("
    assert exc.findings[0].end == len(before) + len(phone)
    assert_not_echoed(str(exc), phone)
    assert "電話番号" in str(exc)


@st.composite
def phones(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mobile", "tokyo", "sapporo", "freedial", "intl"]))
    if kind == "mobile":
        parts = [draw(st.sampled_from(["070", "080", "090"])), draw(ndigits(4)), draw(ndigits(4))]
    elif kind == "tokyo":
        parts = ["03", draw(ndigits(4)), draw(ndigits(4))]
    elif kind == "sapporo":
        parts = ["011", draw(ndigits(3)), draw(ndigits(4))]
    elif kind == "freedial":
        parts = ["0120", draw(ndigits(3)), draw(ndigits(3))]
    else:
        parts = ["+81", draw(st.sampled_from(["90", "80", "3"])), draw(ndigits(4)), draw(ndigits(4))]
    sep = draw(st.sampled_from(["", "-", " ", "－", "‐", "\u3000"]))
    phone = sep.join(parts)
    if draw(st.booleans()):
        phone = fullwidth(phone)
    return phone


@PROPERTY
@given(phones(), japanese_only, japanese_only)
def test_phone_numbers_refused(phone: str, before: str, after: str) -> None:
    exc = refused(before + phone + after)
    assert exc.findings == [Finding("phone", len(before), len(before) + len(phone))]
    assert_not_echoed(str(exc), phone)


EMAIL_EXAMPLES = [
    "taro@example.com",
    "taro.yamada+desk@city.example.lg.jp",
    "t-yamada_01@mail.example.co.jp",
    "taro..x@docomo.ne.jp",
    "taro＠example.com",
    "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    "taro (at) example.com",
    "taro[at]example.jp",
    "taro（アットマーク）example.jp",
]


@pytest.mark.parametrize("email", EMAIL_EXAMPLES)
def test_email_examples_refused(email: str) -> None:
    before = "メールアドレスは"
    exc = refused(before + email + "です。")
    assert exc.findings == [Finding("email", len(before), len(before) + len(email))]
    assert_not_echoed(str(exc), email)
    assert email not in str(exc) and "example" not in str(exc) and "taro" not in str(exc)


LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=16).filter(
    lambda s: s[0].isalnum()
)
LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
TLD = st.sampled_from(["jp", "com", "net", "org", "info"])


@PROPERTY
@given(
    LOCAL,
    st.lists(LABEL, min_size=1, max_size=3),
    TLD,
    st.sampled_from(["plain", "at", "all"]),
    japanese_only,
    japanese_only,
)
def test_emails_refused(local: str, labels: list[str], tld: str, style: str, before: str, after: str) -> None:
    email = f"{local}@{'.'.join(labels)}.{tld}"
    spelled = {"plain": email, "at": email.replace("@", "＠"), "all": fullwidth(email)}[style]
    exc = refused(before + spelled + after)
    assert exc.findings == [Finding("email", len(before), len(before) + len(spelled))]
    message = str(exc)
    assert email not in message and spelled not in message
    assert f"{local}@" not in message and f"@{labels[0]}" not in message


def test_mixed_findings_sorted() -> None:
    text = "連絡先 taro@example.com、電話 090-1234-5678、番号 1234-5678-9018"
    exc = refused(text)
    assert [f.kind for f in exc.findings] == ["email", "phone", "my_number"]
    assert [f.start for f in exc.findings] == sorted(f.start for f in exc.findings)
    for f, what in zip(exc.findings, ["taro@example.com", "090-1234-5678", "1234-5678-9018"], strict=True):
        assert text[f.start : f.end] == what
    assert_not_echoed(str(exc), "090-1234-5678", "1234-5678-9018")
    assert "taro" not in str(exc)


def test_describe_and_message() -> None:
    f = Finding("my_number", 4, 16)
    assert f.describe() == "12桁の数字（個人番号の可能性が高い）が 5 文字目にあります"
    exc = PersonalDataFound([f])
    message = str(exc)
    lines = message.splitlines()
    assert "個人情報" in lines[0] and f.describe() in message
    assert any("Personal data" in line for line in lines) and "character 5" in message
    assert message.index("個人情報") < message.index("Personal data")  # Japanese first
    assert isinstance(exc, ValueError)
    again = pickle.loads(pickle.dumps(exc))
    assert again.findings == [f] and str(again) == message


# --------------------------------------------------------------------------------------------
# Ordinary operational text passes
# --------------------------------------------------------------------------------------------

REALISTIC = [
    "2021-04-01 8:45 開庁。受付番号12のお客様、暗証番号を2回間違えたため初期化を案内。",
    "令和3年4月1日 17:15 閉庁。本日の来庁者 105 人、うち交付 48 件、申請 23 件。",
    "No.105 の方、8時45分に来庁、9時10分に交付完了。",
    "マイナポイント 20000ポイント の申込を支援。5,000円分のチャージを確認。",
    "2021/4/1〜2021/4/30 の期間、臨時窓口を開設（平日 8:30〜17:15）。",
    "2021-04-01 08:45 から 2021-04-01 17:15 まで 3 名体制。",
    "電話の待ち時間は平均 3 分 20 秒、最大 12 分。入電 1,234 件、応答率 98.5%。",
    "暗証番号（4桁）を3回間違えてロック。署名用電子証明書のパスワードは6〜16文字と案内。",
    "〒060-8611 の住所への転送不要郵便について説明。",  # (an office's own postal code: a home's is refused)
    "交付通知書 3 通、カード 2 枚、10:00〜11:30 の予約枠 24 件。",
    "受付番号 A-012、B-7 を呼出。窓口 3 番で対応。",
    "R3.4.1 の申請分、2021年4月1日受付、5月10日交付予定。",
    "お客様から「番号を教えて」と言われたが、電話では回答できない旨を説明した。",
    "予約は 1 人 2 枠まで、1 日 150 人まで。",
    "2021年4月1日（木）8時45分〜17時15分、延長窓口 19:00 まで。",
    "単価＠500円 × 3 件、合計 1,500 円。",
    "ＦＡＱ 第2版（2021.04.01 改訂）を参照。",
    "転送先 〒010-8000（2019-01-01 転居）を確認。",  # a bracket opens a new phrase, not a phone number
]


@pytest.mark.parametrize("text", REALISTIC)
def test_realistic_sentences_pass(text: str) -> None:
    assert find_personal_data(text) == []
    assert check_free_text(text) is text


def _fw_maybe(draw: st.DrawFn, s: str) -> str:
    return s.translate(FW_DIGITS) if draw(st.booleans()) else s


@st.composite
def ordinary_fragments(draw: st.DrawFn) -> str:
    y = draw(st.integers(2019, 2030))
    mo = draw(st.integers(1, 12))
    d = draw(st.integers(1, 28))
    h = draw(st.integers(0, 23))
    mi = draw(st.integers(0, 59))
    kind = draw(
        st.sampled_from(
            [
                "iso_date",
                "slash_date",
                "wareki",
                "kanji_date",
                "time",
                "kanji_time",
                "date_time",
                "ticket",
                "no",
                "yen",
                "points",
                "count",
                "pin",
                "postal",
                "range",
            ]
        )
    )
    n = draw(st.integers(0, 9999))
    fragment = {
        "iso_date": f"{y}-{mo:02d}-{d:02d}",
        "slash_date": f"{y}/{mo}/{d}",
        "wareki": f"令和{y - 2018}年{mo}月{d}日",
        "kanji_date": f"{mo}月{d}日",
        "time": f"{h}:{mi:02d}",
        "kanji_time": f"{h}時{mi}分",
        "date_time": f"{y}-{mo:02d}-{d:02d} {h}:{mi:02d}",
        "ticket": f"受付番号{n}",
        "no": f"No.{n}",
        "yen": f"{draw(st.integers(1, 999))},{draw(st.integers(0, 999)):03d}円",
        "points": f"{draw(st.integers(1, 99999))}ポイント",
        "count": f"{draw(st.integers(0, 9999))}{draw(st.sampled_from(['件', '人', '回', '枚', '通']))}",
        "pin": f"暗証番号を{draw(st.integers(1, 5))}回間違えた",
        # (an office's own postal code, 8000-9999: a home's, 〒060-0001, is refused as part of an address)
        "postal": f"〒{draw(ndigits(3))}-{draw(st.integers(8000, 9999))}",
        "range": f"{h}:{mi:02d}〜{draw(st.integers(0, 23))}:{draw(st.integers(0, 59)):02d}",
    }[kind]
    return _fw_maybe(draw, fragment)


CONNECTORS = ["、", "。", "に", "で", "の", "から", "まで", " と ", "（", "）", "について、"]


@PROPERTY
@given(st.lists(st.tuples(ordinary_fragments(), st.sampled_from(CONNECTORS)), min_size=1, max_size=8))
@example([("受付番号100", "。"), ("10000ポイント", "、"), ("受付番号1000", "。"), ("2019-01-01", "、")])  # three counts
def test_generated_ordinary_text_passes(parts: list[tuple[str, str]]) -> None:
    text = "".join(fragment + connector for fragment, connector in parts)
    assert find_personal_data(text) == [], text
    assert check_free_text(text) == text


# --------------------------------------------------------------------------------------------
# The pydantic type
# --------------------------------------------------------------------------------------------


class Note(BaseModel):
    text: FreeText
    summary: FreeText | None = None


def test_free_text_field_accepts_ordinary_text() -> None:
    assert Note(text=REALISTIC[0]).text == REALISTIC[0]
    assert Note.model_json_schema()["properties"]["text"] == {"title": "Text", "type": "string", "maxLength": 2000}
    assert Note(text="ok").model_dump_json() == '{"text":"ok","summary":null}'


@PROPERTY
@given(valid_my_numbers().flatmap(lambda n: st.tuples(st.just(n), spellings(n))), surrounding, surrounding)
def test_free_text_field_refuses_without_echo(pair: tuple[str, str], before: str, after: str) -> None:
    number, spelled = pair
    with pytest.raises(ValidationError) as info:
        Note(text=before + spelled + after)
    err = info.value
    for rendered in (str(err), err.json(), repr(err.errors())):
        assert number not in rendered
        assert spelled not in rendered
        assert number.translate(FW_DIGITS) not in rendered
    assert "個人番号の可能性が高い" in str(err)
    assert err.errors()[0]["type"] == "value_error"


@pytest.mark.parametrize(
    "value",
    [
        "連絡先 090-1234-5678",
        "taro@example.com",
        "x" * 2100 + "1234 5678 9018",  # too long AND personal data: no length error echoing it
        123456789018,  # not even a string
    ],
)
def test_free_text_field_never_echoes(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Note(text="ok", summary=value)
    rendered = str(info.value) + info.value.json()
    for secret in ["090-1234-5678", "taro@example.com", "1234 5678 9018", "123456789018", "taro"]:
        assert secret not in rendered
    assert [e["loc"] for e in info.value.errors()] == [("summary",)]


def test_free_text_too_long_without_personal_data() -> None:
    with pytest.raises(ValidationError) as info:
        Note(text="あ" * 2001)
    assert info.value.errors()[0]["type"] == "string_too_long"
