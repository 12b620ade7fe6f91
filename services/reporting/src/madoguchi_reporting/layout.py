"""How a report reads on paper: the report JSON laid out as titled tables with Japanese headings.

One layout feeds the xlsx and CSV renderers (and the PDF's tables), so every file shows the same
rows in the same order. A numeric cell carries its figure key (`Cell.key`), the same key
`queries.flatten` gives, so what a file shows can be traced to the JSON figure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from madoguchi_shared.wareki import to_wareki

from madoguchi_shared import labels as L
from madoguchi_reporting.queries import FIGURE_JA, WEEKLY_DESK, WEEKLY_LINE

INT, PCT, SEC, TEXT = "int", "pct", "sec", "text"


@dataclass
class Cell:
    value: Any
    key: str | None = None  # the figure key in queries.flatten(report)
    fmt: str = INT


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]]  # Cell or plain text
    totals: int = 0  # the last `totals` rows are totals (bold, ruled)
    widths: list[int] | None = None  # column widths in characters (xlsx)
    note: str | None = None


@dataclass
class Sheet:
    name: str  # sheet tab (<= 31 chars)
    title: str
    lines: list[str] = field(default_factory=list)  # heading lines under the title
    tables: list[Table] = field(default_factory=list)


def C(fig: dict, key: str, fmt: str = INT, prefix: str = "") -> Cell:
    """The cell of figure `key` (dotted) of `fig`, keyed by prefix + key."""
    value: Any = fig
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return Cell(value, prefix + key, fmt)


def _revision_lines(report: dict) -> list[str]:
    rev = report.get("revision") or {}
    lines = []
    if rev.get("label_ja"):
        lines.append(f"版：{rev['label_ja']}")
    return lines


def _revision_table(report: dict) -> list[Table]:
    rev = report.get("revision") or {}
    if not rev.get("changes") or not rev.get("based_on"):
        return []
    rows = [[ch["key"], Cell(ch["old"], None, INT if isinstance(ch["old"], int) else SEC),
             Cell(ch["new"], None, INT if isinstance(ch["new"], int) else SEC)] for ch in rev.get("changes", [])]
    return [Table(f"訂正内容（第{rev['based_on']}版からの変更）", ["項目", f"第{rev['based_on']}版", "訂正後"], rows,
                  widths=[44, 12, 12])]


def _head(report: dict, subject: str) -> list[str]:
    p = report["period"]
    return [f"{report.get('municipality_name', '')}　{subject}".strip(), f"対象期間：{p['heading']}", *_revision_lines(report)]


def _stats_rows(fig: dict, items: list[tuple[str, str]]) -> list[list[Any]]:
    rows = []
    for name, key in items:
        rows.append([name, C(fig, f"{key}.n"), C(fig, f"{key}.mean_s", SEC), C(fig, f"{key}.p90_s", SEC),
                     C(fig, f"{key}.max_s", SEC)])
    return rows


def _list_rows(items: list[dict], cols: list[tuple[str, str]]) -> list[list[Any]]:
    return [[str(it.get(k) or "") for _h, k in cols] for it in items]


def desk_daily(report: dict) -> list[Sheet]:
    fig = report["figures"]
    op = report["opening"]
    hours_text = "、".join(f"{a}～{b}" for a, b in op["intervals"]) or "閉庁"
    kind = {"extended": "（時間延長）", "special_opening": "（休日開庁）"}.get(op["kind"], "")
    subject = f"{report.get('ward_name') or ''}　{report.get('desk_name') or report['desk']}"
    sheet = Sheet("日次報告書", f"日次報告書（窓口）　{report.get('ward_name') or report['desk']}",
                  [*_head(report, subject), f"開設時間：{hours_text}{kind}"])
    main = [
        ["来庁者数", C(fig, "visitors")],
        ["うち支援が必要な方", C(fig, "support_needed")],
        ["うち支援を実施した方", C(fig, "support_given")],
        ["支援が必要な方の割合", C(fig, "support_needed_ratio", PCT)],
        ["支援実施率（実施／必要）", C(fig, "support_given_ratio", PCT)],
        ["対応完了件数", C(fig, "completed")],
        ["未完了件数", C(fig, "not_completed")],
        ["受付番号札発行数", C(fig, "tickets_issued")],
        ["呼出し時不在", C(fig, "no_shows")],
    ]
    sheet.tables.append(Table("来庁者数等", ["項目", "人数"], main, widths=[28, 12]))
    hours = list(fig["by_hour"])
    sheet.tables.append(Table("時間毎来庁者数（受付時刻）", [f"{int(h)}時台" for h in hours] + ["合計"],
                              [[C(fig, f"by_hour.{h}") for h in hours] + [C(fig, "visitors")]]))
    g = list(fig["by_gender"])
    sheet.tables.append(Table("性別来庁者数", [L.label(L.GENDER, x) for x in g] + ["合計"],
                              [[C(fig, f"by_gender.{x}") for x in g] + [C(fig, "details_recorded")]]))
    a = list(fig["by_age_band"])
    sheet.tables.append(Table("年代別来庁者数", [L.label(L.AGE_BAND, x) for x in a] + ["合計"],
                              [[C(fig, f"by_age_band.{x}") for x in a] + [C(fig, "details_recorded")]]))
    sheet.tables.extend(_outcome_tables(fig))
    sheet.tables.append(Table("待ち時間・対応時間（秒）", ["区分", "件数", "平均", "90%値", "最大"],
                              _stats_rows(fig, [("待ち時間（受付～対応開始）", "wait"), ("対応時間", "service")]),
                              widths=[28, 10, 10, 10, 10]))
    sheet.tables.append(Table(
        f"エスカレーション（{fig['escalations']}件）", ["No", "時刻", "区分", "概要", "状況", "対応結果"],
        _list_rows(report["escalations"], [("No", "ref"), ("時刻", "time"), ("区分", "category_ja"), ("概要", "text"),
                                           ("状況", "status_ja"), ("結果", "outcome")]), widths=[5, 7, 14, 50, 12, 30]))
    sheet.tables.append(Table(
        f"ご意見・ご要望・トピック（{fig['opinions']}件）", ["時刻", "種別", "手続きの段階", "内容"],
        _list_rows(report["opinions"], [("時刻", "time"), ("種別", "kind_ja"), ("段階", "step_ja"), ("内容", "text")]),
        widths=[7, 12, 20, 70]))
    sheet.tables.append(Table("運営状況", ["項目", "件数"], _operations_rows(fig), widths=[28, 12]))
    sheet.tables.extend(_revision_table(report))
    return [sheet]


def _outcome_tables(fig: dict, prefix: str = "") -> list[Table]:
    rows = [[L.label(L.PURPOSE, p), C(fig, f"by_purpose.{p}", prefix=prefix),
             C(fig, f"outcomes_by_purpose.{p}.completed", prefix=prefix),
             C(fig, f"outcomes_by_purpose.{p}.not_completed", prefix=prefix)] for p in fig["by_purpose"]]
    reasons = [[L.label(L.NOT_COMPLETED_REASON, r), C(fig, f"not_completed_reasons.{r}", prefix=prefix)]
               for r in fig["not_completed_reasons"]]
    reasons.append(["合計", C(fig, "not_completed", prefix=prefix)])
    steps = [[L.label(L.PROCEDURE_STEP, s), C(fig, f"difficulties_by_step.{s}", prefix=prefix)]
             for s in fig["difficulties_by_step"]]
    return [
        Table("目的別の対応結果", ["目的", "件数", "完了", "未完了"], rows, widths=[28, 10, 10, 10]),
        Table("未完了の理由", ["理由", "件数"], reasons, totals=1, widths=[28, 10]),
        Table("苦労した手続きの段階（ご意見より）", ["段階", "件数"], steps, widths=[28, 10]),
    ]


def _operations_rows(fig: dict, prefix: str = "") -> list[list[Any]]:
    items = [
        ("消毒実施回数", "disinfections", INT), ("消毒前の対応開始", "disinfection_misses", INT),
        ("消毒遵守率", "disinfection_compliance", PCT), ("マスク確認", "masks_checked", INT),
        ("マスク未着用", "masks_missing", INT), ("支援員不在（人員配置違反）", "staffing_breaches", INT),
        ("不在時間（秒）", "staffing_breach_s", INT), ("短時間不在", "short_absences", INT),
        ("暗証番号の誤り", "pin_failures", INT), ("暗証番号ロック直前の注意喚起", "pin_lock_warnings", INT),
        ("暗証番号ロック", "pin_locks", INT), ("カードお預かり", "cards_handed", INT),
        ("カード置き忘れ", "card_incidents", INT), ("混雑アラート（想定人数超過）", "capacity_alerts", INT),
        ("エスカレーション件数", "escalations", INT), ("うち市へ照会", "escalations_to_city", INT),
        ("業務中断", "day_stops", INT), ("再呼出し", "recalls", INT), ("訂正件数", "visit_corrections", INT),
    ]
    return [[name, C(fig, key, fmt, prefix)] for name, key, fmt in items]


def _line_rows(fig: dict, prefix: str = "") -> list[list[Any]]:
    items = [
        ("入電数", "received", INT), ("うち受付時間内", "received_in_hours", INT), ("応答数", "answered", INT),
        ("不応答", "missed", INT), ("うち折り返し希望", "missed_callback_chosen", INT), ("放棄呼", "abandoned", INT),
        ("時間外入電", "out_of_hours", INT), ("つながらなかった呼", "never_connected", INT),
        ("つながらなかった割合", "never_connected_share", PCT), ("応答率", "answer_rate", PCT),
        ("混雑・時間外の案内", "overflow_offered", INT), ("対応記録数", "closed", INT),
        ("エスカレーション件数", "escalations", INT), ("ご意見・トピック件数", "opinions", INT),
        ("折り返し受付", "callbacks.opened", INT), ("折り返し完了", "callbacks.done", INT),
        ("折り返し不通", "callbacks.failed", INT), ("折り返し取消", "callbacks.cancelled", INT),
        ("折り返し期限超過", "callbacks.overdue", INT), ("折り返し：市へ照会", "callbacks.to_city", INT),
        ("混雑アラート", "capacity_alerts", INT), ("オペレーター不在", "staffing_breaches", INT),
        ("不在時間（秒）", "staffing_gap_s", INT),
    ]
    return [[name, C(fig, key, fmt, prefix)] for name, key, fmt in items]


def _line_breakdowns(fig: dict, prefix: str = "") -> list[Table]:
    cats = [[L.label(L.CALL_CATEGORY, c), C(fig, f"by_category.{c}", prefix=prefix)] for c in fig["by_category"]]
    res = [[L.label(L.RESOLUTION, r), C(fig, f"by_resolution.{r}", prefix=prefix)] for r in fig["by_resolution"]]
    res.append(["合計", C(fig, "closed", prefix=prefix)])
    prov = [[L.label(L.PAYMENT_SERVICE, p), C(fig, f"by_provider.{p}", prefix=prefix)] for p in fig["by_provider"]]
    return [
        Table("問い合わせ分類（複数選択）", ["分類", "件数"], cats, widths=[36, 10]),
        Table("対応結果", ["結果", "件数"], res, totals=1, widths=[36, 10]),
        Table("案内した決済事業者の種別", ["種別", "件数"], prov, widths=[36, 10]),
        Table("応答待ち時間・通話時間（秒）", ["区分", "件数", "平均", "90%値", "最大"],
              [[name, C(fig, f"{k}.n", prefix=prefix), C(fig, f"{k}.mean_s", SEC, prefix), C(fig, f"{k}.p90_s", SEC, prefix),
                C(fig, f"{k}.max_s", SEC, prefix)] for name, k in (("応答待ち時間", "answer_wait"), ("通話時間", "duration"))],
              widths=[28, 10, 10, 10, 10]),
    ]


def line_daily(report: dict) -> list[Sheet]:
    fig = report["figures"]
    op = report["opening"]
    hours_text = "、".join(f"{a}～{b}" for a, b in op["intervals"]) or "受付なし"
    sheet = Sheet("日次報告書（電話）", "日次報告書（電話対応）",
                  [*_head(report, f"電話対応（回線 {report['line']}）"), f"受付時間：{hours_text}"])
    sheet.tables.append(Table("入電状況", ["項目", "件数"], _line_rows(fig), widths=[28, 12]))
    hours = list(fig["by_hour"])
    sheet.tables.append(Table("時間毎入電数", [f"{int(h)}時台" for h in hours] + ["合計"],
                              [[C(fig, f"by_hour.{h}") for h in hours] + [C(fig, "received")]]))
    sheet.tables.extend(_line_breakdowns(fig))
    sheet.tables.append(Table(
        f"エスカレーション（{fig['escalations']}件）", ["時刻", "分類", "概要", "状況"],
        _list_rows(report["escalations"], [("時刻", "time"), ("分類", "category_ja"), ("概要", "text"), ("状況", "status_ja")]),
        widths=[7, 24, 60, 12]))
    sheet.tables.append(Table(
        f"ご意見・ご要望・トピック（{fig['opinions']}件）", ["時刻", "種別", "手続きの段階", "内容"],
        _list_rows(report["opinions"], [("時刻", "time"), ("種別", "kind_ja"), ("段階", "step_ja"), ("内容", "text")]),
        widths=[7, 12, 24, 70]))
    sheet.tables.extend(_revision_table(report))
    return [sheet]


def weekly(report: dict) -> list[Sheet]:
    fig = report["figures"]
    days = report["days"]
    wards = report["wards"]
    sheet = Sheet("週次報告書", "週次報告書（全市）", _head(report, "各区窓口・電話対応"))
    header = ["区"] + [d["label"] for d in days] + ["合計"]
    for name in WEEKLY_DESK:
        rows = [[w["ward_name"]] + [C(fig, f"wards.{w['ward']}.days.{d['date']}.{name}") for d in days]
                + [C(fig, f"wards.{w['ward']}.total.{name}")] for w in wards]
        rows.append(["合計"] + [C(fig, f"total.days.{d['date']}.{name}") for d in days] + [C(fig, f"total.total.{name}")])
        sheet.tables.append(Table(f"{FIGURE_JA[name]}（区別・日別）", header, rows, totals=1, widths=[12] + [10] * 8))
    rows = [[FIGURE_JA.get(n, n)] + [C(fig, f"line.days.{d['date']}.{n}") for d in days] + [C(fig, f"line.total.{n}")]
            for n in WEEKLY_LINE]
    sheet.tables.append(Table("電話対応（日別）", ["項目"] + [d["label"] for d in days] + ["合計"], rows,
                              widths=[16] + [10] * 8))
    sheet.tables.extend(_revision_table(report))
    return [sheet]


def final(report: dict) -> list[Sheet]:
    fig = report["figures"]
    wards = report["wards"]
    city = fig["city"]
    summary = Sheet("集計", "最終報告書", _head(report, "マイキーID設定及びマイナポイント申込み支援等業務"))
    cols = [("来庁者数", "visitors", INT), ("支援必要", "support_needed", INT), ("支援実施", "support_given", INT),
            ("完了", "completed", INT), ("未完了", "not_completed", INT), ("不在", "no_shows", INT),
            ("エスカレーション", "escalations", INT), ("ご意見", "opinions", INT)]
    rows = [[w["ward_name"]] + [C(fig, f"wards.{w['ward']}.{k}", f) for _n, k, f in cols] for w in wards]
    rows.append(["合計"] + [C(fig, f"city.{k}", f) for _n, k, f in cols])
    summary.tables.append(Table("区別の集計（対象期間）", ["区"] + [n for n, _k, _f in cols], rows, totals=1,
                                widths=[12] + [11] * len(cols)))
    months = report["months"]
    rows = [[w["ward_name"]] + [C(fig, f"months.{mo}.{w['ward']}") for mo in months] + [C(fig, f"wards.{w['ward']}.visitors")]
            for w in wards]
    rows.append(["合計"] + [Cell(sum(fig["months"][mo].values()), None) for mo in months] + [C(fig, "city.visitors")])
    summary.tables.append(Table("月別来庁者数", ["区"] + [_month_ja(mo) for mo in months] + ["合計"], rows, totals=1,
                                widths=[12] + [11] * (len(months) + 1)))
    g = list(city["by_gender"])
    summary.tables.append(Table("性別来庁者数", [L.label(L.GENDER, x) for x in g] + ["合計"],
                                [[C(fig, f"city.by_gender.{x}") for x in g] + [C(fig, "city.details_recorded")]]))
    a = list(city["by_age_band"])
    summary.tables.append(Table("年代別来庁者数", [L.label(L.AGE_BAND, x) for x in a] + ["合計"],
                                [[C(fig, f"city.by_age_band.{x}") for x in a] + [C(fig, "city.details_recorded")]]))
    hours = list(city.get("by_hour") or {})
    if hours:
        summary.tables.append(Table("時間帯別来庁者数", [f"{int(h)}時台" for h in hours] + ["合計"],
                                    [[C(fig, f"city.by_hour.{h}") for h in hours] + [C(fig, "city.visitors")]]))
    summary.tables.extend(_outcome_tables(city, "city."))
    summary.tables.append(Table("待ち時間・対応時間（秒）", ["区分", "件数", "平均", "90%値", "最大"],
                                [[n, C(fig, f"city.{k}.n"), C(fig, f"city.{k}.mean_s", SEC), C(fig, f"city.{k}.p90_s", SEC),
                                  C(fig, f"city.{k}.max_s", SEC)] for n, k in (("待ち時間", "wait"), ("対応時間", "service"))],
                                widths=[28, 10, 10, 10, 10]))
    summary.tables.append(Table("運営状況", ["項目", "件数"], _operations_rows(city, "city."), widths=[28, 12]))
    line = Sheet("電話対応", "最終報告書（電話対応）", _head(report, "電話対応"))
    line.tables.append(Table("入電状況（対象期間）", ["項目", "件数"], _line_rows(fig["line"], "line."), widths=[28, 12]))
    line.tables.extend(_line_breakdowns(fig["line"], "line."))
    trend = fig["weekly_trend"]
    trend_rows = [[f"{to_wareki(dt.date.fromisoformat(w))}～", C(fig, f"weekly_trend.{w}.visitors"),
                   C(fig, f"weekly_trend.{w}.calls")] for w in trend]
    summary.tables.append(Table("週別の推移", ["週", "来庁者数", "入電数"], trend_rows, widths=[20, 10, 10]))
    summary.tables.extend(_revision_table(report))
    records = Sheet("通話記録", "通話記録（対応記録）", [*_head(report, "電話対応記録"),
                                                      f"件数：{fig['call_records']}件（個人情報は含みません）"])
    rec_cols = [("No", "no"), ("日付", "date"), ("時刻", "time"), ("回線", "line"), ("接続", "connection_ja"),
                ("分類", "categories_ja"), ("対応結果", "resolution_ja"), ("通話秒数", "duration_s"),
                ("折り返し", "callback_ja"), ("記録", "notes")]
    records.tables.append(Table("通話記録", [h for h, _k in rec_cols],
                                [[r["no"], r["date"], r["time"], r["line"], r["connection_ja"], r["categories_ja"],
                                  r["resolution_ja"], r["duration_s"], r["callback_ja"], r["notes"] or ""]
                                 for r in report["call_records"]],
                                widths=[6, 11, 7, 8, 8, 36, 26, 9, 9, 60]))
    esc = Sheet("エスカレーション", "エスカレーション一覧", _head(report, "窓口・電話"))
    esc.tables.append(Table("窓口", ["日付", "時刻", "窓口", "区分", "概要", "状況"],
                            _list_rows(report["escalations"], [("日付", "date"), ("時刻", "time"), ("窓口", "scope"),
                                                               ("区分", "category_ja"), ("概要", "text"), ("状況", "status_ja")]),
                            widths=[11, 7, 12, 14, 60, 12]))
    esc.tables.append(Table("電話", ["日付", "時刻", "回線", "分類", "概要", "状況"],
                            _list_rows(report["line_escalations"], [("日付", "date"), ("時刻", "time"), ("回線", "scope"),
                                                                    ("分類", "category_ja"), ("概要", "text"), ("状況", "status_ja")]),
                            widths=[11, 7, 12, 24, 60, 12]))
    return [summary, line, records, esc]


def _month_ja(month: str) -> str:
    y, m = (int(x) for x in month.split("-"))
    return f"{to_wareki(dt.date(y, m, 1)).split('年')[0]}年{m}月"


def sheets(report: dict) -> list[Sheet]:
    if report["kind"] == "daily":
        return line_daily(report) if report["scope"] == "line" else desk_daily(report)
    if report["kind"] == "weekly":
        return weekly(report)
    return final(report)


def file_stem(report: dict) -> str:
    return report["report_id"]
