"""Drawing a report's PDF pages (matplotlib): the Japanese font, headings with the signature block,
tables, bar charts, text blocks. `render_pdf` lays the pages of each report kind out with these.

Japanese text needs a Japanese font, found by path (matplotlib does not look at fontconfig):
``$MADOGUCHI_REPORT_FONT``, else the Debian packages' files (fonts-ipafont-gothic,
fonts-noto-cjk, fonts-ipaexfont-gothic), else whatever ``fc-list :lang=ja`` lists. The font is
embedded as TrueType (pdf.fonttype 42), so the PDF shows the same text everywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import textwrap
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from madoguchi_shared.wareki import to_wareki

# IPA Gothic has no bold face: matplotlib then uses the regular one, and says so once per text
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

from madoguchi_reporting.layout import MIN, PCT, SEC, Cell, Table  # noqa: E402
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
