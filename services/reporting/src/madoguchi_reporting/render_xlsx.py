"""Reports as Excel workbooks laid out like a municipal report (openpyxl), readable when printed.

Per sheet: the title (bold, merged across the sheet's columns), the heading lines (municipality,
subject, period in 和暦 and Gregorian, version), the signature block (受託者 / 提出日 / 承認欄 from
the municipality configuration), then each table with its caption, a grey header row, thin borders,
a bold totals row ruled above with a double line, number formats (counts #,##0; ratios 0.0%;
minutes 0.0).

Printing: every sheet has its own column grid (`Sheet.grid`) sized so that it fits the width of
an A4 page (portrait for the figures, landscape for the wide tables) at or near full size, and
asks for fit-to-width. Figures are in narrow vertical tables; long texts (escalations, opinions,
definitions) are wrapped in their own columns or on their own sheet, never in a column a figure
table shares. `print_scale` computes the scale a spreadsheet program prints a sheet at.

Native charts (hours, gender, age band) sit on their own sheet 「グラフ」 and refer to the table
cells, so they follow the numbers. Numbers are stored as numbers, so the city can compute with them.
"""

from __future__ import annotations

import io
import math
import unicodedata

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins

from madoguchi_shared.wareki import to_wareki

from madoguchi_reporting.layout import INT, MIN, PCT, SEC, Cell, Sheet, Table, sheets
from madoguchi_reporting.reports import models as md

FONT = "游ゴシック"
THIN = Side(style="thin", color="000000")
DOUBLE = Side(style="double", color="000000")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
TOTAL_BORDER = Border(left=THIN, right=THIN, top=DOUBLE, bottom=THIN)
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
FORMATS = {INT: "#,##0", PCT: "0.0%", SEC: "#,##0.0", MIN: "#,##0.0"}
# Style objects made once: a final report has tens of thousands of cells (every call record)
BODY_FONT = Font(name=FONT, size=10)
TOTAL_FONT = Font(name=FONT, size=10, bold=True)
NUMBER_ALIGN = Alignment(horizontal="right", vertical="top")
TEXT_ALIGN = Alignment(vertical="top", wrap_text=True)
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
LINE_PT = 14.0  # height of one line of 10 pt text
# A4 in inches and the margins every sheet is printed with
A4_IN = (8.27, 11.69)
MARGIN_LR_IN = 0.5
MARGIN_TB_IN = 0.6
CHART_W_CM, CHART_H_CM = 16.0, 7.5
CHART_ROWS = 17  # rows of 15 pt a chart and its gap take


def text_width(text: str) -> int:
    """Display width in character cells: full-width (Japanese) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def column_px(width_chars: float) -> int:
    """Pixels of a column of this width (Excel's rule for the default font: 7 px a character + 5 px padding)."""
    return int(width_chars * 7 + 5)


def printable_px(landscape: bool) -> float:
    page_w = A4_IN[1] if landscape else A4_IN[0]
    return (page_w - 2 * MARGIN_LR_IN) * 96


def print_scale(ws) -> float:
    """The scale a spreadsheet program prints this sheet at: fit-to-width shrinks the used columns to the
    printable width of the page (never enlarges), otherwise 100 % (cut into pages across)."""
    used = ws.max_column
    total = sum(column_px(ws.column_dimensions[get_column_letter(c)].width or 8.43) for c in range(1, used + 1))
    landscape = ws.page_setup.orientation == "landscape"
    if not ws.sheet_properties.pageSetUpPr.fitToPage or ws.page_setup.fitToWidth != 1:
        return 1.0
    return min(1.0, printable_px(landscape) / total)


def _lines(text: str, width_chars: float) -> int:
    per_line = max(int(width_chars) - 1, 2)
    return sum(max(1, math.ceil(text_width(part) / per_line)) for part in str(text).split("\n"))


class Writer:
    def __init__(self, wb: Workbook):
        self.wb = wb
        self.charts: list[tuple[str, str, object, int, int]] = []  # (kind, title, ws, first row, last row)

    def sheet(self, sheet: Sheet) -> None:
        ws = self.wb.create_sheet(sheet.name[:31])
        grid = list(sheet.grid or [])
        width = max([len(grid)] + [len(t.header) for t in sheet.tables] + [2])
        while len(grid) < width:
            grid.append(10)
        for c, w in enumerate(grid, start=1):
            ws.column_dimensions[get_column_letter(c)].width = w
        self.grid = grid
        ws.cell(row=1, column=1, value=sheet.title).font = Font(name=FONT, bold=True, size=16)
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
        ws.cell(row=1, column=1).alignment = Alignment(horizontal="center")
        row = 2
        for line in sheet.lines:
            ws.cell(row=row, column=1, value=line).font = Font(name=FONT, size=10)
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=width)
            row += 1
        row += 1
        if sheet.signature:
            row = self._signature(ws, row, sheet.signature, width)
        for table in sheet.tables:
            row = self._table(ws, row, table, width)
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "landscape" if sheet.landscape else "portrait"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_margins = PageMargins(
            left=MARGIN_LR_IN, right=MARGIN_LR_IN, top=MARGIN_TB_IN, bottom=MARGIN_TB_IN, header=0.3, footer=0.3
        )
        ws.print_options.horizontalCentered = True
        ws.oddFooter.center.text = "&P / &N"

    def _signature(self, ws, row: int, sig: md.Signature, width: int) -> int:
        """受託者 and 提出日 across the sheet, then the approval boxes (承認欄) in the last columns."""
        submitted = sig.submitted_on
        items = [
            ("受託者", sig.contractor),
            ("提出日", to_wareki(submitted, weekday=True) if submitted else "令和　　年　　月　　日"),
        ]
        for label, value in items:
            a = ws.cell(row=row, column=1, value=label)
            a.font, a.border, a.fill, a.alignment = TOTAL_FONT, BORDER, HEADER_FILL, CENTER
            b = ws.cell(row=row, column=2, value=value)
            b.font, b.alignment = BODY_FONT, Alignment(vertical="center")
            for c in range(2, width + 1):
                ws.cell(row=row, column=c).border = BORDER
            if width > 2:
                ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=width)
            ws.row_dimensions[row].height = 20
            row += 1
        boxes = list(sig.approvals)[: max(width - 1, 0)]
        first = width - len(boxes) + 1
        for j, label in enumerate(boxes):
            c = first + j
            head = ws.cell(row=row, column=c, value=label)
            head.font, head.border, head.fill, head.alignment = TOTAL_FONT, BORDER, HEADER_FILL, CENTER
            ws.cell(row=row + 1, column=c).border = BORDER
            ws.cell(row=row + 2, column=c).border = BORDER
            ws.merge_cells(start_row=row + 1, start_column=c, end_row=row + 2, end_column=c)
        if boxes:
            ws.row_dimensions[row + 1].height = ws.row_dimensions[row + 2].height = 22
            row += 3
        return row + 1

    def _table(self, ws, row: int, table: Table, width: int) -> int:
        ncols = len(table.header)
        last = width if table.merge_last else ncols
        ws.cell(row=row, column=1, value=f"■ {table.title}").font = Font(name=FONT, bold=True, size=11)
        row += 1
        header_lines = 1
        for c, text in enumerate(table.header, start=1):
            cell = ws.cell(row=row, column=c, value=text)
            cell.font = TOTAL_FONT
            cell.fill = HEADER_FILL
            cell.border = BORDER
            cell.alignment = CENTER
            header_lines = max(header_lines, _lines(text, self._span(c, ncols, last)))
        if last > ncols:
            for c in range(ncols + 1, last + 1):
                ws.cell(row=row, column=c).border = BORDER
            ws.merge_cells(start_row=row, start_column=ncols, end_row=row, end_column=last)
        if header_lines > 1:
            ws.row_dimensions[row].height = LINE_PT * header_lines
        row += 1
        if not table.rows:
            ws.cell(row=row, column=1, value="（該当なし）").font = BODY_FONT
            for c in range(1, last + 1):
                ws.cell(row=row, column=c).border = BORDER
            return row + 2
        first_row = row
        first_total = len(table.rows) - table.totals
        for i, values in enumerate(table.rows):
            is_total = i >= first_total
            lines = 1
            for c, value in enumerate(values, start=1):
                fmt = None
                if isinstance(value, Cell):
                    fmt = FORMATS.get(value.fmt)
                    value = value.value
                cell = ws.cell(row=row, column=c, value=value)
                cell.border = TOTAL_BORDER if is_total else BORDER
                cell.font = TOTAL_FONT if is_total else BODY_FONT
                if is_total:
                    cell.fill = TOTAL_FILL
                if isinstance(value, int | float) and not isinstance(value, bool):
                    cell.number_format = fmt or FORMATS[INT]
                    cell.alignment = NUMBER_ALIGN
                else:
                    cell.alignment = TEXT_ALIGN
                    if value:
                        lines = max(lines, _lines(str(value), self._span(c, ncols, last)))
            if last > ncols:
                for c in range(ncols + 1, last + 1):
                    ws.cell(row=row, column=c).border = BORDER
                ws.merge_cells(start_row=row, start_column=ncols, end_row=row, end_column=last)
            if lines > 1:  # wrapped text: the row is as tall as its longest text (merged cells do not grow)
                ws.row_dimensions[row].height = LINE_PT * lines
            row += 1
        if table.chart and first_total > 0:
            self.charts.append((table.chart, table.title, ws, first_row, first_row + first_total - 1))
        if table.note:
            ws.cell(row=row, column=1, value=table.note).font = Font(name=FONT, size=9, italic=True)
            row += 1
        return row + 1

    def _span(self, c: int, ncols: int, last: int) -> float:
        """Characters of text a cell's column(s) hold."""
        if c == ncols and last > ncols:
            return sum(self.grid[c - 1 : last])
        return self.grid[c - 1] if c - 1 < len(self.grid) else 10

    def chart_sheet(self) -> None:
        if not self.charts:
            return
        ws = self.wb.create_sheet("グラフ")
        ws.cell(row=1, column=1, value="グラフ（各表の数値から作成）").font = Font(name=FONT, bold=True, size=14)
        for c in range(1, 11):
            ws.column_dimensions[get_column_letter(c)].width = 8
        row = 3
        for kind, title, src, first, last in self.charts:
            ws.add_chart(native_chart(kind, title, src, first, last), f"A{row}")
            row += CHART_ROWS
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "portrait"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_margins = PageMargins(
            left=MARGIN_LR_IN, right=MARGIN_LR_IN, top=MARGIN_TB_IN, bottom=MARGIN_TB_IN, header=0.3, footer=0.3
        )
        ws.oddFooter.center.text = "&P / &N"


def integer_step(maximum: float) -> int:
    """A whole-number axis step giving about five gridlines (people are counted in ones)."""
    if maximum <= 5:
        return 1
    raw = maximum / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return int(m * magnitude)
    return int(10 * magnitude)


def native_chart(kind: str, title: str, ws, first: int, last: int) -> BarChart:
    """A bar chart of column B by column A, rows first..last of `ws` (a vertical table without its total)."""
    chart = BarChart()
    chart.type = kind  # "col" (vertical bars) or "bar" (horizontal)
    chart.title = title
    chart.style = 10
    chart.legend = None
    # openpyxl's stubs type the size as int (its defaults are whole cm); it writes any float
    chart.width, chart.height = CHART_W_CM, CHART_H_CM  # pyright: ignore[reportAttributeAccessIssue]
    data = Reference(ws, min_col=2, min_row=first, max_row=last)
    cats = Reference(ws, min_col=1, min_row=first, max_row=last)
    chart.add_data(data, titles_from_data=False)
    chart.set_categories(cats)
    values = [ws.cell(row=r, column=2).value for r in range(first, last + 1)]
    top = max([v for v in values if isinstance(v, int | float)] + [1])
    chart.y_axis.majorUnit = integer_step(top)
    chart.y_axis.scaling.min = 0
    chart.y_axis.number_format = "0"
    chart.y_axis.delete = False
    chart.x_axis.delete = False
    if kind == "bar":
        chart.x_axis.scaling.orientation = "maxMin"  # the first category on top, as in the table
    return chart


def render_xlsx(report: md.AnyReport) -> bytes:
    wb = Workbook()
    for blank in wb.worksheets:  # the one sheet a new workbook has
        wb.remove(blank)
    writer = Writer(wb)
    for sheet in sheets(report):
        writer.sheet(sheet)
    writer.chart_sheet()
    wb.properties.title = f"{report.title} {report.period.heading}"
    wb.properties.creator = "Madoguchi"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
