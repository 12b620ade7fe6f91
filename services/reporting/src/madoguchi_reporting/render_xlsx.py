"""Reports as Excel workbooks laid out like a municipal report (openpyxl).

Per sheet: the title (bold, merged across the table width), the heading lines (municipality,
subject, period in 和暦 and Gregorian, version), then each table with its caption, a grey header
row, thin borders on every cell, a bold totals row ruled above with a double line, number
formats (counts #,##0; ratios 0.0%; seconds #,##0.0), A4 printing fitted to the page width.
Numbers are stored as numbers, so the city can compute with them.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from madoguchi_reporting.layout import INT, PCT, SEC, Cell, Sheet, Table, sheets

FONT = "游ゴシック"
THIN = Side(style="thin", color="000000")
DOUBLE = Side(style="double", color="000000")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
TOTAL_BORDER = Border(left=THIN, right=THIN, top=DOUBLE, bottom=THIN)
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
FORMATS = {INT: "#,##0", PCT: "0.0%", SEC: "#,##0.0"}
# Style objects made once: a final report has tens of thousands of cells (every call record)
BODY_FONT = Font(name=FONT, size=10)
TOTAL_FONT = Font(name=FONT, size=10, bold=True)
NUMBER_ALIGN = Alignment(horizontal="right", vertical="top")
TEXT_ALIGN = Alignment(vertical="top", wrap_text=True)


def _write_table(ws, row: int, table: Table) -> int:
    ncols = len(table.header)
    ws.cell(row=row, column=1, value=f"■ {table.title}").font = Font(name=FONT, bold=True, size=11)
    row += 1
    for c, text in enumerate(table.header, start=1):
        cell = ws.cell(row=row, column=c, value=text)
        cell.font = Font(name=FONT, bold=True, size=10)
        cell.fill = HEADER_FILL
        cell.border = BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    row += 1
    if not table.rows:
        ws.cell(row=row, column=1, value="（該当なし）").font = Font(name=FONT, size=10)
        for c in range(1, ncols + 1):
            ws.cell(row=row, column=c).border = BORDER
        return row + 2
    first_total = len(table.rows) - table.totals
    for i, values in enumerate(table.rows):
        is_total = i >= first_total
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
        row += 1
    if table.note:
        ws.cell(row=row, column=1, value=table.note).font = Font(name=FONT, size=9, italic=True)
        row += 1
    return row + 1


def _write_sheet(ws, sheet: Sheet) -> None:
    width = max((len(t.header) for t in sheet.tables), default=2)
    ws.cell(row=1, column=1, value=sheet.title).font = Font(name=FONT, bold=True, size=16)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=max(width, 2))
    ws.cell(row=1, column=1).alignment = Alignment(horizontal="center")
    row = 2
    for line in sheet.lines:
        ws.cell(row=row, column=1, value=line).font = Font(name=FONT, size=10)
        row += 1
    row += 1
    widths: dict[int, int] = {}
    for table in sheet.tables:
        row = _write_table(ws, row, table)
        for c, w in enumerate(table.widths or [], start=1):
            widths[c] = max(widths.get(c, 0), w)
        for c in range(1, len(table.header) + 1):
            widths.setdefault(c, 10)
    for c, w in widths.items():
        ws.column_dimensions[get_column_letter(c)].width = w + 2
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if width > 6 else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.oddFooter.center.text = "&P / &N"


def render_xlsx(report: dict) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets(report):
        _write_sheet(wb.create_sheet(sheet.name[:31]), sheet)
    wb.properties.title = f"{report.get('title', '')} {report['period']['heading']}"
    wb.properties.creator = "Madoguchi"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
