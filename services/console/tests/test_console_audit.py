"""Audit: an auditor searches the operation log, opens a record and verifies the chain."""

from __future__ import annotations

import asyncio
import re

import pytest

pytestmark = pytest.mark.browser


async def test_an_auditor_verifies_the_log(new_page, staff, login, stack, screenshots):
    if not stack.has("audit"):
        pytest.skip("the audit service is not there yet")
    await staff("A-audit", "auditor")
    page = await new_page(1440, 900)
    await login(page, "A-audit")
    assert page.url.endswith("/audit")

    # The log records the staff account just created (the writer follows the bus within moments).
    rows = page.locator("tr[data-position]")
    for _ in range(40):
        await page.goto("/audit?event_type=admin.staff_account_created&actor=")
        if await rows.count():
            break
        await asyncio.sleep(0.5)
    assert await rows.count() >= 1
    await page.screenshot(path=str(screenshots / "audit.png"), full_page=True)

    await rows.first.locator("a").click()
    await page.wait_for_load_state("domcontentloaded")
    assert re.fullmatch(r"[0-9a-f]{64}", (await page.inner_text("[data-testid=record-hash]")).strip())
    assert "admin.staff_account_created" in await page.inner_text("main")
    await page.screenshot(path=str(screenshots / "audit-record.png"), full_page=True)

    await page.goto("/audit")
    await page.get_by_role("button", name="検証を実行").click()
    await page.wait_for_load_state("domcontentloaded")
    result = page.locator("[data-testid=verification]")
    assert "改ざんは検出されませんでした" in await result.inner_text()
    await page.screenshot(path=str(screenshots / "audit-verified.png"), full_page=True)

    async with page.expect_download() as info:
        await page.click("a[data-format=jsonl]")
    download = await info.value
    assert download.suggested_filename.endswith(".jsonl")
    assert b'"position"' in open(await download.path(), "rb").read()
