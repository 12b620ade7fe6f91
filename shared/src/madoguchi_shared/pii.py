"""The personal-data guard for free text (opinions, summaries, call notes, FAQ entries, files).

One detector, `find_personal_data`, serves every free-text field (`FreeText`), every API, the
console, CSV/FAQ imports, the device agent's file scanner and `madoguchi privacy scan`. It reads
NORMALISED text, because people write numbers the way they speak them:

Normalisation (offsets are kept: every character of the normal form knows where it came from)
* NFKC, one base character with its combining marks at a time (full-width forms, half-width kana
  with their sound marks, circled and parenthesised numbers ①⑴⒈, superscripts, ...), then any
  other character with a digit value (❶, Arabic-Indic, Devanagari, ...) to 0-9; hiragana to
  katakana; lower case; every dash/minus/long-vowel-like character to "-"; every space
  (ideographic, no-break, thin, ...) to " "; zero-width characters dropped.
* Digit tokens are then read from the normal form: runs of 0-9 mixed with kanji numerals
  (〇零○ 一二三 ... and 大字 壱弐参肆伍陸漆捌玖), and katakana/hiragana runs that are wholly a
  sequence of digit readings (ゼロ/レイ/マル, イチ, ニ(ー), サン, ヨン/ヨ/シ, ゴ(ー), ロク,
  ナナ/シチ, ハチ, キュウ/キュー/ク, and the English loan readings ワン, ツー, ...). A kanji
  numeral or a reading that is part of a word (一般, 参加, 山田さん, 詳しく) is a word, not a
  digit: short runs glued to letters are words.

Ordinary numbers people write at a desk are recognised first and set aside: dates (2021/04/05,
R3.4.5, 4/5, 令和3年4月5日), times (8:45, 8時45分), amounts with thousands separators
(5,000円), a number followed by a counter or unit (105人, 3回, 20,000ポイント, 5万円, 98.5%),
ticket/step numbers after a marker (No.105, 受付番号12, 手順3, A-012) and postal codes
(〒060-8611). What remains is grouped:

* a CLUSTER is digit groups joined only by separators: spaces of any width and count, every
  dash, dots, slashes, commas (、，), colons, 〜/~, ・, brackets, line breaks;
* a cluster of exactly 12 digits is refused: kind ``my_number`` when the check digit is right,
  ``twelve_digits`` otherwise (about 1 in 11 random 12-digit strings pass the check, so it never
  decides WHETHER to refuse, only how sure the refusal is); a longer cluster is searched for
  My Numbers and phone numbers and refused as ``twelve_digits`` when it holds neither;
* a cluster (or a run of groups inside one) that is a phone number of the Japanese numbering
  plan is refused as ``phone``: 10 digits 0A..., 11 digits 0X0... (070/080/090, 050, 020,
  0800), 0120/0570 (10), and +81 forms with the leading 0 dropped (and "(0)" tolerated);
* a local number without its area code (5-8 digits: 123-4567, ゴー・ク・ハチ・サン) is refused as ``phone``
  when a phone label stands right before it (電話, TEL, 携帯の番号は, 連絡先, 折り返し先) or right after
  it (…に折り返し, …（自宅）); groups joined by / or : are dates and times;
* numbers SPLIT across a sentence ("前半は1234 5678で、後半は9018です") — two or three clusters
  of the same sentence with a few words between them — are refused when together they make a
  My Number (with a right check digit, or in pieces of 4 digits or more) or a phone number
  (first piece an area code or mobile prefix starting with 0).

E-mail addresses are matched on the normal form with every way of writing "@" (@, ＠, at, (at),
[at], アットマーク, アット, ★) and "." (., ．, dot, (dot), ドット, and 。 between ASCII
labels), spaces around either, and internationalised (IDN) domains such as 例え.jp or 例え.テスト. An address
read out in kana is one too (やまだアットマークジーメールドットコム, ヤマダ アット イグザンプル ドット ジェーピー).

Names: a listed family name with a given name and an honorific (山田太郎様, やまだ たろう様, Yamada Taro
san), any two kana words with a space and an honorific, a name after a label (氏名：, お名前は), a listed
family name with a two-character given name ending as given names do (山田太郎), Mr./Ms. and romaji
given-first names; a kanji family name on no list with a kana given name (鰐淵はなこ様, 小鳥遊 ゆうき さん; without
an honorific when the kana is a common given name: 鰐淵 はなこ). Home addresses: down to the house with a sign that it
is a home, or a full street address alone unless a public place is named beside it or its postal code is an
organisation's own; down to the block (…北1条西2丁目 在住) when the sign is in the same phrase. Dates of birth: a full
date (Western, 和暦 with the era in kanji or as a letter, 元年, kanji numerals) said to be one (生年月日,
誕生日, DOB before it; 生まれ, 生 after it), or a full date of the 明治, 大正 or 昭和 era alone (at a desk today somebody's
birth date: 昭和50年1月2日, S50.1.2). A family name of the list with a common given name in kana (ヤマダ タロウ) or a
kanji one ending as given names do (田中美咲). The first 11 digits of a My Number said to be one.

The fourth pass (shared/tests/test_pii_fourth_pass.py) added: a postal code alone (〒060-0001; not an office's own,
8000-9999, nor beside a public place); a house number without the city (一丁目2番3号, 北1条西2丁目3-4, 4番地12, a room
after it; 1の2の3 with a sign of a home); a birth date told in two phrases (生年月日は昭和50年、…5月5日); 12 digits in
groups of four over two sentences whatever the check digit; a part of a My Number said to be one (マイナンバーの前半は
123456); two groups of four with a space, as on the card (1234 5678: a number sent in two requests is refused in the
one holding two of its three groups); other cards' and accounts' numbers said to be one (保険証 記号123 番号4567,
被保険者番号, 基礎年金番号, 口座番号, 住民票コード, 在留カード番号); family names written with numerals (四月一日 はなこ様),
a kana family name on no list with a common given name (ワニブチ ハナコ), a kanji one with a kanji given name and an
honorific (鰐淵花子さん); and Python/JSON escapes (\\u3000) read as the characters they stand for.

The fifth pass (shared/tests/test_pii_fifth_pass.py) added: a kanji family name on no list with a whole common given name
and no honorific (鰐淵花子), a given name in brackets after an honorific (鈴木様（一郎）), masked numbers with four digits
or more shown (1234-****-9012, XXXX-XXXX-1234, 090-××××-5678), a 記号 that opens with a kanji or kana and 記号 … 番号 …
alone, Base64 of a text holding personal data, e-mail comments (taro(x)@example.jp) and a sign between every letter, a
mobile number with its 0 left out after a phone label, birth dates in 大字, +81 said aloud (プラスはちいち).

Messages say WHAT was found and WHERE (1-based character position of the original text), never
the value.
"""

from __future__ import annotations

import base64
import functools
import html
import itertools
import re
import urllib.parse
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, StringConstraints
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from madoguchi_shared.narrow import is_sequence

__all__ = [
    "FreeText",
    "Finding",
    "PersonalDataFound",
    "check_free_text",
    "TypedIdent",
    "find_personal_data",
    "is_valid_my_number",
    "my_number_check_digit",
    "normalize_digits",
    "normalize",
    "Normalised",
    "phone_digits",
]

Kind = Literal["my_number", "twelve_digits", "phone", "email", "name", "address", "birth_date"]
KINDS: tuple[Kind, ...] = ("my_number", "twelve_digits", "phone", "email", "name", "address", "birth_date")

# --------------------------------------------------------------------------------------------
# Digits, one character for one character (kept for callers that need aligned offsets)
# --------------------------------------------------------------------------------------------

_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def normalize_digits(text: str) -> str:
    """Full-width (and any other Unicode decimal) digits -> half-width 0-9; same length."""
    if text.isascii():
        return text
    return _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)


# --------------------------------------------------------------------------------------------
# My Number check digit
# --------------------------------------------------------------------------------------------

_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)  # applied to the first 11 digits, from the left


def my_number_check_digit(first11: str) -> int:
    """The check digit of a My Number whose first 11 digits (half- or full-width) are given."""
    digits = normalize_digits(first11)
    if len(digits) != 11 or not all("0" <= c <= "9" for c in digits):
        raise ValueError("the first 11 digits of a My Number are needed (11 digits 0-9)")
    r = sum(int(c) * w for c, w in zip(digits, _WEIGHTS, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


def is_valid_my_number(digits: str) -> bool:
    """True when ``digits`` is 12 half-width digits whose last one is the right check digit."""
    if len(digits) != 12 or not all("0" <= c <= "9" for c in digits):
        return False
    return my_number_check_digit(digits[:11]) == int(digits[11])


# --------------------------------------------------------------------------------------------
# Normalisation with an offset map
# --------------------------------------------------------------------------------------------

_DASHES = set(
    "-\u00ad\u058a\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2500\u2501\u2574\u2576"
    "\u2e3a\u2e3b\ufe58\ufe63\uff0d\uff70\u30fc\u2796\u23af\u2e40\u301c\uff5e~\u2053\u223c\u223d"
)
# ー (U+30FC) is a long-vowel mark inside katakana words; it is a dash only between digits, so it
# is kept as itself and treated as a separator by the grouping below. 〜/～/~ likewise.
_KEEP = {"\u30fc", "\u301c", "\uff5e", "~"}
_ZERO_WIDTH = set("\u200b\u200c\u200d\u2060\ufeff\u180e")
# Invisible characters that are not format characters (Cf) yet draw nothing: fillers, the
# combining grapheme joiner, variation selectors.
_INVISIBLE = set("\u034f\u115f\u1160\u3164\uffa0\u17b4\u17b5")
# Tag characters (U+E0020..E007E) spell ASCII invisibly: read them as the ASCII they stand for.
_TAG_BASE = 0xE0000
# Look-alike letters (Cyrillic, Greek) read as the Latin letter they imitate, so that an e-mail
# address spelled with them is still one.
_CONFUSABLE = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04cf\u04bb\u051b\u051d"
    "\u03bf\u03b1\u03bd\u03c1\u03b9\u03ba\u03c4\u0261",
    "aeopcyxijsdlhqwoavpikTg".lower(),
)
# HTML character references and percent-encoding are read as the characters they encode.
_HTML_REF = re.compile(r"&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};)")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


# Escapes of Python and JSON (a repr in a log line or an error: 「'一二三四\\u3000五六七八'」, text pasted from JSON) are read
# as the characters they stand for.
_ESCAPE = re.compile(r"\\{1,4}(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2})")  # (a repr of a repr: \\\\u3000)


def _decoded_at(text: str, i: int) -> tuple[str, int] | None:
    """(the characters, end) of an HTML reference, a percent-encoded run or an escape starting at ``i``."""
    if text[i] == "\\":
        m = _ESCAPE.match(text, i)
        if m:
            try:
                decoded = chr(int(m.group().lstrip("\\")[1:], 16))
            except ValueError:
                return None
            if decoded.isprintable() or decoded.isspace():
                return decoded, m.end()
        return None
    if text[i] == "&":
        m = _HTML_REF.match(text, i)
        if m:
            decoded = html.unescape(m.group())
            if decoded != m.group() and decoded.isprintable():
                return decoded, m.end()
    elif text[i] == "%":
        m = _PERCENT_RUN.match(text, i)
        if m:
            try:
                decoded = urllib.parse.unquote(m.group(), errors="strict")
            except UnicodeDecodeError:
                return None
            if decoded.isprintable() or decoded == " ":
                return decoded, m.end()
    return None


def _invisible(ch: str) -> bool:
    if ch in _ZERO_WIDTH or ch in _INVISIBLE:
        return True
    category = unicodedata.category(ch)
    if category in ("Cf", "Me"):
        return ch not in _DASHES
    if category == "Cc":
        return ch not in "\n\r\t\x0b\x0c\x85"
    return "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"


_COMBINING_KANA = {"\u3099", "\u309a", "\uff9e", "\uff9f"}


@dataclass
class Normalised:
    """The normal form of a text and, for each of its characters, the offset it came from."""

    text: str
    origin: list[int] = field(repr=False)
    length: int  # length of the original

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of the normal-form span [start, end)."""
        if start >= len(self.origin):
            return self.length, self.length
        o_end = self.origin[end] if end < len(self.origin) else self.length
        return self.origin[start], max(o_end, self.origin[start] + 1)


# Characters NFKC spells as letters although they stand for a digit or for "@": Roman numerals
# (Ⅳ is IV, yet its value is 4) and the circled a used for @ on Japanese pages (taroⓐexample.jp).
_BEFORE_NFKC = {
    chr(cp): str(int(unicodedata.numeric(chr(cp)))) for cp in (*range(0x2160, 0x2169), *range(0x2170, 0x2179))
}
_BEFORE_NFKC.update({"ⓐ": "@", "Ⓐ": "@"})


def _latin_base(ch: str) -> str:
    """A Latin letter with a diacritic read as its base letter (tarō@example.jp is taro@example.jp)."""
    if not ("\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff"):
        return ch
    decomposition = unicodedata.decomposition(ch).split()
    if decomposition and not decomposition[0].startswith("<"):
        base = chr(int(decomposition[0], 16))
        if base.isascii() and base.isalpha():
            return base
    return ch


_BEFORE_NFKC_TABLE = str.maketrans(_BEFORE_NFKC)


@functools.lru_cache(maxsize=8192)
def _char_form(chunk: str) -> str:
    """The normal form of one character with its combining marks (a pure function of it: cached, since a text
    reads the same few hundred characters again and again; the table was built again for every character)."""
    out = unicodedata.normalize("NFKC", chunk.translate(_BEFORE_NFKC_TABLE))
    result: list[str] = []
    for ch in out:
        cp = ord(ch)
        if 0xE0020 <= cp <= 0xE007E:
            result.append(chr(cp - _TAG_BASE).lower())
            continue
        if _invisible(ch) or (unicodedata.combining(ch) and not ("\u3099" <= ch <= "\u309a")):
            continue  # (a combining mark drawn over a digit, 0̸, hides nothing)
        if "0" <= ch <= "9":
            result.append(ch)
        elif ch.isspace() or unicodedata.category(ch) == "Zs":
            result.append(" " if ch not in "\n\r\u2028\u2029\x0b\x0c\x85" else "\n")
        elif ch in _KEEP:
            result.append(ch if ch == "\u30fc" else "〜")
        elif ch in _DASHES:
            result.append("-")
        elif 0x3041 <= cp <= 0x3096:  # hiragana -> katakana
            result.append(chr(cp + 0x60))
        elif ch.isdigit() or (unicodedata.category(ch) == "No" and unicodedata.numeric(ch, -1) >= 0):
            value = unicodedata.numeric(ch, -1)
            if value >= 0 and value == int(value):
                result.append(str(int(value)))
            else:
                result.append(ch)
        else:
            result.append(_latin_base(ch).lower().translate(_CONFUSABLE))
    return "".join(result)


def normalize(text: str) -> Normalised:
    """NFKC and the folds described in the module docstring, with offsets back to ``text``."""
    chars: list[str] = []
    origin: list[int] = []
    i, n = 0, len(text)
    while i < n:
        decoded = _decoded_at(text, i) if text[i] in "&%\\" else None
        if decoded is not None:
            for ch in decoded[0]:
                for c in _char_form(ch) if not ch.isascii() else ch.lower().replace("~", "〜"):
                    chars.append(c)
                    origin.append(i)
            i = decoded[1]
            continue
        j = i + 1
        while j < n and (text[j] in _COMBINING_KANA or unicodedata.combining(text[j])):
            j += 1
        chunk = text[i:j]
        if chunk == "\r":
            form = "" if text[j : j + 1] == "\n" else "\n"  # CR LF is one line break
        elif chunk.isascii() and chunk.isprintable():
            form = chunk.lower().replace("~", "〜")
        elif chunk.isascii():
            form = "".join(c for c in chunk if not _invisible(c)).lower().replace("~", "〜").replace("\t", " ")
        else:
            form = _char_form(chunk)
        for ch in form:
            chars.append(ch)
            origin.append(i)
        i = j
    return Normalised("".join(chars), origin, n)


# --------------------------------------------------------------------------------------------
# Digit tokens: 0-9, kanji numerals and kana readings
# --------------------------------------------------------------------------------------------

_KANJI_DIGIT = {
    "〇": "0", "零": "0", "○": "0", "◯": "0",
    "一": "1", "壱": "1", "壹": "1", "弌": "1",
    "二": "2", "弐": "2", "貳": "2", "弍": "2",
    "三": "3", "参": "3", "參": "3", "弎": "3",
    "四": "4", "肆": "4",
    "五": "5", "伍": "5",
    "六": "6", "陸": "6",
    "七": "7", "漆": "7", "柒": "7",
    "八": "8", "捌": "8",
    "九": "9", "玖": "9",
}  # fmt: skip

_PD = "[0-9〇一二三四五六七八九]"  # a digit in the normal form, Arabic or kanji

_READINGS = {
    "ゼロ": "0", "レイ": "0", "マル": "0", "ゼロー": "0",
    "イチ": "1", "ワン": "1",
    "ニ": "2", "ニイ": "2", "ツー": "2", "ツウ": "2",
    "サン": "3", "スリー": "3",
    "ヨン": "4", "ヨ": "4", "シ": "4", "フォー": "4", "フォア": "4",
    "ゴ": "5", "ゴオ": "5", "ファイブ": "5", "ファイヴ": "5",
    "ロク": "6", "シックス": "6",
    "ナナ": "7", "シチ": "7", "セブン": "7", "セヴン": "7",
    "ハチ": "8", "エイト": "8",
    "キュウ": "9", "キュー": "9", "キュ": "9", "ク": "9", "ナイン": "9",
}  # fmt: skip
_MAX_READING = max(map(len, _READINGS))
_ENGLISH = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip


def _is_letter(ch: str) -> bool:
    return bool(ch) and (unicodedata.category(ch)[0] == "L") and ch not in _KANJI_DIGIT and ch != "ー"


_WORD_ENDINGS = {"ニ", "シ", "ク", "サン", "シク", "ゴ", "イチ"}  # に, 少し, 詳しく, さん, 正しく


def _is_kana(ch: str) -> bool:
    return "\u30a1" <= ch <= "\u30fa" or ch == "\u30fc"


def _segment_readings(run: str) -> str | None:
    """The digits if the katakana ``run`` is wholly digit readings (each may be lengthened by ー)."""
    n = len(run)
    best: list[str | None] = [None] * (n + 1)
    best[0] = ""
    for i in range(n):
        prefix = best[i]
        if prefix is None:
            continue
        for k in range(1, min(_MAX_READING, n - i) + 1):
            digit = _READINGS.get(run[i : i + k])
            if digit is None:
                continue
            j = i + k
            while j < n and run[j] == "ー":
                j += 1
            if best[j] is None:
                best[j] = prefix + digit
    return best[n] if best[n] else None


@dataclass
class _Token:
    digits: str
    start: int  # normal-form offsets
    end: int
    masked: bool = False
    weak: bool = False  # a short kanji/kana run glued to a word: a digit only next to other digits
    dated: bool = False  # set aside as (part of) a date, a time or an amount
    positional: bool = False  # written with place markers (千二百三十四): leading zeros are unsaid


# Positional kanji numerals: 千二百三十四 is 1234, 五千二百六十億千八百十五万九千八十四 is 526018159084.
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "阡": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10**4, "萬": 10**4, "億": 10**8, "兆": 10**12}
_UNITS = _SMALL_UNITS.keys() | _BIG_UNITS.keys()


def _positional_numbers(run: str) -> list[tuple[int, int, str]]:
    """(start, end, digits) of the numbers in a run of kanji numerals with place markers. A place
    that does not fall (千 after 十, a digit after a ones digit) starts the next number, so
    「五千二百六十千八百十五」 is 5260 and 1815; a 〇 opening a number is a leading zero."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(run)
    while i < n:
        start = i
        total = section = 0
        last_small, last_big = 10**4, 10**16
        pending: int | None = None
        pending_at = i
        consumed = False
        while i < n:
            c = run[i]
            if c in _KANJI_DIGIT:
                d = int(_KANJI_DIGIT[c])
                if pending is None and d == 0 and consumed:
                    i += 1  # 千〇二: a zero keeps a place, it is no digit of its own
                    continue
                if pending is not None:
                    break  # 二三: the ones digit ended the number
                pending, pending_at = d, i
            elif c in _SMALL_UNITS:
                u = _SMALL_UNITS[c]
                if u >= last_small:
                    if pending is not None:
                        i = pending_at  # 六十五千: the 五 opens the next number
                        pending = None
                    break
                section += (1 if pending is None else pending) * u
                last_small, pending = u, None
            else:
                u = _BIG_UNITS[c]
                if u >= last_big or (section == 0 and pending is None):
                    if pending is not None:
                        i = pending_at  # 一万二万: the 二 opens the next number
                        pending = None
                    break
                total += (section + (pending or 0)) * u
                section, pending, last_small, last_big = 0, None, 10**4, u
            consumed = True
            i += 1
        if not consumed:
            i = start + 1  # a lone 万 or 億 is a word (万が一)
            continue
        value = total + section + (pending or 0)
        if value == 0 and run[start] in _KANJI_DIGIT:
            out.append((start, i, "0"))  # 〇 before 八百十五
        else:
            out.append((start, i, str(value)))
    return out


_ENGLISH_RUN = re.compile(
    r"(?<![a-z])(?:zero|one|two|three|four|five|six|seven|eight|nine)"
    r"(?:[ \-]+(?:zero|one|two|three|four|five|six|seven|eight|nine))+(?![a-z])"
)
_ENGLISH_WORD = re.compile(r"zero|one|two|three|four|five|six|seven|eight|nine")


def _reading_segments(run: str) -> list[tuple[int, int, str]]:
    """(start, end, digits) of the stretches of ``run`` that are wholly digit readings, leftmost
    and longest first (particles and words around them are skipped: ハヨン -> ヨン)."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(run)
    while i < n:
        if run[i] == "ー":
            i += 1
            continue
        for j in range(min(n, i + 80), i, -1):
            digits = _segment_readings(run[i:j])
            if digits:
                out.append((i, j, digits))
                i = j
                break
        else:
            i += 1
    return out


def _tokens(t: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(t)
    i = 0
    while i < n:
        ch = t[i]
        if ch in _KANJI_DIGIT or ch in _UNITS:
            j = i
            while j < n and (t[j] in _KANJI_DIGIT or t[j] in _UNITS):
                j += 1
            if any(c in _UNITS for c in t[i:j]) and not (i and "0" <= t[i - 1] <= "9"):
                numbers = _positional_numbers(t[i:j])
                glued = _is_letter(t[i - 1] if i else "") or _is_letter(t[j] if j < n else "")
                for a, b, digits in numbers:
                    weak = len(numbers) == 1 and len(digits) < 3 and glued
                    tokens.append(_Token(digits, i + a, i + b, weak=weak, positional=True))
                i = j
                continue
        if "0" <= ch <= "9" or ch in _KANJI_DIGIT:
            j = i
            while j < n and ("0" <= t[j] <= "9" or t[j] in _KANJI_DIGIT):
                j += 1
            run = t[i:j]
            has_arabic = any("0" <= c <= "9" for c in run)
            glued = _is_letter(t[i - 1] if i else "") or _is_letter(t[j] if j < n else "")
            weak = not has_arabic and len(run) < 3 and glued
            tokens.append(_Token("".join(_KANJI_DIGIT.get(c, c) for c in run), i, j, weak=weak))
            i = j
        elif _is_kana(ch):
            j = i
            while j < n and _is_kana(t[j]):
                j += 1
            if j - i <= 200:
                for a, b, digits in _reading_segments(t[i:j]):
                    s, e = i + a, i + b
                    before, after = (t[s - 1] if s else ""), (t[e] if e < n else "")
                    # a particle between numbers (2019-01-01に2019-01-01, 9:00に3名) is a word too
                    glued = _is_letter(before) or _is_letter(after) or before.isdigit() or after.isdigit()
                    # part of a word (始まる番号, 後に, 詳しく, 山田さん) unless next to other digits
                    tokens.append(_Token(digits, s, e, weak=len(digits) < 3 and glued))
            i = j
        else:
            i += 1
    for m in _ENGLISH_RUN.finditer(t):
        for w in _ENGLISH_WORD.finditer(m.group()):
            tokens.append(_Token(_ENGLISH[w.group()], m.start() + w.start(), m.start() + w.end()))
    tokens.sort(key=lambda tok: tok.start)
    # Adjacent tokens form one group ("ゼロキュー" "ゼロ" are already one run; 090イチニ stays two
    # groups of one cluster, so that a particle next to a number can be left out again).
    merged: list[_Token] = []
    for tok in tokens:
        if (
            merged
            and merged[-1].end == tok.start
            and not (tok.weak or merged[-1].weak)
            and not (tok.positional and merged[-1].positional)  # 九千百三十九九百九十六: two groups
        ):
            last = merged[-1]
            merged[-1] = _Token(
                last.digits + tok.digits,
                last.start,
                tok.end,
                weak=last.weak and tok.weak,
                positional=last.positional or tok.positional,
            )
        else:
            merged.append(tok)
    return merged


# --------------------------------------------------------------------------------------------
# Ordinary numbers, set aside before grouping
# --------------------------------------------------------------------------------------------

_D = "[0-9〇零○◯一壱壹弌二弐貳弍三参參弎四肆五伍六陸七漆柒八捌九玖]"
_COUNTER = re.compile(
    r" ?(?:年|ヶ月|ヵ月|か月|カ月|ケ月|箇月|月|日|時|分|秒|件|人|名|回|枚|通|円|個|番|歳|才|代|%|度|倍|割|位|点|"
    r"ポイント|ホ゜イント|pt|台|本|冊|部|階|号|丁目|週|組|席|課|係|桁|文字|字|行|ページ|頁|条|項|万|千|百|十|億|兆|"
    r"箇所|か所|カ所|ヶ所|世帯|軒|次|期|便|区|泊|種|段|問|票|周|列|株|匹|頭|羽|杯|品|棟|室|戸|局|校|社|"
    r"日目|回目|人目|番目|時間|分間|日間|週間|年間|年度|km|kg|cm|mm|m|g|mb|gb|kb|gb|ml|l|歳|才|度目|ms|s|sec|min|"
    r"パーセント|セント|ドル|円玉|円札|万円|千円|割引|倍速|連休|連勤|人前|名様|件目)(?![a-z])"
)
_MARKER = re.compile(
    r"(?:no\.?|#|♯|第|受付番号|整理番号|整理券|番号札|呼出番号|呼び出し番号|交付番号|予約番号|受付|窓口|手順|ステップ|step|問|q|丁目|番地|"
    r"ver\.?|v|版|表|図|p\.?|ページ|レーン|ブース|内線|ext\.?)[ :：.]*$"
)
_LETTER_TICKET = re.compile(r"(?<![a-z])[a-z]-?$")
_MAX_ORDINARY_DIGITS = 9  # a number this long or longer is never set aside as a count or an amount
_DATE = re.compile(r"(?<![0-9])([0-9]{4}|[0-9]{1,2})([/.\-])([0-9]{1,2})\2([0-9]{1,2})(?![0-9])")
_COMPACT_DATE = re.compile(
    r"(?<![0-9])(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?![0-9])"
)  # 20210405
_MONTH_DAY = re.compile(r"(?<![0-9/.\-])([0-9]{1,2})/([0-9]{1,2})(?![0-9]|/[0-9])")
_TIME = re.compile(
    r"(?<![0-9:])([0-9]{1,2}) ?[:：] ?([0-9]{2})(?: ?[:：] ?([0-9]{2})(?:\.[0-9]{1,9})?)?(?![0-9]| ?[:：] ?[0-9])"
)
_AMOUNT = re.compile(rf"(?<![0-9,]|{_D})[1-9][0-9]{{0,2}}(?:,[0-9]{{3}})+(?:\.[0-9]+)?(?!{_D}|,{_D}|, {_D})")
_POSTAL = re.compile(r"(?:〒|郵便番号|postal code|zip)[ :：]*([0-9]{3}) ?-? ?([0-9]{4})(?![0-9])")


def _valid_date(y: str, mo: str, d: str) -> bool:
    year_ok = (len(y) == 4 and 1900 <= int(y) <= 2100) or (len(y) <= 2 and 1 <= int(y) <= 99)
    return year_ok and 1 <= int(mo) <= 12 and 1 <= int(d) <= 31


def _ordinary_spans(t: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for m in _DATE.finditer(t):
        # (a year of one digit is an era's, R3.4.1 or 3/4/1; with dashes, 1-1-1 is a house number or a piece of one)
        if _valid_date(m.group(1), m.group(3), m.group(4)) and not (len(m.group(1)) == 1 and m.group(2) == "-"):
            spans.append(m.span())
    spans.extend(m.span() for m in _COMPACT_DATE.finditer(t))
    for m in _MONTH_DAY.finditer(t):
        if 1 <= int(m.group(1)) <= 12 and 1 <= int(m.group(2)) <= 31:
            spans.append(m.span())
    for m in _TIME.finditer(t):
        if int(m.group(1)) <= 30 and int(m.group(2)) <= 59 and (m.group(3) is None or int(m.group(3)) <= 59):
            spans.append(m.span())
    for m in _AMOUNT.finditer(t):
        if sum(c.isdigit() for c in m.group()) <= 11:
            spans.append(m.span())
    for m in _POSTAL.finditer(t):
        spans.append(m.span())
    return spans


_GLUE = set(" -ー〜/.:・")
_RANGE_GLUE = ("", "〜", "、", ",", "・", "-", "/")


def _isolated(t: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Dates and times that are not glued by separators to more digits (8-3-7-5-9-1… is no date),
    unless those digits are another date or time (2021/4/1〜2021/4/30, 8:30〜17:15)."""
    spans = sorted(spans)
    starts = [s for s, _ in spans]

    def containing(p: int) -> tuple[int, int] | None:
        k = bisect_right(starts, p) - 1
        while k >= 0 and k > bisect_right(starts, p) - 4:  # spans may overlap a little
            if spans[k][0] <= p < spans[k][1]:
                return spans[k]
            k -= 1
        return None

    def inside(p: int, glue: str) -> bool:
        # another date or time, joined as a range or a list (not 8-3-7-5-9-1 read as dates)
        g = glue.strip()
        if g not in _RANGE_GLUE:
            return False
        if g == "/" and glue == g:
            return False  # 7/6/4/1/6/3 is no list of dates; "2031/10/28 / 2031/11/4" is
        span = containing(p)
        return span is not None and (g != "-" or ":" in t[span[0] : span[1]])

    def digit_at(p: int) -> bool:
        return 0 <= p < len(t) and ("0" <= t[p] <= "9" or t[p] in _KANJI_DIGIT)

    out: list[tuple[int, int]] = []
    for s, e in spans:
        p = s - 1
        while p >= 0 and t[p] in _GLUE:
            p -= 1
        q = e
        while q < len(t) and t[q] in _GLUE:
            q += 1
        left_ok = not digit_at(p) or inside(p, t[p + 1 : s])
        right_ok = not digit_at(q) or (inside(q, t[e:q]) and (":" in t[s:e] or t[e:q].strip() != "-"))
        if t[s:e].startswith(("〒", "郵便", "postal", "zip")):
            left_ok = right_ok = True  # postal codes and amounts stand on their own
        if left_ok and right_ok:
            out.append((s, e))
    return out


def _mask_ordinary(t: str, tokens: list[_Token]) -> None:
    spans = sorted(_isolated(t, _ordinary_spans(t)))
    starts = [s for s, _ in spans]
    prev: _Token | None = None
    for idx, tok in enumerate(tokens):
        if tok.masked:  # set aside with the marker before it
            prev = tok
            continue
        k = bisect_right(starts, tok.start) - 1
        if any(spans[i][0] <= tok.start and tok.end <= spans[i][1] for i in range(max(0, k - 3), k + 1)):
            tok.masked = tok.dated = True
        elif (
            len(tok.digits) < _MAX_ORDINARY_DIGITS or (tok.positional and _is_count_or_marked(t, tok, False))
        ) and not (
            # the last group of a longer number is not a count: "1234-5678-9018件"
            prev is not None
            and not prev.masked
            and not prev.weak
            and _gap_kind(t[prev.end : tok.start]) == "tight"
            and not any(c in "、,，" for c in t[prev.end : tok.start])
        ):
            chain = [tok]  # the groups written right after it: "交付番号 6885-80", "丁目27-20"
            for nxt in tokens[idx + 1 :]:
                if (
                    nxt.weak
                    or _gap_kind(t[chain[-1].end : nxt.start]) != "tight"
                    or any(c in "、,，" for c in t[chain[-1].end : nxt.start])
                ):
                    break
                chain.append(nxt)
            followed = len(chain) > 1
            tok.masked = _is_count_or_marked(t, tok, followed)
            if (
                not tok.masked
                and followed
                and sum(len(c.digits) for c in chain) <= 6
                and _is_count_or_marked(t, tok, False)
            ):
                for c in chain:  # a short ticket or house number after its marker, all of it
                    c.masked = True
        prev = tok


def _is_count_or_marked(t: str, tok: _Token, followed: bool) -> bool:
    """A count or an amount (a counter or unit right after: "3回", "98.5%"), or a ticket/step number
    right after its marker ("No.105", "手順3", "A-012")."""
    after = tok.end
    if t.startswith(".", after) and after + 1 < len(t) and t[after + 1].isdigit():
        k = after + 1
        while k < len(t) and t[k].isdigit():
            k += 1
        after = k
    counter = _COUNTER.match(t, after)
    if counter and not (counter.group().strip() in _UNITS and (tok.positional or counter.group().startswith(" "))):
        return True  # (after 五千二百六十, a 千 is the next number: 「五千二百六十 千八百十五」)
    before = t[max(0, tok.start - 12) : tok.start]
    # (not the first group of a longer number: "A1234 5678 9018", "No.090-1234-5678")
    return not followed and len(tok.digits) <= 4 and bool(_MARKER.search(before) or _LETTER_TICKET.search(before))


# --------------------------------------------------------------------------------------------
# Grouping and the numbering rules
# --------------------------------------------------------------------------------------------

_TIGHT = set(" \n\t-ー〜~/.,、，:;・()[]{}（）［］｛｝「」『』【】〔〕〈〉《》<>'\"|_*+=")
_SENTENCE_END = set("。！？!?\n")
_MAX_LOOSE_GAP = 40


def _separator(c: str) -> bool:
    """Any punctuation or symbol between digits separates them (※, ♡, ·, •, #, ...), but not the
    end of a sentence."""
    if c in _TIGHT:
        return True
    return c not in _SENTENCE_END and unicodedata.category(c)[0] in "PS"


def _gap_kind(gap: str) -> str:
    if gap and ((gap[0].isascii() and gap[0].isalpha()) or (gap[-1].isascii() and gap[-1].isalpha())):
        return "break"  # digits inside an identifier or a hash (01936b4e-7c1a…, a3f5e1…), not a sentence
    if gap == "。":
        return "tight"  # 1。2。3。…: no sentence is one digit long
    if all(_separator(c) for c in gap):
        if "\n\n" in gap.replace(" ", ""):  # a blank line: a new paragraph
            return "break"
        return "tight"
    if len(gap) > _MAX_LOOSE_GAP or any(c in _SENTENCE_END for c in gap):
        return "break"
    return "loose"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_OPENERS = "([{（［｛「『【〔〈《<"
_CLOSERS = ")]}）］｝」』】〕〉》>"


def _brackets_pair(t: str, start: int, end: int) -> bool:
    """Brackets in a number pair up, counting one just outside it: (03)1234-5678, 03(1234)5678,
    [0]1156; in "〒010-0000（2019-01-01…" the bracket opens a new phrase instead."""
    starts = [start] + ([start - 1] if start and t[start - 1] in _OPENERS else [])
    ends = [end] + ([end + 1] if end < len(t) and t[end] in _CLOSERS else [])
    return any(_balanced(t[s:e]) for s in starts for e in ends)


def _domestic(digits: str) -> bool:
    """Japanese numbering plan, national significant number with its trunk prefix 0."""
    if len(digits) not in (10, 11) or not digits.startswith("0") or digits[1] == "0":
        return False
    if len(digits) == 11:
        return digits[:3] in ("020", "050", "060", "070", "080", "090") or digits[:4] in ("0800", "0990")
    return True  # 0A-...: landlines (0 + area code + local, 10 digits), 0120/0570/0990


def _international(groups: list[str]) -> bool:
    """+81 forms, given the groups after the "+"."""
    joined = "".join(groups)
    if not joined.startswith("81"):
        return False
    rest = joined[2:]
    if len(groups) > 1 and groups[0] == "81" and groups[1] == "0":
        rest = "".join(groups[2:])  # +81 (0)3 ...
    rest = rest.removeprefix("0")
    return 9 <= len(rest) <= 10 and rest[0] != "0"


@dataclass
class _Found:
    kind: Kind
    start: int  # normal-form offsets
    end: int
    what: str = ""  # a closer name for the message (_WHAT_DETAIL), the kind staying one of KINDS


def _my_number_fast(d: str) -> bool:
    r = sum(int(c) * w for c, w in zip(d, _WEIGHTS, strict=False)) % 11
    return int(d[11]) == (0 if r <= 1 else 11 - r)


def _check_window(groups: list[_Token], t: str, plus: bool) -> _Found | None:
    digits = "".join(g.digits for g in groups)
    start, end = groups[0].start, groups[-1].end
    if plus and _international([g.digits for g in groups]):
        return _Found("phone", start - 1 if t[start - 1 : start] == "+" else start, end)
    if len(digits) == 12:
        return _Found("my_number" if is_valid_my_number(digits) else "twelve_digits", start, end)
    if _domestic(digits) and _brackets_pair(t, start, end):
        return _Found("phone", start, end)
    return None


def _plus_at(t: str, start: int) -> int:
    """Where the + of a country code before ``start`` begins (+81, プラスはちいち said aloud), or -1."""
    k = start - 1
    while k >= 0 and t[k] in " (（":
        k -= 1
    if k >= 0 and t[k] == "+":
        return k
    for word in ("プラス", "plus"):
        if t.endswith(word, 0, k + 1):
            return k + 1 - len(word)
    return -1


def _plus_before(t: str, start: int) -> bool:
    return _plus_at(t, start) >= 0


def _variants(groups: list[_Token]) -> list[list[_Token]]:
    """The groups, and without a word-bound numeral at either end (番号に・はち… / …の後に キュウ)."""
    out = [groups]
    lo, hi = 0, len(groups)
    if groups[0].weak and hi > 1:
        lo = 1
        out.append(groups[1:])
    if groups[-1].weak and hi - lo > 1:
        out.append(groups[:-1])
        if lo:
            out.append(groups[1:-1])
    return out


def _scan_cluster(groups: list[_Token], t: str) -> list[_Found]:
    variants = _variants(groups)[1:] if len(groups) <= 64 else []
    if variants:
        full = _check_window(groups, t, _plus_before(t, groups[0].start))
        if full is None or full.kind == "twelve_digits":
            for variant in variants:
                v = _check_window(variant, t, _plus_before(t, variant[0].start))
                if v is not None and (full is None or v.kind != "twelve_digits"):
                    return _scan_cluster(variant, t)
    total = sum(len(g.digits) for g in groups)
    plus = _plus_before(t, groups[0].start)
    whole = _check_window(groups, t, plus)
    if whole is not None:
        if whole.kind == "phone" and plus and t[whole.start] != "+":
            whole.start = _plus_at(t, whole.start)
        return [whole]
    if total < 10:
        return []
    found: list[_Found] = []
    all_digits = "".join(g.digits for g in groups)
    prefix = [0]
    for g in groups:
        prefix.append(prefix[-1] + len(g.digits))
    i = 0
    while i < len(groups):
        hit = None
        j_max = i + 1
        while j_max < len(groups) and prefix[j_max + 1] - prefix[i] <= 13:
            j_max += 1
        for j in range(j_max, i, -1):  # longest first
            size = prefix[j] - prefix[i]
            if size < 10 or size > 13:
                continue
            window_digits = all_digits[prefix[i] : prefix[j]]
            if not (plus and i == 0) and not (
                (size == 12 and _my_number_fast(window_digits))
                or (window_digits[0] == "0" and _domestic(window_digits))
            ):
                continue
            f = _check_window(groups[i:j], t, plus and i == 0)
            if f is not None and (f.kind != "twelve_digits"):
                hit = (f, j)
                break
        if hit is None:
            i += 1
            continue
        found.append(hit[0])
        i = hit[1]
    if not found and total >= 12:
        found.append(_Found("twelve_digits", groups[0].start, groups[-1].end))
    return found


def _scan_split(clusters: list[list[_Token]], t: str) -> list[_Found]:
    """Two or three clusters of one sentence that together make a My Number or a phone number."""
    found: list[_Found] = []
    for i in range(len(clusters)):
        for k in (2, 3):
            if i + k > len(clusters):
                break
            for chain in _chains(clusters[i : i + k]):
                hit = _split_hit(chain, t)
                if hit is not None:
                    found.append(hit)
                    break
    return found


def _chains(clusters: list[list[_Token]]) -> list[list[list[_Token]]]:
    out: list[list[list[_Token]]] = [[]]
    for c in clusters:
        out = [prefix + [v] for prefix in out for v in _variants(c)]
    return out[:16]


def _piece_ok(cluster: list[_Token], t: str) -> bool:
    """A piece of a split number is not a list of small numbers ("受付 305、354 を呼出")."""
    sizes = [len(g.digits) for g in cluster]
    if len(sizes) == 1 or min(sizes) >= 4 or max(sizes) == 1:
        return True
    return not any(
        any(c in t[a.end : b.start] for c in "、,，") and 2 <= len(a.digits) <= 3 and 2 <= len(b.digits) <= 3
        for a, b in itertools.pairwise(cluster)
    )


def _split_hit(chain: list[list[_Token]], t: str) -> _Found | None:
    sizes = [sum(len(g.digits) for g in c) for c in chain]
    digits = "".join(g.digits for c in chain for g in c)
    start, end = chain[0][0].start, chain[-1][-1].end
    if len(digits) < 12 and 12 % len(chain) == 0 and all(g.positional for c in chain for g in c):
        # 六万三千五十と九万三千七百四十五: halves said with place markers lose their leading zeros
        width = 12 // len(chain)
        padded = "".join("".join(g.digits for g in c).zfill(width) for c in chain)
        if len(padded) == 12 and is_valid_my_number(padded):
            return _Found("my_number", start, end)
    if len(digits) == 12 and min(sizes) >= 2 and all(_piece_ok(c, t) for c in chain):
        if is_valid_my_number(digits):
            return _Found("my_number", start, end)
        if min(sizes) >= 4 and all(len(c) == 1 for c in chain):
            # without the check digit, only pieces that are each one run of digits (「12345678、続き9012」):
            # 「100。10000ポイント、受付番号1000」 is three counts, not a number
            return _Found("twelve_digits", start, end)
    elif 2 <= sizes[0] <= 5 and _domestic(digits) and min(sizes) >= 2:
        return _Found("phone", start, end)
    elif sizes[0] == 2 and chain[0][0].digits == "81" and _plus_before(t, start):
        if _international([g.digits for c in chain for g in c]):
            return _Found("phone", start, end)
    return None


# Machine identifiers are not numbers people wrote: a UUID or a hex hash (32+ hex digits) may hold
# 12 digits in a row by chance.
_IDENTIFIER = re.compile(
    r"(?<![0-9a-z])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?=[0-9]*[a-f])[0-9a-f]{32,})(?![0-9a-z])"
)


# ... but not 20 in a row: a random hex string holds such a run about once in 250 sha256 hashes, and
# "000…0aa" is a number with letters after it, not a hash.
_LONG_DIGIT_RUN = re.compile(r"[0-9]{20}")


# A My Number written at either end of an identifier ("0192f0a4-7c3e-7d2a-9a51-" + 12 digits,
# "aaaa…" + 12 digits) hides it there: a random identifier ends in 12 digits with a right check
# digit about once in 3,000.
_EDGE_DIGITS = re.compile(r"^([0-9]{12})(?![0-9])|(?<![0-9])([0-9]{12})$")


def _exempt_identifier(ident: str) -> bool:
    if _LONG_DIGIT_RUN.search(ident):
        return False
    return not any(is_valid_my_number(m.group(1) or m.group(2)) for m in _EDGE_DIGITS.finditer(ident))


# The first 11 digits of a My Number are the whole of it (the 12th is their check digit): 11 digits said to
# be one are refused as one (「マイナンバー 12345678901」).
_MY_NUMBER_LABEL = re.compile(
    r"(?:マイナンバー|個人番号|my ?number)(?!カード)[^0-9\n。]{0,8}?((?:[0-9][ \-]?){10}[0-9])(?![0-9])"
)


# A part of a My Number said to be one (「マイナンバーの前半は123456」, 「個人番号 上4桁 一二三四」): the rest may come in
# another request, which the guard does not keep (free text is read one request at a time and never stored before
# it passes), so the part said to be one is refused on its own. Not: a count (マイナンバーカード 3枚, 個人番号 1234件),
# a date, a ticket after its marker (マイナンバー 受付 105).
_MY_NUMBER_PART = re.compile(
    rf"(?:マイナンバー|個人番号|my ?number)(?!カード|制度|ポータル|総合)"
    rf"(?:[0-9〇一二三四五六七八九十]{{1,2}}桁目?|[^0-9〇一二三四五六七八九\n。]){{0,10}}?"
    rf"({_PD}(?:[ \-ー・ノ]?{_PD}){{3,10}})(?![0-9〇一二三四五六七八九])"
)
_PART_WORDS = re.compile(r"[0-9〇一二三四五六七八九十]+桁(?:目)?(?:ハ|ガ|ノ|:|：|ヲ)?[ ]*$")


# Numbers of other cards and accounts that identify a person, said to be one (保険証 記号123 番号4567, 被保険者番号
# 12345678, 基礎年金番号 1234-567890, 免許証番号, 口座番号, 住民票コード, 在留カード番号 AB12345678CD): refused as a
# personal number. Not: a count or a date after the label (保険証の確認 3件, 保険証 2025/12/01まで有効).
_ID_LABEL = re.compile(
    r"(?:保険証|被保険者証?|保険者番号|記号番号|基礎年金番号|年金番号|年金手帳|免許証|運転免許|旅券|パスポート|住民票コード|"
    r"口座番号|口座|カード番号|クレジットカード|受給者証?番号|介護保険証?|障害者手帳|手帳番号|在留カード|特別永住者証明書|"
    r"証券番号|契約番号|保険番号|お客様番号|オ客様番号|国保|国民健康保険|健康保険|社会保険|後期高齢者?医療|"
    r"license|passport|account|(?=記号[^。\n]{1,12}?番号))"  # (記号 … 番号 …: the two numbers of a health-insurance card)
)
_ID_VALUE = re.compile(
    # (a 記号 may open with a kanji or kana: 記号 東123, 記号ア123)
    rf"(?:番号|記号(?:[ :：]?(?:(?!{_PD})[\u4e00-\u9fff\u30a1-\u30fa]){{1,3}}(?=[ ]?[0-9]))?|ノ|no\.?|#|ハ|ガ|ヲ|第|[ :：=、(（]|(?:上|下|末尾|先頭|頭)?[0-9一二三四五六七八九十]{{1,2}}桁目?)*"
    rf"([a-z]{{0,2}}{_PD}(?:[ \-ー]?{_PD}){{1,15}}[a-z]{{0,2}})(?![0-9a-z])"
)


def _id_number_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    ordinary: list[tuple[int, int]] | None = None
    for label in _ID_LABEL.finditer(t):
        end = label.end()
        digits = parts = 0
        last: re.Match[str] | None = None
        while parts < 3:  # 記号123 番号4567: up to three parts
            m = _ID_VALUE.match(t, end)
            if m is None:
                break
            counter = _COUNTER.match(t, m.end(1))
            said_number = t.startswith("番号", m.end(1) + (t[m.end(1) : m.end(1) + 1] == " "))
            if counter and not said_number and not (counter.group().strip() == "号" and "第" in m.group()):
                break  # (保険証 3件; but 保険証 記号123 番号4567, 手帳番号 第12345号)
            if ordinary is None:
                ordinary = _ordinary_spans(t)
            if any(s <= m.start(1) < e for s, e in ordinary):
                break
            digits += sum(c.isdigit() or c in _KANJI_DIGIT for c in m.group(1))
            last, end, parts = m, m.end(), parts + (2 if "第" in m.group() else 1)
        # (six digits, or four in two parts: the last four digits of a card alone identify nobody)
        if last is not None and (digits >= 6 or (digits >= 4 and parts > 1)):
            found.append(_Found("my_number", label.start(), last.end(), "id_number"))
    return found


def _labelled_my_number(t: str) -> list[_Found]:
    found = [_Found("my_number", m.start(1), m.end(1)) for m in _MY_NUMBER_LABEL.finditer(t)]
    for m in _MY_NUMBER_PART.finditer(t):
        before = t[m.start() : m.start(1)]
        if (
            _MARKER.search(before)
            or _COUNTER.match(t, m.end(1))
            or any(s <= m.start(1) < e for s, e in _ordinary_spans(t))
        ):
            if not _PART_WORDS.search(before):
                continue  # (上4桁 1234: the 4 is a count, the 1234 the part)
        found.append(_Found("my_number", m.start(1), m.end(1), "my_number_part"))
    return found


def _number_findings(t: str) -> list[_Found]:
    tokens = _tokens(t)
    if not tokens:
        return []
    if any("a" <= c <= "z" for c in t):
        # (base64 needs no rule: 12 digits in a row among 64 symbols do not happen by chance)
        ids = [m.span() for m in _IDENTIFIER.finditer(t) if _exempt_identifier(m.group(0))]
        if ids:
            tokens = [tok for tok in tokens if not any(s <= tok.start and tok.end <= e for s, e in ids)]
    _mask_ordinary(t, tokens)
    # clusters: unmasked tokens joined by separators only
    clusters: list[list[_Token]] = []
    masked_between: list[bool] = []  # masked_between[i]: a date or a time set aside before clusters[i]
    pending = False
    dated = False
    for tok in tokens:
        if tok.masked:
            pending = True
            dated = dated or tok.dated
            continue
        if clusters and not pending and _gap_kind(t[clusters[-1][-1].end : tok.start]) == "tight":
            clusters[-1].append(tok)
        else:
            clusters.append([tok])
            masked_between.append(dated)
        pending = dated = False
    # a cluster of word-bound numerals only (一般, 参加, 詳しく, 始まる) holds no number
    kept: list[list[_Token]] = []
    links: list[str] = []  # links[i]: between kept[i] and kept[i + 1]
    crossed = False
    for c, dated_before in zip(clusters, masked_between, strict=False):
        # a count inside a sentence ("上6桁は…") does not cut a split number; a date or a time does
        crossed = crossed or dated_before
        weak_digits = "".join(tok.digits for tok in c) if all(tok.weak for tok in c) else None
        if weak_digits is not None and not (len(weak_digits) >= 2 and weak_digits[0] == "0"):
            if not (weak_digits in ("70", "80", "90") and t[c[-1].end : c[-1].end + 1] in ("ノ", "ト")):
                continue  # (but 〇三の…, レイサンから…, 九〇の…: a prefix that opens a split phone number)
        if kept:
            links.append("break" if crossed else _gap_kind(t[kept[-1][-1].end : c[0].start]))
        kept.append(c)
        crossed = False
    clusters = kept
    for c in clusters:
        _pad_positional(c)
    found: list[_Found] = []
    for c in clusters:
        found.extend(_scan_cluster(c, t))
    # split numbers: runs of clusters joined by loose links
    run: list[list[_Token]] = []
    for idx, c in enumerate(clusters):
        run.append(c)
        link = links[idx] if idx < len(links) else "break"
        if link != "loose":
            if len(run) >= 2:
                found.extend(_scan_split(run, t))
            run = []
    if not found:
        found.extend(_scan_across_sentences(clusters, t))
    found.extend(_local_phone_findings(clusters, t, found))
    if not found:
        found.extend(_card_layout_findings(clusters, t))
    return found


_TICKET_BEFORE = re.compile(
    r"(?:受付番号|整理番号|番号札|予約番号|交付番号|問合セ番号|問イ合ワセ番号|照会番号|管理番号|reference|ref\.?)"
    r"(?:[ :：]|ハ|ガ|ノ|ヲ|デ)*$"
)


def _card_layout_findings(clusters: list[list[_Token]], t: str) -> list[_Found]:
    """Two groups of four digits with a space between (「1234 5678」, 「一二三四　五六七八」), as a My Number is printed
    on its card, are two thirds of one: refused alone, so that a number sent in two requests (「1234 5678」, then
    「9018」) cannot be put together again; the four digits left over identify nobody. Not: years (2021 2022), a
    range or a time (1000-1200, 0900/1700), a count (1234 5678件), a ticket after its marker."""
    out: list[_Found] = []
    for c in clusters:
        if len(c) != 2 or any(len(g.digits) != 4 or g.weak for g in c):
            continue
        gap = t[c[0].end : c[1].start]
        if gap.strip(" ・ノ") or not gap:
            continue
        if all(_YEAR_LIKE.fullmatch(g.digits) for g in c) or _COUNTER.match(t, c[1].end):
            continue
        before = t[max(0, c[0].start - 16) : c[0].start]
        if _MARKER.search(before) or _TICKET_BEFORE.search(before):
            continue  # (a call's reference is 受付番号 4821-0937, written 「前回の受付番号は 4821 0937」 too)
        out.append(_Found("my_number", c[0].start, c[1].end, "my_number_part"))
    return out


# A local number without its area code (市内局番 + 加入者番号: 123-4567, ５６７８－１２３４, 7 or 8 digits in a
# row) is a phone number when it is said to be one: a phone label right before it (電話 123-4567, TEL：…,
# 携帯の番号は …, 連絡先 …) or right after it (… に折り返し, …（自宅）). Without a label such a number is a
# ticket, a reference or a range, and passes.
_PHONE_LABEL = (
    r"(?:電話|デンワ|tel|phone|携帯|ケータイ|ケイタイ|連絡先|折リ返シ|折返シ|コールバック|fax|ファックス|ファクス|"
    r"自宅|固定|直通|架電)"
)
_PHONE_BEFORE = re.compile(
    rf"{_PHONE_LABEL}(?:[ :：、,=()（）\[\]【】「」.#＃]|番号|バンゴウ|no|ノ|ハ|ガ|ヲ|モ|先|サキ|自宅|携帯|固定|直通|電話|デス|ヘ|ニ)*$"
)
_PHONE_AFTER = re.compile(
    rf"[ ]?(?:[(（【\[][ ]?{_PHONE_LABEL}[^)）】\]]{{0,6}}[)）】\]]|(?:ニ|ヘ|マデ|ヘノ|ニテ|デ)?[ ]?(?:オ)?{_PHONE_LABEL}|(?:ニ|ヘ|マデ)[ ]?(?:連絡|オ電話|ゴ連絡))"
)


def _local_phone(cluster: list[_Token]) -> bool:
    """5 to 8 digits however grouped (2-1234, 123-4567, ５６７８－１２３４, ゴー・ク・ハチ・サン), no group longer than 4
    unless it is the whole number."""
    sizes = [len(g.digits) for g in cluster]
    if sum(sizes) == 10 and "".join(g.digits for g in cluster)[:2] in ("70", "80", "90"):
        return True  # a mobile number with its 0 left out, as after +81 (携帯 九〇の一二三四の五六七八)
    return 5 <= sum(sizes) <= 8 and (len(sizes) == 1 or max(sizes) <= 4)


def _date_or_time_glue(cluster: list[_Token], t: str) -> bool:
    """Groups joined by / or : are dates and times (TEL 10/27-4/12, 電話 10:00-13:20), not a local number."""
    return any(c in t[a.end : b.start] for a, b in itertools.pairwise(cluster) for c in "/:")


def _local_phone_findings(clusters: list[list[_Token]], t: str, found: list[_Found]) -> list[_Found]:
    out: list[_Found] = []
    # (a local number said in two parts: 「456の1234」)
    joined = [t[a[-1].end : b[0].start].strip() in ("ノ", "ト") for a, b in itertools.pairwise(clusters)]
    candidates = list(clusters) + [clusters[i] + clusters[i + 1] for i, j in enumerate(joined) if j]
    candidates += [  # (and in three: 「九〇の一二三四の五六七八」)
        clusters[i] + clusters[i + 1] + clusters[i + 2] for i in range(len(clusters) - 2) if joined[i] and joined[i + 1]
    ]
    for cluster in candidates:
        for c in _variants(cluster):  # (without a particle read as a digit: 「5678-1234に」)
            start, end = c[0].start, c[-1].end
            if any(f.start <= start and end <= f.end for f in found) or _date_or_time_glue(c, t):
                continue
            before = t[max(0, start - 24) : start]
            if _local_phone(c) and (_PHONE_BEFORE.search(before) or _PHONE_AFTER.match(t, end)):
                out.append(_Found("phone", start, end))
                break
            if t[end - 1] == "ニ" and c[-1].digits.endswith("2") and _PHONE_AFTER.match(t, end - 1):
                # 「…ニサンニゼロに架電」: the particle に was read as the digit 2
                trimmed = [*c[:-1], _Token(c[-1].digits[:-1], c[-1].start, end - 1)]
                if _local_phone([g for g in trimmed if g.digits]):
                    out.append(_Found("phone", start, end - 1))
                    break
    return out


def _pad_positional(cluster: list[_Token]) -> None:
    """Groups written with place markers leave their leading zeros unsaid (九千百三十九、九百九十六、
    三百 is 9139 0996 0300): when the groups padded to the widest one make 12 digits, read them so."""
    if not any(tok.positional for tok in cluster):
        return
    joined = "".join(tok.digits for tok in cluster)
    if len(joined) >= 12 or _domestic(joined):
        return
    if len(cluster) == 1:  # 六百三十億五千九万三千七百四十五: an 11-digit My Number opening with 0
        if len(joined) >= 10 and is_valid_my_number(joined.zfill(12)):
            cluster[0].digits = joined.zfill(12)
        return
    width = max(len(tok.digits) for tok in cluster)
    padded = [tok.digits.zfill(width) for tok in cluster]
    if sum(map(len, padded)) == 12:
        for tok, digits in zip(cluster, padded, strict=True):
            tok.digits = digits


_LABEL_BEFORE = ("no.", "no", "№", "受付番号", "整理番号", "受付no.", "第")
_COUNTER_AFTER = re.compile(
    r"\s*(?:ポイント|円|回|件|人|名|枚|通|個|台|冊|本|年|か月|ヶ月|ケ月|月|日|時|分|秒|歳|才|番目|号室|号|番|階|条|丁目|%|％|pt|p\b)"
)


def _labelled(cluster: list[_Token], t: str) -> bool:
    """A number with a label before it (受付番号 / No. / 第) or a counter after it (ポイント, 円, 回, 件 ...)."""
    before = unicodedata.normalize("NFKC", t[max(0, cluster[0].start - 6) : cluster[0].start]).lower().rstrip(" :：")
    if before.endswith(_LABEL_BEFORE):
        return True
    after = unicodedata.normalize("NFKC", t[cluster[-1].end : cluster[-1].end + 4]).lower()
    return _COUNTER_AFTER.match(after) is not None


def _scan_across_sentences(clusters: list[list[_Token]], t: str) -> list[_Found]:
    """A My Number told in pieces over sentences (「番号は1234です。残りは5678 9018です。」): two or
    three neighbouring numbers of 4 digits or more each that together make 12 digits with a right
    check digit. (Two such numbers in one note are rare, and a right check digit 1 in 11.)"""
    out: list[_Found] = []
    for i in range(len(clusters)):
        for k in (2, 3):
            chain = clusters[i : i + k]
            if len(chain) < k:
                break
            sizes = [sum(len(g.digits) for g in c) for c in chain]
            if min(sizes) < 4 or sum(sizes) != 12:
                continue
            if any(len(g.digits) < 4 for c in chain for g in c):
                continue  # a list of small numbers (受付 887、289), not a piece of one
            if "\n\n" in t[chain[0][-1].end : chain[-1][0].start].replace(" ", ""):
                continue  # another paragraph
            if any(_labelled(c, t) for c in chain):
                continue  # 受付番号2383、1900ポイント: a number said to be something else is not a piece
            digits = "".join(g.digits for c in chain for g in c)
            if is_valid_my_number(digits):
                out.append(_Found("my_number", chain[0][0].start, chain[-1][-1].end))
            elif all(len(g.digits) == 4 for c in chain for g in c) and not all(
                _YEAR_LIKE.fullmatch(g.digits) for c in chain for g in c
            ):
                # 12 digits in the card's own groups of four (「番号は1234 5678です。続きは9012です。」): refused
                # whatever the check digit, as one run of them would be; years (2021。2022。2023) are no number
                out.append(_Found("twelve_digits", chain[0][0].start, chain[-1][-1].end))
    return out


_YEAR_LIKE = re.compile(r"(?:19|20)[0-9]{2}")


# --------------------------------------------------------------------------------------------
# E-mail addresses
# --------------------------------------------------------------------------------------------

_AT = (
    r"(?:[ ]*(?:@|#|★|☆|◎|[(\[{<（［｛「【][ ]*(?:at|a|@|アット|アットマーク|★)[ ]*[)\]}>）］｝」】])[ ]*"
    r"|[ ]*(?:アットマーク|アット|at ?mark|atmark)[ ]*|[ ]+at[ ]+)"
)
_DOT = r"(?:[ ]*(?:\.|[(\[{<（［｛「【][ ]*(?:dot|ドット|\.|。)[ ]*[)\]}>）］｝」】]|ドット)[ ]*|[ ]+dot[ ]+)"
_DOT_JA = r"(?:[ ]*(?:\.|。|[(\[{<（［｛「【][ ]*(?:dot|ドット|\.|。)[ ]*[)\]}>）］｝」】]|ドット)[ ]*|[ ]+dot[ ]+)"
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-](?:[a-z0-9!#$%&'*+/=?^_`{|}~.-]{0,63})"
_ALABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ULABEL = r"(?:[^\W_]|-)(?:[^\W_]|-){0,62}"
_IDN_TLDS = "日本|みんな|コム|ネット|世界|中国|中國|香港|台湾|台灣|テスト|ストア|ポイント|クラウド|ファッション|グーグル|アマゾン"
_EMAIL_ASCII = re.compile(
    rf"(?<![a-z0-9!#$%&'*+/=?^_`{{|}}~.-]){_LOCAL}{_AT}{_ALABEL}(?:{_DOT_JA}{_ALABEL})*{_DOT_JA}[a-z]{{2,24}}(?![a-z0-9-])"
)


def _katakana_tlds() -> str:
    return "".join(chr(ord(c) + 0x60) if 0x3041 <= ord(c) <= 0x3096 else c for c in _IDN_TLDS)


_EMAIL_IDN = re.compile(
    rf"(?<![a-z0-9!#$%&'*+/=?^_`{{|}}~.-]){_LOCAL}{_AT}{_ULABEL}(?:{_DOT}{_ULABEL})*"
    rf"{_DOT}(?:[a-z]{{2,24}}(?![a-z0-9-])|{_katakana_tlds()})"
)


_EMAIL_EAI = re.compile(  # a local part in Japanese and a real @: 山田@example.jp, 山田@例え.jp
    rf"(?<![a-z0-9.])[^\W\d_a-z]{{1,20}}[ ]*[@＃#][ ]*(?:{_ALABEL}(?:\.{_ALABEL})*\.[a-z]{{2,24}}(?![a-z0-9-])"
    rf"|{_ULABEL}(?:\.{_ULABEL})*\.(?:[a-z]{{2,24}}(?![a-z0-9-])|{_katakana_tlds()}))"
)


# A mailbox at a provider everybody knows, without its domain: "taro at gmail", "taro.yamada@docomo".
_AT_PROVIDER = re.compile(
    r"(?<![a-z0-9._+-])[a-z0-9._+-]{3,64}[ ]*(?:@|[ ]at[ ]|アットマーク|アット)[ ]*"
    r"(?:gmail|googlemail|yahoo|ymail|docomo|ezweb|softbank|icloud|hotmail|ジーメール|ヤフー|ドコモ)(?![a-z])"
)


# An address read out in kana (やまだアットマークジーメールドットコム, ヤマダ アット イグザンプル ドット ジェーピー):
# a mailbox, "at", a host in kana or letters and a domain said as one (ドット コム, ドット ジェーピー ...); or a
# mailbox at a provider everybody knows (やまだアットジーメール).
_KANA_WORD = r"(?:(?!アット|ドット)[\u30a1-\u30fa\u30fc]){2,24}"
_SPOKEN_LABEL = rf"(?:{_KANA_WORD}|[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?)"
_SPOKEN_AT = r"[ ]*[(（\[【「]?[ ]*(?:アットマーク|アット|@|at ?mark|[ ]at[ ])[ ]*[)）\]】」]?[ ]*"
_SPOKEN_DOT = r"[ ]*(?:ドット|ドッド|ピリオド|\.|。)[ ]*"
_SPOKEN_TLD = (
    r"(?:コム|ジェーピー|ジェイピー|ジェーピ|ジェイピ|ネット|オルグ|オーアールジー|インフォ|ビズ|エーシー|シーオー|ジーオー|"
    r"オーアール|エヌイー|エルジー|エドゥ|イーディーユー|アイオー|ミー|ジーピー|[a-z]{2,24}(?![a-z0-9]))"
)
_SPOKEN_PROVIDERS = (
    r"ジーメール|ジーメイル|グーグルメール|ヤフー|ドコモ|アイクラウド|ホットメール|アウトルック|イーズウェブ|ソフトバンク|エーユー|"
    r"gmail|yahoo|docomo|icloud|hotmail|outlook|ezweb|softbank"
)
_EMAIL_SPOKEN = re.compile(
    rf"(?:{_KANA_WORD}|[\u4e00-\u9fff々]{{1,6}}|[a-z0-9._+-]{{1,64}}){_SPOKEN_AT}"
    rf"(?:{_SPOKEN_LABEL}(?:{_SPOKEN_DOT}{_SPOKEN_LABEL})*?{_SPOKEN_DOT}{_SPOKEN_TLD}|(?:{_SPOKEN_PROVIDERS}))"
)


def _email_findings(t: str) -> list[_Found]:
    if not any(x in t for x in ("@", "#", "★", "☆", "◎", "at", "(a)", "アット")):
        return []
    found: list[_Found] = [_Found("email", m.start(), m.end()) for m in _AT_PROVIDER.finditer(t)]
    if any(x in t for x in ("アット", "ドット", "@", "mark")):
        found.extend(_Found("email", m.start(), m.end()) for m in _EMAIL_SPOKEN.finditer(t))
    for regex in (_EMAIL_ASCII, _EMAIL_IDN, _EMAIL_EAI):
        for m in regex.finditer(t):
            start = m.start()
            while start < m.end() and t[start] == ".":
                start += 1
            found.append(_Found("email", start, m.end()))
    if not found and "@" in t:
        # a real @ between a local part and a host is an address however the rest is spelled
        # (taro@gmail, taro@example,jp, taro@@example..jp, "taro yamada"@example.jp, taro@[192.0.2.1])
        found.extend(_Found("email", m.start(), m.end()) for m in _AT_HOST.finditer(t))
    if not found and "@" in t:
        # letter-spaced: "t a r o @ e x a m p l e . j p" (a space between every character)
        for m in _SPACED.finditer(t):
            if "@" in m.group() and _EMAIL_ASCII.search(m.group().replace(" ", "")):
                found.append(_Found("email", m.start(), m.end()))
        # or another sign between every character: "t-a-r-o-@-e-x-a-m-p-l-e-.-j-p", "t_a_r_o_@_..."
        for m in _SIGN_SPACED.finditer(t):
            if "@" in m.group() and _EMAIL_ASCII.search(m.group()[:: len(m.group(1)) + 1]):
                found.append(_Found("email", m.start(), m.end()))
    return found


_AT_HOST = re.compile(
    r"(?<![a-z0-9._+-])(?:[a-z0-9._+-]{1,64}|\"[^\"\n]{1,64}\")(?:\([^()\n]{0,40}\))?[ ]?@+[ ]?(?:\([^()\n]{0,40}\))?"
    r"(?:[a-z][a-z0-9-]{1,62}(?:[.,]+[a-z0-9-]{1,62})*|\[[0-9a-f.:]{3,45}\])"
)
_SPACED = re.compile(r"(?<![^ ])(?:[a-z0-9@._+\-][ ]{1,3}){5,}[a-z0-9]")
_SIGN_SPACED = re.compile(r"[a-z0-9@.]([-_*/|・,~])(?:[a-z0-9@.]\1){4,}[a-z0-9]")


# --------------------------------------------------------------------------------------------
# Full names with an honorific
# --------------------------------------------------------------------------------------------

# A visitor is a ticket number, a gender and an age band: a full name (family name AND given
# name) with an honorific (山田太郎様, 佐藤 花子さん, 鈴木一郎殿) is refused. A family name alone
# (「山田さんに交代」「鈴木様」) identifies nobody and passes, as does a title (田中部長さん).
_SURNAMES = str.split(
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 渡部 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 "
    "斉藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 村上 遠藤 "
    "青木 坂本 斉木 福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田 中川 松田 竹内 小野 田村 中山 和田 "
    "石田 森田 上田 原 柴田 酒井 工藤 横山 宮崎 宮本 内田 高木 安藤 谷口 大野 丸山 今井 高田 藤本 武田 "
    "村田 上野 杉山 増田 平野 大塚 千葉 久保 松井 小島 岩崎 桜井 野口 松尾 野村 木下 菊地 菊池 佐野 大西 "
    "杉本 新井 浜田 菅原 市川 水野 小松 島田 古川 小山 高野 西田 菅野 山内 服部 川口 渡邊 齋藤 髙橋 "
    "北村 五十嵐 福島 吉川 平田 安田 中西 川崎 大橋 飯田 辻 本田 久保田 吉村 関 荒木 宮田 松岡 大久保"
)
_HONORIFIC = "様|サマ|サン|殿|ドノ|氏|君|クン|チャン"  # (the text is read with hiragana as katakana)
_TITLES = (
    "部長|課長|係長|社長|所長|区長|市長|町長|村長|局長|室長|店長|院長|会長|議員|先生|主任|理事|代表|"
    "委員|職員|担当|係|家|一家|夫妻|夫人|両氏|様方|サン|クン|チャン|サマ|区役所|市役所|事務所"
)
_GIVEN = r"(?:[\u4e00-\u9fff々]{1,3}|[\u30a1-\u30fa\u30fc]{2,5})"
_FULL_NAME = re.compile(
    rf"(?:{'|'.join(sorted(_SURNAMES, key=len, reverse=True))})[ ]?(?!(?:{_TITLES}))({_GIVEN})[ ]?(?:{_HONORIFIC})"
)
# The same names in kana (やまだ たろう様, ヤマダタロウさん: the text is read with hiragana as
# katakana) and in Latin letters (Yamada Taro sama).
_SURNAMES_ROMAJI = str.split(
    "sato suzuki takahashi tanaka ito watanabe yamamoto nakamura kobayashi kato yoshida yamada sasaki "
    "yamaguchi matsumoto inoue kimura hayashi saito shimizu yamazaki mori ikeda hashimoto abe ishikawa "
    "yamashita nakajima ishii ogawa maeda okada hasegawa fujita goto kondo murakami endo aoki sakamoto "
    "fukuda ota nishimura fujii kaneko okamoto fujiwara nakano miura harada nakagawa matsuda takeuchi ono "
    "tamura nakayama wada ishida morita ueda hara shibata sakai kudo yokoyama miyazaki miyamoto uchida "
    "takagi ando taniguchi ohno maruyama imai takada fujimoto takeda murata ueno sugiyama masuda chiba"
)
_SURNAMES_KANA = str.split(
    "サトウ スズキ タカハシ タナカ イトウ ワタナベ ヤマモト ナカムラ コバヤシ カトウ ヨシダ ヤマダ ササキ "
    "ヤマグチ マツモト イノウエ キムラ ハヤシ サイトウ シミズ ヤマザキ イケダ ハシモト イシカワ ヤマシタ "
    "ナカジマ イシイ オガワ マエダ オカダ ハセガワ フジタ ゴトウ コンドウ ムラカミ エンドウ アオキ サカモト "
    "フクダ オオタ ニシムラ フジイ カネコ オカモト フジワラ ナカノ ミウラ ハラダ ナカガワ マツダ タケウチ "
    "タムラ ナカヤマ ワダ イシダ モリタ ウエダ シバタ サカイ クドウ ヨコヤマ ミヤザキ ミヤモト ウチダ"
)
_KANA_NAME = re.compile(
    rf"(?:(?<![\u30a1-\u30fa\u30fc])|(?<=[ハガノヲニトモデヘ]))(?:{'|'.join(sorted(_SURNAMES_KANA, key=len, reverse=True))})"
    rf"[ ]?(?!(?:{_TITLES}))([\u30a1-\u30fa]{{2,5}}?)[ ]?(?:様|サマ|サン|殿|ドノ|氏|君|クン|チャン)"
)
_ROMAJI_NAME = re.compile(
    rf"(?<![a-z])(?:{'|'.join(_SURNAMES_ROMAJI)})(?:[ ]+|-)([a-z]{{2,12}})[ -]?(?:sama|san|sensei|kun|chan|dono|様|サマ|サン|殿)(?![a-z])"
)
_NOT_GIVEN = re.compile(
    rf"(?:{_TITLES})$|[所課係局部室店社院会庁署館校県市区町村屋長様者員方客園駅堂寺宮港組団協省府]$"
)


# A name after a label that says it is one (氏名：東海林太郎, お名前は佐藤花子, 申請者 山田太郎): any
# kanji name, a kana name with a family name of the list, a romaji one; and a family name of the list
# with a two-character given name ending the way given names do (山田太郎, 佐藤花子, 木村拓哉) without
# an honorific; in romaji, Mr./Ms. before two words, or a family name of the list beside a common
# given name (Taro Yamada, YAMADA Taro).
_NAME_LABEL = r"(?:氏名|オ名前|名前|フルネーム|本名|申請者名|来庁者名|相談者名|契約者名|オ客様名|(?<![a-z])(?:full )?name(?=[ ]?[:：]))"
_LABEL_SEP = r"(?:[ ]?[:：][ ]?|ハ[ ]?|[ ])"
_NOT_A_NAME = re.compile(
    r"欄|記入|確認|変更|入力|不明|誤|漏|未|等|無|省略|非|伺|控|聞|書|読|登録|照合|一致|相違|訂正|表示|印字|項目|漢字|"
    r"手続|申請|届|証明|本人|自署|署名|記載|欄外|同|旧|新|以外|以下|以上|全角|半角|必須|任意|空白|空欄|済|可|要|者|方|部|課|係"
)
_LABELLED_KANJI = re.compile(
    rf"{_NAME_LABEL}{_LABEL_SEP}([\u4e00-\u9fff々]{{1,4}}[ ]?[\u4e00-\u9fff々]{{1,4}})(?![\u4e00-\u9fff々])"
    # (a name ends the phrase: 「お名前は佐藤花子です」, not 「お名前は記録せず」)
    r"(?=$|[ 、。,.)）」』\]\n/・(（]|デス|デシタ|サン|サマ|様|殿|氏|ト(?:イウ|申|言))"
)
_COUNTED = re.compile(
    r"^[〇一二三四五六七八九十百千万億数多少全各]|[名人件枚回組歳才代円]$"
)  # 百二十三名, 多数: no name
_GIVEN_END = "郎子美恵介助夫雄彦也哉輝翔奈香菜乃太樹斗男咲衣花音葵蓮結愛希紀江枝織絵穂帆吾治司志博弘亮徹誠隆剛"
_BARE_NAME = re.compile(
    rf"(?<![\u4e00-\u9fff々])(?:{'|'.join(sorted(_SURNAMES, key=len, reverse=True))})[ ]?"
    rf"([\u4e00-\u9fff々][{_GIVEN_END}])(?![\u4e00-\u9fff々])"
)
_GIVEN_ROMAJI = str.split(
    "taro jiro saburo ichiro hanako yuko keiko kenji hiroshi takashi akira makoto kazuo yuki yumi naoko tomoko "
    "sachiko kazuko michiko hiroko yoko junko emi mai yui haruto sota yuto ren hinata mio koharu kenta shota "
    "daiki takuya naoki satoshi tetsuya masaki kaori megumi ayumi akiko noriko kenichi shinji osamu minoru "
    "tsuyoshi hideki yoshiko kyoko yukiko mariko masao tadashi"
)
_ROMAJI_BARE = re.compile(
    rf"(?<![a-z])(?:(?:mr|ms|mrs|dr)\. ?[a-z]{{2,12}} [a-z]{{2,15}}"
    rf"|(?:{'|'.join(_GIVEN_ROMAJI)}) (?:{'|'.join(_SURNAMES_ROMAJI)})|(?:{'|'.join(_SURNAMES_ROMAJI)}),? (?:{'|'.join(_GIVEN_ROMAJI)}))(?![a-z])"
)
_LABELLED_OTHER = re.compile(
    rf"{_NAME_LABEL}{_LABEL_SEP}(?:(?:{'|'.join(sorted(_SURNAMES_KANA, key=len, reverse=True))})[ ]?[\u30a1-\u30fa\u30fc]{{2,6}}"
    rf"|(?:{'|'.join(_SURNAMES_ROMAJI)}),? [a-z]{{2,12}}(?![a-z])|[a-z]{{2,12}} (?:{'|'.join(_SURNAMES_ROMAJI)})(?![a-z]))"
)


# Any two words in kana with a space between and an honorific after (しょうじ たろうさま, おおにし はなこさん):
# a family and a given name written as they are read, whether or not the family name is on the list.
_KANA_PAIR = re.compile(
    r"(?<![\u30a1-\u30fa\u30fc])([\u30a1-\u30fa\u30fc]{2,6})[ ]([\u30a1-\u30fa\u30fc]{2,5}?)[ ]?(?:様|サマ|サン|殿|ドノ|クン|チャン)"
)
_NOT_KANA_NAME = {"ミナ", "ミンナ", "オ客", "ゴ家族", "オキャク", "ミナミナ", "オ父", "オ母", "ミナサ"}


# A family name in kanji that is on no list (鰐淵, 勅使河原, 小鳥遊) and a given name in kana: with an honorific
# (鰐淵はなこ様, 小鳥遊 ゆうき さん), or without one when the kana is a common given name (鰐淵 はなこ). Words
# before an honorific that are no name (近所のこどもさん, 係のみなさん, 窓口のおねえさん) pass.
_KANJI_KANA_HONORIFIC = re.compile(
    r"(?<![\u4e00-\u9fff々])([\u4e00-\u9fff々]{2,4})([ ]?)([\u30a1-\u30fa\u30fc]{2,5}?)[ ]?"
    r"(?:様|サマ|サン|殿|ドノ|氏|クン|チャン)"
)
_GIVEN_KANA = str.split(
    "ハナコ タロウ ジロウ サブロウ イチロウ シロウ ハナエ ユウコ ケイコ ヨウコ ジュンコ ナオコ トモコ サチコ カズコ ミチコ "
    "ヒロコ アキコ ノリコ マリコ ヨシコ キョウコ ユキコ エツコ ミツコ ヤスコ ヒデコ ノブコ フミコ レイコ マサコ ハルコ "
    "ユウスケ ケンスケ ダイスケ シュンスケ コウスケ リョウスケ ケンタ ショウタ ソウタ ユウタ コウタ ハルト ユウト "
    "ソウマ タクミ タクヤ ダイキ ナオキ カズキ ヒロキ マサキ ユウキ トモヤ テツヤ カズヤ ヒロシ タカシ サトシ キヨシ "
    "マサシ アツシ ツヨシ タケシ ヒデキ マサオ カズオ ノブオ ヤスオ テツオ アキオ ナオミ マユミ アユミ メグミ カオリ "
    "サオリ ユカリ アカネ サヤカ アヤカ ハルカ ハルナ ミサキ コハル ツムギ ユウナ ミユキ"
)
_GIVEN_KANA_RE = re.compile("|".join(sorted(_GIVEN_KANA, key=len, reverse=True)))
_KANJI_KANA_BARE = re.compile(
    rf"(?<![\u4e00-\u9fff々])([\u4e00-\u9fff々]{{2,4}})[ ]?(?:{_GIVEN_KANA_RE.pattern})"
    r"(?![\u30a1-\u30fa\u30fc](?<![ガハノニヲトモデヘ]))"
)
# kanji words that stand before a person's word without being a family name
_NOT_FAMILY = re.compile(
    rf"(?:{_TITLES})$|[所課係局部室店社院会庁署館校県市区様者員方客駅省府日時分年月週内外中後前]$|"
    r"^(?:担当|職員|窓口|受付|近所|家族|親族|会場|本日|先日|今日|昨日|明日|来庁|相談|申請|対応|案内|確認|連絡|同伴|付添|付キ添|"
    r"息子|娘|奥|旦那|主人|母親|父親|祖母|祖父|孫|兄弟|姉妹|友人|知人|隣人|高齢|男性|女性|子供|子ドモ|赤|皆|各|全員|一同|利用|市民|区民|住民)"
)
_NOT_GIVEN_KANA = re.compile(
    r"^(?:コドモ|ムスメ|ムスコ|ダンナ|アカ|ボッ|ジョウ|ミナ|ミンナ|カンゴシ|センセイ|ジイ|バア|ニイ|ネエ|オク|ヨメ|ムコ|"
    r"ジイチャン|バアチャン|オバ|オジ|アネ|アニ|イモウト|オトウト|カゾク|ミナミナ|ヒト|カタ|ミナサ|オキャク)$|^[ゴオ]|カタ$"
)


# A family name of the list and a common given name in kana, without an honorific (ヤマダ タロウ, 高橋 さくら).
_LISTED_KANA_GIVEN = re.compile(
    rf"(?<![\u4e00-\u9fff々\u30a1-\u30fa\u30fc])(?:{'|'.join(sorted(_SURNAMES + _SURNAMES_KANA, key=len, reverse=True))})"
    rf"[ ]?(?:{_GIVEN_KANA_RE.pattern}|サクラ|ヒナタ|アオイ|ユキ|アキラ|マコト|ヒカル|メイ|リン|レン|ミオ|エミ|ユイ|ユミ|ミキ|ヒナ|ミユ)"
    r"(?![\u30a1-\u30fa\u30fc](?<![ガハノニヲトモデヘ]))"
)


def _kanji_kana_names(text: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _KANJI_KANA_HONORIFIC.finditer(text):
        family, space, given = m.group(1), m.group(2), m.group(3)
        if _NOT_FAMILY.search(family) or _NOT_GIVEN_KANA.search(given) or family in _SURNAMES:
            continue
        if given.endswith("ー") and m.group().endswith("ドノ"):
            continue  # 在留カードの確認: カード and the particle の, not a given name and 殿
        if not space and given[0] in "ノハガヲニヘトデモヤ" and not _GIVEN_KANA_RE.fullmatch(given):
            continue  # 近所のこどもさん, 本日はみなさま: a particle, not a given name
        found.append(_Found("name", m.start(), m.end()))
    for m in _KANJI_KANA_BARE.finditer(text):
        if not _NOT_FAMILY.search(m.group(1)):
            found.append(_Found("name", m.start(), m.end()))
    return found


# Family names written with numerals (四月一日 わたぬき, 八月一日 ほずみ, 九十九 つくも, 五月女 さおとめ) read as dates or
# numbers; with a given name and an honorific they are a full name (四月一日 はなこ様, 四月一日花子さん).
_NUMERAL_FAMILY = (
    r"(?:[一二三四五六七八九十]{1,2}月[一二三四五六七八九十]{1,3}日|[一二三四五六七八九十]{1,2}月朔日|九十九|五月女|一二三|七五三|"
    r"十八女|百目鬼|二十八日|十二月田|一寸木|八月朔日)"
)
_GIVEN_KANJI = rf"[\u4e00-\u9fff々]?[{_GIVEN_END}]"
_NUMERAL_NAME = re.compile(
    rf"(?<![\u4e00-\u9fff々0-9]){_NUMERAL_FAMILY}[ ]?(?:({_GIVEN_KANA_RE.pattern})|({_GIVEN_KANJI}))[ ]?"
    r"(?:様|サマ|サン|殿|ドノ|氏|クン|チャン)"
)
# A family name in kana on no list with a common given name (ワニブチ ハナコ, わにぶち はなこ), a kana name run together
# with an honorific (ワニブチハナコさん), and a kanji family name on no list with a two-character given name ending as
# given names do, with an honorific (鰐淵花子さん, 勅使河原 美咲様).
_KANA_FAMILY_GIVEN = re.compile(
    rf"(?<![\u30a1-\u30fa\u30fc])([\u30a1-\u30fa\u30fc]{{2,6}})[ ・=](?:{_GIVEN_KANA_RE.pattern})"
    r"(?![\u30a1-\u30fa\u30fc](?<![ガハノニヲトモデヘ]))"
)
# a family name of the list in kana, a space and any kana word that may be a given name (ヤマダ ミドリ, タナカ ケイスケ)
_LISTED_KANA_ANY = re.compile(
    rf"(?<![\u30a1-\u30fa\u30fc])(?:{'|'.join(sorted(_SURNAMES_KANA, key=len, reverse=True))})[ ・]"
    r"([\u30a1-\u30fa]{2}[\u30a1-\u30fa\u30fc]{0,3})(?![\u30a1-\u30fa\u30fc](?<![ガハノニヲトモデヘ]))"
)
_KANA_RUN_GIVEN = re.compile(
    rf"(?<![\u30a1-\u30fa\u30fc])([\u30a1-\u30fa\u30fc]{{2,6}}?)(?:{_GIVEN_KANA_RE.pattern})[ ]?"
    r"(?:様|サマ|サン|殿|ドノ|クン|チャン)"
)
_KANJI_GIVEN_HONORIFIC = re.compile(
    rf"(?<![\u4e00-\u9fff々])([\u4e00-\u9fff々]{{2,4}}?)[ ]?([\u4e00-\u9fff々][{_GIVEN_END}])[ ]?(?:様|殿|氏|サン|サマ|ドノ)"
)
_NOT_KANJI_GIVEN = re.compile(
    r"^(?:上司|夫|親子|母子|妻子|息子|女子|男子|弟子|菓子|様子|調子|帽子|椅子|電子|原子|利子|王子|太子|"
    r"長男|次男|三男|彼女|夫婦|工夫|丈夫|大夫|水夫|農夫|漁夫|"
    r"部長|議員|教授|技師|医師|記者)$"
)


# A kanji family name on no list and a kanji given name beside an age (鰐淵花子（75歳）, 鰐淵 花子 75歳, 75歳 鰐淵花子).
_AGED_NAME = re.compile(
    rf"(?<![\u4e00-\u9fff々])([\u4e00-\u9fff々]{{2,4}}?)[ ]?([\u4e00-\u9fff々][{_GIVEN_END}])(?=[ ]?[(（]?[ ]?[0-9]{{1,3}}[ ]?[歳才])"
    rf"|(?<=[歳才])[ ]?(?:ノ|[)）、,])?[ ]?([\u4e00-\u9fff々]{{2,4}}?)[ ]?([\u4e00-\u9fff々][{_GIVEN_END}])(?![\u4e00-\u9fff々])"
)


# A kanji family name on no list and a common given name, alone (鰐淵花子, 勅使河原 美咲): the given names are whole
# names that are no ordinary word (花子, 一郎, 美咲; not 誠, 勝利, 光, which are words too), the family name two to four
# kanji that stand alone (no 窓口, 本日, no office or counter before the given name).
_GIVEN_KANJI_NAMES = str.split(
    "花子 太郎 次郎 二郎 三郎 一郎 四郎 五郎 健太郎 幸太郎 和子 幸子 洋子 恵子 裕子 直子 智子 典子 順子 久美子 由美子 "
    "真由美 明美 由美 恵美 美咲 結衣 陽菜 美穂 香織 沙織 優子 節子 悦子 清子 芳子 文子 弘子 敏子 美智子 千代子 "
    "和夫 正男 正夫 秀樹 健太 翔太 大輔 浩二 達也 拓也 直樹 一輝 陽翔 悠真 結菜 "
    "浩之 博之 雅之 隆之 和也 哲也 裕太 康夫 英樹 智也 亮太 美香 由香 里美 愛美"
)  # (not 健一, 真一, 大樹, 京子: 保健一課, 写真一枚, 大樹 a tree, 東京子ども会)
_BARE_RARE_NAME = re.compile(
    r"(?<![\u4e00-\u9fff々])([\u4e00-\u9fff々]{2,4})[ ]?"
    rf"({'|'.join(sorted(_GIVEN_KANJI_NAMES, key=len, reverse=True))})"
    r"(?![\u4e00-\u9fff々])"
)


# A family name with an honorific and the given name in brackets after it (鈴木様（一郎）, はなこ様（鰐淵）), and a common given
# name before a family name of the list (一郎 鈴木).
_GIVEN_ANY = rf"(?:{'|'.join(sorted(_GIVEN_KANJI_NAMES, key=len, reverse=True))}|{_GIVEN_KANA_RE.pattern}|[\u4e00-\u9fff々][{_GIVEN_END}])"
_BRACKETED_NAME = re.compile(
    rf"(?<![\u4e00-\u9fff々])(?:([\u4e00-\u9fff々]{{1,4}})[ ]?(?:様|サマ|サン|殿|ドノ|氏)[ ]?[(（][ ]?{_GIVEN_ANY}[ ]?[)）]"
    rf"|{_GIVEN_ANY}[ ]?(?:様|サマ|サン|殿|ドノ|氏)[ ]?[(（][ ]?([\u4e00-\u9fff々]{{2,4}})[ ]?[)）]"
    rf"|{_GIVEN_ANY}[ ]?[(（][ ]?([\u4e00-\u9fff々]{{2,4}})[ ]?[)）][ ]?(?:様|サマ|サン|殿|ドノ|氏))"  # (花子（鰐淵）様)
)
_GIVEN_FIRST_KANJI = re.compile(
    rf"(?<![\u4e00-\u9fff々])(?:{'|'.join(sorted(_GIVEN_KANJI_NAMES, key=len, reverse=True))})[ ]"
    rf"(?:{'|'.join(sorted(_SURNAMES, key=len, reverse=True))})(?![\u4e00-\u9fff々])"
)


def _bracketed_name_ok(m: re.Match[str]) -> bool:
    family = m.group(1) or m.group(2) or m.group(3)
    return not (_NOT_FAMILY.search(family) or _NOT_A_NAME.search(family) or _COUNTED.search(family))


# A name in kana run together, without a space or an honorific (ワニブチハナコ, わにぶちはなこ): a kana run of its own
# that ends in a common given name of three kana or more after two to six kana.
_KANA_RUN_BARE = re.compile(
    r"(?<![\u30a1-\u30fa\u30fc])([\u30a1-\u30fa][\u30a1-\u30fa\u30fc]{1,5}?)"
    rf"({'|'.join(sorted((g for g in _GIVEN_KANA if len(g) >= 3), key=len, reverse=True))})"
    r"(?![\u30a1-\u30fa\u30fc](?<![ガハノニヲトモデヘ]))"
)


def _kana_run_ok(m: re.Match[str]) -> bool:
    family = m.group(1)
    return not (
        family.startswith(("オ", "ゴ"))
        or family in _NOT_KANA_NAME
        or _NOT_GIVEN_KANA.search(family)
        or family[-1] in "ノハガヲニトモデヘ"
        or family[0] in "ァィゥェォッャュョヮー"
    )


def _bare_rare_name_ok(m: re.Match[str]) -> bool:
    family = m.group(1)
    return not (
        _NOT_FAMILY.search(family) or _NOT_A_NAME.search(family) or _COUNTED.search(family) or family in _SURNAMES
    )


def _aged_name_ok(m: re.Match[str]) -> bool:
    family, given = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if _NOT_FAMILY.search(family) or _NOT_KANJI_GIVEN.match(given) or _NOT_GIVEN.search(given):
        return False
    return not (_NOT_A_NAME.search(family + given) or _COUNTED.search(family))


# A common given name in romaji (5 letters or more) beside another word: Hanako Wanibuchi, WANIBUCHI Hanako.
_LONG_GIVEN_ROMAJI = tuple(g for g in _GIVEN_ROMAJI if len(g) >= 5)
_ROMAJI_GIVEN_ANY = (  # (given name first, family name first: two passes, so that 「desk hanako wanibuchi」 finds both)
    re.compile(rf"(?<![a-z])(?:{'|'.join(_LONG_GIVEN_ROMAJI)})[ -]([a-z]{{4,14}})(?![a-z])"),
    re.compile(rf"(?<![a-z])([a-z]{{4,14}}),?[ -](?:{'|'.join(_LONG_GIVEN_ROMAJI)})(?![a-z])"),
)
_NOT_ROMAJI_FAMILY = frozenset(
    str.split(
        "from with this that have will your card desk name call sent mail said told came went wants asked visit "
        "about after before into only also back here there when then they them were what called calls phone "
        "thanks dear hello"
    )
)


def _romaji_ok(m: re.Match[str]) -> bool:
    return m.group(1) not in _NOT_ROMAJI_FAMILY


_KANA_PAIR_HINT = re.compile(r"[\u30a1-\u30fa\u30fc][ ・=][\u30a1-\u30fa]")
_LONG_GIVEN_HINT = re.compile("|".join(_LONG_GIVEN_ROMAJI))
_HONORIFIC_HINT = re.compile(r"様|サン|殿|ドノ|氏|クン|チャン|サマ")


def _rare_names(text: str) -> list[_Found]:
    found: list[_Found] = []
    if _KANA_PAIR_HINT.search(text):
        for m in _KANA_FAMILY_GIVEN.finditer(text):
            family = m.group(1)
            if family not in _NOT_KANA_NAME and not _NOT_GIVEN_KANA.search(family) and not family.endswith("ー"):
                found.append(_Found("name", m.start(), m.end()))
        for m in _LISTED_KANA_ANY.finditer(text):
            given = m.group(1)
            if (
                given not in _NOT_KANA_NAME
                and not _NOT_GIVEN_KANA.search(given)
                and given[0] not in "ノハガヲニトモデヘ"
            ):
                found.append(_Found("name", m.start(), m.end()))
    if any(c in text for c in "歳才") and _AGED_NAME.search(text):
        found.extend(_Found("name", m.start(), m.end()) for m in _AGED_NAME.finditer(text) if _aged_name_ok(m))
    if (" " in text or "-" in text) and _LONG_GIVEN_HINT.search(text):
        for regex in _ROMAJI_GIVEN_ANY:
            found.extend(_Found("name", m.start(), m.end()) for m in regex.finditer(text) if _romaji_ok(m))
    found.extend(_Found("name", m.start(), m.end()) for m in _BARE_RARE_NAME.finditer(text) if _bare_rare_name_ok(m))
    if " " in text:
        found.extend(_Found("name", m.start(), m.end()) for m in _GIVEN_FIRST_KANJI.finditer(text))
    found.extend(_Found("name", m.start(), m.end()) for m in _KANA_RUN_BARE.finditer(text) if _kana_run_ok(m))
    if "(" in text and _HONORIFIC_HINT.search(text):  # (the text is read with （ as "(")
        found.extend(
            _Found("name", m.start(), m.end()) for m in _BRACKETED_NAME.finditer(text) if _bracketed_name_ok(m)
        )
    if not _HONORIFIC_HINT.search(text):
        return found  # (the other forms need an honorific)
    if any(c in text for c in "月九五一七十百二八"):
        for m in _NUMERAL_NAME.finditer(text):
            if m.group(2) is None or m.group(2) not in _SURNAMES:
                found.append(_Found("name", m.start(), m.end()))
    for m in _KANA_RUN_GIVEN.finditer(text):
        family = m.group(1)
        if (
            not family.startswith(("オ", "ゴ"))
            and family not in _NOT_KANA_NAME
            and family[-1] not in "ノハガヲニトモデヘ"
        ):
            found.append(_Found("name", m.start(), m.end()))
    for m in _KANJI_GIVEN_HONORIFIC.finditer(text):
        family, given = m.group(1), m.group(2)
        if _NOT_FAMILY.search(family) or _NOT_KANJI_GIVEN.match(given) or _NOT_GIVEN.search(given):
            continue
        if _NOT_A_NAME.search(family + given) or _COUNTED.search(family):
            continue
        found.append(_Found("name", m.start(), m.end()))
    return found


# A name given in two labelled parts (姓：鰐淵 名：花子, 姓は鰐淵、名は花子, 名字 鰐淵 名前 はなこ, お名前はワニブチさん、
# 下の名前はハナコさん).
_NAME_PART = r"([\u4e00-\u9fff々\u30a1-\u30fa\u30fc]{1,6}?)(?:サン|様|サマ)?"
_PART_SEP = r"(?:[ ]?[:：][ ]?|[ ]?ハ[ ]?|[ ])"
_SPLIT_NAME = re.compile(
    rf"(?:姓|名字|苗字|ミョウジ|セイ|オ名前|名前)(?![\u4e00-\u9fff])(?<!ノ名前){_PART_SEP}{_NAME_PART}[ 、,。]+[^。\n]{{0,6}}?"
    rf"(?:名|名前|下ノ名前|メイ)(?![\u4e00-\u9fff]){_PART_SEP}{_NAME_PART}(?=$|[ 、,。\n)）」』'\"]|デス)"
)


def _split_names(text: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _SPLIT_NAME.finditer(text):
        family, given = m.group(1), m.group(2)
        if any(_NOT_A_NAME.search(w) or _COUNTED.search(w) for w in (family, given)):
            continue
        found.append(_Found("name", m.start(), m.end()))
    return found


def _name_findings(text: str) -> list[_Found]:
    found: list[_Found] = _kanji_kana_names(text) + _rare_names(text)
    if "名" in text or "姓" in text:
        found.extend(_split_names(text))
    for m in _KANA_PAIR.finditer(text):
        given = m.group(2)  # (おにいさん, おきゃくさま, ごかぞくさま, つれのかたさま: words with an honorific)
        if given not in _NOT_KANA_NAME and not given.startswith(("ゴ", "オ")) and not given.endswith("カタ"):
            found.append(_Found("name", m.start(), m.end()))
    for m in _LABELLED_KANJI.finditer(text):
        words = m.group(1)
        if not _NOT_A_NAME.search(words) and not _COUNTED.search(words) and words.strip() not in _SURNAMES:
            found.append(_Found("name", m.start(1), m.end()))
    for m in _BARE_NAME.finditer(text):
        given = m.group(1)
        if not _NOT_GIVEN.search(given) and given not in _SURNAMES and not _NOT_A_NAME.search(given):
            found.append(_Found("name", m.start(), m.end()))  # (藤井 金子: two family names; 山田 記入: a word)
    found.extend(_Found("name", m.start(), m.end()) for m in _LISTED_KANA_GIVEN.finditer(text))
    for regex in (_ROMAJI_BARE, _LABELLED_OTHER):
        found.extend(_Found("name", m.start(), m.end()) for m in regex.finditer(text))
    for m in _FULL_NAME.finditer(text):
        given = m.group(1)
        if _NOT_GIVEN.search(given):
            continue
        found.append(_Found("name", m.start(), m.end()))
    for regex in (_KANA_NAME, _ROMAJI_NAME):
        for m in regex.finditer(text):
            if not _NOT_GIVEN.search(m.group(1)):
                found.append(_Found("name", m.start(), m.end()))
    return found


# --------------------------------------------------------------------------------------------
# Home addresses
# --------------------------------------------------------------------------------------------

# A street address down to the house (…丁目3-4, …1番12号, 永田町1-6-1) is refused when it is
# someone's home: a room or a building name after it (サンハイツ203号室, 山田方), or a word that
# says so before it (自宅, 在住, 住所は). The addresses of public places pass (区役所, 図書館,
# センター ... in the same sentence), as do postal codes and addresses without such a sign: the
# ward offices' own addresses are written every day at a desk.
_N = r"[0-9〇一二三四五六七八九十百千]{1,5}"
_HOUSE = rf"(?:{_N}丁目(?:{_N}(?:番地?|-|ノ|の){_N}(?:号)?|{_N}番地?)|{_N}番地?{_N}号?|{_N}番地|{_N}-{_N}(?:-{_N})?)"
# (between the place and the house number only place names: kanji and numbers, no particle or
# word in kana: 「市の手続き1-2」 is no address)
_STREET = re.compile(rf"(?:都|道|府|県|市|区|町|村|郡|条|通)[\u4e00-\u9fff々〇ヶ0-9 -]{{0,24}}?{_HOUSE}(?![0-9])")
_BUILDING = (
    r"マンション|ハイツ|コーポ|アパート|メゾン|レジデンス|ハイム|荘|パレス|ヴィラ|テラス|コート|キャッスル|シャトー|"
    r"ガーデン|ハウス|グランド|ライオンズ|パーク|団地|寮|住宅"
)
_ROOM = rf"(?:{_N}号室|{_N}室|#[0-9]{{1,4}}|room ?[0-9]{{1,4}})"
_HOME_AFTER = re.compile(
    rf"[ ]?(?:[^。\n、,]{{0,16}}?(?:{_BUILDING})[^。\n、,0-9]{{0,10}}?[ ]?(?:{_ROOM}|[0-9]{{2,4}}(?![0-9]))"
    rf"|-?{_ROOM}|[\u4e00-\u9fff]{{1,4}}方(?![面法向針式])|[ ]?(?:ニ|デ)?(?:住ン|住ム|在住|暮ラ)|[ ]?ノ?(?:自宅|住マイ|実家))"
)
_HOME_BEFORE = re.compile(r"自宅|在住|住所[はハ:： ]|ゴ住所|現住所|オ住マイ|住ンデ|住ム|居住|実家|住民票ノ住所")
_PUBLIC = re.compile(
    r"区役所|市役所|役場|庁舎|本庁|センター|図書館|郵便局|警察|消防|駅|学校|病院|公民館|出張所|支所|会館|ホール|体育館|"
    r"公園|事務所|会場|窓口|庁|博物館|美術館|記念館|ビル"
)


def _sentence_of(t: str, start: int, end: int) -> str:
    a = max(t.rfind(c, 0, start) for c in "。\n!?！？") + 1
    ends = [k for k in (t.find(c, end) for c in "。\n!?！？") if k >= 0]
    return t[a : min(ends) if ends else len(t)]


# A full street address with nothing saying whose (東京都世田谷区桜丘2-3-4, 〒060-0001 札幌市中央区北1条西3丁目4-5) is
# read as a home: a city, ward, town or village named before a house number of two or three levels. The addresses
# desks write of public places pass: a public place named in the sentence (区役所, センター, 会場 ...), or the postal
# code of an organisation (事業所の個別郵便番号: its last four digits 8000-9999, 〒060-8611). So do a date or a count
# after a place name (札幌市 2021-04-05, 北区 3-4件).
_HOUSE_LEVELS = re.compile(rf"(?:{_N}丁目{_N}|{_N}番地?{_N}|{_N}-{_N})(?:号|番地?|-{_N}|ノ{_N}|の{_N})?$")
_ORG_POSTAL = re.compile(r"(?:〒|郵便番号)[ :：]*[0-9]{3} ?-? ?[89][0-9]{3}[^。\n]{0,20}$")
_DATE_LIKE = re.compile(r"(?:19|20)[0-9]{2}-[0-9]{1,2}-[0-9]{1,2}$|[0-9]{1,2}-[0-9]{1,2}-(?:19|20)[0-9]{2}$")


def _bare_home(t: str, m: re.Match[str]) -> bool:
    street = m.group()
    house = _HOUSE_LEVELS.search(street)
    if house is None or not any(c in street[: house.start()] for c in "市区町村郡"):
        return False
    if _DATE_LIKE.search(street) or _COUNTER.match(t, m.end()):
        return False
    return not _ORG_POSTAL.search(t, max(0, m.start() - 40), m.start() + 1)


def _address_findings(t: str) -> list[_Found]:
    found: list[_Found] = _postal_findings(t) if any(c in t for c in "〒便zZ") else []
    if not any(c in t for c in "丁目番号-条ノ"):
        return found
    found.extend(_bare_house_findings(t))
    for m in _STREET.finditer(t):
        sentence = _sentence_of(t, m.start(), m.end())
        if _PUBLIC.search(sentence):
            continue
        after = _HOME_AFTER.match(t, m.end())
        before = _HOME_BEFORE.search(t, max(0, m.start() - 30), m.start())
        if after or (before and before.start() >= t.rfind("。", 0, m.start())) or _bare_home(t, m):
            found.append(_Found("address", m.start(), after.end() if after else m.end()))
    # down to the block only (札幌市中央区北1条西2丁目 在住, 自宅は○○区□□3丁目): someone's home when said so
    for m in _BLOCK.finditer(t):
        if _PUBLIC.search(_sentence_of(t, m.start(), m.end())):
            continue
        after = _HOME_AFTER.match(t, m.end())
        before = _HOME_BEFORE.search(t, max(0, m.start() - 30), m.start())
        clause = max(t.rfind(c, 0, m.start()) for c in "。、,，\n")  # (「市内在住の方、北区3丁目周辺」: an area)
        if (after and not after.group().lstrip(" -").startswith(("号", "室"))) or (before and before.start() > clause):
            found.append(_Found("address", m.start(), after.end() if after else m.end()))
    return found


_BLOCK = re.compile(
    rf"(?:市|区|町|村|郡)[\u4e00-\u9fff々〇ヶ0-9 -]{{0,24}}?{_N}(?:丁目|条)(?![0-9〇一二三四五六七八九十西東南北])"
)


# A postal code (〒060-0001, 郵便番号 ０６０－０００１, 〒〇六〇ー〇〇〇一) narrows a home down to a few streets: refused,
# unless it is an organisation's own (事業所の個別郵便番号: last four digits 8000-9999, 〒060-8611) or a public place
# is named in the sentence (区役所 〒060-0042).
_POSTAL_CODE = re.compile(
    rf"(?:〒|郵便番号|ユウビンバンゴウ|postal code|zip(?: ?code)?)(?:[ :：]*(?:ハ|ガ|ヲ|デ|ニ))?[ :：]*"
    rf"({_PD}(?:[ ]?{_PD}){{2}})[ ]?[-ー]?[ ]?({_PD}(?:[ ]?{_PD}){{3}})(?!{_PD})"  # (letter-spaced too: 〒 1 0 0 - 0 0 0 1)
)


def _postal_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _POSTAL_CODE.finditer(t):
        if _KANJI_DIGIT.get(m.group(2)[0], m.group(2)[0]) in "89":
            continue  # an organisation's own postal code
        if _PUBLIC.search(_sentence_of(t, m.start(), m.end())):
            continue
        found.append(_Found("address", m.start(), m.end(), "postal_code"))
    return found


# A house number without the city before it is a home address when it has three levels (一丁目2番3号,
# 北1条西2丁目3-4, 6丁目1-1-203), or 番地 with a further number (4番地12, 北7条西2丁目8番地), or 番 and 号 (2番3号),
# or a room after it (3番地5号室); 1-2-3 and 1の2の3 only with a sign that it is a home (自宅は1の2の3,
# 1の2の3に住んでいる). Not: a public place named in the sentence (区役所は1丁目2番3号), a count after it.
_HOUSE_ALONE = re.compile(
    rf"(?<![0-9〇一二三四五六七八九十百千])(?:{_N}(?:丁目|チョウメ)[ ]?{_N}(?:番地?|-|ノ){_N}(?:号|番地?)?(?:-{_N})?"
    rf"|(?:{_N}条[東西南北]?)?{_N}丁目{_N}番地|{_N}番地(?:ノ)?{_N}(?:号)?|{_N}番{_N}号(?!機|車|線|窓口|棟|館|炉))"
    rf"(?![0-9〇一二三四五六七八九十百千])"
)
_DIGITS_HOUSE = re.compile(
    rf"(?<![0-9〇一二三四五六七八九十百千.:/])(?:{_N}丁目)?{_N}(?:-|ノ|番地?ノ?){_N}(?:(?:-|ノ){_N})?(?:号)?(?![0-9〇一二三四五六七八九十百千.:/])"
)


# A residence's name with a room number (マンション札幌 305号室, 〇〇ハイツ2号棟101号室): a home, without the street.
_RESIDENCE_ROOM = re.compile(
    rf"(?:マンション|ハイツ|コーポ|アパート|メゾン|レジデンス|ハイム|荘|団地|寮|ヴィラ|パレス|シャトー|キャッスル)"
    rf"[^。\n、,0-9]{{0,12}}?[ ]?(?:{_N}号棟[ ]?)?{_N}号室"
)


def _bare_house_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    if "号室" in t:
        found.extend(_Found("address", m.start(), m.end()) for m in _RESIDENCE_ROOM.finditer(t))
    for m in _HOUSE_ALONE.finditer(t) if ("丁目" in t or "番" in t or "チョウメ" in t) else ():
        if _ORG_POSTAL.search(t, max(0, m.start() - 40), m.start() + 1):
            continue  # 〒060-8611 札幌市中央区北1条西2丁目1番地: an organisation's address
        if _PUBLIC.search(_sentence_of(t, m.start(), m.end())) or _COUNTER.match(t, m.end()):
            if not t.startswith(("号室", "室"), m.end()):
                continue
        after = _HOME_AFTER.match(t, m.end())
        found.append(_Found("address", m.start(), after.end() if after else m.end()))
    if not any(c in t for c in "-ノ番") or not _HOME_HINT.search(t):
        return found
    for m in _DIGITS_HOUSE.finditer(t):
        if _PUBLIC.search(_sentence_of(t, m.start(), m.end())) or _DATE_LIKE.search(m.group()):
            continue
        if sum(c.isdigit() or c in _KANJI_DIGIT for c in m.group()) >= 10:
            continue  # a phone number or a My Number (read as one above), not a house: 0000-0000-0001に住ん…
        if _COUNTER.match(t, m.end()) and not t.startswith(("号室", "室"), m.end()):
            continue
        after = _HOME_AFTER.match(t, m.end())
        # (the sign right before the number, and a number of three levels: 「自宅に帰って市の手続き1-2」 is no address)
        before = _HOME_BEFORE.search(t, max(0, m.start() - 12), m.start()) or _CARE_OF.search(t, 0, m.start())
        right_before = before is not None and _SIGN_GAP.fullmatch(t, before.end(), m.start()) is not None
        levels = len(re.findall(_N, m.group()))
        if (after and not after.group().lstrip(" -").startswith(("号", "室"))) or (right_before and levels >= 3):
            found.append(_Found("address", m.start(), after.end() if after else m.end()))
    return found


_HOME_HINT = re.compile(rf"住|自宅|方|居|実家|室|暮|{_BUILDING}")
_CARE_OF = re.compile(r"[\u4e00-\u9fff々]方[ ]?$")  # 山田方 2-3-4
_SIGN_GAP = re.compile(r"[ ]?(?:ハ|ガ|ノ|:|：|デ|ニ)?[ :：]?")


# --------------------------------------------------------------------------------------------
# Dates of birth
# --------------------------------------------------------------------------------------------

# A full date (year, month and day; Western, 和暦 with the era in kanji or as a letter, 元年, kanji
# numerals) said to be someone's birth date: a label before it (生年月日, 誕生日, DOB, born) or 生まれ /
# 生 right after it. A date alone is a date: an opening day, a deadline.
_KN = "〇一二三四五六七八九十零壱弐参肆伍陸漆捌玖拾廿卅"  # (and 大字: 昭和四拾五年三月弐日)
_ERA = r"(?:明治|大正|昭和|平成|令和|(?<![\u4e00-\u9fff])[明大昭平令](?=[0-9元〇一二三四五六七八九十])|(?<![a-z])[mtshr]\.? ?)"
_BIRTH_YEAR = rf"(?:{_ERA}(?:[0-9]{{1,2}}|元|[{_KN}]{{1,3}})|(?<![0-9])(?:19|20)[0-9]{{2}}|'[0-9]{{2}}|[一][九八][{_KN}]{{2}}|[二][〇][{_KN}]{{2}})"
_BIRTH_MD = rf"(?:[0-9]{{1,2}}|[{_KN}]{{1,3}})"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_BIRTH_DATE = re.compile(
    rf"{_BIRTH_YEAR} ?(?:年 ?(?:[(（][^)）\n]{{1,10}}[)）] ?)?{_BIRTH_MD} ?月 ?{_BIRTH_MD} ?日|[./\-・] ?{_BIRTH_MD} ?[./\-・] ?{_BIRTH_MD}(?![0-9]))"
    rf"|(?<![0-9])(?:19|20)[0-9]{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?![0-9])"
    rf"|(?<![0-9])[0-9]{{1,2}} ?[./\-] ?[0-9]{{1,2}} ?[./\-] ?(?:19|20)[0-9]{{2}}(?![0-9])"
    rf"|(?<![a-z]){_MONTHS} ?[0-9]{{1,2}},? ?(?:19|20)[0-9]{{2}}(?![0-9])"
    rf"|(?<![0-9])[0-9]{{1,2}} ?{_MONTHS} ?(?:19|20)[0-9]{{2}}(?![0-9])"
)
_BIRTH_BEFORE = re.compile(
    r"生年月日|セイネンガッピ|タンジョウビ|誕生日|誕生|生マレ|生レ|出生|生年|d\.?o\.?b|date of birth|birth ?date|birthday|born"
)
# (only particles, separators or the calendar's name between the label and the date: 「生年月日は昭和50年…」,
# 「DOB: 1975-01-01」, not 「誕生日月キャンペーンは2021年4月1日から」)
_BIRTH_GAP = re.compile(
    r"[ :：、,=(（\[]*(?:ハ|ガ|ヲ|デ|ニ|on|is)?[ :：、,]*(?:[(（\[]?(?:西暦|和暦)[)）\]]?)?[ :：]*$"
)
_BIRTH_AFTER = re.compile(r"[ ]?(?:ニ|ノ)?(?:生マレ|生レ|生(?![\u4e00-\u9fff])|誕生|出生|生誕|born)")


_SHORT_YMD = re.compile(r"(?<![0-9./\-])[0-9]{2} ?([./\-]) ?[0-9]{1,2} ?\1 ?[0-9]{1,2}(?![0-9./\-])")
_OLD_ERA = re.compile(rf"(?:明治|大正|昭和|s\.? ?)(?:[0-9]{{1,2}}|元|[{_KN}]{{1,3}}) ?(?:年|[./\-])")


def _birth_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _BIRTH_DATE.finditer(t):
        before = t[max(0, m.start() - 24) : m.start()]
        labels = list(_BIRTH_BEFORE.finditer(before))
        said = bool(labels) and _BIRTH_GAP.match(before[labels[-1].end() :]) is not None
        # (a full date of the 明治, 大正 or 昭和 era at a desk today is somebody's birth date: 昭和50年1月2日, S50.1.2)
        if said or _BIRTH_AFTER.match(t, m.end()) or _OLD_ERA.match(m.group()):
            found.append(_Found("birth_date", m.start(), m.end()))
    # (every form below has a label or 生まれ after it: 生, 誕, dob, born, birth)
    said_of_birth = any(w in t for w in ("生", "誕", "セイネン", "タンジョウ", "b"))
    for m in _SHORT_YMD.finditer(t) if said_of_birth and ("/" in t or "." in t or "-" in t) else ():
        # (a year of two digits without its era, 生年月日 50/5/5: a birth date only when said to be one)
        before = t[max(0, m.start() - 24) : m.start()]
        labels = list(_BIRTH_BEFORE.finditer(before))
        if (labels and _BIRTH_GAP.match(before[labels[-1].end() :])) or _BIRTH_AFTER.match(t, m.end()):
            found.append(_Found("birth_date", m.start(), m.end()))
    if not found and said_of_birth and ("月" in t or "/" in t):
        found.extend(_split_birth_findings(t))
    return found


# A birth date told in two phrases: the year, then the month and day (生年月日は昭和50年、…5月5日です; 昭和50年生まれ、
# 5月5日), or the other way round (誕生日は5月5日、昭和50年; 5月5日生まれの昭和50年). The first part stands right after
# the label (or 生まれ right after it), the second within a few phrases after. A year or a month and a day alone
# is no birth date (昭和50年生まれの方, 誕生日は5月5日), nor is a date after a label it does not belong to
# (生年月日の記入漏れ、令和3年4月1日に再来庁).
_SPLIT_YEAR = re.compile(rf"{_BIRTH_YEAR} ?(?:年(?! ?{_BIRTH_MD} ?月|代|度|間|前|後|目|以|頃)|(?=[ 、,。]))")
_SPLIT_MD = re.compile(
    rf"(?<![0-9年/\-])(?<![0-9]\.){_BIRTH_MD} ?(?:月 ?{_BIRTH_MD} ?日|/ ?{_BIRTH_MD}(?![0-9/]))"
    r"(?![ ]?(?:カラ|マデ|迄|ヨリ|以降|以前|以後|ニ(?!生)|ヘ|頃|締|期限|開始|受付|予定|付ケ|付|分|時点|現在))"
)  # (4月1日から申請可, 4月1日に再確認: a day of the desk, not of a birth)
_SPLIT_REACH = 30
_SHORT_GAP = re.compile(r"[ 、,・]*(?:ノ|デ|ハ|ガ)?[ 、,・]*")


def _split_birth_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    anchors: list[tuple[int, int]] = []  # (start of the label or the part, where the first part must begin)
    for label in _BIRTH_BEFORE.finditer(t):
        anchors.append((label.start(), label.end()))
    for first_re, second_re in ((_SPLIT_YEAR, _SPLIT_MD), (_SPLIT_MD, _SPLIT_YEAR)):
        for start, at in anchors:
            first = first_re.search(t, at, at + 12)
            if first is None or _BIRTH_GAP.match(t[at : first.start()]) is None:
                continue
            window = t[first.end() : first.end() + _SPLIT_REACH].split("\n\n")[0]
            second = second_re.search(window)
            if second is not None:
                found.append(_Found("birth_date", start, first.end() + second.end()))
                continue
            # (1975年生まれ、誕生日は5月5日: the other part before the label)
            lo = max(0, start - _SPLIT_REACH)
            earlier = [m for m in second_re.finditer(t, lo, start) if "\n\n" not in t[m.end() : start]]
            if earlier:
                found.append(_Found("birth_date", earlier[-1].start(), first.end()))
        # 昭和50年生まれ、5月5日 / 5月5日生まれ、昭和50年
        for first in first_re.finditer(t):
            born = _BIRTH_AFTER.match(t, first.end())
            if born is None:
                continue
            gap = _SHORT_GAP.match(t, born.end())
            second = second_re.match(t, gap.end() if gap else born.end())
            if second is not None:
                found.append(_Found("birth_date", first.start(), second.end()))
    return found


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------

_WHAT_JA: dict[str, str] = {
    "my_number": "12桁の数字（個人番号の可能性が高い）",
    "twelve_digits": "12桁以上の数字の並び（個人番号の可能性あり）",
    "phone": "電話番号と思われる数字",
    "email": "メールアドレス",
    "name": "氏名（姓と名）と思われる記述",
    "address": "自宅の住所と思われる記述",
    "birth_date": "生年月日と思われる記述",
}
_WHAT_EN: dict[str, str] = {
    "my_number": "a 12-digit number (very likely an Individual Number / My Number)",
    "twelve_digits": "a run of 12 or more digits (possibly an Individual Number / My Number)",
    "phone": "what looks like a phone number",
    "email": "an e-mail address",
    "name": "what looks like a person's full name",
    "address": "what looks like a home address",
    "birth_date": "what looks like a date of birth",
}
# Findings of a kind that the kind's own words do not describe: (Japanese, English)
_WHAT_DETAIL: dict[str, tuple[str, str]] = {
    "my_number_part": ("個人番号の一部と思われる数字", "what looks like a part of an Individual Number / My Number"),
    "id_number": (
        "保険証・免許証・口座などの番号と思われる数字",
        "what looks like the number of a health-insurance card, licence, account or similar",
    ),
    "postal_code": ("郵便番号（住所の一部）", "a postal code (part of an address)"),
    "masked": (
        "一部を伏せた個人番号と思われる数字",
        "what looks like an Individual Number / My Number with digits masked",
    ),
    "masked_phone": ("一部を伏せた電話番号と思われる数字", "what looks like a phone number with digits masked"),
    "encoded": (
        "符号化（Base64 など）された個人情報と思われる文字列",
        "what looks like personal data encoded (Base64)",
    ),
}
KIND_JA = {
    "my_number": "個人番号",
    "twelve_digits": "12桁以上の数字",
    "phone": "電話番号",
    "email": "メールアドレス",
    "name": "氏名",
    "address": "住所",
    "birth_date": "生年月日",
}
_PRIORITY = {"my_number": 0, "twelve_digits": 1, "phone": 2, "email": 3, "name": 4, "address": 5, "birth_date": 6}


@dataclass(frozen=True)
class Finding:
    """Personal data found in a text: what kind, and where (offsets in the original text)."""

    kind: Kind  # my_number = 12 digits with a valid check digit; name = a full name with an honorific
    start: int  # offset in the original text
    end: int
    what: str = field(default="", compare=False)  # a closer name for the message: a key of _WHAT_DETAIL

    def describe(self) -> str:
        """Japanese; says what and where (1-based character position), never the value."""
        what = _WHAT_DETAIL[self.what][0] if self.what else _WHAT_JA[self.kind]
        return f"{what}が {self.start + 1} 文字目にあります"

    def describe_en(self) -> str:
        """English, for the second half of the message; never the value."""
        what = _WHAT_DETAIL[self.what][1] if self.what else _WHAT_EN[self.kind]
        return f"{what} at character {self.start + 1} (offset {self.start})"


_MAX_LISTED = 10


class PersonalDataFound(ValueError):
    """Free text contains personal data. str(exc): Japanese, then English; never the value."""

    findings: list[Finding]

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        super().__init__(_message(self.findings))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.findings,))


def _message(findings: list[Finding]) -> str:
    shown, rest = findings[:_MAX_LISTED], len(findings) - _MAX_LISTED
    ja = [
        "自由記述に個人情報と思われる内容が含まれているため、保存しませんでした。"
        "個人番号（マイナンバー）・電話番号・メールアドレス・ご自宅の住所は、漢数字・かな・記号を交えた書き方でも記録できません"
        "（お名前は記録せず、受付番号で記録してください）。"
        "該当箇所を削除してから、もう一度入力してください。",
        *(f"・{f.describe()}" for f in shown),
    ]
    en = [
        "Personal data was found in the free text, so it was not stored. Individual Numbers "
        "(My Number), phone numbers and e-mail addresses must not be recorded, however they are "
        "spelled; remove them and try again.",
        *(f"- {f.describe_en()}" for f in shown),
    ]
    if rest > 0:
        ja.append(f"・ほか {rest} 件")
        en.append(f"- and {rest} more")
    if any(f.kind == "twelve_digits" for f in findings):
        ja.append("（日付や時刻が続いている場合は「2021年4月1日 8:45」のように年月日や「:」を使って書いてください。）")
        en.append("(If this is a date and a time, write them with 年月日 and ':', e.g. 2021年4月1日 8:45.)")
    return "\n".join([*ja, *en])


# Numbers with some digits masked (1234-****-9012, XXXX-XXXX-1234, 090-××××-5678): the digits left are a part of a My
# Number or of a phone number said to be one by the card's or the number's shape. Refused when four digits or more of
# it are shown; a shape with nothing shown (XXXX-XXXX-XXXX, 090-XXXX-XXXX) identifies nobody and passes.
_MASK = "*x×●■□#?※"
_POS = f"[0-9{re.escape(_MASK)}]"
_MASKED = re.compile(
    rf"(?<![0-9a-z{re.escape(_MASK)}])(?:({_POS}{{4}})([ -]?)({_POS}{{4}})\2({_POS}{{4}})"
    rf"|(0[0-9]{{1,2}})([ -]?)({_POS}{{4}})\6({_POS}{{4}}))(?![0-9a-z{re.escape(_MASK)}])"
)


def _masked_findings(t: str) -> list[_Found]:
    found: list[_Found] = []
    for m in _MASKED.finditer(t):
        shown = m.group(0)
        if not any(c in _MASK for c in shown):
            continue
        if m.group(1) is not None:
            if sum(c.isdigit() for c in shown) >= 4:
                found.append(_Found("my_number", m.start(), m.end(), "masked"))
        elif sum(c.isdigit() for c in m.group(7) + m.group(8)) >= 4:
            found.append(_Found("phone", m.start(), m.end(), "masked_phone"))
    return found


# Base64 (MTIzNDU2Nzg5MDEy, dGFyb0BleGFtcGxlLmpw) is read as the text it encodes when that is text: random bytes
# and ordinary identifiers (hashes, UUIDs, words run together) do not decode to UTF-8 text.
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{12,4000}={0,2}(?![A-Za-z0-9+/=_-])")


def _base64_text(token: str) -> str | None:
    body = token.rstrip("=").replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1 or body.isdigit() or (body.isalpha() and (body.islower() or body.isupper())):
        return None  # (not base64; a number or a word read as itself)
    try:
        decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if len(decoded) < 6 or not all(c.isprintable() or c in "\n\t " for c in decoded):
        return None
    return decoded


def _encoded_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for m in _BASE64.finditer(text):
        decoded = _base64_text(m.group())
        if decoded is not None:
            inner = find_personal_data(decoded)
            if inner:
                found.append(Finding(inner[0].kind, m.start(), m.end(), "encoded"))
    return found


def find_personal_data(text: str) -> list[Finding]:
    """All personal data in ``text``, sorted by start; findings inside another one are dropped."""
    if not text:
        return []
    norm = normalize(text)
    t = norm.text
    raw = (
        _number_findings(t)
        + _labelled_my_number(t)
        + (_id_number_findings(t) if any(c.isdigit() or c in _KANJI_DIGIT for c in t) else [])
        + _email_findings(t)
        + _name_findings(t)
        + _address_findings(t)
        + _birth_findings(t)
        + (_masked_findings(t) if any(c in _MASK for c in t) else [])
    )
    candidates: list[Finding] = []
    for f in raw:
        start, end = norm.span(f.start, f.end)
        candidates.append(Finding(f.kind, start, end, f.what))
    if len(text) >= 12:
        candidates.extend(_encoded_findings(text))
    candidates.sort(key=lambda f: (f.start, -f.end, _PRIORITY[f.kind]))
    kept: list[Finding] = []
    reach = -1
    for f in candidates:
        if f.end <= reach:  # contained in a finding kept before (which starts no later)
            continue
        if kept and f.start < reach:  # overlapping: keep the stronger one
            if _PRIORITY[f.kind] < _PRIORITY[kept[-1].kind] and f.kind != "twelve_digits":
                kept[-1] = f
                reach = f.end
            continue
        kept.append(f)
        reach = f.end
    return kept


def phone_digits(text: str) -> str | None:
    """The digits of ``text`` when it is exactly one phone number (``0312345678``,
    ``+819012345678``), however it is spelled; None otherwise."""
    stripped = text.strip()
    findings = find_personal_data(stripped)
    if len(findings) != 1 or findings[0].kind != "phone":
        return None
    rest = stripped[: findings[0].start] + stripped[findings[0].end :]
    if any(c not in "()（） " for c in rest):
        return None
    tokens = _tokens(normalize(stripped).text)
    digits = "".join(tok.digits for tok in tokens)
    if normalize(stripped).text.lstrip(" (").startswith("+"):
        if digits.startswith("810"):
            digits = "81" + digits[3:]
        return "+" + digits
    return digits


def check_free_text(text: str) -> str:
    """Return ``text`` unchanged, or raise PersonalDataFound (which never contains the value)."""
    findings = find_personal_data(text)
    if findings:
        raise PersonalDataFound(findings)
    return text


# --------------------------------------------------------------------------------------------
# The pydantic type
# --------------------------------------------------------------------------------------------

# pydantic puts the input into every validation error (str(ValidationError) shows input_value,
# errors() carries "input", FastAPI sends it back in 422 bodies). So FreeText screens the raw
# input FIRST, before the length check (whose error would echo the text too), and on a refusal
# hands the next step of a chain a redacted stand-in: the error is raised on the stand-in, so the
# error's input is the stand-in, never the text.
_REDACTED = "［個人情報を含むため表示しません / redacted: contains personal data］"


class _RefusedInput(str):
    findings: list[Finding]


# Longer than any free-text field may be: refused without being read. The guard reads text in the event loop, and a
# request body is not bounded before it: a 1 MB opinion (50,000 times 「1 」) held the desk service for 30 s and more
# before its length was looked at.
MAX_SCREENED = 2000
_TOO_LONG = f"［{MAX_SCREENED} 文字を超えるため表示しません / longer than {MAX_SCREENED} characters］"


class _TooLongInput(str):
    pass


def _screen(value: Any) -> Any:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_SCREENED:
        return _TooLongInput(_TOO_LONG)
    findings = find_personal_data(text)
    if not findings:
        return value
    stand_in = _RefusedInput(_REDACTED)
    stand_in.findings = findings
    return stand_in


def _refuse(value: Any) -> Any:
    if isinstance(value, _RefusedInput):
        raise PersonalDataFound(value.findings)
    if isinstance(value, _TooLongInput):
        raise PydanticCustomError(
            "string_too_long",
            "自由記述は {max_length} 文字までです。短くしてから、もう一度入力してください。"
            " / String should have at most {max_length} characters",
            {"max_length": MAX_SCREENED},
        )
    return value


class _ScreenBeforeValidation:
    """Annotated marker: run the personal-data screen before the rest, without echoing input."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = handler(source)
        return core_schema.chain_schema(
            [
                # JSON schema: the first step of a chain documents the input, so point it at str
                core_schema.no_info_plain_validator_function(_screen, json_schema_input_schema=inner),
                core_schema.no_info_plain_validator_function(_refuse),
                inner,
            ]
        )

    def __repr__(self) -> str:
        return "ScreenBeforeValidation()"


# For event and request fields: the marker runs the check (check_free_text) first and keeps the text out of the
# ValidationError. (An AfterValidator(check_free_text) beside it read every free text a second time.)
FreeText = Annotated[
    str,
    StringConstraints(max_length=MAX_SCREENED),
    _ScreenBeforeValidation(),
]


# --------------------------------------------------------------------------------------------
# Ids a person types (a seat, an instruction's id)
# --------------------------------------------------------------------------------------------


def _id_without_personal_data(value: str) -> str:
    if sum(c.isdigit() for c in value) >= 10 and find_personal_data(value):
        raise ValueError("IDに個人番号・電話番号と思われる数字は使えません（例: seat-3, s-2021-04）。")
    return value


# An id typed by a person and recorded in events (a seat number, a city instruction's id): the same
# characters as an event's Ident, never a My Number or a phone number.
TypedIdent = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"), AfterValidator(_id_without_personal_data)
]


# --------------------------------------------------------------------------------------------
# Several free-text fields of one request, read together
# --------------------------------------------------------------------------------------------


def _is_free_text_field(info: FieldInfo) -> bool:
    return "ScreenBeforeValidation()" in repr(info.annotation) + repr(info.metadata)


@functools.cache
def _free_text_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of a model class's FreeText fields, found once per class (the repr of each field's
    annotation cost 7 us a request on a one-field body, every request of the calls API: issue 19)."""
    return frozenset(name for name, info in model.model_fields.items() if _is_free_text_field(info))


def free_text_values(model: BaseModel) -> list[str]:
    """Every FreeText value of a pydantic model, nested models and lists included, in field order."""
    out: list[str] = []
    free_text = _free_text_fields(type(model))
    for name in type(model).model_fields:
        value: object = getattr(model, name, None)
        items: Sequence[object] = value if is_sequence(value) else [value]
        for item in items:
            if isinstance(item, str):
                if name in free_text:
                    out.append(item)
            elif isinstance(item, BaseModel):
                out.extend(free_text_values(item))
    return out


def check_fields_together(model: Any) -> Any:
    """A number split over two fields of one request (notes 「1234 5678」, an opinion 「9018」) is one
    number: the free-text fields are read again joined as one sentence. Use as an after-validator of
    a request model; raises PersonalDataFound, which never holds the value."""
    texts = free_text_values(model)
    # Each text alone has been read; what is left is a number across the joins: each join is read with up to 200
    # characters either side, up to three texts (a number in three pieces), so twenty opinions of 2,000 characters
    # are not read again as one text of 42,000.
    for i in range(len(texts) - 1):
        # (joined by a space, which separates digits and words alike: 「1234 5678」+「9018」 is one number,
        # 「鰐淵」+「はなこ様」 and 「山田」+「太郎」 are one name)
        window = " ".join([texts[i][-200:], *(t[:200] for t in texts[i + 1 : i + 3])])
        findings = find_personal_data(window)
        if findings:
            raise PersonalDataFound(findings)
    return model
