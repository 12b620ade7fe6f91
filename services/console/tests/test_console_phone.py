"""The phone screen: an operator takes a call and records it as an escalation with a callback."""

from __future__ import annotations

import httpx
import pytest

from madoguchi_shared.auth import Role, token_for

pytestmark = pytest.mark.browser


async def test_an_operator_logs_a_call_that_becomes_a_callback(new_page, staff, login, stack, screenshots, js):
    # The manager keeps the operators' Q&A (set up through the calls API).
    token = await token_for(
        js, stack.settings, staff_id="M-faq", roles=[Role.manager], municipality=stack.settings.municipality
    )
    async with httpx.AsyncClient(
        base_url=stack.services["calls"].url, headers={"authorization": f"Bearer {token}"}
    ) as client:
        created = await client.post(
            "/v1/faq",
            json={
                "question": "暗証番号を3回間違えてロックされました。どうすればよいですか。",
                "answer": "お住まいの区役所の戸籍住民課で暗証番号の再設定ができます。マイナンバーカードと本人確認書類をお持ちください。",
                "categories": ["pin"],
                "keywords": ["ロック", "暗証番号"],
            },
        )
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


async def test_a_repeat_caller_is_linked_by_the_reference_given(
    new_page, staff, login, stack, screenshots, js, screen_check
):
    """The operator sees the call's 受付番号 to give the caller, and links a repeat call by the number the
    caller was given on an earlier, unconnected call (typed in full-width digits as people do)."""
    await staff("O-rep", "operator")
    token = await token_for(
        js, stack.settings, staff_id="O-rep", roles=[Role.operator], municipality=stack.settings.municipality
    )
    async with httpx.AsyncClient(
        base_url=stack.services["calls"].url, headers={"authorization": f"Bearer {token}"}
    ) as api:
        earlier = (await api.post("/v1/calls", json={"line": "main"})).json()
        r = await api.post(f"/v1/calls/{earlier['call_id']}/abandoned")
        assert r.status_code == 200, r.text
    reference = earlier["reference"]

    page = await new_page(1024, 768)
    await login(page, "O-rep")
    await page.fill("#seat-id", "7")
    await page.get_by_role("button", name="着席する").click()
    await page.wait_for_load_state("domcontentloaded")
    await page.get_by_role("button", name="着信に応答する").click()
    await page.wait_for_load_state("domcontentloaded")
    shown = await page.inner_text("[data-testid=call-reference]")
    assert "受付番号" in shown and shown.split("受付番号")[1].strip()[:9].count("-") == 1
    await screen_check(page, "電話対応（受付番号）")
    full_width = reference.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    await page.fill("#f-reference", full_width)
    await page.get_by_role("button", name="以前のお電話と結び付ける").click()
    await page.wait_for_load_state("domcontentloaded")
    assert f"受付番号 {reference}）と結び付けました" in await page.inner_text(".flash")
    assert reference in await page.inner_text("[data-testid=repeat-of]")
    await screen_check(page, "電話対応（再度のお電話）")
    await page.screenshot(path=str(screenshots / "phone-repeat-call-1024.png"), full_page=True)
    assert not screen_check.problems, screen_check.problems
