"""The desk screen and the calling display, driven as a supporter would on a tablet."""

from __future__ import annotations

import re

import pytest

from madoguchi_shared.pii import my_number_check_digit

pytestmark = pytest.mark.browser

TABLET = {"width": 1280, "height": 800}


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def test_a_supporter_serves_a_visitor_from_ticket_to_disinfection(new_page, staff, login, screenshots):
    await staff("S-kita", "supporter", wards=["kita"])
    page = await new_page(**TABLET)
    await login(page, "S-kita")
    assert page.url.endswith("/desk/kita-1")  # one desk in the ward: straight to it
    await press(page, "チェックイン（従事開始）")
    assert "チェックインしました" in await page.inner_text(".flash.ok")

    await press(page, "番号札を発行")
    assert "番号札 1番を発行しました" in await page.inner_text(".flash.ok")

    # The calling display on the desk's second screen follows the queue live.
    display = await page.context.new_page()
    await display.set_viewport_size({"width": 1920, "height": 1080})
    await display.goto("/display/kita-1")
    await display.locator("[data-testid=display-waiting]", has_text="1").wait_for()

    await press(page, "次の方を呼び出す")
    assert "1番の方をお呼びしました" in await page.inner_text(".flash.ok")
    await display.locator("[data-testid=calling-number]", has_text="1").wait_for()
    await display.locator("[data-testid=display-waiting]", has_text="0").wait_for()
    await display.screenshot(path=str(screenshots / "calling-display.png"))

    await page.locator(".called-ticket[data-ticket='1']").get_by_role("button", name="対応開始").click()
    await page.wait_for_load_state("domcontentloaded")
    assert await page.inner_text("[data-testid=visit-ticket]") == "1"
    await page.get_by_label("女性").check()
    await page.get_by_label("60代").check()
    await page.get_by_label("マイナポイント申込み").check()
    await page.locator("input[name=support_needed][value=yes]").check()
    await page.locator("input[name=support_given][value=yes]").check()
    await page.select_option("#f-payment_service", "qr_code")
    # PIN failures are counted (never the PIN); one before the lock, the desk is warned.
    await page.locator("summary", has_text="暗証番号の失敗").click()
    await page.click("[data-testid=pin-user_auth]")
    await page.wait_for_load_state("domcontentloaded")
    await page.click("[data-testid=pin-user_auth]")
    await page.wait_for_load_state("domcontentloaded")
    assert "あと1回" in await page.inner_text("[data-testid=warning]")
    assert await page.locator("input[name=age_band][value='60s']").is_checked()
    await page.locator("summary", has_text="カードの取扱い").click()
    await press(page, "カードを預かる")
    assert "カードをお預かりしました" in await page.inner_text(".flash.ok")
    assert await page.locator("input[name=gender][value=female]").is_checked()  # kept across the action
    await press(page, "カードを返却した")
    await page.locator("input[name=outcome][value=completed]").check()
    await page.screenshot(path=str(screenshots / "desk-visit.png"), full_page=True)
    await page.click("[data-testid=end-visit]")
    await page.wait_for_load_state("domcontentloaded")
    assert "対応を終了しました" in await page.inner_text(".flash.ok")

    await page.click("[data-testid=disinfect]")
    await page.wait_for_load_state("domcontentloaded")
    assert "消毒を記録しました" in await page.inner_text(".flash.ok")
    assert await page.locator("[data-testid=disinfect]").count() == 0
    await page.screenshot(path=str(screenshots / "desk.png"), full_page=True)


async def test_a_my_number_in_an_opinion_is_refused_and_the_form_is_kept(new_page, staff, login, screenshots):
    await staff("S-higashi", "supporter", wards=["higashi"])
    page = await new_page(**TABLET)
    await login(page, "S-higashi")
    await press(page, "チェックイン（従事開始）")
    await press(page, "番号札を発行")
    await press(page, "次の方を呼び出す")
    await page.locator(".called-ticket").first.get_by_role("button", name="対応開始").click()
    await page.wait_for_load_state("domcontentloaded")

    await page.get_by_label("男性").check()
    await page.get_by_label("70代").check()
    await page.get_by_label("マイキーID設定（窓口PC）").check()
    await page.locator("input[name=support_needed][value=yes]").check()
    await page.locator("input[name=support_given][value=no]").check()
    await page.locator("summary", has_text="ご意見・ご要望").click()
    await page.select_option("#f-opinion_kind", "difficulty")
    await page.select_option("#f-opinion_step", "pin_entry")
    first11 = "12345678901"
    my_number = first11 + str(my_number_check_digit(first11))
    text = f"暗証番号が難しい。番号は {my_number[:4]} {my_number[4:8]} {my_number[8:]} です"
    await page.fill("#f-opinion_text", text)
    await press(page, "途中保存")

    error = page.locator("[data-error-for=opinion_text]")
    await error.wait_for()
    assert "マイナンバー" in await error.inner_text() or "12桁" in await error.inner_text()
    assert not re.search("[A-Za-z]", await error.inner_text())  # the guard's English lines are not shown
    # Everything typed is still there, the refused text included, so it can be corrected.
    assert await page.input_value("#f-opinion_text") == text
    assert await page.locator("input[name=gender][value=male]").is_checked()
    assert await page.locator("input[name=age_band][value='70s']").is_checked()
    assert await page.locator("input[name=purposes][value=mykey_pc]").is_checked()
    assert await page.locator("input[name=support_given][value=no]").is_checked()
    assert await page.input_value("#f-opinion_step") == "pin_entry"
    await page.screenshot(path=str(screenshots / "desk-opinion-error.png"), full_page=True)

    await page.fill("#f-opinion_text", "暗証番号の入力でつまずいた。")
    await press(page, "途中保存")
    assert "記録を保存しました" in await page.inner_text(".flash.ok")
    assert "記録済み 1件" in await page.inner_text("summary:has-text('ご意見・ご要望')")
    assert await page.input_value("#f-opinion_text") == ""  # saved, so not sent twice
    assert await page.locator("input[name=gender][value=male]").is_checked()  # details saved and shown again
