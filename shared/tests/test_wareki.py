from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madoguchi_shared.wareki import (
    era_of,
    from_wareki,
    heading_date,
    heading_period,
    to_gregorian_ja,
    to_wareki,
    wareki_year,
    weekday_kanji,
)


def test_contract_dates_of_the_sapporo_spec():
    assert to_wareki(date(2021, 4, 1)) == "令和3年4月1日"
    assert to_wareki(date(2021, 9, 30), weekday=True) == "令和3年9月30日（木）"
    assert weekday_kanji(date(2021, 4, 1)) == "木"


def test_era_boundaries():
    assert to_wareki(date(2019, 4, 30)) == "平成31年4月30日"
    assert to_wareki(date(2019, 5, 1)) == "令和元年5月1日"
    assert to_wareki(date(1989, 1, 7)) == "昭和64年1月7日"
    assert to_wareki(date(1989, 1, 8)) == "平成元年1月8日"
    assert to_wareki(date(1926, 12, 25)) == "昭和元年12月25日"


def test_gannen_and_numeric_first_year():
    assert wareki_year(date(2019, 12, 31)) == "令和元年"
    assert wareki_year(date(2019, 12, 31), gannen=False) == "令和1年"
    assert to_wareki(date(2019, 5, 1), gannen=False) == "令和1年5月1日"
    assert to_wareki(date(2020, 1, 1), gannen=False) == "令和2年1月1日"


def test_headings_show_both_calendars():
    assert to_gregorian_ja(date(2021, 4, 1)) == "2021年4月1日"
    assert heading_date(date(2021, 4, 1)) == "令和3年4月1日（木）（2021年4月1日）"
    assert heading_date(datetime(2021, 4, 5, 9, 30)) == "令和3年4月5日（月）（2021年4月5日）"
    assert heading_period(date(2021, 4, 5), date(2021, 4, 11)) == (
        "令和3年4月5日（月）～令和3年4月11日（日）（2021年4月5日～2021年4月11日）"
    )


def test_before_the_gregorian_calendar_is_refused():
    with pytest.raises(ValueError):
        to_wareki(date(1872, 12, 31))


def test_from_wareki():
    assert from_wareki("令和", 3, 9, 30) == date(2021, 9, 30)
    assert from_wareki("R", 1, 5, 1) == date(2019, 5, 1)
    with pytest.raises(ValueError):
        from_wareki("令和", 1, 4, 30)  # still 平成
    with pytest.raises(ValueError):
        from_wareki("平成", 31, 5, 1)  # already 令和


@given(st.dates(min_value=date(1873, 1, 1), max_value=date(2100, 12, 31)))
def test_round_trip(d):
    era, year = era_of(d)
    assert from_wareki(era.name, year, d.month, d.day) == d
    # the day before an era's first day belongs to the previous era
    if d == era.start and d > date(1873, 1, 1):
        assert era_of(d - timedelta(days=1))[0] != era
