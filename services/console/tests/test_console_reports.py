"""Reports: city staff read the daily report with its charts and download it as xlsx."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.browser


async def test_city_staff_download_the_daily_xlsx(new_page, staff, login, stack, screenshots):
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
    text = " ".join(
        str(c.value) for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None
    )
    assert "日次報告書" in text

    # the daily report gives the spec's shares of 来庁者数, given / needed beside them, and its 注記
    main = await page.inner_text("main")
    assert "支援が必要な方の割合（対来庁者数）" in main and "支援を実施した方の割合（対来庁者数）" in main
    assert "注記" in main and "窓口に来庁した人数" in main

    await page.get_by_role("link", name="納入成果物").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "納入成果物と期限" in await page.inner_text("main")
    await page.screenshot(path=str(screenshots / "reports-deliverables.png"), full_page=True)
    await page.get_by_role("link", name="週次").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "週次報告書" in await page.inner_text("[data-testid=report-title]")


async def test_city_wide_daily_and_the_weekly_table_at_1024(new_page, staff, login, stack, screenshots, screen_check):
    """The city-wide daily table (every desk, the phone line) and the weekly table use the whole width
    at 1024x768; a closed day reads 閉庁, not 0."""
    await staff("C-2", "city_staff")
    page = await new_page(1024, 768)
    await login(page, "C-2")
    await page.goto("/reports?tab=city&date=2021-04-03")  # a Saturday: every desk closed
    assert "日次報告書（全市）" in await page.inner_text("[data-testid=report-title]")
    rows = page.locator("[data-testid=city-daily] tbody tr[data-desk]")
    assert await rows.count() == 10
    assert await page.locator("[data-testid=city-daily] td.closed").count() == 10
    assert "電話対応" in await page.inner_text("main")
    await screen_check(page, "報告書（全市の日次・閉庁日）")
    await page.goto("/reports?tab=city&date=2021-04-01")
    assert await page.locator("[data-testid=city-daily] td.closed").count() == 0
    assert await page.locator("[data-testid=city-daily] tbody tr.total").count() == 1
    await page.screenshot(path=str(screenshots / "reports-city-daily-1024.png"), full_page=True)
    async with page.expect_download() as info:
        await page.click("a[data-format=xlsx]")
    book = openpyxl.load_workbook(io.BytesIO(Path(await (await info.value).path()).read_bytes()))
    assert book.active.title == "日次報告書（全市）"

    await page.goto("/reports?tab=weekly&week=2021-04-01")
    table = page.locator("[data-testid=weekly-visitors] table")
    main_box = await page.locator("main").bounding_box()
    box = await table.bounding_box()
    assert box["width"] >= 0.85 * main_box["width"], (box, main_box)  # not squeezed into half the width
    lines = await page.locator("[data-testid=weekly-visitors] tbody th[scope=row]").first.evaluate(
        "el => { const r = document.createRange(); r.selectNodeContents(el); return r.getClientRects().length; }"
    )
    assert lines == 1  # 中央区 on one line, not one character per line
    saturday = page.locator("[data-testid=weekly-visitors] tbody tr").first.locator("td").nth(5)  # 4/3（土）
    assert (await saturday.inner_text()).strip() == "閉庁"
    await screen_check(page, "報告書（週次・1024）")
    await page.screenshot(path=str(screenshots / "reports-weekly-1024.png"), full_page=True)
    assert not screen_check.problems, screen_check.problems
