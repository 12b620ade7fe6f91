"""A log line never carries personal data (ARCHITECTURE rule 5), also where a value was not meant to hold any.

Before, an exception logged with its traceback carried what its text named: a desk PC's file scanner that could not
read 「山田太郎_090-1234-5678.pdf」 logged "files.check_failed" with PermissionError: … '/home/…/山田太郎_090-1234-5678.pdf'
(the event itself held "[redacted].pdf"); a device's detail and a validation error quoting its input went out the
same way. The last processor of structlog and a filter on the standard library's handlers read every line through
the PII guard. Run in a child process: the test session's own logging stays as it is."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from madoguchi_shared.logging import screen_personal_data

CHILD = textwrap.dedent(
    """
    import logging
    from madoguchi_shared.logging import configure, get_logger

    configure("INFO", json_logs=True)
    log = get_logger("t")
    try:
        open("/nonexistent/山田太郎_090-1234-5678.pdf")
    except OSError:
        log.exception("files.check_failed")
    log.warning("monitoring.gap", monitor="usb", detail="product Taro 1234 5678 9018", route="/v1/desks/{desk_id}")
    log.info("request", method="POST", route="/v1/visits/{visit_id}/opinions", status=422, ms=1.5)
    std = logging.getLogger("uvicorn.error")
    std.warning("bad path %s", "/v1/x/やまだアットマークジーメールドットコム")
    try:
        raise ValueError("input_value='鰐淵 はなこ様 TEL 123-4567'")
    except ValueError:
        std.exception("failed")
    """
)


def test_log_lines_are_screened_for_personal_data() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stderr
    for value in ("090-1234-5678", "山田太郎", "1234 5678 9018", "やまだアットマーク", "鰐淵", "123-4567"):
        assert value not in lines, (value, lines)
    assert lines.count("[redacted]") >= 5, lines
    # what is no personal data stays as it was: the event, the route template, the file's extension, the status
    for kept in (
        "files.check_failed",
        "FileNotFoundError",
        ".pdf",
        "/v1/desks/{desk_id}",
        "monitoring.gap",
        '"status": 422',
    ):
        assert kept in lines, (kept, lines)
    assert "bad path /v1/x/[redacted]" in lines and "ValueError" in lines


def test_an_ordinary_line_is_left_as_it_is() -> None:
    line = {"event": "request", "method": "POST", "route": "/v1/desks/{desk_id}/tickets", "status": 201, "ms": 2.5}
    assert screen_personal_data(None, "info", dict(line)) == line
    note = {
        "event": "card.left_in_reader.message",
        "message": "【至急】higashi-1: マイナンバーカードの置き忘れ（番号札 12）。",
    }
    assert screen_personal_data(None, "warning", dict(note)) == note
