"""The manager's FAQ screen (add, revise, retire; the personal-data guard) and focus that survives
live updates (issue 16 items 8 and 10)."""

from __future__ import annotations

import asyncio

import pytest

from madoguchi_shared.pii import my_number_check_digit

pytestmark = pytest.mark.browser


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def _until(page, url: str, selector: str, tries: int = 30) -> None:
    """The calls service's FAQ index follows the bus: reload until the change shows."""
    for _ in range(tries):
        await page.goto(url)
        if await page.locator(selector).count():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{selector} never appeared")


async def test_the_manager_adds_revises_and_retires_an_faq_entry(new_page, staff, login, screenshots):
    await staff("M-faqm", "manager")
    await staff("O-faqm", "operator")
    page = await new_page(1024, 768)
    await login(page, "M-faqm")
    await page.goto("/phone")
    await page.get_by_role("link", name="質問の管理").click()
    await page.wait_for_load_state("domcontentloaded")

    # A My Number in the answer is refused next to the field; everything typed stays.
    first11 = "98765432109"
    number = first11 + str(my_number_check_digit(first11))
    question = "マイナポイントの申込み期限はいつですか（管理画面の確認用）。"
    await page.fill("#f-question", question)
    await page.fill("#f-answer", f"例えば {number} の方は…")
    await page.fill("#f-keywords", "期限、申込み")
    await page.locator("input[name=categories]").first.check()
    await press(page, "追加する")
    error = page.locator("[data-error-for=answer]")
    await error.wait_for()
    assert "マイナンバー" in await error.inner_text() or "12桁" in await error.inner_text()
    assert await page.get_attribute("#f-answer", "aria-invalid") == "true"
    assert await page.get_attribute("#f-answer", "aria-describedby") == "err-answer"
    assert await page.input_value("#f-question") == question
    assert await page.input_value("#f-keywords") == "期限、申込み"
    await page.screenshot(path=str(screenshots / "faq-refused.png"), full_page=True)

    await page.fill("#f-answer", "令和3年9月末までです。")
    await press(page, "追加する")
    assert "よくある質問を追加しました" in await page.inner_text(".flash.ok")
    entry = f".faq-item:has-text('{question}')"
    await _until(page, "/phone/faq/manage", entry)
    assert "第1版" in await page.inner_text(entry)

    await page.locator(entry).get_by_role("link", name="改訂する").click()
    await page.wait_for_load_state("domcontentloaded")
    await page.fill("#f-answer", "令和3年12月末までに延長されました。")
    await press(page, "改訂を保存")
    assert "改訂しました" in await page.inner_text(".flash.ok")
    await _until(page, "/phone/faq/manage", f"{entry}:has-text('第2版')")
    assert "12月末" in await page.inner_text(entry)

    # Operators find it while on a call; once retired, they no longer do.
    operator = await new_page(1024, 768)
    await login(operator, "O-faqm")
    await operator.goto("/phone?q=申込み期限")
    assert "12月末" in await operator.inner_text("#faq-results")
    await page.locator(entry).get_by_label("廃止の理由").select_option("outdated")
    await page.locator(entry).get_by_role("button", name="廃止する").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "廃止しました" in await page.inner_text(".flash.ok")
    for _ in range(30):
        await operator.goto("/phone?q=申込み期限")
        if "12月末" not in await operator.inner_text("#faq-results"):
            break
        await asyncio.sleep(0.3)
    assert "12月末" not in await operator.inner_text("#faq-results")

    # Operators may read the FAQ but not change it.
    response = await operator.goto("/phone/faq/manage")
    assert response.status == 403


async def test_keyboard_focus_survives_live_updates(new_page, staff, login):
    await staff("S-chuo-f", "supporter", wards=["chuo"])
    await staff("S-chuo-g", "supporter", wards=["chuo"])
    a = await new_page(1024, 768)
    b = await new_page(1024, 768)
    await login(a, "S-chuo-f")
    await login(b, "S-chuo-g")
    await press(a, "チェックイン（従事開始）")
    await a.locator("#live-status[data-state=ok]").wait_for()
    # The keyboard user sits on 「番号札を発行」 in the queue panel ...
    await a.locator("#queue").get_by_role("button", name="番号札を発行").focus()
    # ... while a colleague's ticket changes that panel live.
    await press(b, "番号札を発行")
    await a.locator("#queue [data-testid=waiting-count]", has_text="1").wait_for()
    focused = await a.evaluate(
        "[document.activeElement.textContent.trim(), !!document.activeElement.closest('#queue')]"
    )
    assert focused == ["番号札を発行", True]
    # And the next key press acts on it, not on the page body.
    await a.keyboard.press("Enter")
    # the form's answer is a new page: wait for its message (the old page is "loaded" already)
    await a.locator(".flash.ok", has_text="番号札 2番を発行しました").wait_for()
