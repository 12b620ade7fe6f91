"""The phone screen: an operator takes a call and records it as an escalation with a callback."""

from __future__ import annotations

import httpx
import pytest

from madoguchi_shared.auth import Role, token_for

pytestmark = pytest.mark.browser


async def test_an_operator_logs_a_call_that_becomes_a_callback(new_page, staff, login, stack, screenshots, js):
    if not stack.has("calls"):
        pytest.skip("the calls service is not there yet")
    # The manager keeps the operators' Q&A (set up through the calls API).
    token = await token_for(js, stack.settings, staff_id="M-faq", roles=[Role.manager], municipality=stack.settings.municipality)
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
    assert "1番席に着席しました" in await page.inner_text(".flash.ok")
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
    row = page.locator("#callbacks [data-callback]")
    await row.first.wait_for()
    assert "市の回答待ち" in await row.first.inner_text()
    assert "090" not in await page.content()  # the number is not on the screen unless asked for
    assert await row.first.get_by_role("button", name="番号を表示").count() == 0  # not before the city answered
    await page.screenshot(path=str(screenshots / "phone-callbacks.png"), full_page=True)
    callback_id = await row.first.get_attribute("data-callback")

    # The manager sees the whole case, and only the step that applies now.
    await staff("M-cb", "manager")
    hq = await new_page(1024, 768)
    await login(hq, "M-cb")
    item = hq.locator(f"#hq-escalations [data-callback='{callback_id}']")
    await item.wait_for()
    assert "ロック解除後もマイキーID設定でエラーになる" in await item.inner_text()
    assert "暗証番号（ロック・失念）" in await item.inner_text()
    assert await item.get_by_role("button", name="市の回答を記録").count() == 0
    await item.get_by_label("市への確認内容").fill("ロック解除後のエラーについて、区役所での再設定を案内してよいか。")
    await item.get_by_role("button", name="市へ確認").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "市へ確認を依頼しました" in await hq.inner_text(".flash.ok")
    item = hq.locator(f"#hq-escalations [data-callback='{callback_id}']")
    await item.get_by_role("button", name="市の回答を記録").wait_for()
    assert await item.get_by_role("button", name="市へ確認").count() == 0
    await item.get_by_label("市の回答").fill("区役所の窓口で再設定のうえ、支援窓口での設定を案内してください。")
    await item.get_by_role("button", name="市の回答を記録").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "市の回答を記録しました" in await hq.inner_text(".flash.ok")

    # The operator's callback now carries the whole case: topic, notes, the question, the city's answer.
    await page.reload()
    case = page.locator(f"#callbacks [data-callback='{callback_id}']")
    await case.get_by_role("button", name="番号を表示").wait_for()
    text = await case.inner_text()
    assert "暗証番号（ロック・失念）" in text
    assert "ロック解除後もマイキーID設定でエラーになる" in text
    assert "区役所での再設定を案内してよいか" in text
    assert "区役所の窓口で再設定のうえ" in text and "業務責任者 M-cb" in text
    await page.screenshot(path=str(screenshots / "phone-callback-case.png"), full_page=True)
    await case.get_by_role("button", name="番号を表示").click()
    await page.wait_for_load_state("domcontentloaded")
    assert await page.inner_text("[data-testid=phone-number]") == "090-1234-5678"
    assert "区役所の窓口で再設定のうえ" in await page.inner_text("[data-testid=callback-case]")
    await page.get_by_role("button", name="つながった（完了）").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "折り返しが完了しました" in await page.inner_text(".flash.ok")
