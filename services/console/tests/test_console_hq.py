"""The HQ dashboard: the manager watches the desks live while a supporter works."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def test_the_manager_sees_the_visit_and_an_alert_appear_live(new_page, staff, login, stack, screenshots):
    if not stack.has("audit"):
        pytest.skip("the audit service is not there yet")
    await staff("M-hq", "manager")
    await staff("S-toyohira", "supporter", wards=["toyohira"])
    hq = await new_page(1600, 1000)
    await login(hq, "M-hq")
    assert hq.url.endswith("/hq")
    card = hq.locator(".desk-card[data-desk='toyohira-1']")
    await card.get_by_role("button", name="業務開始を確認").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "toyohira-1 の業務開始を確認しました" in await hq.inner_text(".flash.ok")
    await hq.locator("#live-status[data-state=ok]").wait_for()

    desk = await new_page(1280, 800)
    await login(desk, "S-toyohira")
    await press(desk, "チェックイン（従事開始）")
    await press(desk, "番号札を発行")
    await card.locator("[data-testid=hq-waiting]", has_text="1").wait_for()  # live, no reload
    await press(desk, "次の方を呼び出す")
    await desk.locator(".called-ticket").first.get_by_role("button", name="対応開始").click()
    await desk.wait_for_load_state("domcontentloaded")
    await desk.get_by_label("回答なし").check()
    await desk.get_by_label("40代").check()
    await desk.get_by_label("問合せのみ").check()
    await desk.locator("input[name=support_needed][value=no]").check()
    await desk.locator("input[name=support_given][value=no]").check()
    await press(desk, "カードを預かる")
    await press(desk, "カードの置き忘れ")  # confirmed in the dialog
    assert "本部へ緊急連絡しました" in await desk.inner_text(".flash.ok")
    await desk.locator("input[name=outcome][value=completed]").check()
    await desk.click("[data-testid=end-visit]")
    await desk.wait_for_load_state("domcontentloaded")
    await desk.locator("summary", has_text="エスカレーション").click()
    await desk.select_option("#f-esc_category", "complaint")
    await desk.fill("#f-esc_summary", "待ち時間が長いとのご意見。責任者から説明してほしいとのこと。")
    await press(desk, "エスカレーションする")
    assert "エスカレーションしました" in await desk.inner_text(".flash.ok")

    # The dashboard follows without a reload: the visit, the alert, the escalation.
    await card.locator("[data-testid=hq-served]", has_text="1").wait_for()
    alert = hq.locator(".alert-item[data-rule=card_left_behind]")
    await alert.wait_for(timeout=30000)
    await hq.locator("[data-escalation='toyohira-1-1']").wait_for()
    await hq.screenshot(path=str(screenshots / "hq.png"), full_page=True)

    await alert.get_by_role("button", name="確認").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "警報を確認済みにしました" in await hq.inner_text(".flash.ok")
    # The audit service applies the acknowledgement from the log; the feed shows it as it lands.
    await hq.locator(".alert-item[data-rule=card_left_behind]", has_text="確認済み（M-hq）").wait_for()
    # The card left behind is an incident with its checklist (DESK-9).
    incident = hq.locator("[data-incident='toyohira-1-1']")
    await incident.get_by_role("button", name="完了にする").first.click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "チェックリストの項目を完了にしました" in await hq.inner_text(".flash.ok")
    esc = hq.locator("[data-escalation='toyohira-1-1']")
    await esc.get_by_role("button", name="受け付ける").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "エスカレーション 1 を受け付けました" in await hq.inner_text(".flash.ok")

    # A calendar change: the city suspends a desk the next day.
    await hq.fill("#f-cal_date", "2021-04-02")
    await hq.get_by_label("手稲区").check()
    await hq.select_option("#f-cal_reason", "facility")
    await hq.fill("#f-cal_note", "庁舎の停電のため")
    await press(hq, "窓口を休止する")
    assert "窓口の休止を登録しました" in await hq.inner_text(".flash.ok")
    assert "teine-1" in await hq.inner_text(".alert-item:has-text('休止')")
