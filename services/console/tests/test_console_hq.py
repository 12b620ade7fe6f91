"""The HQ dashboard: the manager watches the desks live while a supporter works."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def test_the_manager_sees_the_visit_and_an_alert_appear_live(new_page, staff, login, stack, screenshots):
    await staff("M-hq", "manager")
    await staff("S-toyohira", "supporter", wards=["toyohira"])
    hq = await new_page(1600, 1000)
    await login(hq, "M-hq")
    assert hq.url.endswith("/hq")
    card = hq.locator(".desk-card[data-desk='toyohira-1']")
    await card.get_by_role("button", name="業務開始を確認").click()
    await hq.wait_for_load_state("domcontentloaded")
    assert "豊平区の業務開始を確認しました" in await hq.inner_text(".flash.ok")
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
    await desk.locator("summary", has_text="カードの取扱い").click()
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
    assert "エスカレーション1を受け付けました" in await hq.inner_text(".flash.ok")

    # A calendar change: the city suspends a desk the next day.
    await hq.fill("#f-cal_date", "2021-04-02")
    await hq.get_by_label("手稲区").check()
    await hq.select_option("#f-cal_reason", "facility")
    await hq.fill("#f-cal_note", "庁舎の停電のため")
    await press(hq, "窓口を休止する")
    assert "窓口の休止を登録しました" in await hq.inner_text(".flash.ok")
    assert "手稲区" in await hq.inner_text(".alert-item:has-text('休止')")


async def test_a_desk_with_a_70_minute_wait_is_red_and_first_with_the_alerts_in_view(
    new_page, staff, login, screenshots
):
    await staff("M-sev", "manager")
    await staff("S-higashi-q", "supporter", wards=["higashi"])
    desk = await new_page(1024, 768)
    await login(desk, "S-higashi-q")
    await press(desk, "チェックイン（従事開始）")
    for _ in range(7):  # seven waiting, ten minutes each before the day has a pace: a 70-minute wait
        await press(desk, "番号札を発行")

    hq = await new_page(1024, 768)
    await login(hq, "M-sev")
    first = hq.locator(".desk-card").first
    assert await first.get_attribute("data-desk") == "higashi-1"
    assert await first.get_attribute("data-severity") == "red"
    assert "要対応" in await first.locator("[data-testid=severity]").inner_text()
    assert "待ち時間70分" in await first.locator("[data-testid=reasons]").inner_text()
    assert await first.locator("[data-testid=hq-wait]").inner_text() == "70"
    # The order follows the severity: no amber or green card before a red one.
    order = await hq.eval_on_selector_all(".desk-card", "cs => cs.map(c => c.dataset.severity)")
    ranks = {"red": 0, "amber": 1, "ok": 2, "closed": 3, "unknown": 4}
    assert [ranks[s] for s in order] == sorted(ranks[s] for s in order), order
    # The alerts are above the fold at 1024x768.
    top = await hq.evaluate("document.getElementById('hq-alerts').getBoundingClientRect().top")
    assert top < 768 - 100, top
    # The end of the day is confirmed from closing time only (the desks close at 19:00 today).
    await hq.locator(".desk-card[data-desk='higashi-1']").get_by_role("button", name="業務開始を確認").click()
    await hq.wait_for_load_state("domcontentloaded")
    card = hq.locator(".desk-card[data-desk='higashi-1']")
    await card.locator(".badge", has_text="開始確認済").wait_for()
    assert await card.get_by_role("button", name="業務終了を確認").count() == 0
    await hq.screenshot(path=str(screenshots / "hq-1024.png"))

    # A shorter wait ranks below: 40 minutes at another desk (4 waiting).
    await staff("S-atsu-q", "supporter", wards=["atsubetsu"])
    other = await new_page(1024, 768)
    await login(other, "S-atsu-q")
    for _ in range(4):
        await press(other, "番号札を発行")
    other_card = hq.locator(".desk-card[data-desk='atsubetsu-1']")
    await other_card.locator("[data-testid=reasons]", has_text="待ち時間40分").wait_for()
    order = await hq.eval_on_selector_all(".desk-card", "cs => cs.map(c => c.dataset.desk)")
    assert order.index("higashi-1") < order.index("atsubetsu-1")
