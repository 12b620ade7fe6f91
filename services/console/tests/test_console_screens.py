"""Every screen and state at 1024x768 (issue 16 items 4 and 10): axe-core (WCAG 2.1 A/AA) reports
no violation, and no ASCII letter is shown outside ids a person types (staff ids, hashes)."""

from __future__ import annotations


import httpx
import pytest

from madoguchi_shared.auth import Role, token_for

pytestmark = pytest.mark.browser

SIZE = {"width": 1024, "height": 768}


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def test_every_screen_passes_axe_and_shows_no_ascii(new_page, staff, login, stack, screen_check, screenshots, js):
    check = screen_check
    token = await token_for(
        js, stack.settings, staff_id="M-faq2", roles=[Role.manager], municipality=stack.settings.municipality
    )
    async with httpx.AsyncClient(
        base_url=stack.services["calls"].url, headers={"authorization": f"Bearer {token}"}
    ) as client:
        r = await client.post(
            "/v1/faq",
            json={
                "question": "マイキーIDの設定にはどのくらい時間がかかりますか。",
                "answer": "窓口ではおよそ15分です。",
                "categories": ["mykey_id"],
                "keywords": ["時間"],
            },
        )
        assert r.status_code == 201

    # Logged out: the login form, its errors, a page that does not exist.
    page = await new_page(**SIZE)
    await check.sanity(page)
    await page.goto("/login")
    await check(page, "ログイン")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")
    await check(page, "ログインの入力誤り")
    response = await page.goto("/no-such-page")
    assert response.status == 404 and "text/html" in response.headers["content-type"]
    assert await page.get_attribute("html", "lang") == "ja" and "見つかりません" in await page.title()
    await check(page, "404")

    async def boom():
        raise RuntimeError("a bug")

    stack.console.app.add_api_route("/test-only-failure", boom, include_in_schema=False)
    response = await page.goto("/test-only-failure")
    assert response.status == 500 and "システムエラー" in await page.inner_text("h1")
    await check(page, "500")
    machine = await page.request.get("/test-only-failure", headers={"accept": "application/json"})
    assert machine.status == 500 and machine.headers["content-type"].startswith("application/problem+json")

    # A supporter: the desk idle, with a queue, a visit, a refused visit, the escalation form.
    await staff("S-shiro", "supporter", wards=["shiroishi"])
    desk = await new_page(**SIZE)
    await login(desk, "S-shiro")
    await check(desk, "窓口（チェックイン前）")
    await press(desk, "チェックイン（従事開始）")
    await check(desk, "窓口（待ちなし）")
    await press(desk, "番号札を発行")
    await press(desk, "番号札を発行")
    await press(desk, "次の方を呼び出す")
    await check(desk, "窓口（呼出中）")
    display = await desk.context.new_page()
    await display.set_viewport_size(SIZE)
    await display.goto("/display/shiroishi-1")
    await check(display, "呼出表示")
    await desk.locator(".called-ticket").first.get_by_role("button", name="対応開始").click()
    await desk.wait_for_load_state("domcontentloaded")
    await check(desk, "来訪記録")
    await desk.click("[data-testid=end-visit]")
    await desk.wait_for_load_state("domcontentloaded")
    assert await desk.locator("[aria-invalid=true]").count() > 0
    await check(desk, "来訪記録の入力誤り")
    for summary in await desk.locator("summary").all():
        await summary.click()
    await check(desk, "来訪記録（すべて開いた状態）")
    # The browser's own validation speaks Japanese whatever its language.
    await desk.get_by_role("button", name="エスカレーションする").click()
    assert await desk.eval_on_selector("#f-esc_category", "e => e.validationMessage") == "一覧から選択してください。"

    # The manager: HQ, the phone screen, the FAQ management, every report tab, the desk chooser.
    await staff("M-screens", "manager")
    hq = await new_page(**SIZE)
    await login(hq, "M-screens")
    await check(hq, "本部ダッシュボード")
    for region in ("hq-desks", "hq-alerts", "hq-escalations", "hq-line"):
        assert await hq.get_attribute(f"#{region}", "aria-live") == "polite"
    await hq.goto("/desk")
    await check(hq, "窓口の選択")
    await hq.goto("/staff")
    await check(hq, "職員管理")
    await hq.goto("/staff/S-shiro")
    await check(hq, "職員の詳細")
    await hq.goto("/phone")
    await check(hq, "電話対応（業務責任者）")
    await hq.goto("/phone/faq/manage")
    await check(hq, "よくある質問の管理")
    await hq.get_by_role("link", name="改訂する").first.click()
    await hq.wait_for_load_state("domcontentloaded")
    await check(hq, "よくある質問の改訂")
    for tab in ("daily", "city", "weekly", "line", "final", "deliverables"):
        await hq.goto(f"/reports?tab={tab}")
        await check(hq, f"報告書（{tab}）")
        if tab != "deliverables":  # every chart has its numbers as a table
            assert await hq.locator("svg.chart").count() == await hq.locator("details.chart-data table").count() > 0

    # An operator: seated, on a call, the callbacks with their case, the number page.
    await staff("O-screens", "operator")
    phone = await new_page(**SIZE)
    await login(phone, "O-screens")
    await phone.fill("#seat-id", "2")
    await press(phone, "着席する")
    await check(phone, "電話対応（着席）")
    await press(phone, "着信に応答する")
    await check(phone, "通話の記録")
    await phone.get_by_label("暗証番号（ロック・失念）").check()
    await phone.get_by_label("業務責任者へエスカレーション（折り返し）").check()
    await phone.fill("#f-callback_phone", "011-123-4567")
    await phone.get_by_label("いいえ").check()
    await press(phone, "通話を記録する")
    await phone.locator("#callbacks [data-state=ready]").first.wait_for()
    await check(phone, "折り返し予定")
    assert await phone.get_attribute("#callbacks", "aria-live") == "polite"
    await phone.locator("#callbacks [data-state=ready]").first.get_by_role("button", name="番号を表示").click()
    await phone.wait_for_load_state("domcontentloaded")
    assert await phone.inner_text("[data-testid=phone-number]") == "011-123-4567"
    await check(phone, "折り返し先の番号")

    # An auditor: the log, a record, the verification, a screen not theirs.
    await staff("A-screens", "auditor")
    audit = await new_page(**SIZE)
    await login(audit, "A-screens")
    await check(audit, "監査ログ")
    await audit.locator("tr[data-position] a").first.click()
    await audit.wait_for_load_state("domcontentloaded")
    await check(audit, "監査ログの記録")
    await audit.goto("/audit")
    await press(audit, "検証を実行")
    await check(audit, "監査ログの検証")
    await audit.goto("/hq")
    await check(audit, "権限のない画面")

    problems = check.problems
    assert not problems, "\n".join(problems)
