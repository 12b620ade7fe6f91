"""Spellings of personal data an independent tester sends through every free-text field: the guard's fifth pass
(shared/tests/test_pii_fifth_pass.py). Each entry: a value that must never come back, be logged or be stored -> the
text that carries it (at most 40 characters, so that a FAQ keyword holds all of it)."""

from __future__ import annotations

FIFTH_PASS: dict[str, str] = {
    # a full name, no honorific, the family name on no list
    "鰐淵花子": "鰐淵花子が来庁",
    "鰐淵 美咲": "相談者 鰐淵 美咲",
    "はなこ様（鰐淵）": "はなこ様（鰐淵）より",
    "鈴木様（一郎）": "鈴木様（一郎）から電話",
    "一郎 鈴木": "一郎 鈴木 来庁",
    "yamada-taro-san": "yamada-taro-san called",
    # masked numbers
    "1234-****-9012": "番号 1234-****-9012",
    "XXXX-XXXX-1234": "XXXX-XXXX-1234 の方",
    "090-××××-5678": "090-××××-5678 へ",
    # other cards' numbers with a kanji or kana in the 記号
    "記号東123": "保険証 記号東123 番号4567",
    "記号ア123": "記号ア123 番号4567",
    # encoded
    "MTIzNDU2Nzg5MDEy": "MTIzNDU2Nzg5MDEy",
    "dGFyb0BleGFtcGxlLmpw": "dGFyb0BleGFtcGxlLmpw",
    # e-mail addresses spelled to slip past
    "taro(desk)@example.jp": "taro(desk)@example.jp",
    "t-a-r-o-@-e-x-a-m-p-l-e": "t-a-r-o-@-e-x-a-m-p-l-e-.-j-p",
    # a mobile number with its 0 left out
    "九〇の一二三四の五六七八": "携帯 九〇の一二三四の五六七八",
    # a birth date in 大字
    "昭和四拾五年三月弐日": "昭和四拾五年三月弐日生まれ",
    # spellings of the earlier passes an outsider tries first
    "①②③④⑤⑥⑦⑧⑨⑩⑪⑫": "①②③④⑤⑥⑦⑧⑨⑩⑪⑫",
    "〇一二三四五六七八九〇一": "〇一二三四五六七八九〇一",
    "tаro@example.jp": "tаro@example.jp",  # (a Cyrillic а)
    "+81 90 1234 5678": "+81 90 1234 5678",
    "〒１００－０００１": "〒１００－０００１",
    "世田谷区桜丘二丁目三番地四号": "世田谷区桜丘二丁目三番地四号",
    "H元年5月1日": "H元年5月1日生まれ",
    "ﾔﾏﾀﾞ ﾊﾅｺ様": "ﾔﾏﾀﾞ ﾊﾅｺ様",
}
