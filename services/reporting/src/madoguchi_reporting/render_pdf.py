"""Reports as PDF with charts (matplotlib): visitors per hour, gender and age band, outcomes,
weekly trend; the key tables; escalation summaries and opinions.

Japanese text needs a Japanese font, found by path (matplotlib does not look at fontconfig):
``$MADOGUCHI_REPORT_FONT``, else the Debian packages' files (fonts-ipafont-gothic,
fonts-noto-cjk, fonts-ipaexfont-gothic), else whatever ``fc-list :lang=ja`` lists. The font is
embedded as TrueType (pdf.fonttype 42), so the PDF shows the same text everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
import io
import logging
import os
import shutil
import subprocess
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import font_manager
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from madoguchi_shared.figures import Fig
from madoguchi_shared.wareki import to_wareki

# IPA Gothic has no bold face: matplotlib then uses the regular one, and says so once per text
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

from madoguchi_shared import labels as L  # noqa: E402
from madoguchi_reporting.layout import DESK_NOTES, LINE_NOTES, MIN, PCT, SEC, Cell, Table, report_notes, sheets  # noqa: E402
from madoguchi_reporting.reports import models as md  # noqa: E402

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",  # fonts-ipafont-gothic
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",  # fonts-ipaexfont-gothic
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # fonts-noto-cjk
    "/usr/share/fonts/truetype/takao-gothic/TakaoPGothic.ttf",
)
A4 = (8.27, 11.69)
A4_LANDSCAPE = (11.69, 8.27)
COLORS = ["#1f4e79", "#c55a11", "#548235", "#7f6000", "#7030a0", "#2e75b6", "#bf9000", "#a9d18e", "#f4b183", "#8faadc"]


class FontMissing(RuntimeError):
    pass


@cache
def japanese_font() -> str:
    """The path of a Japanese font, registered with matplotlib; its family name is returned."""
    paths = [os.environ.get("MADOGUCHI_REPORT_FONT", ""), *FONT_CANDIDATES]
    if shutil.which("fc-list"):
        try:
            out = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True, timeout=10).stdout
            paths += sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for p in paths:
        if p and Path(p).is_file():
            font_manager.fontManager.addfont(p)
            return font_manager.FontProperties(fname=p).get_name()
    raise FontMissing(
        "no Japanese font found: install fonts-ipafont-gothic (or fonts-noto-cjk), "
        "or set MADOGUCHI_REPORT_FONT to a .ttf/.otf path"
    )


def _fmt(v: Any) -> str:
    if isinstance(v, Cell):
        if v.value is None:
            return "－"
        if v.fmt == PCT:
            return f"{v.value * 100:.1f}%"
        if v.fmt in (SEC, MIN) and isinstance(v.value, int | float):
            return f"{v.value:,.1f}"
        return f"{v.value:,}" if isinstance(v.value, int | float) else str(v.value)
    return "" if v is None else str(v)


def _page(landscape: bool = False) -> Figure:
    fig = Figure(figsize=A4_LANDSCAPE if landscape else A4)
    return fig


FOOTER_TOP = 0.045  # nothing is drawn below this: the page number sits under it


def _header(fig: Figure, title: str, lines: list[str], signature: md.Signature | None = None) -> float:
    fig.text(0.5, 0.965, title, ha="center", va="top", fontsize=16, weight="bold")
    y = 0.93
    for line in lines:
        fig.text(0.06, y, line, ha="left", va="top", fontsize=9)
        y -= 0.018
    if signature:
        y = min(y, _signature(fig, signature))
    return y - 0.01


def _signature(fig: Figure, sig: md.Signature) -> float:
    """受託者 / 提出日 under the heading and the approval boxes (承認欄) at the right."""
    w_in, h_in = fig.get_size_inches()
    submitted = sig.submitted_on
    date_text = to_wareki(submitted, weekday=True) if submitted else "令和　　年　　月　　日"
    boxes = list(sig.approvals)
    box_w, head_h, box_h = 0.75 / w_in, 0.22 / h_in, 0.55 / h_in
    top = 0.93
    right = 0.94
    for i, label in enumerate(reversed(boxes)):
        x = right - (i + 1) * box_w
        fig.add_artist(
            Rectangle(
                (x, top - head_h),
                box_w,
                head_h,
                transform=fig.transFigure,
                facecolor="#d9e1f2",
                edgecolor="black",
                linewidth=0.6,
            )
        )
        fig.add_artist(
            Rectangle(
                (x, top - head_h - box_h),
                box_w,
                box_h,
                transform=fig.transFigure,
                facecolor="none",
                edgecolor="black",
                linewidth=0.6,
            )
        )
        fig.text(x + box_w / 2, top - head_h / 2, label, ha="center", va="center", fontsize=8)
    left_limit = right - len(boxes) * box_w - 0.02
    y = top - head_h - box_h - 0.012
    fig.text(0.06, y, f"受託者：{sig.contractor}", fontsize=9, va="top")
    fig.text(0.06, y - 0.018, f"提出日：{date_text}", fontsize=9, va="top")
    del left_limit
    return y - 0.036


def _row_h(fig: Figure, fontsize: float) -> float:
    return fontsize * 2.0 / 72 / fig.get_size_inches()[1]


def _table(
    fig: Figure, rect: tuple[float, float, float, float], table: Table, fontsize: float = 8, max_rows: int = 40
) -> float:
    """The table drawn from the top of `rect` down, never below it (rows get at most their natural
    height; a table with more rows than fit is cut with a note). Returns the y of its bottom."""
    x, bottom, width, height = rect
    top = bottom + height
    rows = [[_fmt(v) for v in r] for r in table.rows[:max_rows]] or [["（該当なし）"] + [""] * (len(table.header) - 1)]
    rows = [[textwrap.shorten(c, 60, placeholder="…") if len(c) > 60 else c for c in r] for r in rows]
    title_h = 0.022
    row_h = _row_h(fig, fontsize)
    fit = max(int((height - title_h) / row_h) - 1, 1)
    cut = len(rows) > fit
    if cut:
        rows = rows[: max(fit - 1, 1)]
    table_h = min(height - title_h, row_h * (len(rows) + 1))
    ax = fig.add_axes((x, top - title_h - table_h, width, table_h))
    ax.axis("off")
    fig.text(x, top, f"■ {table.title}", fontsize=10, weight="bold", va="top")
    widths = table.widths or ([2.5] + [1] * (len(table.header) - 1) if len(table.header) > 1 else None)
    t = ax.table(
        cellText=rows,
        colLabels=table.header,
        cellLoc="center",
        bbox=Bbox.from_bounds(0, 0, 1, 1),
        colWidths=[w / sum(widths) for w in widths] if widths and len(widths) == len(table.header) else None,
    )
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    for (r, _c), cell in t.get_celld().items():
        cell.set_linewidth(0.5)
        if r == 0:
            cell.set_facecolor("#d9e1f2")
            cell.set_text_props(weight="bold")
        elif table.totals and not cut and r > len(rows) - table.totals:
            cell.set_facecolor("#f2f2f2")
            cell.set_text_props(weight="bold")
    y = top - title_h - table_h
    if cut:
        fig.text(x, y - 0.004, "…（以下略：xlsx / CSV を参照）", fontsize=7, va="top")
        y -= 0.018
    return y - 0.015


def _integer_axis(ax, horizontal: bool = False) -> None:
    """People and calls are counted in ones: no 0.25 on an axis."""
    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _bar(
    ax, labels: list[str], values: Sequence[float], title: str, color: str = COLORS[0], horizontal: bool = False
) -> None:
    if horizontal:
        ax.barh(labels, values, color=color)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,}", va="center", fontsize=7)
    else:
        bars = ax.bar(labels, values, color=color)
        ax.bar_label(bars, fontsize=7)
    _integer_axis(ax, horizontal)
    ax.set_title(title, fontsize=10, weight="bold")
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)


def _notes_page(fig: Figure, y: float, notes: list[tuple[str, str]]) -> float:
    return _text_block(fig, y, "注記", [f"{a}：{b}" for a, b in notes], width=60)


def _text_block(fig: Figure, y: float, title: str, items: list[str], width: int = 70) -> float:
    if y < FOOTER_TOP + 0.08:
        return y  # no room left on this page (the caller puts it on the next)
    fig.text(0.06, y, f"■ {title}", fontsize=10, weight="bold", va="top")
    y -= 0.022
    if not items:
        fig.text(0.08, y, "（該当なし）", fontsize=8, va="top")
        return y - 0.02
    for item in items:
        for i, line in enumerate(textwrap.wrap(item, width) or [""]):
            if y < FOOTER_TOP + 0.04:
                fig.text(0.08, y, "…（以下略：xlsx / CSV を参照）", fontsize=8, va="top")
                return y - 0.02
            fig.text(0.08 if i == 0 else 0.1, y, line, fontsize=8, va="top")
            y -= 0.016
    return y - 0.01


def _tables(sheet) -> dict[str, Table]:
    return {t.title.split("（")[0]: t for t in sheet.tables}


def _vertical_chart(fig: Figure, rect, table: Table, color: str, horizontal: bool = False) -> None:
    body = table.rows[: len(table.rows) - table.totals]
    labels = [str(r[0]) for r in body]
    values = [r[1].value or 0 for r in body]
    ax = fig.add_axes(rect)
    _bar(ax, labels, values, table.title, color, horizontal=horizontal)
    if not horizontal and len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)


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
