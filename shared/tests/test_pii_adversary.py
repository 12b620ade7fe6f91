"""Spellings an independent tester tried against the personal-data guard that the seeded corpus
(pii_corpus.py) did not cover: invisible format characters between the digits, keycap emoji,
symbols as separators, HTML entities and percent-encoding, look-alike letters in an e-mail
address, a My Number hidden as the last group of a UUID. Each must be refused; ordinary text
written with the same characters must pass."""

from __future__ import annotations

import pytest

from madoguchi_shared.pii import find_personal_data, my_number_check_digit

FIRST11 = "12345678901"
MN = FIRST11 + str(my_number_check_digit(FIRST11))
PHONE = "09012345678"


def spread(s: str, sep: str) -> str:
    return sep.join(s)


def digits_in(s: str, table: str) -> str:
    return "".join(table[int(c)] for c in s)


HOSTILE = {
    # invisible format characters (Unicode Cf): bidi marks and overrides, invisible operators
    "lrm": spread(MN, "\u200e"),
    "rlm": spread(MN, "\u200f"),
    "lro": "\u202d" + spread(MN, "\u202c\u202d"),
    "invisible_times": spread(MN, "\u2062"),
    "invisible_separator": spread(PHONE, "\u2063"),
    "word_joiner_and_bom": spread(MN, "\u2060\ufeff"),
    "variation_selector": spread(MN, "\ufe0f"),
    "cgj": spread(MN, "\u034f"),
    "hangul_filler": spread(MN, "\u3164"),
    "halfwidth_hangul_filler": spread(PHONE, "\uffa0"),
    "enclosing_keycap": spread(MN, "\u20e3"),
    "keycap_emoji": "".join(c + "\ufe0f\u20e3" for c in MN),
    "tag_digits": "".join(chr(0xE0000 + ord(c)) for c in MN),
    "c0_control": spread(MN, "\x01"),
    # symbols and punctuation as separators
    "middle_dot": spread(MN, "\u00b7"),
    "kome": spread(MN, "※"),
    "heart": spread(PHONE, "♡"),
    "hash": spread(MN, "#"),
    "ideographic_full_stop": spread(MN, "。"),
    "bullet": spread(MN, "•"),
    # markup and URL encodings
    "html_decimal": "".join(f"&#{ord(c)};" for c in MN),
    "html_hex": "".join(f"&#x{ord(c):x};" for c in MN),
    "html_phone_mixed": "&#48;90-&#49;234-5678",
    "percent": "".join(f"%{ord(c):02X}" for c in MN),
    "email_html_at": "taro&#64;example.jp",
    "email_named_entity": "taro&commat;example&period;jp",
    "email_percent_at": "taro%40example.jp",
    # look-alike letters
    "email_cyrillic": "t\u0430r\u043e@\u0435x\u0430mple.jp",
    "email_greek": "tar\u03bf@exampl\u0435.c\u03bfm",
    "email_letter_spaced": "t a r o @ e x a m p l e . j p",
    "email_letter_spaced_wide": "t\u3000a\u3000r\u3000o\u3000@\u3000e\u3000x\u3000a\u3000m\u3000p\u3000l\u3000e\u3000.\u3000c\u3000o\u3000m",
    # a real @ with a host however the rest is written
    "email_no_tld": "taro@gmail",
    "email_comma": "taro@example,jp",
    "email_double": "taro@@example..jp",
    "email_quoted": '"taro yamada"@example.jp',
    "email_ip_literal": "taro@[192.0.2.1]",
    # an identifier that is not one
    "uuid_tail": "0192f0a4-7c3e-7d2a-9a51-" + MN,
    "hex_prefix": "a" * 20 + MN,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spelling_refused(name: str) -> None:
    text = HOSTILE[name]
    assert find_personal_data(text), f"{name}: {text!r} passed"
    assert find_personal_data(f"相談内容：{text} とのこと"), f"{name} in a sentence passed"


ORDINARY = [
    "手順３・４を説明しました※アプリ更新後",
    "受付\u200b番号12の方、ＰＣ手順で完了",
    "本日は晴れ。10時から混雑。15時に落ち着いた。",
    "&amp; や %20 を含む文章：ポイント申込は５，０００円分、98.5%の方が完了",
    "ページ表示が遅い♡とのご意見（3回目）",
    "カード読み取り → 暗証番号入力 → 完了（所要 5分）",
    "絵文字 1\ufe0f\u20e3 番窓口へご案内",
    "記録ID 0192f0a4-7c3e-7d2a-9a51-3c1f0e2b9d11 の件、再訪",
    "ハッシュ 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 を確認",
    "Дата 2021/04/05, время 10:30",
    "100%達成、50%OFFのキャンペーン案内",
    "単価@500円×3、ツイッター @madoguchi_sapporo で告知、アプリ@ホーム画面",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_with_the_same_characters_passes(text: str) -> None:
    assert find_personal_data(text) == []


def test_findings_point_into_the_original_text() -> None:
    text = "メモ：" + HOSTILE["html_decimal"] + " 以上"
    (finding,) = find_personal_data(text)
    assert finding.start == len("メモ：")
    assert finding.end == len("メモ：") + len(HOSTILE["html_decimal"])


def test_a_number_split_over_two_fields_of_one_request_is_refused() -> None:
    from pydantic import BaseModel, ValidationError, model_validator

    from madoguchi_shared.pii import FreeText, check_fields_together

    class Opinion(BaseModel):
        text: FreeText

    class Close(BaseModel):
        category: str
        notes: FreeText | None = None
        opinions: list[Opinion] = []
        keywords: list[FreeText] = []

        _together = model_validator(mode="after")(check_fields_together)

    # each field alone is clean
    # (「1234 5678」 alone is now refused: two groups of four as on the card, see test_pii_fourth_pass)
    Close(category="x" + MN[:4], notes=f"前半は{MN[:6]}", opinions=[Opinion(text="特になし")])
    for fields in (
        {"notes": f"前半は{MN[:4]} {MN[4:8]}", "opinions": [{"text": f"後半は{MN[8:]}です"}]},
        {"notes": MN[:6], "keywords": [MN[6:]]},
        {"notes": f"前半は{MN[:6]}", "opinions": [{"text": f"後半は{MN[6:]}"}]},
        {"notes": "電話は090", "opinions": [{"text": "1234"}, {"text": "5678"}]},
    ):
        with pytest.raises(ValidationError) as info:
            Close(category="general", **fields)
        # (what the API's 422 handler sends: the errors without their input)
        message = str(info.value.errors(include_input=False, include_url=False))
        assert "個人情報" in message and MN not in message and "5678" not in message
    Close(category="general", notes="手順3まで説明", opinions=[{"text": "4ページ目がわかりにくい"}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "text",
    [
        "山田太郎様",
        "相談者は山田太郎様でした",
        "佐藤 花子さんが再来庁",
        "鈴木一郎殿あての書類",
        "高橋\u200bゆうこさんより",
        "田中 まさるくん（付き添い）",
        "ＡＢ伊藤誠氏の件",
        "やまだ たろう様",  # in kana
        "ヤマダタロウさん",
        "相談者はさとう はなこさんでした",
        "ｽｽﾞｷ ｲﾁﾛｳ 様",
        "Yamada Taro sama",  # in Latin letters
        "Suzuki Ichiro-san",
    ],
)
def test_a_full_name_with_an_honorific_is_refused(text: str) -> None:
    kinds = [f.kind for f in find_personal_data(text)]
    assert kinds == ["name"], (text, kinds)


@pytest.mark.parametrize(
    "text",
    [
        "山田さんに交代しました",  # a family name alone identifies nobody
        "鈴木様より電話あり",
        "お客様が来庁",
        "担当者様へ確認",
        "田中部長さんに報告",
        "前回と同様の質問",
        "山田区役所様からの連絡",
        "佐藤家様",
        "皆様のご協力に感謝",
        "中村さんと小林さんが対応",
        "ヤマダさんに交代",
        "ヨシダさん、ナカムラ部長さん",
        "サトウキビ、マイナポイントさん、イトウヨーカドーさん",
        "Tanaka san",
    ],
)
def test_a_family_name_or_a_title_passes(text: str) -> None:
    assert find_personal_data(text) == [], text


@pytest.mark.parametrize("field", ["actor", "device", "desk", "ward"])
def test_an_auditor_query_by_a_my_number_is_not_recorded(field: str) -> None:
    """An auditor's filters are recorded in the log of record (admin.query_performed): an id
    that is a My Number or a phone number is refused, not stored."""
    from pydantic import ValidationError

    from madoguchi_shared.events.audit import QueryFilters

    for value in (MN, PHONE, "S" + MN):
        with pytest.raises(ValidationError) as info:
            QueryFilters(log_id="oplog", **{field: value})
        assert MN not in str(info.value.errors(include_input=False, include_url=False))
    QueryFilters(log_id="oplog", **{field: "chuo-1"})


@pytest.mark.parametrize(
    "text",
    [
        f"個人番号は{MN[:4]}です。残りは{MN[4:]}です。",
        f"番号の前半は{MN[:4]}。\n中ほどが{MN[4:8]}。\n最後は{MN[8:]}とのこと。",
        f"マイナンバー：{MN[:6]}！続き：{MN[6:]}",
    ],
)
def test_a_my_number_told_over_sentences_is_refused(text: str) -> None:
    assert [f.kind for f in find_personal_data(text)] == ["my_number"], text


def test_lists_of_ticket_numbers_over_sentences_pass() -> None:
    text = "受付 848、887、289 を呼出。9/10(火) 12:30 来庁予約 27件。受付 586、494、167 を呼出。"
    assert find_personal_data(text) == []


# My Numbers said with place markers (十/百/千/万/億): 1234 is 千二百三十四, and a group's leading
# zeros go unsaid (0996 is 九百九十六).
MN_ZERO = "913909960300"  # (a right check digit: groups 9139 0996 0300)


@pytest.mark.parametrize(
    "text",
    [
        "千二百三十四、五千六百七十八、九千十八",  # MN
        "五千二百六十 千八百十五 九千八十四",  # 526018159084
        "五千二百六十-千八百十五-九千八十四",
        "五千二百六十千八百十五九千八十四",  # no separator: a place that does not fall starts a group
        "五千二百六十億千八百十五万九千八十四",  # one number
        "九千百三十九、九百九十六、三百",  # leading zeros unsaid
        "九千百三十九九百九十六三百",
        "五百二十六、十八、百五十九、八十四",  # groups of three
        "五十二万六千十八と十五万九千八十四",  # halves over a sentence
        "番号は五千二百六十、千八百十五、九千八十四です",
        "〇九〇の千二百三十四の五千六百七十八に電話",  # a phone number
        "〇九〇 千二百三十四 五千六百七十八",  # (a space then 千 opens the next group, it is no 「090千」)
    ],
)
def test_a_number_written_with_place_markers_is_refused(text: str) -> None:
    assert MN[8:] == "9018" and is_valid(MN_ZERO) and is_valid("526018159084")
    assert find_personal_data(text), text
    assert find_personal_data(f"相談内容：{text}とのこと。"), text


def is_valid(digits: str) -> bool:
    return my_number_check_digit(digits[:11]) == int(digits[11])


@pytest.mark.parametrize(
    "text",
    [
        "北区役所 札幌市北区北二十四条西六丁目一番一号",  # (an address alone is read as a home: test_pii_third_pass)
        "中央区役所 札幌市中央区南三条西十一丁目三三〇番地二",
        "〒530-8201 大阪市北区中之島1丁目3番20号",
        "北十条西十五丁目",
        "来庁者は百二十三名、うち交付は九十八件",
        "千円、二千円、五千円、一万円",
        "予算は一兆円規模、六百三十億円の事業",
        "十二万三千四百五十六ポイント",
        "百二十三、四百五十六、七百八十九番の方",
        "八時四十五分〜十七時十五分、平成三十一年四月",
        "五十音順、八百屋、十分に説明、十人十色、千歳市、百貨店",
        "三千五百、二千四百、千二百件",
        "一日三百人×五日＝千五百人",
    ],
)
def test_ordinary_numbers_with_place_markers_pass(text: str) -> None:
    assert find_personal_data(text) == [], text


@pytest.mark.parametrize(
    "text",
    [
        "〒060-0001 札幌市中央区北1条西3丁目4-5 サンハイツ203号室",
        "住所は札幌市北区北7条西2丁目8-1です",
        "自宅：札幌市東区北15条東3丁目1番12号",
        "〒０６０－０００１　北海道札幌市中央区北一条西三丁目四番五号　メゾン札幌３０２",
        "札幌市豊平区平岸3条5丁目7-8 山田方",
        "東京都世田谷区桜丘2-3-4 パークハイツ502号室",
        "札幌市西区琴似2条3丁目4-5に住んでいる",
        "厚別区在住、厚別中央3条2丁目5-6",
        "お住まいは札幌市東区北20条東1丁目3-4",
    ],
)
def test_a_home_address_is_refused(text: str) -> None:
    assert "address" in [f.kind for f in find_personal_data(text)], text


@pytest.mark.parametrize(
    "text",
    [
        "中央区役所（〒060-8612 札幌市中央区南3条西11丁目330-2）",
        "〒060-8612 札幌市中央区南3条西11丁目330-2",
        "〒001-8612 札幌市北区北24条西6丁目1-1",
        "札幌市役所 〒060-8611 札幌市中央区北1条西2丁目1番地",
        "区民センター 札幌市北区北25条西6丁目1-1 2階201号室",
        "北区役所の住所は札幌市北区北24条西6丁目1-1です",
        "住所変更の手続き。転入先 札幌市中央区北5条西3丁目",
        "〒060-8611 札幌市中央区北1条西",  # (an office's own postal code; 〒060-0001 alone is refused now)
        "札幌駅前通北4条西3丁目1番地",
        "自宅に帰って市の手続き1-2を確認",  # no address: words between the place and the numbers
        "在住証明のため区で3-1番の書類",
        "ご自宅からでも市のページ2-1で申込可能",
    ],
)
def test_addresses_of_public_places_pass(text: str) -> None:
    assert find_personal_data(text) == [], text


# A second independent pass (adversary1, 2026-12-05): dates of birth, names written without an honorific,
# the first 11 digits of a My Number said to be one, Roman-numeral digits, ⓐ for @, a mailbox at a known
# provider without its domain. Each was passed before.
SECOND_PASS = {
    "dob_showa": "生年月日は昭和50年1月1日",
    "dob_showa_kanji": "生年月日：昭和五十年一月一日",
    "dob_letter_era": "生年月日 S50.1.1",
    "dob_gannen": "平成元年5月5日生まれ",
    "dob_gannen_letter": "H元.5.5生",
    "dob_fullwidth": "昭和５０年１月１日生",
    "dob_western": "生年月日 1975/01/01",
    "dob_western_kanji": "生年月日 一九七五年一月一日",
    "dob_after": "1975年1月1日生まれの方",
    "dob_english": "DOB: 01/01/1975",
    "dob_english_month": "born Jan 1, 1975",
    "dob_compact": "生年月日=19750101",
    "dob_calendar_named": "生年月日（西暦）1975年01月01日",
    "dob_reading": "せいねんがっぴ 昭和50年1月1日",
    "name_labelled": "氏名：山田太郎",
    "name_labelled_rare": "氏名：東海林太郎",
    "name_labelled_ha": "お名前は佐藤花子",
    "name_labelled_kana": "お名前は やまだ はなこ",
    "name_labelled_romaji": "name: taro yamada",
    "name_bare": "来庁者 山田太郎（70代）",
    "name_bare_spaced": "担当 木村 拓哉 が対応",
    "name_romaji_given_first": "Taro Yamada",
    "name_romaji_mr": "Mr. Taro Yamada",
    "name_romaji_upper": "YAMADA Taro",
    "name_kana_unlisted": "しょうじ たろうさま",
    "name_kana_unlisted_o": "おおにし はなこさん",
    "name_kana_halfwidth": "ｵｵﾆｼ ﾊﾅｺｻﾝ",
    "my_number_first_eleven": "マイナンバー 12345678901",
    "my_number_first_eleven_spaced": "個人番号は 1234 5678 901",
    "roman_digits": "ⅠⅡⅢⅣⅤⅥⅦⅧⅨ0ⅠⅧ",
    "roman_small_digits": "ⅰⅱⅲⅳⅴⅵⅶⅷⅸ0ⅰⅷ",
    "email_circled_a": "taroⓐexample.jp",
    "email_at_provider": "taro at gmail",
    "email_provider_kana": "yamada.taro アットマーク ドコモ",
}

SECOND_PASS_ORDINARY = [
    "生年月日の入力誤りがあったため再申請を案内",
    "生年月日と氏名の確認を行った",
    "誕生日月キャンペーンは2021年4月1日から",
    "お誕生日おめでとうキャンペーン 2021年5月1日まで",
    "2021年4月1日生活保護の窓口へ案内",
    "平成31年4月30日まで受付",
    "お名前は伺っていません",
    "氏名欄未記入のため差し戻し",
    "氏名：記入なし",
    "氏名 山田",
    "来庁者名簿を更新",
    "来庁者は百二十三名",
    "file name: report.xlsx",
    "佐藤一人で対応",
    "森林公園と原子力の展示",
    "中村区役所と中野区役所に連絡",
    "第Ⅱ期の研修、Ⅰ〜Ⅳ の手順",
    "ⓐ受付 ⓑ交付",
    "ドコモショップで機種変更、gmailのアカウント作成を案内",
    "マイナンバーカードの交付 12件、マイナンバーの下4桁は伏せる",
    "お名前は記録せず、受付番号で記録してください",
    "担当の藤井 金子両名に連絡",
    "Took 6.829935ms to start JetStream",
    "name: desk one",
    "ごかぞく みなさま、ありがとう おにいさん、あかちゃん つれのかたさま",
]


@pytest.mark.parametrize("name", sorted(SECOND_PASS))
def test_second_pass_spelling_refused(name: str) -> None:
    text = SECOND_PASS[name]
    findings = find_personal_data(text)
    assert findings, f"{name}: {text!r} passed"
    assert find_personal_data(f"相談内容：{text} とのこと"), f"{name} in a sentence passed"
    kind = name.split("_")[0]
    expected = {"dob": "birth_date", "name": "name", "my": "my_number", "roman": "twelve_digits", "email": "email"}
    assert expected[kind] in {f.kind for f in findings} or kind == "roman", (name, findings)


@pytest.mark.parametrize("text", SECOND_PASS_ORDINARY)
def test_second_pass_ordinary_text_passes(text: str) -> None:
    assert find_personal_data(text) == [], text
