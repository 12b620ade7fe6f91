"""Audit: an auditor searches the operation log, opens a record and verifies the chain."""

from __future__ import annotations

import asyncio
import re
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


async def test_an_auditor_verifies_the_log(new_page, staff, login, stack, screenshots):
    await staff("A-audit", "auditor")
    page = await new_page(1024, 768)
    await login(page, "A-audit")
    assert page.url.endswith("/audit")

    # The log records the staff account just created (the writer follows the bus within moments).
    rows = page.locator("tr[data-position]")
    for _ in range(40):
        await page.goto("/audit")
        # The type is chosen by its Japanese name.
        await page.select_option("#f-event_type", label="職員アカウントの作成")
        await page.get_by_role("button", name="検索").click()
        await page.wait_for_load_state("domcontentloaded")
        if await rows.count():
            break
        await asyncio.sleep(0.5)
    assert await rows.count() >= 1
    assert "職員アカウントの作成" in await rows.first.inner_text()
    await page.screenshot(path=str(screenshots / "audit.png"), full_page=True)

    # Unfiltered: newest first, with the total; heartbeats only when asked for.
    await page.goto("/audit")
    total = int((await page.inner_text("[data-testid=audit-total]")).strip("全件"))
    positions = [
        int(p) for p in await page.eval_on_selector_all("tr[data-position]", "rs => rs.map(r => r.dataset.position)")
    ]
    assert positions == sorted(positions, reverse=True) and total >= len(positions) > 0
    assert await page.locator("td[data-type='device.heartbeat']").count() == 0
    # The page fits 1024 wide: nothing sticks out (the navigation stays in view).
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024

    await page.goto("/audit?event_type=admin.staff_account_created")
    await rows.first.locator("a").click()
    await page.wait_for_load_state("domcontentloaded")
    assert re.fullmatch(r"[0-9a-f]{64}", (await page.inner_text("[data-testid=record-hash]")).strip())
    assert "職員アカウントの作成" in await page.inner_text("[data-testid=record-type]")
    assert "admin" not in await page.inner_text("main")  # the raw name only in the auditors' details
    await page.locator("summary", has_text="内部の名前").click()
    assert await page.inner_text("[data-testid=record-raw-type]") == "admin.staff_account_created"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024
    await page.screenshot(path=str(screenshots / "audit-record.png"), full_page=True)

    await page.goto("/audit")
    await page.get_by_role("button", name="検証を実行").click()
    await page.wait_for_load_state("domcontentloaded")
    result = page.locator("[data-testid=verification]")
    verdict = await result.inner_text()
    assert "改ざんは検出されませんでした" in verdict, verdict + "\n" + await page.inner_text("details pre")
    await page.screenshot(path=str(screenshots / "audit-verified.png"), full_page=True)

    async with page.expect_download() as info:
        await page.click("a[data-format=jsonl]")
    download = await info.value
    assert download.suggested_filename.endswith(".jsonl")
    assert b'"position"' in Path(await download.path()).read_bytes()
    # the zip of CSV passes through the console streamed, whole (a zip with a cut body does not open)
    async with page.expect_download() as info:
        await page.click("a[data-format=csv]")
    download = await info.value
    with zipfile.ZipFile(Path(await download.path())) as z:
        assert z.testzip() is None and any(n.endswith(".csv") for n in z.namelist())
