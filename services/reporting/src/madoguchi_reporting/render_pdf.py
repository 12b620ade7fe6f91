"""Reports as PDF with charts (matplotlib): visitors per hour, gender and age band, outcomes,
weekly trend; the key tables; escalation summaries and opinions.

Japanese text needs a Japanese font, found by path (matplotlib does not look at fontconfig):
``$MADOGUCHI_REPORT_FONT``, else the Debian packages' files (fonts-ipafont-gothic,
fonts-noto-cjk, fonts-ipaexfont-gothic), else whatever ``fc-list :lang=ja`` lists. The font is
embedded as TrueType (pdf.fonttype 42), so the PDF shows the same text everywhere.
"""

from __future__ import annotations

import datetime as dt
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

from madoguchi_shared.wareki import to_wareki

# IPA Gothic has no bold face: matplotlib then uses the regular one, and says so once per text
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

from madoguchi_shared import labels as L  # noqa: E402
from madoguchi_reporting.layout import PCT, SEC, Cell, Table, sheets  # noqa: E402
from madoguchi_reporting.queries import FIGURE_JA  # noqa: E402

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
    raise FontMissing("no Japanese font found: install fonts-ipafont-gothic (or fonts-noto-cjk), "
                      "or set MADOGUCHI_REPORT_FONT to a .ttf/.otf path")


def _fmt(v: Any) -> str:
    if isinstance(v, Cell):
        if v.value is None:
            return "－"
        if v.fmt == PCT:
            return f"{v.value * 100:.1f}%"
        if v.fmt == SEC:
            return f"{v.value:,.1f}"
        return f"{v.value:,}" if isinstance(v.value, int | float) else str(v.value)
    return "" if v is None else str(v)


def _page(landscape: bool = False) -> Figure:
    fig = Figure(figsize=A4_LANDSCAPE if landscape else A4)
    return fig


def _header(fig: Figure, title: str, lines: list[str]) -> float:
    fig.text(0.5, 0.965, title, ha="center", va="top", fontsize=16, weight="bold")
    y = 0.93
    for line in lines:
        fig.text(0.06, y, line, ha="left", va="top", fontsize=9)
        y -= 0.018
    return y - 0.01


def _table(fig: Figure, rect: tuple[float, float, float, float], table: Table, fontsize: float = 8,
           max_rows: int = 40) -> None:
    ax = fig.add_axes(rect)
    ax.axis("off")
    ax.set_title(f"■ {table.title}", loc="left", fontsize=10, weight="bold")
    rows = [[_fmt(v) for v in r] for r in table.rows[:max_rows]] or [["（該当なし）"] + [""] * (len(table.header) - 1)]
    rows = [[textwrap.shorten(c, 60, placeholder="…") if len(c) > 60 else c for c in r] for r in rows]
    t = ax.table(cellText=rows, colLabels=table.header, loc="upper center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    t.scale(1, 1.25)
    for (r, _c), cell in t.get_celld().items():
        cell.set_linewidth(0.5)
        if r == 0:
            cell.set_facecolor("#d9e1f2")
            cell.set_text_props(weight="bold")
        elif table.totals and r > len(rows) - table.totals:
            cell.set_facecolor("#f2f2f2")
            cell.set_text_props(weight="bold")


def _bar(ax, labels: list[str], values: list[float], title: str, color: str = COLORS[0], horizontal: bool = False) -> None:
    if horizontal:
        ax.barh(labels, values, color=color)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,}", va="center", fontsize=7)
    else:
        bars = ax.bar(labels, values, color=color)
        ax.bar_label(bars, fontsize=7)
    ax.set_title(title, fontsize=10, weight="bold")
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)


def _text_block(fig: Figure, y: float, title: str, items: list[str], width: int = 70) -> float:
    fig.text(0.06, y, f"■ {title}", fontsize=10, weight="bold", va="top")
    y -= 0.022
    if not items:
        fig.text(0.08, y, "（該当なし）", fontsize=8, va="top")
        return y - 0.02
    for item in items:
        for i, line in enumerate(textwrap.wrap(item, width) or [""]):
            if y < 0.05:
                fig.text(0.08, y, "…（以下略：xlsx / CSV を参照）", fontsize=8, va="top")
                return y - 0.02
            fig.text(0.08 if i == 0 else 0.1, y, line, fontsize=8, va="top")
            y -= 0.016
    return y - 0.01


def _desk_pages(report: dict, sheet) -> list[Figure]:
    f = report["figures"]
    tables = {t.title.split("（")[0]: t for t in sheet.tables}
    p1 = _page()
    y = _header(p1, sheet.title, sheet.lines)
    _table(p1, (0.08, y - 0.30, 0.5, 0.28), tables["来庁者数等"])
    hours = list(f["by_hour"])
    ax = p1.add_axes((0.1, y - 0.62, 0.82, 0.24))
    _bar(ax, [f"{int(h)}時" for h in hours], [f["by_hour"][h] for h in hours], "時間毎来庁者数（受付時刻）")
    _table(p1, (0.08, 0.05, 0.84, 0.12), tables["待ち時間・対応時間"])
    p2 = _page()
    p2.text(0.5, 0.965, "来庁者の内訳・対応結果", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.1, 0.70, 0.35, 0.22))
    _bar(ax, [L.label(L.GENDER, g) for g in f["by_gender"]], list(f["by_gender"].values()), "性別", COLORS[1])
    ax = p2.add_axes((0.55, 0.70, 0.38, 0.22))
    _bar(ax, [L.label(L.AGE_BAND, a) for a in f["by_age_band"]], list(f["by_age_band"].values()), "年代別", COLORS[2])
    ax.tick_params(axis="x", labelrotation=45)
    ax = p2.add_axes((0.32, 0.38, 0.6, 0.25))
    purposes = list(f["outcomes_by_purpose"])
    done = [f["outcomes_by_purpose"][p]["completed"] for p in purposes]
    notd = [f["outcomes_by_purpose"][p]["not_completed"] for p in purposes]
    names = [L.label(L.PURPOSE, p) for p in purposes]
    ax.barh(names, done, color=COLORS[0], label="完了")
    ax.barh(names, notd, left=done, color=COLORS[1], label="未完了")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.set_title("目的別の対応結果", fontsize=10, weight="bold")
    ax.tick_params(labelsize=7)
    ax = p2.add_axes((0.32, 0.07, 0.6, 0.24))
    reasons = f["not_completed_reasons"]
    _bar(ax, [L.label(L.NOT_COMPLETED_REASON, r) for r in reasons], list(reasons.values()), "未完了の理由", COLORS[3],
         horizontal=True)
    p3 = _page()
    y = _header(p3, "エスカレーション・ご意見等", [report["period"]["heading"]])
    esc = [f"{e['time']} ［{e.get('category_ja') or ''}／{e.get('status_ja') or ''}］ {e['text']}" for e in report["escalations"]]
    y = _text_block(p3, y, f"エスカレーション（{f['escalations']}件）", esc)
    ops = [f"{o['time']} ［{o.get('kind_ja') or ''}{'／' + o['step_ja'] if o.get('step_ja') else ''}］ {o['text']}"
           for o in report["opinions"]]
    y = _text_block(p3, y, f"ご意見・ご要望・トピック（{f['opinions']}件）", ops)
    pages = [p1, p2, p3]
    p4 = _page()
    _header(p4, "運営状況", [report["period"]["heading"]])
    _table(p4, (0.1, 0.35, 0.6, 0.52), tables["運営状況"])
    if "訂正内容" in tables:
        _table(p4, (0.1, 0.05, 0.8, 0.25), tables["訂正内容"])
    pages.append(p4)
    return pages


def _line_pages(report: dict, sheet) -> list[Figure]:
    f = report["figures"]
    tables = {t.title.split("（")[0]: t for t in sheet.tables}
    p1 = _page()
    y = _header(p1, sheet.title, sheet.lines)
    _table(p1, (0.08, y - 0.52, 0.5, 0.5), tables["入電状況"], fontsize=7)
    hours = list(f["by_hour"])
    ax = p1.add_axes((0.1, 0.06, 0.82, 0.22))
    _bar(ax, [f"{int(h)}時" for h in hours], [f["by_hour"][h] for h in hours], "時間毎入電数")
    p2 = _page()
    p2.text(0.5, 0.965, "問い合わせの内訳・対応結果", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.38, 0.62, 0.55, 0.3))
    cats = f["by_category"]
    _bar(ax, [L.label(L.CALL_CATEGORY, c) for c in cats], list(cats.values()), "問い合わせ分類", COLORS[2], horizontal=True)
    ax = p2.add_axes((0.38, 0.34, 0.55, 0.22))
    res = f["by_resolution"]
    _bar(ax, [L.label(L.RESOLUTION, r) for r in res], list(res.values()), "対応結果", COLORS[0], horizontal=True)
    ax = p2.add_axes((0.1, 0.05, 0.35, 0.22))
    conn = {k: f[k] for k in ("answered", "missed", "abandoned", "out_of_hours")}
    _bar(ax, [L.label(L.CONNECTION, k) for k in conn], list(conn.values()), "接続状況", COLORS[1])
    p3 = _page()
    y = _header(p3, "エスカレーション・ご意見等", [report["period"]["heading"]])
    esc = [f"{e['time']} ［{e.get('category_ja') or ''}］ {e['text']}" for e in report["escalations"]]
    y = _text_block(p3, y, f"エスカレーション（{f['escalations']}件）", esc)
    ops = [f"{o['time']} ［{o.get('kind_ja') or ''}］ {o['text']}" for o in report["opinions"]]
    _text_block(p3, y, f"ご意見・ご要望・トピック（{f['opinions']}件）", ops)
    return [p1, p2, p3]


def _weekly_pages(report: dict, sheet) -> list[Figure]:
    f = report["figures"]
    days = report["days"]
    p1 = _page(landscape=True)
    y = _header(p1, sheet.title, sheet.lines)
    _table(p1, (0.05, 0.08, 0.9, y - 0.12), sheet.tables[0], fontsize=8)
    p2 = _page(landscape=True)
    p2.text(0.5, 0.965, "日別・区別の来庁者数と入電数", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.07, 0.12, 0.6, 0.75))
    labels = [d["label"] for d in days]
    bottom = [0] * len(days)
    for i, w in enumerate(report["wards"]):
        vals = [f["wards"][w["ward"]]["days"][d["date"]]["visitors"] for d in days]
        ax.bar(labels, vals, bottom=bottom, color=COLORS[i % len(COLORS)], label=w["ward_name"])
        bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
    ax.set_title("来庁者数（区別の積み上げ）", fontsize=10, weight="bold")
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(labelsize=8)
    ax = p2.add_axes((0.73, 0.12, 0.24, 0.75))
    calls = [f["line"]["days"][d["date"]]["received"] for d in days]
    ax.plot(labels, calls, marker="o", color=COLORS[1])
    ax.set_title("入電数", fontsize=10, weight="bold")
    ax.tick_params(labelsize=7, axis="x", labelrotation=45)
    pages = [p1, p2]
    for start in range(1, len(sheet.tables), 2):
        p = _page(landscape=True)
        p.text(0.5, 0.965, sheet.title, ha="center", va="top", fontsize=12, weight="bold")
        _table(p, (0.05, 0.52, 0.9, 0.4), sheet.tables[start], fontsize=7)
        if start + 1 < len(sheet.tables):
            _table(p, (0.05, 0.05, 0.9, 0.4), sheet.tables[start + 1], fontsize=7)
        pages.append(p)
    return pages


def _final_pages(report: dict, all_sheets) -> list[Figure]:
    f = report["figures"]
    city = f["city"]
    summary = all_sheets[0]
    tables = {t.title.split("（")[0]: t for t in summary.tables}
    p1 = _page(landscape=True)
    y = _header(p1, summary.title, summary.lines)
    _table(p1, (0.05, 0.35, 0.9, y - 0.38), tables["区別の集計"], fontsize=8)
    _table(p1, (0.05, 0.03, 0.9, 0.27), tables["月別来庁者数"], fontsize=8)
    p2 = _page(landscape=True)
    p2.text(0.5, 0.965, "週別の推移（来庁者数・入電数）", ha="center", va="top", fontsize=14, weight="bold")
    ax = p2.add_axes((0.07, 0.12, 0.86, 0.75))
    weeks = list(f["weekly_trend"])
    labels = [to_wareki(dt.date.fromisoformat(w)).split("年", 1)[1] for w in weeks]
    ax.plot(labels, [f["weekly_trend"][w]["visitors"] for w in weeks], marker="o", color=COLORS[0], label="来庁者数")
    ax2 = ax.twinx()
    ax2.plot(labels, [f["weekly_trend"][w]["calls"] for w in weeks], marker="s", color=COLORS[1], label="入電数")
    ax.set_ylabel("来庁者数")
    ax2.set_ylabel("入電数")
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    p3 = _page()
    p3.text(0.5, 0.965, "来庁者の内訳（契約期間）", ha="center", va="top", fontsize=14, weight="bold")
    ax = p3.add_axes((0.1, 0.68, 0.35, 0.24))
    _bar(ax, [L.label(L.GENDER, g) for g in city["by_gender"]], list(city["by_gender"].values()), "性別", COLORS[1])
    ax = p3.add_axes((0.55, 0.68, 0.38, 0.24))
    _bar(ax, [L.label(L.AGE_BAND, a) for a in city["by_age_band"]], list(city["by_age_band"].values()), "年代別", COLORS[2])
    ax.tick_params(axis="x", labelrotation=45)
    hours = list(city.get("by_hour") or {})
    ax = p3.add_axes((0.1, 0.38, 0.82, 0.22))
    _bar(ax, [f"{int(h)}時" for h in hours], [city["by_hour"][h] for h in hours], "時間帯別来庁者数")
    ax = p3.add_axes((0.35, 0.05, 0.57, 0.25))
    purposes = list(city["outcomes_by_purpose"])
    done = [city["outcomes_by_purpose"][p]["completed"] for p in purposes]
    notd = [city["outcomes_by_purpose"][p]["not_completed"] for p in purposes]
    names = [L.label(L.PURPOSE, p) for p in purposes]
    ax.barh(names, done, color=COLORS[0], label="完了")
    ax.barh(names, notd, left=done, color=COLORS[1], label="未完了")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.set_title("目的別の対応結果", fontsize=10, weight="bold")
    ax.tick_params(labelsize=7)
    line = all_sheets[1]
    ltables = {t.title.split("（")[0]: t for t in line.tables}
    p4 = _page()
    y = _header(p4, line.title, line.lines)
    _table(p4, (0.08, y - 0.52, 0.5, 0.5), ltables["入電状況"], fontsize=7)
    lf = f["line"]
    ax = p4.add_axes((0.38, 0.06, 0.55, 0.3))
    _bar(ax, [L.label(L.CALL_CATEGORY, c) for c in lf["by_category"]], list(lf["by_category"].values()),
         "問い合わせ分類", COLORS[2], horizontal=True)
    p5 = _page()
    y = _header(p5, "通話記録・エスカレーション", [report["period"]["heading"]])
    p5.text(0.06, y, f"通話記録：{f['call_records']}件。明細（個人情報を含まない対応記録）は xlsx「通話記録」シート及び CSV に収録。",
            fontsize=9, va="top")
    esc = [f"{e['date']} {e['time']} {e['scope']} ［{e.get('category_ja') or ''}］ {e['text']}" for e in report["escalations"]]
    _text_block(p5, y - 0.04, f"窓口のエスカレーション（{city['escalations']}件）", esc)
    return [p1, p2, p3, p4, p5]


def render_pdf(report: dict) -> bytes:
    family = japanese_font()
    all_sheets = sheets(report)
    with matplotlib.rc_context({"font.family": [family, "DejaVu Sans"], "pdf.fonttype": 42, "axes.unicode_minus": False}):
        if report["kind"] == "daily" and report["scope"] == "line":
            pages = _line_pages(report, all_sheets[0])
        elif report["kind"] == "daily":
            pages = _desk_pages(report, all_sheets[0])
        elif report["kind"] == "weekly":
            pages = _weekly_pages(report, all_sheets[0])
        else:
            pages = _final_pages(report, all_sheets)
        buf = io.BytesIO()
        with PdfPages(buf, metadata={"Title": f"{report.get('title', '')} {report['period']['heading']}",
                                     "Creator": "Madoguchi", "CreationDate": None}) as pdf:
            for i, page in enumerate(pages, start=1):
                page.text(0.5, 0.015, f"{i} / {len(pages)}", ha="center", fontsize=7, color="#555555")
                pdf.savefig(page)
    return buf.getvalue()


__all__ = ["render_pdf", "japanese_font", "FontMissing", "FIGURE_JA"]
