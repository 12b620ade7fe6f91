"""The reports over a period on paper: the city-wide weekly table and the final report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from madoguchi_shared.figures import WEEKLY_DESK, WEEKLY_LINE, Family, Fig, family, label, short_label
from madoguchi_shared.wareki import to_wareki

from madoguchi_reporting.layout import (
    INT,
    MIN,
    NUMERIC_GRID,
    PCT,
    TEXT,
    C,
    Cell,
    Sheet,
    Table,
    head,
    hours_table,
    list_rows,
    minutes,
    notes_table,
    report_notes,
    revision_table,
    stats_rows,
)
from madoguchi_reporting.layout_daily import line_breakdowns, line_rows, operations_rows, outcome_tables, people_tables
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES

FINAL_COLUMNS = WEEKLY_DESK  # the ward table of the final report
FINAL_RATIOS = (Fig.support_needed_ratio, Fig.support_given_ratio, Fig.support_given_of_needed)


def weekly(report: md.Weekly) -> list[Sheet]:
    fig = report.figures
    days = report.days
    sheet = Sheet(
        "週次報告書",
        "週次報告書（全市）",
        head(report, "各区窓口・電話対応"),
        grid=[16] + [10] * 8,
        landscape=True,
        signature=report.signature,
    )
    header = ["区"] + [d.label for d in days] + ["合計"]

    def day_cell(table: md.DayTable, prefix: str, name: str, day: md.WeekDay) -> Cell:
        cell = C(table.days, family(day.date.isoformat(), name), prefix=prefix + "days.")
        if not day.open and not cell.value:
            return Cell(day.closed_ja or "閉庁", None, TEXT)  # a closed day is not a day with nobody
        return cell

    def row(title: str, table: md.DayTable, prefix: str, name: str) -> list[Any]:
        return [
            title,
            *(day_cell(table, prefix, name, d) for d in days),
            C(table.total, name, prefix=prefix + "total."),
        ]

    for name in WEEKLY_DESK:
        rows = [row(w.ward_name, fig.wards[w.ward], f"wards.{w.ward}.", name) for w in report.wards]
        rows.append(row("合計", fig.total, "total.", name))
        sheet.tables.append(Table(f"{label(name)}（区別・日別）", header, rows, totals=1))

    def line_cell(n: str, day: md.WeekDay) -> Cell:
        cell = C(fig.line.days, family(day.date.isoformat(), n), prefix="line.days.")
        if day.closed_ja not in ("", "閉庁") and not cell.value:
            return Cell(day.closed_ja, None, TEXT)  # the line too is not in operation before the first day
        return cell

    rows = [
        [label(n)] + [line_cell(n, d) for d in days] + [C(fig.line.total, n, prefix="line.total.")] for n in WEEKLY_LINE
    ]
    sheet.tables.append(Table("電話対応（日別）", ["項目"] + [d.label for d in days] + ["合計"], rows))
    sheet.tables.extend(revision_table(report))
    sheet.tables.append(notes_table(report_notes(report, CITY_NOTES)))
    return [sheet]


def _month_ja(month: str) -> str:
    y, m = (int(x) for x in month.split("-"))
    return f"{to_wareki(dt.date(y, m, 1)).split('年')[0]}年{m}月"


def _summary(report: md.Final) -> Sheet:
    fig = report.figures
    city = fig.city
    months = report.months
    summary = Sheet(
        "集計",
        "最終報告書",
        head(report, "マイキーID設定及びマイナポイント申込み支援等業務"),
        grid=[28] + [10] * max(8, len(months) + 1),
        landscape=True,
        signature=report.signature,
    )
    rows = [
        [w.ward_name] + [C(fig.wards[w.ward], k, INT, f"wards.{w.ward}.") for k in FINAL_COLUMNS] for w in report.wards
    ]
    rows.append(["合計"] + [C(city, k, INT, "city.") for k in FINAL_COLUMNS])
    heads = [short_label(k) for k in FINAL_COLUMNS]
    summary.tables.append(Table("区別の集計（対象期間）", ["区", *heads], rows, totals=1))
    ratios = [[label(k), C(city, k, PCT, "city.")] for k in FINAL_RATIOS]
    summary.tables.append(Table("割合（全市）", ["項目", "割合"], ratios))
    rows = [
        [w.ward_name]
        + [C(fig.months[mo], w.ward, prefix=f"months.{mo}.") for mo in months]
        + [C(fig.wards[w.ward], Fig.visitors, prefix=f"wards.{w.ward}.")]
        for w in report.wards
    ]
    rows.append(
        ["合計"] + [Cell(sum(fig.months[mo].values()), None) for mo in months] + [C(city, Fig.visitors, prefix="city.")]
    )
    summary.tables.append(Table("月別来庁者数", ["区"] + [_month_ja(mo) for mo in months] + ["合計"], rows, totals=1))
    summary.tables.extend(people_tables(city, "city."))
    if city.by_hour:
        summary.tables.append(hours_table(city, "時間帯別来庁者数", Fig.visitors, "city."))
    summary.tables.extend(outcome_tables(city, "city."))
    summary.tables.append(
        Table(
            "待ち時間・対応時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            stats_rows(city, [("待ち時間", Family.wait), ("対応時間", Family.service)], "city."),
        )
    )
    summary.tables.append(Table("運営状況", ["項目", "件数"], operations_rows(city, "city.")))
    trend_rows = [
        [
            f"{to_wareki(dt.date.fromisoformat(w))}～",
            C(v, Fig.visitors, prefix=f"weekly_trend.{w}."),
            C(v, "calls", prefix=f"weekly_trend.{w}."),
        ]
        for w, v in fig.weekly_trend.items()
    ]
    summary.tables.append(Table("週別の推移", ["週", "来庁者数", "入電数"], trend_rows))
    summary.tables.extend(revision_table(report))
    summary.tables.append(notes_table(DESK_NOTES))
    return summary


ESC_KEYS = ["date", "time", "scope", "category_ja", "text", "status_ja", "outcome"]


def final(report: md.Final) -> list[Sheet]:
    fig = report.figures
    line = Sheet("電話対応", "最終報告書（電話対応）", head(report, "電話対応"), grid=NUMERIC_GRID)
    line.tables.append(Table("入電状況（対象期間）", ["項目", "件数・割合"], line_rows(fig.line, "line.")))
    line.tables.extend(line_breakdowns(fig.line, "line."))
    line.tables.append(notes_table(LINE_NOTES))
    records = Sheet(
        "通話記録",
        "通話記録（対応記録）",
        [*head(report, "電話対応記録"), f"件数：{fig.call_records}件（個人情報は含みません）"],
        grid=[6, 11, 6, 7, 8, 22, 18, 8, 9, 40],
        landscape=True,
    )
    rec_cols = ["No", "日付", "時刻", "回線", "接続", "分類", "対応結果", "通話（分）", "折り返し", "記録"]
    records.tables.append(
        Table(
            "通話記録",
            rec_cols,
            [
                [
                    r.no,
                    r.date.isoformat(),
                    r.time,
                    r.line,
                    r.connection_ja,
                    r.categories_ja,
                    r.resolution_ja,
                    Cell(minutes(r.duration_s) if r.duration_s is not None else None, None, MIN),
                    r.callback_ja,
                    r.notes or "",
                ]
                for r in report.call_records
            ],
        )
    )
    esc = Sheet(
        "エスカレーション",
        "エスカレーション一覧",
        head(report, "窓口・電話"),
        grid=[11, 7, 12, 20, 56, 12, 30],
        landscape=True,
    )
    esc.tables.append(
        Table(
            "窓口",
            ["日付", "時刻", "窓口", "区分", "概要", "状況", "対応結果"],
            list_rows(report.escalations, ESC_KEYS),
        )
    )
    esc.tables.append(
        Table(
            "電話",
            ["日付", "時刻", "回線", "分類", "概要", "状況", "対応結果・市の回答"],
            list_rows(report.line_escalations, ESC_KEYS),
        )
    )
    return [_summary(report), line, records, esc]
