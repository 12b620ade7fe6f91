"""How a report reads on paper: the report model laid out as titled tables with Japanese headings.

One layout feeds the xlsx and CSV renderers (and the PDF's tables), so every file shows the same
rows in the same order. A numeric cell carries its figure key (`Cell.key`), the same key
`queries.flatten` gives, so what a file shows can be traced to the JSON figure; its row label is
the figure's label in `madoguchi_shared.figures`. The sheets of each kind: `layout_daily`,
`layout_period`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from madoguchi_shared import labels as L
from madoguchi_shared.figures import Family, family

from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES

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
    signature: md.Signature | None = None  # 受託者 / 提出日 / 承認欄 block under the heading


def value_at(obj: Any, key: str) -> Any:
    """The value of a dotted figure key in a figures model (or its nested dicts)."""
    value = obj
    for part in key.split("."):
        if isinstance(value, BaseModel):
            value = getattr(value, part, None)
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def C(fig: Any, key: str, fmt: str = INT, prefix: str = "") -> Cell:
    """The cell of figure `key` (dotted) of `fig`, keyed by prefix + key. Durations (MIN) are kept
    in seconds in the JSON and shown in minutes to 0.1 (half up)."""
    value = value_at(fig, key)
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


def revision_table(report: md.ReportBase) -> list[Table]:
    rev = report.revision
    if rev is None or not rev.changes or not rev.based_on:
        return []
    rows = [
        [
            ch.key,
            Cell(ch.old, None, INT if isinstance(ch.old, int) else SEC),
            Cell(ch.new, None, INT if isinstance(ch.new, int) else SEC),
        ]
        for ch in rev.changes
    ]
    return [Table(f"訂正内容（第{rev.based_on}版からの変更）", ["項目", f"第{rev.based_on}版", "訂正後"], rows)]


def head(report: md.ReportBase, subject: str) -> list[str]:
    lines = [f"{report.municipality_name}　{subject}".strip(), f"対象期間：{report.period.heading}"]
    if report.revision is not None and report.revision.label_ja:
        lines.append(f"版：{report.revision.label_ja}")
    return lines


def stats_rows(fig: Any, items: list[tuple[str, str]], prefix: str = "") -> list[list[Any]]:
    return [
        [
            name,
            C(fig, family(key, "n"), prefix=prefix),
            C(fig, family(key, "mean_s"), MIN, prefix),
            C(fig, family(key, "p90_s"), MIN, prefix),
            C(fig, family(key, "max_s"), MIN, prefix),
        ]
        for name, key in items
    ]


def report_notes(report: md.ReportBase, default: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The report's 注記 as it carries them (a delivered version keeps its own), else the current ones."""
    return [(a, b) for a, b in report.notes or default]


def notes_table(notes: list[tuple[str, str]]) -> Table:
    return Table("注記", ["項目", "定義"], [[a, b] for a, b in notes], merge_last=True)


def vertical(
    title: str, label: str, items: list[tuple[str, Cell]], total: Cell | None, chart: str | None, unit: str = "人数"
) -> Table:
    rows: list[list[Any]] = [[name, cell] for name, cell in items]
    if total is not None:
        rows.append(["合計", total])
    return Table(title, [label, unit], rows, totals=1 if total is not None else 0, chart=chart)


def hours_table(fig: Any, title: str, total_key: str, prefix: str = "", unit: str = "人数") -> Table:
    return vertical(
        title,
        "時間帯",
        [(f"{int(h)}時台", C(fig, family(Family.by_hour, h), prefix=prefix)) for h in (fig.by_hour or {})],
        C(fig, total_key, prefix=prefix),
        "col",
        unit,
    )


def list_rows(items: list[Any], keys: list[str]) -> list[list[Any]]:
    return [[str(getattr(it, k, None) or "") for k in keys] for it in items]


NUMERIC_GRID = [30, 12, 12, 12, 12]  # label column + four figure columns: A4 portrait at full size
TEXT_GRID = [5, 7, 16, 52, 12, 40]  # the long texts' own sheet (A4 landscape, wrapped)


def text_sheet(report: md.ReportBase, title: str, escalations: Table, opinions: Table) -> Sheet:
    return Sheet(
        "エスカレーション・ご意見",
        title,
        [report.period.heading],
        [escalations, opinions],
        grid=TEXT_GRID,
        landscape=True,
    )


def opinions_table(items: list[md.Opinion], count: int) -> Table:
    rows = [[str(i), o.time, o.kind_ja, o.text or "", o.step_ja] for i, o in enumerate(items, start=1)]
    return Table(f"ご意見・ご要望・トピック（{count}件）", ["No", "時刻", "種別", "内容", "手続きの段階"], rows)


def sheets(report: md.AnyReport) -> list[Sheet]:
    from madoguchi_reporting import layout_daily, layout_period

    if isinstance(report, md.CityDaily):
        return layout_daily.city_daily(report)
    if isinstance(report, md.LineDaily):
        return layout_daily.line_daily(report)
    if isinstance(report, md.DeskDaily):
        return layout_daily.desk_daily(report)
    if isinstance(report, md.Weekly):
        return layout_period.weekly(report)
    return layout_period.final(report)


def file_stem(report: md.AnyReport) -> str:
    return report.report_id


__all__ = ["CITY_NOTES", "DESK_NOTES", "LINE_NOTES", "Cell", "Sheet", "Table", "sheets"]
