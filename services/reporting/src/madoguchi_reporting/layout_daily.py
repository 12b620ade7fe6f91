"""The daily reports on paper: one desk, every desk of the city, the phone line; and the desk and
line tables the final report reuses."""

from __future__ import annotations

from typing import Any

from madoguchi_shared import labels as L
from madoguchi_shared.figures import CITY_DESK, CITY_LINE, Family, Fig, family, label, line_label, short_label

from madoguchi_reporting.layout import (
    INT,
    MIN,
    NUMERIC_GRID,
    PCT,
    TEXT,
    UNKNOWN,
    C,
    Cell,
    Sheet,
    Table,
    age_label,
    gender_label,
    head,
    hours_table,
    list_rows,
    notes_table,
    opinions_table,
    report_notes,
    revision_table,
    stats_rows,
    text_sheet,
    vertical,
)
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES

DESK_MAIN = (
    (Fig.visitors, INT),
    (Fig.served, INT),
    (Fig.left_unserved, INT),
    (Fig.support_needed, INT),
    (Fig.support_needed_ratio, PCT),
    (Fig.support_given, INT),
    (Fig.support_given_ratio, PCT),
    (Fig.support_given_of_needed, PCT),
    (Fig.completed, INT),
    (Fig.not_completed, INT),
    (Fig.tickets_issued, INT),
    (Fig.no_shows, INT),
)
OPERATIONS = (
    (Fig.disinfections, INT),
    (Fig.disinfection_misses, INT),
    (Fig.disinfection_compliance, PCT),
    (Fig.masks_checked, INT),
    (Fig.masks_missing, INT),
    (Fig.staffing_breaches, INT),
    (Fig.staffing_breach_s, INT),
    (Fig.short_absences, INT),
    (Fig.pin_failures, INT),
    (Fig.pin_lock_warnings, INT),
    (Fig.pin_locks, INT),
    (Fig.cards_handed, INT),
    (Fig.card_incidents, INT),
    (Fig.capacity_alerts, INT),
    (Fig.escalations, INT),
    (Fig.escalations_to_city, INT),
    (Fig.day_stops, INT),
    (Fig.recalls, INT),
    (Fig.visit_corrections, INT),
)
LINE_ROWS = (
    (Fig.received, INT),
    (Fig.received_in_hours, INT),
    (Fig.answered, INT),
    (Fig.missed, INT),
    (Fig.missed_callback_chosen, INT),
    (Fig.abandoned, INT),
    (Fig.out_of_hours, INT),
    (Fig.never_connected, INT),
    (Fig.never_connected_people, INT),
    (Fig.never_connected_share, PCT),
    (Fig.still_waiting, INT),
    (Fig.answer_rate, PCT),
    (Fig.overflow_offered, INT),
    *((family(Family.offer_choices, o), INT) for o in ("wait", "callback", "call_again")),
    (Fig.after_hours_guided, INT),
    (Fig.repeat_calls, INT),
    (Fig.closed, INT),
    (Fig.escalations, INT),
    (Fig.opinions, INT),
    *(
        (family(Family.callbacks, k), INT)
        for k in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered")
    ),
    (Fig.capacity_alerts, INT),
    (Fig.staffing_breaches, INT),
    (Fig.staffing_gap_s, MIN),
)
FORMAT = {f: PCT for f in (Fig.support_needed_ratio, Fig.support_given_ratio, Fig.answer_rate)} | {
    family(Family.wait, "mean_s"): MIN,
    family(Family.service, "mean_s"): MIN,
}
CITY_COLUMNS = tuple((k, FORMAT.get(k, INT)) for k in CITY_DESK)
CITY_LINE_ROWS = tuple((k, FORMAT.get(k, INT)) for k in CITY_LINE)


def desk_daily(report: md.DeskDaily) -> list[Sheet]:
    fig = report.figures
    op = report.opening
    hours_text = "、".join(f"{a}～{b}" for a, b in op.intervals) or "閉庁"
    kind = {"extended": "（時間延長）", "special_opening": "（休日開庁）"}.get(op.kind, "")
    place = report.ward_name or report.desk
    sheet = Sheet(
        "日次報告書",
        f"日次報告書（窓口）　{place}",
        [
            *head(report, f"{report.ward_name or ''}　{report.desk_name or report.desk}"),
            f"開設時間：{hours_text}{kind}",
        ],
        grid=NUMERIC_GRID,
        signature=report.signature,
    )
    sheet.tables.append(Table("来庁者数等", ["項目", "人数・割合"], [[label(k), C(fig, k, f)] for k, f in DESK_MAIN]))
    sheet.tables.append(hours_table(fig, "時間帯別来庁者数", Fig.visitors))
    sheet.tables.extend(people_tables(fig))
    sheet.tables.extend(outcome_tables(fig))
    sheet.tables.append(
        Table(
            "待ち時間・対応時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            stats_rows(fig, [("待ち時間（受付～対応開始）", Family.wait), ("対応時間", Family.service)]),
        )
    )
    sheet.tables.append(Table("運営状況", ["項目", "件数"], operations_rows(fig)))
    sheet.tables.extend(revision_table(report))
    sheet.tables.append(notes_table(report_notes(report, DESK_NOTES)))
    esc = Table(
        f"エスカレーション（{fig.escalations}件）",
        ["No", "時刻", "区分", "概要", "状況", "対応結果"],
        list_rows(report.escalations, ["ref", "time", "category_ja", "text", "status_ja", "outcome"]),
    )
    text = text_sheet(report, f"エスカレーション・ご意見　{place}", esc, opinions_table(report.opinions, fig.opinions))
    return [sheet, text]


def people_tables(fig: md.DeskFigures, prefix: str = "") -> list[Table]:
    """Visitors by gender and by age band (不明: those who left before being served)."""
    out = []
    for title, name, fam, names in (
        ("性別来庁者数", "性別", Family.by_gender, gender_label),
        ("年代別来庁者数", "年代", Family.by_age_band, age_label),
    ):
        codes = getattr(fig, fam)
        total = C(fig, Fig.visitors, prefix=prefix) if UNKNOWN in codes else C(fig, Fig.details_recorded, prefix=prefix)
        out.append(
            vertical(title, name, [(names(x), C(fig, family(fam, x), prefix=prefix)) for x in codes], total, "bar")
        )
    return out


def city_daily(report: md.CityDaily) -> list[Sheet]:
    """Every desk in one table (A4 landscape), the city's total, the phone line below."""
    fig = report.figures
    sheet = Sheet(
        "日次報告書（全市）",
        "日次報告書（全市）",
        [*head(report, "各区窓口・電話対応")],
        grid=[14, 12] + [9] * (len(CITY_COLUMNS) - 1),
        landscape=True,
        signature=report.signature,
    )
    rows: list[list[Any]] = []
    for d in report.desks:
        row = fig.desks.get(d.desk)
        if row is not None:
            rows.append([d.ward_name] + [C(row, k, f, f"desks.{d.desk}.") for k, f in CITY_COLUMNS])
        else:
            rows.append([d.ward_name, Cell("閉庁", None, TEXT)] + [Cell(None, None, TEXT) for _ in CITY_COLUMNS[1:]])
    rows.append(["合計"] + [C(fig.total, k, f, "total.") for k, f in CITY_COLUMNS])
    heads = [short_label(k) for k, _f in CITY_COLUMNS]
    sheet.tables.append(Table("窓口（区別）", ["区", *heads], rows, totals=1, chart=None))
    sheet.tables.append(
        Table(
            f"電話対応（受付時間：{report.line_hours_ja}）",
            ["項目", "件数・割合"],
            [[label(k), C(fig.line, k, f, "line.")] for k, f in CITY_LINE_ROWS],
        )
    )
    sheet.tables.extend(revision_table(report))
    sheet.tables.append(notes_table(report_notes(report, CITY_NOTES)))
    return [sheet]


def outcome_tables(fig: md.DeskFigures, prefix: str = "") -> list[Table]:
    rows = [
        [
            L.label(L.PURPOSE, p),
            C(fig, family(Family.by_purpose, p), prefix=prefix),
            C(fig, family(Family.outcomes_by_purpose, p, "completed"), prefix=prefix),
            C(fig, family(Family.outcomes_by_purpose, p, "not_completed"), prefix=prefix),
        ]
        for p in fig.by_purpose
    ]
    reasons = [
        [L.label(L.NOT_COMPLETED_REASON, r), C(fig, family(Family.not_completed_reasons, r), prefix=prefix)]
        for r in fig.not_completed_reasons
    ]
    reasons.append(["合計", C(fig, Fig.not_completed, prefix=prefix)])
    steps = [
        [L.label(L.PROCEDURE_STEP, s), C(fig, family(Family.difficulties_by_step, s), prefix=prefix)]
        for s in fig.difficulties_by_step
    ]
    return [
        Table("目的別の対応結果", ["目的", "件数", "完了", "未完了"], rows),
        Table("未完了の理由", ["理由", "件数"], reasons, totals=1),
        Table("苦労した手続きの段階（ご意見より）", ["段階", "件数"], steps),
    ]


def operations_rows(fig: md.DeskFigures, prefix: str = "") -> list[list[Any]]:
    return [[label(k), C(fig, k, f, prefix)] for k, f in OPERATIONS]


def line_rows(fig: md.LineFigures, prefix: str = "") -> list[list[Any]]:
    rows = [[line_label(k), C(fig, k, f, prefix)] for k, f in LINE_ROWS]
    return [r for r in rows if r[1].value is not None or r[1].fmt == PCT]


def line_breakdowns(fig: md.LineFigures, prefix: str = "") -> list[Table]:
    def rows(fam: Family, table: dict[str, str]) -> list[list[Any]]:
        return [[L.label(table, c), C(fig, family(fam, c), prefix=prefix)] for c in getattr(fig, fam)]

    res = rows(Family.by_resolution, L.RESOLUTION)
    res.append(["合計", C(fig, Fig.closed, prefix=prefix)])
    return [
        Table("問い合わせ分類（複数選択）", ["分類", "件数"], rows(Family.by_category, L.CALL_CATEGORY)),
        Table("対応結果", ["結果", "件数"], res, totals=1),
        Table("案内した決済事業者の種別", ["種別", "件数"], rows(Family.by_provider, L.PAYMENT_SERVICE)),
        Table(
            "応答待ち時間・通話時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            stats_rows(fig, [("応答待ち時間", Family.answer_wait), ("通話時間", Family.duration)], prefix),
        ),
    ]


def line_daily(report: md.LineDaily) -> list[Sheet]:
    fig = report.figures
    hours_text = "、".join(f"{a}～{b}" for a, b in report.opening.intervals) or "受付なし"
    sheet = Sheet(
        "日次報告書（電話）",
        "日次報告書（電話対応）",
        [*head(report, "電話対応"), f"受付時間：{hours_text}"],
        grid=NUMERIC_GRID,
        signature=report.signature,
    )
    sheet.tables.append(Table("入電状況", ["項目", "件数・割合"], line_rows(fig)))
    sheet.tables.append(hours_table(fig, "時間帯別入電数", Fig.received, unit="件数"))
    sheet.tables.extend(line_breakdowns(fig))
    sheet.tables.extend(revision_table(report))
    sheet.tables.append(notes_table(report_notes(report, LINE_NOTES)))
    esc = Table(
        f"エスカレーション（{fig.escalations}件）",
        ["No", "時刻", "分類", "概要", "状況", "対応結果・市の回答"],
        [
            [str(i), e.time, e.category_ja, e.text or "", e.status_ja, e.outcome]
            for i, e in enumerate(report.escalations, start=1)
        ],
    )
    return [
        sheet,
        text_sheet(report, "エスカレーション・ご意見（電話対応）", esc, opinions_table(report.opinions, fig.opinions)),
    ]
