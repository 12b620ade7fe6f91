"""The personal-data guard for free text (opinions, summaries, call notes).

Architecture rule: free text is scanned before anything is stored, and refused when it contains

* a run of 12 digits (half-width 0-9 or full-width ０-９), possibly separated by spaces or
  hyphens. About 1 in 11 random 12-digit strings passes the My Number (個人番号) check digit,
  so the check digit never decides *whether* to refuse, only how sure the refusal is
  (kind ``my_number`` when it passes, ``twelve_digits`` otherwise);
* a phone number (Japanese domestic or +81 forms);
* an e-mail address.

Error messages say WHAT was found and WHERE, never the digits or the address themselves.

Decisions on edge cases (see also the comments at the patterns below):

* Digits are every Unicode decimal digit (０-９ and other scripts), folded to 0-9 one character
  for one character, so offsets in the folded text are offsets in the original text.
* Between two digits of a run there may be up to ``_MAX_GAP`` separator characters: horizontal
  spaces (half/full-width, tabs, no-break and zero-width spaces) and hyphens/dashes of any kind
  (-, ‐, ‑, –, —, ―, −, ー, ｰ, －, ...). Line breaks, ``/ : . , 〜 ～`` and letters break a run, so
  "2021-04-01 8:45", "2021/4/1", "令和3年4月1日", "5,000円" and "8時45分" pass.
* A run with 12 or more digits is refused; exactly 12 with a valid check digit is ``my_number``,
  anything else (12 with a wrong check digit, 13 or more digits, which contain a 12-digit run)
  is ``twelve_digits``.
* Deliberately, a date and a time written only with spaces/hyphens, such as "2021 04 01 0845" or
  "2021-04-01 0845", ARE 12 digits separated by spaces/hyphens and are refused: the architecture
  says any such run is refused, and nothing distinguishes "2021 0401 0845" from a My Number
  grouped 4-4-4. The message then suggests writing dates and times with 年月日 and ":".
* Findings contained in another finding are dropped (e.g. the 12 digits of "+81 90 1234 5678"
  are reported once, as a phone number; a phone number inside a longer 12+ digit run is
  reported as the run).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, GetCoreSchemaHandler, StringConstraints
from pydantic_core import CoreSchema, core_schema

__all__ = [
    "FreeText",
    "Finding",
    "PersonalDataFound",
    "check_free_text",
    "find_personal_data",
    "is_valid_my_number",
    "my_number_check_digit",
    "normalize_digits",
]

Kind = Literal["my_number", "twelve_digits", "phone", "email"]

# --------------------------------------------------------------------------------------------
# Folding (always one character for one character, so offsets stay aligned)
# --------------------------------------------------------------------------------------------

# Any decimal digit that is not ASCII: full-width ０-９, but also Arabic-Indic, Devanagari, ...
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")


def normalize_digits(text: str) -> str:
    """Full-width (and any other Unicode decimal) digits -> half-width 0-9; same length."""
    if text.isascii():
        return text
    return _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)


# Full-width ASCII variants (！..～, including ＋ ＠ （ ） ． and Ａ-ｚ) -> ASCII; 　 -> space.
_FOLD_ASCII = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def _fold(text: str) -> str:
    return normalize_digits(text).translate(_FOLD_ASCII)


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
# Patterns
# --------------------------------------------------------------------------------------------

# Separators allowed inside a digit run: horizontal spaces (no line breaks: a line break ends a
# run), zero-width characters (an easy way to hide a number), and every hyphen/dash/minus/long
# vowel mark people type between digit groups. Not the wave dash 〜/～ (ranges: "8:45〜17:15").
_SPACES = " \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u200b-\u200d\u2060\ufeff"
_HYPHENS = (
    "\\-\u00ad\u058a\u1806\u2010-\u2015\u2043\u2212\u2500\u2501\u2e3a\u2e3b"
    "\u30fc\ufe58\ufe63\uff0d\uff70"
)
_SEP = f"[{_SPACES}{_HYPHENS}]"
# At most this many separator characters between two digits ("1234 - 5678" has 3). A wider gap
# is taken as two separate numbers.
_MAX_GAP = 3
_DIGIT_RUN = re.compile(f"[0-9](?:{_SEP}{{0,{_MAX_GAP}}}[0-9])*")

# Phone numbers may also use parentheses and dots: (011)123-4567, 03(1234)5678, 03.1234.5678,
# +81 (0)90 1234 5678. A cluster is a run of digit groups joined by such separators, with an
# optional "+" in front; phone numbers are then looked for among contiguous groups.
_PHONE_SEP = f"(?:{_SEP}|[().])"
_PHONE_CLUSTER = re.compile(f"\\+?[0-9](?:{_PHONE_SEP}{{0,{_MAX_GAP}}}[0-9])*")
_GROUP = re.compile("[0-9]+")

# E-mail addresses, on text folded to ASCII (so ＠ and full-width letters count). The local part
# is ASCII only, so Japanese text right before an address is not taken into it. "@" may also be
# written (at), [at], (アット), (アットマーク). The domain must have a dot and an alphabetic TLD,
# so "単価@500円" and "user@localhost" pass.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    "(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
    "[ \t]*(?:@|[(\\[][ \t]*(?:at|アット(?:マーク)?)[ \t]*[)\\]])[ \t]*"
    f"{_LABEL}(?:\\.{_LABEL})*\\.[A-Za-z]{{2,63}}(?![A-Za-z0-9-])",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------

_WHAT_JA: dict[str, str] = {
    "my_number": "12桁の数字（個人番号の可能性が高い）",
    "twelve_digits": "12桁以上の数字の並び（個人番号の可能性あり）",
    "phone": "電話番号と思われる数字",
    "email": "メールアドレス",
}
_WHAT_EN: dict[str, str] = {
    "my_number": "a 12-digit number (very likely an Individual Number / My Number)",
    "twelve_digits": "a run of 12 or more digits (possibly an Individual Number / My Number)",
    "phone": "what looks like a phone number",
    "email": "an e-mail address",
}
_PRIORITY = {"my_number": 0, "twelve_digits": 1, "phone": 2, "email": 3}


@dataclass(frozen=True)
class Finding:
    """Personal data found in a text: what kind, and where (offsets in the original text)."""

    kind: Kind  # my_number = 12 digits with a valid check digit
    start: int  # offset in the original text
    end: int

    def describe(self) -> str:
        """Japanese; says what and where (1-based character position), never the value."""
        return f"{_WHAT_JA[self.kind]}が {self.start + 1} 文字目にあります"

    def _describe_en(self) -> str:
        return f"{_WHAT_EN[self.kind]} at character {self.start + 1} (offset {self.start})"


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
        "個人番号（マイナンバー）・電話番号・メールアドレスは記録できません。"
        "該当箇所を削除してから、もう一度入力してください。",
        *(f"・{f.describe()}" for f in shown),
    ]
    en = [
        "Personal data was found in the free text, so it was not stored. Individual Numbers "
        "(My Number), phone numbers and e-mail addresses must not be recorded; remove them "
        "and try again.",
        *(f"- {f._describe_en()}" for f in shown),
    ]
    if rest > 0:
        ja.append(f"・ほか {rest} 件")
        en.append(f"- and {rest} more")
    if any(f.kind == "twelve_digits" for f in findings):
        ja.append(
            "（日付や時刻が続いている場合は「2021年4月1日 8:45」のように"
            "年月日や「:」を使って書いてください。）"
        )
        en.append(
            "(If this is a date and a time, write them with 年月日 and ':', e.g. 2021年4月1日 8:45.)"
        )
    return "\n".join([*ja, *en])


def _twelve_digit_findings(folded: str) -> list[Finding]:
    found = []
    for m in _DIGIT_RUN.finditer(folded):
        digits = "".join(c for c in m.group() if "0" <= c <= "9")
        if len(digits) < 12:
            continue
        kind: Kind = "my_number" if is_valid_my_number(digits) else "twelve_digits"
        found.append(Finding(kind, m.start(), m.end()))
    return found


def _is_domestic(groups: list[str]) -> bool:
    """0X-XXXX-XXXX (10 or 11 digits from a leading 0), as 1 to 3 groups."""
    first, last, total = groups[0], groups[-1], sum(map(len, groups))
    if not first.startswith("0") or first.startswith("00") or not 10 <= total <= 11:
        return False
    if len(groups) == 1:
        return True
    if not 2 <= len(first) <= 5:
        return False
    if len(groups) == 2:
        return True
    if len(groups) == 3:
        # 011-123-4567, 03-1234-5678, 090-1234-5678, 0120-123-456 (free dial: 4-3-3)
        return 1 <= len(groups[1]) <= 4 and (len(last) == 4 or (len(last) == 3 and len(first) == 4))
    return False


def _is_international(groups: list[str]) -> bool:
    """+81 forms: +81 90-1234-5678, +81-3-1234-5678, +81 (0)3 1234 5678, +819012345678."""
    first = groups[0]
    if not first.startswith("81"):
        return False
    if first == "81":
        rest = groups[1:]
        if rest and rest[0] == "0":  # the "(0)" some people keep
            rest = rest[1:]
        if not 1 <= len(rest) <= 4:
            return False
        national = "".join(rest)
    elif len(groups) == 1:
        national = first[2:]
    else:
        return False
    national = national.removeprefix("0")
    return 9 <= len(national) <= 10


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _parens_close(folded: str, start: int, end: int) -> bool:
    """Brackets inside a phone number pair up: 03(1234)5678 and (03)1234-5678 are numbers, while in
    "〒010-0000（2019-01-01）" the bracket opens a new phrase and the digits on either side stay apart."""
    inner = folded[start:end]
    if _balanced(inner):
        return True
    return start > 0 and folded[start - 1] == "(" and _balanced("(" + inner)


def _phone_findings(folded: str) -> list[Finding]:
    found = []
    for cluster in _PHONE_CLUSTER.finditer(folded):
        base = cluster.start()
        plus = cluster.group().startswith("+")
        groups = [
            (g.start() + base, g.end() + base, g.group()) for g in _GROUP.finditer(cluster.group())
        ]
        i = 0
        while i < len(groups):
            hit = None
            for j in range(min(len(groups), i + 5) - 1, i - 1, -1):  # longest first
                texts = [g[2] for g in groups[i : j + 1]]
                if i == 0 and plus and _is_international(texts):
                    hit = (base, groups[j][1], j)
                    break
                if _is_domestic(texts) and _parens_close(folded, groups[i][0], groups[j][1]):
                    hit = (groups[i][0], groups[j][1], j)
                    break
            if hit is None:
                i += 1
                continue
            found.append(Finding("phone", hit[0], hit[1]))
            i = hit[2] + 1
    return found


def _email_findings(folded: str) -> list[Finding]:
    found = []
    for m in _EMAIL.finditer(folded):
        start = m.start()
        # a local part cannot start with a dot (keeps "。taro" style punctuation out of the span)
        while folded[start] == ".":
            start += 1
        found.append(Finding("email", start, m.end()))
    return found


def find_personal_data(text: str) -> list[Finding]:
    """All personal data in ``text``, sorted by start; findings inside another one are dropped."""
    folded = _fold(text)
    candidates = _twelve_digit_findings(folded) + _phone_findings(folded) + _email_findings(folded)
    candidates.sort(key=lambda f: (f.start, -f.end, _PRIORITY[f.kind]))
    kept: list[Finding] = []
    reach = -1
    for f in candidates:
        if f.end <= reach:  # contained in a finding kept before (which starts no later)
            continue
        kept.append(f)
        reach = f.end
    return kept


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


def _screen(value: Any) -> Any:
    findings = find_personal_data(value if isinstance(value, str) else repr(value))
    if not findings:
        return value
    stand_in = _RefusedInput(_REDACTED)
    stand_in.findings = findings
    return stand_in


def _refuse(value: Any) -> Any:
    if isinstance(value, _RefusedInput):
        raise PersonalDataFound(value.findings)
    return value


class _ScreenBeforeValidation:
    """Annotated marker: run the personal-data screen before the rest, without echoing input."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = handler(source)
        return core_schema.chain_schema(
            [
                # JSON schema: the first step of a chain documents the input, so point it at str
                core_schema.no_info_plain_validator_function(
                    _screen, json_schema_input_schema=inner
                ),
                core_schema.no_info_plain_validator_function(_refuse),
                inner,
            ]
        )

    def __repr__(self) -> str:
        return "ScreenBeforeValidation()"


# For event and request fields. AfterValidator(check_free_text) is what the type means; the
# marker after it makes the check run first and keeps the text out of the ValidationError.
FreeText = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(check_free_text),
    _ScreenBeforeValidation(),
]
