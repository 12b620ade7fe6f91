"""Reports as PDF with charts (matplotlib): visitors per hour, gender and age band, outcomes,
weekly trend; the key tables; escalation summaries and opinions. The drawing primitives and the
Japanese font: `pdf_draw`."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from madoguchi_shared import labels as L
from madoguchi_shared.figures import Fig
from madoguchi_shared.wareki import to_wareki

from madoguchi_reporting.layout import DESK_NOTES, LINE_NOTES, report_notes, sheets
from madoguchi_reporting.pdf_draw import (
    COLORS,
    FOOTER_TOP,
    FontMissing,
    japanese_font,
    _bar,
    _header,
    _integer_axis,
    _notes_page,
    _page,
    _table,
    _tables,
    _text_block,
    _vertical_chart,
)
from madoguchi_reporting.reports import models as md


def _outcomes(ax: Any, f: md.DeskFigures) -> None:
    """Completed and not completed per purpose, stacked."""
    purposes = list(f.outcomes_by_purpose)
    done = [f.outcomes_by_purpose[p].get("completed", 0) for p in purposes]
    notd = [f.outcomes_by_purpose[p].get("not_completed", 0) for p in purposes]
    names = [L.label(L.PURPOSE, p) for p in purposes]
    ax.barh(names, done, color=COLORS[0], label="完了")
    ax.barh(names, notd, left=done, color=COLORS[1], label="未完了")
    ax.invert_yaxis()
    _integer_axis(ax, horizontal=True)
    ax.legend(fontsize=7)
    ax.set_title("目的別の対応結果", fontsize=10, weight="bold")
    ax.tick_params(labelsize=7)


def _escalation_line(e: md.DeskEscalation | md.LineEscalation) -> str:
    return f"{e.time} ［{e.category_ja}／{e.status_ja}］ {e.text}" + (f" → {e.outcome}" if e.outcome else "")


def _desk_pages(report: md.DeskDaily, all_sheets) -> list[Figure]:
    sheet, text = all_sheets[0], all_sheets[1]
    f = report.figures
    tables = _tables(sheet)
    p1 = _page()
    y = _header(p1, sheet.title, sheet.lines, sheet.signature)
    y = _table(p1, (0.08, y - 0.30, 0.6, 0.30), tables["来庁者数等"])
    hours = tables["時間帯別来庁者数"]
    _vertical_chart(p1, (0.1, y - 0.27, 0.82, 0.22), hours, COLORS[0])
    _table(p1, (0.08, FOOTER_TOP + 0.01, 0.84, max(y - 0.32 - FOOTER_TOP - 0.01, 0.08)), tables["待ち時間・対応時間"])
    p2 = _page()
    p2.text(0.5, 0.965, "来庁者の内訳・対応結果", ha="center", va="top", fontsize=14, weight="bold")
    _vertical_chart(p2, (0.1, 0.70, 0.35, 0.22), tables["性別来庁者数"], COLORS[1])
    _vertical_chart(p2, (0.55, 0.70, 0.38, 0.22), tables["年代別来庁者数"], COLORS[2])
    _outcomes(p2.add_axes((0.32, 0.38, 0.6, 0.25)), f)
    ax = p2.add_axes((0.32, 0.08, 0.6, 0.23))
    reasons = f.not_completed_reasons
    _bar(
        ax,
        [L.label(L.NOT_COMPLETED_REASON, r) for r in reasons],
        list(reasons.values()),
        "未完了の理由",
        COLORS[3],
        horizontal=True,
    )
    p3 = _page()
    y = _header(p3, text.title, [report.period.heading])
    esc = [_escalation_line(e) for e in report.escalations]
    y = _text_block(p3, y, f"エスカレーション（{f.escalations}件）", esc)
    ops = [f"{o.time} ［{o.kind_ja}{'／' + o.step_ja if o.step_ja else ''}］ {o.text}" for o in report.opinions]
    _text_block(p3, y, f"ご意見・ご要望・トピック（{f.opinions}件）", ops)
    p4 = _page()
    y = _header(p4, "運営状況・注記", [report.period.heading])
    y = _table(p4, (0.1, y - 0.5, 0.6, 0.5), tables["運営状況"])
    if "訂正内容" in tables:
        y = _table(p4, (0.1, y - 0.2, 0.8, 0.2), tables["訂正内容"])
    _notes_page(p4, y, report_notes(report, DESK_NOTES))
    return [p1, p2, p3, p4]


def _city_pages(report: md.CityDaily, all_sheets) -> list[Figure]:
    sheet = all_sheets[0]
    tables = sheet.tables
    p1 = _page(landscape=True)
    y = _header(p1, sheet.title, sheet.lines, sheet.signature)
    desk_table = tables[0]
    desk_table.widths = [1.6, 1, 1, 1, 1, 1, 1, 1, 1.3, 1.7, 1, 1.3, 1.3][: len(desk_table.header)]
    y = _table(p1, (0.04, y - 0.45, 0.92, 0.45), desk_table, fontsize=7)
    _table(p1, (0.04, FOOTER_TOP + 0.01, 0.45, max(y - FOOTER_TOP - 0.01, 0.1)), tables[1], fontsize=7)
    p2 = _page(landscape=True)
    p2.text(0.5, 0.965, "区別の来庁者数・注記", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.1, 0.45, 0.8, 0.45))
    rows = desk_table.rows[:-1]
    _bar(
        ax,
        [str(r[0]) for r in rows],
        [r[1].value if isinstance(r[1].value, int) else 0 for r in rows],
        "来庁者数（区別）",
        COLORS[0],
        horizontal=True,
    )
    _notes_page(p2, 0.38, [(r[0], r[1]) for r in tables[-1].rows])
    return [p1, p2]


def _line_pages(report: md.LineDaily, all_sheets) -> list[Figure]:
    sheet, text = all_sheets[0], all_sheets[1]
    f = report.figures
    tables = _tables(sheet)
    p1 = _page()
    y = _header(p1, sheet.title, sheet.lines, sheet.signature)
    y = _table(p1, (0.08, max(y - 0.58, 0.3), 0.6, min(0.58, y - 0.3)), tables["入電状況"], fontsize=7)
    _vertical_chart(
        p1, (0.1, FOOTER_TOP + 0.04, 0.82, max(y - FOOTER_TOP - 0.1, 0.1)), tables["時間帯別入電数"], COLORS[0]
    )
    p2 = _page()
    p2.text(0.5, 0.965, "問い合わせの内訳・対応結果", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.38, 0.62, 0.55, 0.3))
    cats = f.by_category
    _bar(
        ax,
        [L.label(L.CALL_CATEGORY, c) for c in cats],
        list(cats.values()),
        "問い合わせ分類",
        COLORS[2],
        horizontal=True,
    )
    ax = p2.add_axes((0.38, 0.34, 0.55, 0.22))
    res = f.by_resolution
    _bar(ax, [L.label(L.RESOLUTION, r) for r in res], list(res.values()), "対応結果", COLORS[0], horizontal=True)
    ax = p2.add_axes((0.1, 0.07, 0.35, 0.2))
    conn = {k: getattr(f, k) for k in (Fig.answered, Fig.missed, Fig.abandoned, Fig.out_of_hours)}
    _bar(ax, [L.label(L.CONNECTION, k) for k in conn], list(conn.values()), "接続状況", COLORS[1])
    _table(p2, (0.55, FOOTER_TOP + 0.01, 0.4, 0.24), tables["応答待ち時間・通話時間"], fontsize=7)
    p3 = _page()
    y = _header(p3, text.title, [report.period.heading])
    esc = [_escalation_line(e) for e in report.escalations]
    y = _text_block(p3, y, f"エスカレーション（{f.escalations}件）", esc)
    ops = [f"{o.time} ［{o.kind_ja}］ {o.text}" for o in report.opinions]
    y = _text_block(p3, y, f"ご意見・ご要望・トピック（{f.opinions}件）", ops)
    _notes_page(p3, y, report_notes(report, LINE_NOTES))
    return [p1, p2, p3]


def _weekly_pages(report: md.Weekly, sheet) -> list[Figure]:
    f = report.figures
    days = report.days
    p1 = _page(landscape=True)
    y = _header(p1, sheet.title, sheet.lines, sheet.signature)
    _table(p1, (0.05, FOOTER_TOP + 0.01, 0.9, y - FOOTER_TOP - 0.01), sheet.tables[0], fontsize=8)
    p2 = _page(landscape=True)
    p2.text(0.5, 0.965, "日別・区別の来庁者数と入電数", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.07, 0.12, 0.6, 0.75))
    labels = [d.label for d in days]
    bottom = [0] * len(days)
    for i, w in enumerate(report.wards):
        vals = [f.wards[w.ward].days[d.date.isoformat()][Fig.visitors] for d in days]
        ax.bar(labels, vals, bottom=bottom, color=COLORS[i % len(COLORS)], label=w.ward_name)
        bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
    _integer_axis(ax)
    ax.set_title("来庁者数（区別の積み上げ）", fontsize=10, weight="bold")
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=8)
    ax = p2.add_axes((0.73, 0.12, 0.24, 0.75))
    calls = [f.line.days[d.date.isoformat()][Fig.received] for d in days]
    ax.plot(labels, calls, marker="o", color=COLORS[1])
    ax.set_ylim(bottom=0)
    _integer_axis(ax)
    ax.set_title("入電数", fontsize=10, weight="bold")
    ax.tick_params(labelsize=7, axis="x", labelrotation=45)
    pages = [p1, p2]
    for start in range(1, len(sheet.tables), 2):
        p = _page(landscape=True)
        p.text(0.5, 0.965, sheet.title, ha="center", va="top", fontsize=12, weight="bold")
        y = _table(p, (0.05, 0.5, 0.9, 0.43), sheet.tables[start], fontsize=7)
        if start + 1 < len(sheet.tables):
            _table(p, (0.05, FOOTER_TOP + 0.01, 0.9, y - FOOTER_TOP - 0.01), sheet.tables[start + 1], fontsize=7)
        pages.append(p)
    return pages


def _final_pages(report: md.Final, all_sheets) -> list[Figure]:
    f = report.figures
    city = f.city
    summary = all_sheets[0]
    tables = {t.title.split("（")[0]: t for t in summary.tables}
    p1 = _page(landscape=True)
    y = _header(p1, summary.title, summary.lines, summary.signature)
    y = _table(p1, (0.05, max(y - 0.42, 0.35), 0.9, min(0.42, y - 0.35)), tables["区別の集計"], fontsize=8)
    _table(p1, (0.05, FOOTER_TOP + 0.01, 0.9, y - FOOTER_TOP - 0.01), tables["月別来庁者数"], fontsize=8)
    p2 = _page(landscape=True)
    p2.text(0.5, 0.965, "週別の推移（来庁者数・入電数）", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.07, 0.12, 0.86, 0.75))
    weeks = list(f.weekly_trend)
    labels = [to_wareki(dt.date.fromisoformat(w)).split("年", 1)[1] for w in weeks]
    ax.plot(labels, [f.weekly_trend[w].visitors for w in weeks], marker="o", color=COLORS[0], label="来庁者数")
    ax2 = ax.twinx()
    ax2.plot(labels, [f.weekly_trend[w].calls for w in weeks], marker="s", color=COLORS[1], label="入電数")
    ax.set_ylabel("来庁者数")
    ax2.set_ylabel("入電数")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    _integer_axis(ax)
    _integer_axis(ax2)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    p3 = _page()
    p3.text(0.5, 0.965, "来庁者の内訳（契約期間）", ha="center", va="top", fontsize=14, weight="bold")
    _vertical_chart(p3, (0.1, 0.68, 0.35, 0.24), tables["性別来庁者数"], COLORS[1])
    _vertical_chart(p3, (0.55, 0.68, 0.38, 0.24), tables["年代別来庁者数"], COLORS[2])
    if "時間帯別来庁者数" in tables:
        _vertical_chart(p3, (0.1, 0.38, 0.82, 0.22), tables["時間帯別来庁者数"], COLORS[0])
    _outcomes(p3.add_axes((0.35, 0.07, 0.57, 0.24)), city)
    line = all_sheets[1]
    ltables = {t.title.split("（")[0]: t for t in line.tables}
    p4 = _page()
    y = _header(p4, line.title, line.lines)
    y = _table(p4, (0.08, y - 0.55, 0.55, 0.55), ltables["入電状況"], fontsize=7)
    lf = f.line
    ax = p4.add_axes((0.38, FOOTER_TOP + 0.03, 0.55, max(y - FOOTER_TOP - 0.08, 0.1)))
    _bar(
        ax,
        [L.label(L.CALL_CATEGORY, c) for c in lf.by_category],
        list(lf.by_category.values()),
        "問い合わせ分類",
        COLORS[2],
        horizontal=True,
    )
    p5 = _page()
    y = _header(p5, "通話記録・エスカレーション", [report.period.heading])
    p5.text(
        0.06,
        y,
        f"通話記録：{f.call_records}件。明細（個人情報を含まない対応記録）は xlsx「通話記録」シート及び CSV に収録。",
        fontsize=9,
        va="top",
    )
    esc = [f"{e.date} {e.time} {e.scope} ［{e.category_ja}］ {e.text}" for e in report.escalations]
    _text_block(p5, y - 0.04, f"窓口のエスカレーション（{city.escalations}件）", esc)
    p6 = _page()
    y = _header(p6, "注記", [report.period.heading])
    y = _notes_page(p6, y, DESK_NOTES)
    _notes_page(p6, y - 0.01, LINE_NOTES)
    return [p1, p2, p3, p4, p5, p6]


def render_pdf(report: md.AnyReport) -> bytes:
    family = japanese_font()
    all_sheets = sheets(report)
    with matplotlib.rc_context(
        {"font.family": [family, "DejaVu Sans"], "pdf.fonttype": 42, "axes.unicode_minus": False}
    ):
        if isinstance(report, md.LineDaily):
            pages = _line_pages(report, all_sheets)
        elif isinstance(report, md.CityDaily):
            pages = _city_pages(report, all_sheets)
        elif isinstance(report, md.DeskDaily):
            pages = _desk_pages(report, all_sheets)
        elif isinstance(report, md.Weekly):
            pages = _weekly_pages(report, all_sheets[0])
        else:
            pages = _final_pages(report, all_sheets)
        buf = io.BytesIO()
        with PdfPages(
            buf,
            metadata={
                "Title": f"{report.title} {report.period.heading}",
                "Creator": "Madoguchi",
                "CreationDate": None,
            },
        ) as pdf:
            for i, page in enumerate(pages, start=1):
                page.text(0.5, 0.018, f"{i} / {len(pages)}", ha="center", fontsize=7, color="#555555")
                pdf.savefig(page)
    return buf.getvalue()


__all__ = ["render_pdf", "japanese_font", "FontMissing"]
