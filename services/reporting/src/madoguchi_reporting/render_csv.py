"""Reports as CSV for Excel: UTF-8 with a byte-order mark (Excel then reads Japanese correctly),
CRLF line ends, one block per table (caption line, header, rows, blank line). Ratios are written
as fractions (0.8125) as in the JSON; a spreadsheet formats them."""

from __future__ import annotations

import csv
import io

from madoguchi_reporting.layout import Cell, sheets
from madoguchi_reporting.reports import models as md

BOM = "\ufeff"


def render_csv(report: md.AnyReport) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for sheet in sheets(report):
        w.writerow([f"【{sheet.title}】"])
        for line in sheet.lines:
            w.writerow([line])
        w.writerow([])
        for table in sheet.tables:
            w.writerow([f"■ {table.title}"])
            w.writerow(table.header)
            for values in table.rows:
                w.writerow(
                    [
                        ""
                        if (v.value if isinstance(v, Cell) else v) is None
                        else (v.value if isinstance(v, Cell) else v)
                        for v in values
                    ]
                )
            w.writerow([])
    return (BOM + buf.getvalue()).encode("utf-8")
