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
from madoguchi_reporting.queries import CITY_NOTES, DESK_NOTES, FIGURE_JA, LINE_NOTES, WEEKLY_DESK, WEEKLY_LINE

INT, PCT, SEC, MIN, TEXT = "int", "pct", "sec", "min", "text"
UNKNOWN = "unknown"  # gender / age band of a person who took a ticket and left before being served


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
    widths: list[int] | None = None  # column widths in characters (kept for the PDF's proportions)
    note: str | None = None
    chart: str | None = None  # "col" or "bar": a native chart of column 2 by column 1 (xlsx), rows without totals
    merge_last: bool = False  # the last column spans to the sheet's last column (long definitions)


@dataclass
class Sheet:
    name: str  # sheet tab (<= 31 chars)
    title: str
    lines: list[str] = field(default_factory=list)  # heading lines under the title
    tables: list[Table] = field(default_factory=list)
    grid: list[int] | None = None  # the sheet's column widths in characters: every table uses these columns
    landscape: bool = False
    signature: dict | None = None  # 受託者 / 提出日 / 承認欄 block under the heading


def C(fig: dict, key: str, fmt: str = INT, prefix: str = "") -> Cell:
    """The cell of figure `key` (dotted) of `fig`, keyed by prefix + key. Durations (MIN) are kept
    in seconds in the JSON and shown in minutes to 0.1 (half up)."""
    value: Any = fig
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if fmt == MIN and isinstance(value, int | float):
        value = minutes(value)
    return Cell(value, prefix + key, fmt)


def minutes(seconds: float) -> float:
    """Seconds as minutes to 0.1, half up (397.902 s -> 6.6)."""
    return int(seconds * 10 / 60 + 0.5) / 10


def gender_label(code: str) -> str:
    return "不明" if code == UNKNOWN else L.label(L.GENDER, code)


def age_label(code: str) -> str:
    return "不明" if code == UNKNOWN else L.label(L.AGE_BAND, code)


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
    rows = [
        [
            ch["key"],
            Cell(ch["old"], None, INT if isinstance(ch["old"], int) else SEC),
            Cell(ch["new"], None, INT if isinstance(ch["new"], int) else SEC),
        ]
        for ch in rev.get("changes", [])
    ]
    return [Table(f"訂正内容（第{rev['based_on']}版からの変更）", ["項目", f"第{rev['based_on']}版", "訂正後"], rows)]


def _head(report: dict, subject: str) -> list[str]:
    p = report["period"]
    return [
        f"{report.get('municipality_name', '')}　{subject}".strip(),
        f"対象期間：{p['heading']}",
        *_revision_lines(report),
    ]


def _stats_rows(fig: dict, items: list[tuple[str, str]], prefix: str = "") -> list[list[Any]]:
    rows = []
    for name, key in items:
        rows.append(
            [
                name,
                C(fig, f"{key}.n", prefix=prefix),
                C(fig, f"{key}.mean_s", MIN, prefix),
                C(fig, f"{key}.p90_s", MIN, prefix),
                C(fig, f"{key}.max_s", MIN, prefix),
            ]
        )
    return rows


def report_notes(report: dict, default: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The report's 注記 as it carries them (a delivered version keeps its own), else the current ones."""
    return [(a, b) for a, b in report.get("notes") or default]


def _notes_table(notes: list[tuple[str, str]]) -> Table:
    return Table("注記", ["項目", "定義"], [[a, b] for a, b in notes], merge_last=True)


def _vertical(
    title: str, label: str, items: list[tuple[str, Cell]], total: Cell | None, chart: str | None, unit: str = "人数"
) -> Table:
    rows: list[list[Any]] = [[name, cell] for name, cell in items]
    if total is not None:
        rows.append(["合計", total])
    return Table(title, [label, unit], rows, totals=1 if total is not None else 0, chart=chart)


def _hours_table(fig: dict, title: str, total_key: str, prefix: str = "", unit: str = "人数") -> Table:
    hours = list(fig.get("by_hour") or {})
    return _vertical(
        title,
        "時間帯",
        [(f"{int(h)}時台", C(fig, f"by_hour.{h}", prefix=prefix)) for h in hours],
        C(fig, total_key, prefix=prefix),
        "col",
        unit,
    )


def _list_rows(items: list[dict], cols: list[tuple[str, str]]) -> list[list[Any]]:
    return [[str(it.get(k) or "") for _h, k in cols] for it in items]


NUMERIC_GRID = [30, 12, 12, 12, 12]  # label column + four figure columns: A4 portrait at full size
TEXT_GRID = [5, 7, 16, 52, 12, 40]  # the long texts' own sheet (A4 landscape, wrapped)


def _text_sheet(report: dict, title: str, escalations: Table, opinions: Table) -> Sheet:
    return Sheet(
        "エスカレーション・ご意見",
        title,
        [report["period"]["heading"]],
        [escalations, opinions],
        grid=TEXT_GRID,
        landscape=True,
    )


def _desk_escalations(items: list[dict], count: int) -> Table:
    return Table(
        f"エスカレーション（{count}件）",
        ["No", "時刻", "区分", "概要", "状況", "対応結果"],
        _list_rows(
            items,
            [
                ("No", "ref"),
                ("時刻", "time"),
                ("区分", "category_ja"),
                ("概要", "text"),
                ("状況", "status_ja"),
                ("結果", "outcome"),
            ],
        ),
    )


def _opinions(items: list[dict], count: int) -> Table:
    rows = [
        [str(i), o.get("time") or "", o.get("kind_ja") or "", o.get("text") or "", o.get("step_ja") or ""]
        for i, o in enumerate(items, start=1)
    ]
    return Table(f"ご意見・ご要望・トピック（{count}件）", ["No", "時刻", "種別", "内容", "手続きの段階"], rows)


def desk_daily(report: dict) -> list[Sheet]:
    fig = report["figures"]
    op = report["opening"]
    hours_text = "、".join(f"{a}～{b}" for a, b in op["intervals"]) or "閉庁"
    kind = {"extended": "（時間延長）", "special_opening": "（休日開庁）"}.get(op["kind"], "")
    subject = f"{report.get('ward_name') or ''}　{report.get('desk_name') or report['desk']}"
    sheet = Sheet(
        "日次報告書",
        f"日次報告書（窓口）　{report.get('ward_name') or report['desk']}",
        [*_head(report, subject), f"開設時間：{hours_text}{kind}"],
        grid=NUMERIC_GRID,
        signature=report.get("signature"),
    )
    main = [
        ["来庁者数", C(fig, "visitors")],
        ["うち対応した方", C(fig, "served")],
        ["うち対応前に帰られた方", C(fig, "left_unserved")],
        ["うち支援が必要な方", C(fig, "support_needed")],
        ["支援が必要な方の割合（対来庁者数）", C(fig, "support_needed_ratio", PCT)],
        ["うち支援を実施した方", C(fig, "support_given")],
        ["支援を実施した方の割合（対来庁者数）", C(fig, "support_given_ratio", PCT)],
        ["支援実施率（実施／必要）", C(fig, "support_given_of_needed", PCT)],
        ["対応完了件数", C(fig, "completed")],
        ["未完了件数", C(fig, "not_completed")],
        ["受付番号札発行数", C(fig, "tickets_issued")],
        ["呼出し時不在", C(fig, "no_shows")],
    ]
    sheet.tables.append(Table("来庁者数等", ["項目", "人数・割合"], main))
    sheet.tables.append(_hours_table(fig, "時間帯別来庁者数", "visitors"))
    sheet.tables.append(
        _vertical(
            "性別来庁者数",
            "性別",
            [(gender_label(x), C(fig, f"by_gender.{x}")) for x in fig["by_gender"]],
            C(fig, "visitors") if UNKNOWN in fig["by_gender"] else C(fig, "details_recorded"),
            "bar",
        )
    )
    sheet.tables.append(
        _vertical(
            "年代別来庁者数",
            "年代",
            [(age_label(x), C(fig, f"by_age_band.{x}")) for x in fig["by_age_band"]],
            C(fig, "visitors") if UNKNOWN in fig["by_age_band"] else C(fig, "details_recorded"),
            "bar",
        )
    )
    sheet.tables.extend(_outcome_tables(fig))
    sheet.tables.append(
        Table(
            "待ち時間・対応時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            _stats_rows(fig, [("待ち時間（受付～対応開始）", "wait"), ("対応時間", "service")]),
        )
    )
    sheet.tables.append(Table("運営状況", ["項目", "件数"], _operations_rows(fig)))
    sheet.tables.extend(_revision_table(report))
    sheet.tables.append(_notes_table(report_notes(report, DESK_NOTES)))
    text = _text_sheet(
        report,
        f"エスカレーション・ご意見　{report.get('ward_name') or report['desk']}",
        _desk_escalations(report["escalations"], fig["escalations"]),
        _opinions(report["opinions"], fig["opinions"]),
    )
    return [sheet, text]


def city_daily(report: dict) -> list[Sheet]:
    """Every desk in one table (A4 landscape), the city's total, the phone line below."""
    fig = report["figures"]
    cols = [
        ("来庁者数", "visitors", INT),
        ("支援必要", "support_needed", INT),
        ("割合", "support_needed_ratio", PCT),
        ("支援実施", "support_given", INT),
        ("割合", "support_given_ratio", PCT),
        ("完了", "completed", INT),
        ("未完了", "not_completed", INT),
        ("呼出し時不在", "no_shows", INT),
        ("エスカレーション", "escalations", INT),
        ("ご意見等", "opinions", INT),
        ("平均待ち（分）", "wait.mean_s", MIN),
        ("平均対応（分）", "service.mean_s", MIN),
    ]
    sheet = Sheet(
        "日次報告書（全市）",
        "日次報告書（全市）",
        [*_head(report, "各区窓口・電話対応")],
        grid=[14, 12] + [9] * (len(cols) - 1),
        landscape=True,
        signature=report.get("signature"),
    )
    rows: list[list[Any]] = []
    for d in report["desks"]:
        if d["desk"] in fig["desks"]:
            rows.append([d["ward_name"]] + [C(fig, f"desks.{d['desk']}.{k}", f) for _n, k, f in cols])
        else:
            rows.append([d["ward_name"]] + [Cell("閉庁", None, TEXT)] + [Cell(None, None, TEXT) for _ in cols[1:]])
    rows.append(["合計"] + [C(fig, f"total.{k}", f) for _n, k, f in cols])
    sheet.tables.append(Table("窓口（区別）", ["区", *[n for n, _k, _f in cols]], rows, totals=1, chart=None))
    line_items = [
        ("入電数", "received", INT),
        ("応答数", "answered", INT),
        ("応答率", "answer_rate", PCT),
        ("つながらなかった呼", "never_connected", INT),
        ("時間外入電", "out_of_hours", INT),
        ("混雑時の案内", "overflow_offered", INT),
        ("対応記録数", "closed", INT),
        ("エスカレーション件数", "escalations", INT),
        ("折り返し受付", "callbacks.opened", INT),
        ("折り返し完了", "callbacks.done", INT),
        ("ご意見・トピック件数", "opinions", INT),
    ]
    sheet.tables.append(
        Table(
            f"電話対応（受付時間：{report.get('line_hours_ja', '')}）",
            ["項目", "件数・割合"],
            [[n, C(fig, f"line.{k}", f)] for n, k, f in line_items],
        )
    )
    sheet.tables.extend(_revision_table(report))
    sheet.tables.append(_notes_table(report_notes(report, CITY_NOTES)))
    return [sheet]


def _outcome_tables(fig: dict, prefix: str = "") -> list[Table]:
    rows = [
        [
            L.label(L.PURPOSE, p),
            C(fig, f"by_purpose.{p}", prefix=prefix),
            C(fig, f"outcomes_by_purpose.{p}.completed", prefix=prefix),
            C(fig, f"outcomes_by_purpose.{p}.not_completed", prefix=prefix),
        ]
        for p in fig["by_purpose"]
    ]
    reasons = [
        [L.label(L.NOT_COMPLETED_REASON, r), C(fig, f"not_completed_reasons.{r}", prefix=prefix)]
        for r in fig["not_completed_reasons"]
    ]
    reasons.append(["合計", C(fig, "not_completed", prefix=prefix)])
    steps = [
        [L.label(L.PROCEDURE_STEP, s), C(fig, f"difficulties_by_step.{s}", prefix=prefix)]
        for s in fig["difficulties_by_step"]
    ]
    return [
        Table("目的別の対応結果", ["目的", "件数", "完了", "未完了"], rows),
        Table("未完了の理由", ["理由", "件数"], reasons, totals=1),
        Table("苦労した手続きの段階（ご意見より）", ["段階", "件数"], steps),
    ]


def _operations_rows(fig: dict, prefix: str = "") -> list[list[Any]]:
    items = [
        ("消毒実施回数", "disinfections", INT),
        ("消毒前の対応開始", "disinfection_misses", INT),
        ("消毒遵守率", "disinfection_compliance", PCT),
        ("マスク確認", "masks_checked", INT),
        ("マスク未着用", "masks_missing", INT),
        ("支援員不在（人員配置違反）", "staffing_breaches", INT),
        ("不在時間（秒）", "staffing_breach_s", INT),
        ("短時間不在", "short_absences", INT),
        ("暗証番号の誤り", "pin_failures", INT),
        ("暗証番号ロック直前の注意喚起", "pin_lock_warnings", INT),
        ("暗証番号ロック", "pin_locks", INT),
        ("カードお預かり", "cards_handed", INT),
        ("カード置き忘れ", "card_incidents", INT),
        ("混雑アラート（想定人数超過）", "capacity_alerts", INT),
        ("エスカレーション件数", "escalations", INT),
        ("うち市へ照会", "escalations_to_city", INT),
        ("業務中断", "day_stops", INT),
        ("再呼出し", "recalls", INT),
        ("訂正件数", "visit_corrections", INT),
    ]
    return [[name, C(fig, key, fmt, prefix)] for name, key, fmt in items]


def _line_rows(fig: dict, prefix: str = "") -> list[list[Any]]:
    items = [
        ("入電数", "received", INT),
        ("うち受付時間内", "received_in_hours", INT),
        ("応答数", "answered", INT),
        ("不応答", "missed", INT),
        ("うち折り返し希望", "missed_callback_chosen", INT),
        ("放棄呼", "abandoned", INT),
        ("時間外入電", "out_of_hours", INT),
        ("つながらなかった呼", "never_connected", INT),
        ("つながらなかった方（人数）", "never_connected_people", INT),
        ("つながらなかった割合", "never_connected_share", PCT),
        ("応答率", "answer_rate", PCT),
        ("混雑時の案内", "overflow_offered", INT),
        ("うち待つを選択", "offer_choices.wait", INT),
        ("うち折り返しを選択", "offer_choices.callback", INT),
        ("うちかけ直しを選択", "offer_choices.call_later", INT),
        ("時間外の案内", "after_hours_guided", INT),
        ("再入電（受付番号で確認）", "repeat_calls", INT),
        ("対応記録数", "closed", INT),
        ("エスカレーション件数", "escalations", INT),
        ("ご意見・トピック件数", "opinions", INT),
        ("折り返し受付", "callbacks.opened", INT),
        ("折り返し完了", "callbacks.done", INT),
        ("折り返し不通", "callbacks.failed", INT),
        ("折り返し取消", "callbacks.cancelled", INT),
        ("折り返し期限超過", "callbacks.overdue", INT),
        ("折り返し：市へ照会", "callbacks.to_city", INT),
        ("折り返し：市の回答あり", "callbacks.city_answered", INT),
        ("混雑アラート", "capacity_alerts", INT),
        ("オペレーター不在", "staffing_breaches", INT),
        ("不在時間（分）", "staffing_gap_s", MIN),
    ]
    rows = [[name, C(fig, key, fmt, prefix)] for name, key, fmt in items]
    return [r for r in rows if r[1].value is not None or r[1].fmt == PCT]


def _line_breakdowns(fig: dict, prefix: str = "") -> list[Table]:
    cats = [[L.label(L.CALL_CATEGORY, c), C(fig, f"by_category.{c}", prefix=prefix)] for c in fig["by_category"]]
    res = [[L.label(L.RESOLUTION, r), C(fig, f"by_resolution.{r}", prefix=prefix)] for r in fig["by_resolution"]]
    res.append(["合計", C(fig, "closed", prefix=prefix)])
    prov = [[L.label(L.PAYMENT_SERVICE, p), C(fig, f"by_provider.{p}", prefix=prefix)] for p in fig["by_provider"]]
    return [
        Table("問い合わせ分類（複数選択）", ["分類", "件数"], cats),
        Table("対応結果", ["結果", "件数"], res, totals=1),
        Table("案内した決済事業者の種別", ["種別", "件数"], prov),
        Table(
            "応答待ち時間・通話時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            _stats_rows(fig, [("応答待ち時間", "answer_wait"), ("通話時間", "duration")], prefix),
        ),
    ]


def line_daily(report: dict) -> list[Sheet]:
    fig = report["figures"]
    op = report["opening"]
    hours_text = "、".join(f"{a}～{b}" for a, b in op["intervals"]) or "受付なし"
    sheet = Sheet(
        "日次報告書（電話）",
        "日次報告書（電話対応）",
        [*_head(report, "電話対応"), f"受付時間：{hours_text}"],
        grid=NUMERIC_GRID,
        signature=report.get("signature"),
    )
    sheet.tables.append(Table("入電状況", ["項目", "件数・割合"], _line_rows(fig)))
    sheet.tables.append(_hours_table(fig, "時間帯別入電数", "received", unit="件数"))
    sheet.tables.extend(_line_breakdowns(fig))
    sheet.tables.extend(_revision_table(report))
    sheet.tables.append(_notes_table(report_notes(report, LINE_NOTES)))
    esc = Table(
        f"エスカレーション（{fig['escalations']}件）",
        ["No", "時刻", "分類", "概要", "状況", "対応結果・市の回答"],
        [
            [
                str(i),
                e.get("time") or "",
                e.get("category_ja") or "",
                e.get("text") or "",
                e.get("status_ja") or "",
                e.get("outcome") or "",
            ]
            for i, e in enumerate(report["escalations"], start=1)
        ],
    )
    return [
        sheet,
        _text_sheet(
            report, "エスカレーション・ご意見（電話対応）", esc, _opinions(report["opinions"], fig["opinions"])
        ),
    ]


def weekly(report: dict) -> list[Sheet]:
    fig = report["figures"]
    days = report["days"]
    wards = report["wards"]
    sheet = Sheet(
        "週次報告書",
        "週次報告書（全市）",
        _head(report, "各区窓口・電話対応"),
        grid=[16] + [10] * 8,
        landscape=True,
        signature=report.get("signature"),
    )
    header = ["区"] + [d["label"] for d in days] + ["合計"]

    def day_cell(key: str, day: dict) -> Cell:
        cell = C(fig, key)
        if not day.get("open", True) and not cell.value:
            return Cell("閉庁", None, TEXT)  # a closed day is not a day with nobody
        return cell

    for name in WEEKLY_DESK:
        rows = [
            [w["ward_name"]]
            + [day_cell(f"wards.{w['ward']}.days.{d['date']}.{name}", d) for d in days]
            + [C(fig, f"wards.{w['ward']}.total.{name}")]
            for w in wards
        ]
        rows.append(
            ["合計"] + [day_cell(f"total.days.{d['date']}.{name}", d) for d in days] + [C(fig, f"total.total.{name}")]
        )
        sheet.tables.append(Table(f"{FIGURE_JA[name]}（区別・日別）", header, rows, totals=1))
    rows = [
        [FIGURE_JA.get(n, n)] + [C(fig, f"line.days.{d['date']}.{n}") for d in days] + [C(fig, f"line.total.{n}")]
        for n in WEEKLY_LINE
    ]
    sheet.tables.append(Table("電話対応（日別）", ["項目"] + [d["label"] for d in days] + ["合計"], rows))
    sheet.tables.extend(_revision_table(report))
    sheet.tables.append(_notes_table(report_notes(report, CITY_NOTES)))
    return [sheet]


def final(report: dict) -> list[Sheet]:
    fig = report["figures"]
    wards = report["wards"]
    city = fig["city"]
    months = report["months"]
    summary = Sheet(
        "集計",
        "最終報告書",
        _head(report, "マイキーID設定及びマイナポイント申込み支援等業務"),
        grid=[28] + [10] * max(8, len(months) + 1),
        landscape=True,
        signature=report.get("signature"),
    )
    cols = [
        ("来庁者数", "visitors", INT),
        ("支援必要", "support_needed", INT),
        ("支援実施", "support_given", INT),
        ("完了", "completed", INT),
        ("未完了", "not_completed", INT),
        ("呼出し時不在", "no_shows", INT),
        ("エスカレーション", "escalations", INT),
        ("ご意見", "opinions", INT),
    ]
    rows = [[w["ward_name"]] + [C(fig, f"wards.{w['ward']}.{k}", f) for _n, k, f in cols] for w in wards]
    rows.append(["合計"] + [C(fig, f"city.{k}", f) for _n, k, f in cols])
    summary.tables.append(Table("区別の集計（対象期間）", ["区"] + [n for n, _k, _f in cols], rows, totals=1))
    ratios = [
        ["支援が必要な方の割合（対来庁者数）", C(fig, "city.support_needed_ratio", PCT)],
        ["支援を実施した方の割合（対来庁者数）", C(fig, "city.support_given_ratio", PCT)],
    ]
    if "support_given_of_needed" in city:
        ratios.append(["支援実施率（実施／必要）", C(fig, "city.support_given_of_needed", PCT)])
    summary.tables.append(Table("割合（全市）", ["項目", "割合"], ratios))
    rows = [
        [w["ward_name"]]
        + [C(fig, f"months.{mo}.{w['ward']}") for mo in months]
        + [C(fig, f"wards.{w['ward']}.visitors")]
        for w in wards
    ]
    rows.append(["合計"] + [Cell(sum(fig["months"][mo].values()), None) for mo in months] + [C(fig, "city.visitors")])
    summary.tables.append(Table("月別来庁者数", ["区"] + [_month_ja(mo) for mo in months] + ["合計"], rows, totals=1))
    total = C(fig, "city.visitors") if UNKNOWN in city["by_gender"] else C(fig, "city.details_recorded")
    summary.tables.append(
        _vertical(
            "性別来庁者数",
            "性別",
            [(gender_label(x), C(fig, f"city.by_gender.{x}")) for x in city["by_gender"]],
            total,
            "bar",
        )
    )
    total = C(fig, "city.visitors") if UNKNOWN in city["by_age_band"] else C(fig, "city.details_recorded")
    summary.tables.append(
        _vertical(
            "年代別来庁者数",
            "年代",
            [(age_label(x), C(fig, f"city.by_age_band.{x}")) for x in city["by_age_band"]],
            total,
            "bar",
        )
    )
    if city.get("by_hour"):
        summary.tables.append(_hours_table(city, "時間帯別来庁者数", "visitors", "city."))
    summary.tables.extend(_outcome_tables(city, "city."))
    summary.tables.append(
        Table(
            "待ち時間・対応時間（分）",
            ["区分", "件数", "平均", "90%値", "最大"],
            _stats_rows(city, [("待ち時間", "wait"), ("対応時間", "service")], "city."),
        )
    )
    summary.tables.append(Table("運営状況", ["項目", "件数"], _operations_rows(city, "city.")))
    trend = fig["weekly_trend"]
    trend_rows = [
        [
            f"{to_wareki(dt.date.fromisoformat(w))}～",
            C(fig, f"weekly_trend.{w}.visitors"),
            C(fig, f"weekly_trend.{w}.calls"),
        ]
        for w in trend
    ]
    summary.tables.append(Table("週別の推移", ["週", "来庁者数", "入電数"], trend_rows))
    summary.tables.extend(_revision_table(report))
    summary.tables.append(_notes_table(DESK_NOTES))
    line = Sheet("電話対応", "最終報告書（電話対応）", _head(report, "電話対応"), grid=NUMERIC_GRID)
    line.tables.append(Table("入電状況（対象期間）", ["項目", "件数・割合"], _line_rows(fig["line"], "line.")))
    line.tables.extend(_line_breakdowns(fig["line"], "line."))
    line.tables.append(_notes_table(LINE_NOTES))
    records = Sheet(
        "通話記録",
        "通話記録（対応記録）",
        [*_head(report, "電話対応記録"), f"件数：{fig['call_records']}件（個人情報は含みません）"],
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
                    r["no"],
                    r["date"],
                    r["time"],
                    r["line"],
                    r["connection_ja"],
                    r["categories_ja"],
                    r["resolution_ja"],
                    Cell(minutes(r["duration_s"]) if r["duration_s"] is not None else None, None, MIN),
                    r["callback_ja"],
                    r["notes"] or "",
                ]
                for r in report["call_records"]
            ],
        )
    )
    esc = Sheet(
        "エスカレーション",
        "エスカレーション一覧",
        _head(report, "窓口・電話"),
        grid=[11, 7, 12, 20, 56, 12, 30],
        landscape=True,
    )
    esc.tables.append(
        Table(
            "窓口",
            ["日付", "時刻", "窓口", "区分", "概要", "状況", "対応結果"],
            _list_rows(
                report["escalations"],
                [
                    ("日付", "date"),
                    ("時刻", "time"),
                    ("窓口", "scope"),
                    ("区分", "category_ja"),
                    ("概要", "text"),
                    ("状況", "status_ja"),
                    ("結果", "outcome"),
                ],
            ),
        )
    )
    esc.tables.append(
        Table(
            "電話",
            ["日付", "時刻", "回線", "分類", "概要", "状況", "対応結果・市の回答"],
            _list_rows(
                report["line_escalations"],
                [
                    ("日付", "date"),
                    ("時刻", "time"),
                    ("回線", "scope"),
                    ("分類", "category_ja"),
                    ("概要", "text"),
                    ("状況", "status_ja"),
                    ("結果", "outcome"),
                ],
            ),
        )
    )
    return [summary, line, records, esc]


def _month_ja(month: str) -> str:
    y, m = (int(x) for x in month.split("-"))
    return f"{to_wareki(dt.date(y, m, 1)).split('年')[0]}年{m}月"


def sheets(report: dict) -> list[Sheet]:
    if report["kind"] == "daily":
        if report["scope"] == "city":
            return city_daily(report)
        return line_daily(report) if report["scope"] == "line" else desk_daily(report)
    if report["kind"] == "weekly":
        return weekly(report)
    return final(report)


def file_stem(report: dict) -> str:
    return report["report_id"]
