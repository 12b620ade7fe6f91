"""The phone screen: an operator takes a call and records it as an escalation with a callback."""

from __future__ import annotations

import httpx
import pytest

from madoguchi_shared.auth import Role, issue_token

pytestmark = pytest.mark.browser


async def test_an_operator_logs_a_call_that_becomes_a_callback(new_page, staff, login, stack, screenshots):
    if not stack.has("calls"):
        pytest.skip("the calls service is not there yet")
    # The manager keeps the operators' Q&A (set up through the calls API).
    token = issue_token(stack.settings, staff_id="M-faq", roles=[Role.manager], municipality=stack.settings.municipality)
    async with httpx.AsyncClient(base_url=stack.services["calls"].url, headers={"authorization": f"Bearer {token}"}) as client:
        created = await client.post("/v1/faq", json={
            "question": "暗証番号を3回間違えてロックされました。どうすればよいですか。",
            "answer": "お住まいの区役所の戸籍住民課で暗証番号の再設定ができます。マイナンバーカードと本人確認書類をお持ちください。",
            "categories": ["pin"], "keywords": ["ロック", "暗証番号"]})
        assert created.status_code == 201, created.text

    await staff("O-1", "operator")
    page = await new_page(1366, 900)
    await login(page, "O-1")
    assert "/phone" in page.url
    await page.get_by_role("button", name="着席する").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "席 1 に着席しました" in await page.inner_text(".flash.ok")
    await page.get_by_role("button", name="着信に応答する").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "通話を開始しました" in await page.inner_text(".flash.ok")

    # The FAQ beside the form, searched as the caller speaks.
    await page.fill("input[name=q]", "ロック")
    await page.locator("#faq-results .faq-item", has_text="再設定").wait_for()
    await page.locator("#faq-results input[name=faq_used]").first.check()

    await page.get_by_label("暗証番号（ロック・失念）").check()
    await page.get_by_label("業務責任者へエスカレーション（折り返し）").check()
    await page.fill("#f-notes", "ロック解除後もマイキーID設定でエラーになるとのこと。市の判断が必要。")
    await page.fill("#f-callback_phone", "090-1234-5678")
    await page.screenshot(path=str(screenshots / "phone.png"), full_page=True)
    await page.get_by_role("button", name="通話を記録する").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "折り返しの予定を登録しました" in await page.inner_text(".flash.ok")
    row = page.locator("#callbacks tr[data-callback]")
    await row.first.wait_for()
    assert "市の回答待ち" in await row.first.inner_text()
    assert "090" not in await page.content()  # the number is not on the screen unless asked for
    await page.screenshot(path=str(screenshots / "phone-callbacks.png"), full_page=True)
