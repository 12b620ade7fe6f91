"""Reports: city staff read the daily report with its charts and download it as xlsx."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.browser


async def test_city_staff_download_the_daily_xlsx(new_page, staff, login, stack, screenshots):
    if not stack.has("reporting"):
        pytest.skip("the reporting service is not there yet")
    await staff("C-1", "city_staff")
    page = await new_page(1440, 900)
    await login(page, "C-1")
    assert "/reports" in page.url
    await page.select_option("#r-desk", "kita-1")
    await page.fill("#r-date", "2021-04-01")
    await page.get_by_role("button", name="表示").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "日次報告書" in await page.inner_text("[data-testid=report-title]")
    assert await page.locator("svg.chart").count() >= 3
    await page.screenshot(path=str(screenshots / "reports-daily.png"), full_page=True)

    async with page.expect_download() as info:
        await page.click("a[data-format=xlsx]")
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    data = Path(await download.path()).read_bytes()
    book = openpyxl.load_workbook(io.BytesIO(data))
    text = " ".join(str(c.value) for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None)
    assert "日次報告書" in text

    await page.get_by_role("link", name="納入成果物").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "納入成果物と期限" in await page.inner_text("main")
    await page.screenshot(path=str(screenshots / "reports-deliverables.png"), full_page=True)
    await page.get_by_role("link", name="週次").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "週次報告書" in await page.inner_text("[data-testid=report-title]")
