"""Japanese era dates (和暦) for report headings: 令和3年4月1日（木）.

A city office dates its documents in the Japanese era; reports show both that and the Gregorian
date (issue 7: "Dates shown in both Gregorian and 和暦").

- Eras start on the day the new era began: 令和 2019-05-01, 平成 1989-01-08, 昭和 1926-12-25,
  大正 1912-07-30, 明治 (Gregorian calendar in Japan) 1873-01-01. Earlier dates are refused:
  Japan then used the lunisolar calendar, so a Gregorian date has no plain era date.
- The first year of an era is written 元年 in formal documents (令和元年5月1日); `gannen=False`
  writes the numeric form (令和1年5月1日), which some forms and sorting need.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

__all__ = [
    "ERAS",
    "Era",
    "era_of",
    "wareki_year",
    "to_wareki",
    "weekday_kanji",
    "to_gregorian_ja",
    "heading_date",
    "heading_period",
    "from_wareki",
]


class Era(NamedTuple):
    name: str  # 令和
    romaji: str  # Reiwa
    letter: str  # R (the abbreviation used in forms: R3.4.1)
    start: date


# Newest first, so the first era whose start is not after the date is the right one.
ERAS: tuple[Era, ...] = (
    Era("令和", "Reiwa", "R", date(2019, 5, 1)),
    Era("平成", "Heisei", "H", date(1989, 1, 8)),
    Era("昭和", "Showa", "S", date(1926, 12, 25)),
    Era("大正", "Taisho", "T", date(1912, 7, 30)),
    Era("明治", "Meiji", "M", date(1868, 1, 25)),
)
# Japan adopted the Gregorian calendar on 明治6年1月1日 = 1873-01-01.
GREGORIAN_ADOPTED = date(1873, 1, 1)

_WEEKDAYS = "月火水木金土日"


def _as_date(value: date | datetime) -> date:
    # A datetime is a date too; take its calendar day as given (the caller localises it first).
    return value.date() if isinstance(value, datetime) else value


def era_of(value: date | datetime) -> tuple[Era, int]:
    """The era and the year within it (1 = the first year)."""
    d = _as_date(value)
    if d < GREGORIAN_ADOPTED:
        raise ValueError(f"{d.isoformat()} is before Japan adopted the Gregorian calendar (1873-01-01)")
    for era in ERAS:
        if d >= era.start:
            return era, d.year - era.start.year + 1
    raise AssertionError("unreachable")  # pragma: no cover - 明治 covers everything from 1873


def _year_text(year: int, gannen: bool) -> str:
    return "元" if (year == 1 and gannen) else str(year)


def wareki_year(value: date | datetime, *, gannen: bool = True) -> str:
    """令和3年 / 令和元年."""
    era, year = era_of(value)
    return f"{era.name}{_year_text(year, gannen)}年"


def to_wareki(value: date | datetime, *, gannen: bool = True, weekday: bool = False) -> str:
    """令和3年4月1日; 令和元年5月1日 (gannen=True, the default) or 令和1年5月1日; optional （木）."""
    d = _as_date(value)
    text = f"{wareki_year(d, gannen=gannen)}{d.month}月{d.day}日"
    return f"{text}（{weekday_kanji(d)}）" if weekday else text


def weekday_kanji(value: date | datetime) -> str:
    """木 for a Thursday."""
    return _WEEKDAYS[_as_date(value).weekday()]


def to_gregorian_ja(value: date | datetime, *, weekday: bool = False) -> str:
    """2021年4月1日 (optionally 2021年4月1日（木）)."""
    d = _as_date(value)
    text = f"{d.year}年{d.month}月{d.day}日"
    return f"{text}（{weekday_kanji(d)}）" if weekday else text


def heading_date(value: date | datetime, *, gannen: bool = True) -> str:
    """A report heading's date in both calendars: 令和3年4月1日（木）（2021年4月1日）."""
    d = _as_date(value)
    return f"{to_wareki(d, gannen=gannen, weekday=True)}（{to_gregorian_ja(d)}）"


def heading_period(start: date | datetime, end: date | datetime, *, gannen: bool = True) -> str:
    """令和3年4月1日（木）～令和3年4月7日（水）（2021年4月1日～2021年4月7日）."""
    s, e = _as_date(start), _as_date(end)
    return (
        f"{to_wareki(s, gannen=gannen, weekday=True)}～{to_wareki(e, gannen=gannen, weekday=True)}"
        f"（{to_gregorian_ja(s)}～{to_gregorian_ja(e)}）"
    )


def from_wareki(era_name: str, year: int, month: int, day: int) -> date:
    """The Gregorian date of an era date, e.g. from_wareki("令和", 3, 9, 30) == date(2021, 9, 30)."""
    for i, era in enumerate(ERAS):
        if era.name == era_name or era.letter == era_name.upper() or era.romaji.lower() == era_name.lower():
            if year < 1:
                raise ValueError("an era year starts at 1 (元年)")
            d = date(era.start.year + year - 1, month, day)
            if d < GREGORIAN_ADOPTED:
                raise ValueError("dates before 1873-01-01 (明治6年) are lunisolar, not Gregorian")
            if d < era.start or (i > 0 and d >= ERAS[i - 1].start):
                raise ValueError(f"{era.name}{year}年{month}月{day}日 is outside the {era.romaji} era")
            return d
    raise ValueError(f"unknown era {era_name!r}")
