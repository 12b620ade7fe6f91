"""The desk at 1024x768 (issue 16): one tap to serve a walk-in, the visit recorded without scrolling
to find the end button, a visit done with the keyboard alone (Enter on a choice never sends the
form through a side button), 問合せのみ in one step, 次の方を呼び出す without a 409, and the
disinfection asked once per finished visit."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

DESK_TABLET = {"width": 1024, "height": 768}


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def in_viewport(page, selector: str) -> bool:
    return await page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                      return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth; }""",
        selector,
    )


async def test_a_walk_in_is_served_with_one_tap_and_recorded_without_scrolling(new_page, staff, login, screenshots):
    await staff("S-nishi", "supporter", wards=["nishi"])
    page = await new_page(**DESK_TABLET)
    await login(page, "S-nishi")
    await press(page, "チェックイン（従事開始）")

    # No one waits: one tap takes the visitor and opens the visit form (no ticket, call, start).
    await page.get_by_role("button", name="受付して対応開始").click()
    await page.wait_for_load_state("domcontentloaded")
    assert "受付しました" in await page.inner_text(".flash.ok")
    assert await page.inner_text("[data-testid=visit-ticket]") == "1"
    await page.screenshot(path=str(screenshots / "desk-visit-1024.png"))

    # Everything the record needs and the end button are on the one screen, without scrolling.
    assert await page.evaluate("window.scrollY") == 0
    for selector in (
        "input[name=gender][value=female]",
        "input[name=age_band][value='80_and_over']",
        "input[name=purposes][value=flyer]",
        "input[name=support_given][value=no]",
        "input[name=outcome][value=completed]",
        "[data-testid=end-visit]",
    ):
        assert await in_viewport(page, selector), selector
    await page.get_by_label("女性").check()
    await page.get_by_label("80歳以上").check()
    await page.get_by_label("マイナポイント申込み").check()
    await page.locator("input[name=support_needed][value=yes]").check()
    await page.locator("input[name=support_given][value=yes]").check()
    await page.locator("input[name=outcome][value=completed]").check()
    assert await page.evaluate("window.scrollY") == 0
    await page.click("[data-testid=end-visit]")
    await page.wait_for_load_state("domcontentloaded")
    assert "対応を終了しました" in await page.inner_text(".flash.ok")

    # Disinfection is asked once for the finished visit, naming it; recorded, it is not asked again.
    assert "1番の方の対応が終わりました" in await page.inner_text("#queue")
    await page.click("[data-testid=disinfect]")
    await page.wait_for_load_state("domcontentloaded")
    assert "消毒を記録しました" in await page.inner_text(".flash.ok")
    await page.wait_for_timeout(1500)  # live updates come and go: still not asked
    assert await page.locator("[data-testid=disinfect]").count() == 0
    assert "消毒" not in await page.inner_text("#desk-alerts")

    # The purposes of the last visit are offered again for the next one.
    await page.get_by_role("button", name="受付して対応開始").click()
    await page.wait_for_load_state("domcontentloaded")
    assert await page.locator("input[name=purposes][value=mynapoint_application]").is_checked()


async def test_a_visit_with_the_keyboard_alone_and_enter_on_a_choice_does_nothing(new_page, staff, login, screenshots):
    await staff("S-minami", "supporter", wards=["minami"])
    page = await new_page(**DESK_TABLET)
    await login(page, "S-minami")
    await page.keyboard.press("Tab")  # the skip link comes first
    assert await page.evaluate("document.activeElement.textContent") == "本文へ移動"
    await page.keyboard.press("Enter")
    button = page.get_by_role("button", name="チェックイン（従事開始）")
    await button.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_load_state("domcontentloaded")
    start = page.get_by_role("button", name="受付して対応開始")
    await start.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_load_state("domcontentloaded")
    await page.locator("[data-testid=visit-ticket]").wait_for()

    # Choices by keyboard: focus a radio group, arrows move within it, Space picks.
    await page.focus("input[name=gender][value=female]")
    await page.keyboard.press("Space")
    await page.keyboard.press("ArrowRight")  # → 男性
    # Enter on a radio: nothing is sent (it used to record a PIN failure through the first button).
    await page.keyboard.press("Enter")
    await page.wait_for_timeout(700)
    assert "暗証番号の失敗を記録しました" not in await page.inner_text("main")
    assert "（0/3）" in await page.locator("[data-testid=pin-user_auth]").text_content()
    assert await page.locator("input[name=gender][value=male]").is_checked()
    await page.focus("input[name=age_band][value='30s']")
    await page.keyboard.press("Space")
    await page.focus("input[name=purposes][value=mykey_smartphone]")
    await page.keyboard.press("Space")
    await page.keyboard.press("Enter")  # on a checkbox: nothing either
    await page.wait_for_timeout(500)
    await page.focus("input[name=support_needed][value=no]")
    await page.keyboard.press("Space")
    await page.focus("input[name=support_given][value=no]")
    await page.keyboard.press("Space")
    await page.focus("input[name=outcome][value=completed]")
    await page.keyboard.press("Space")
    # Tab from the result reaches the end button without passing a side action.
    seen = []
    for _ in range(6):
        await page.keyboard.press("Tab")
        seen.append(
            await page.evaluate(
                "(e => e.tagName === 'BUTTON' ? e.textContent.trim() : e.tagName + ':' + e.name)(document.activeElement)"
            )
        )
        if seen[-1] == "対応を終了する":
            break
    assert seen[-1] == "対応を終了する", seen
    assert not any("暗証番号" in s or "カード" in s for s in seen), seen
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert "対応を終了しました" in await page.inner_text(".flash.ok")
    assert "暗証番号の失敗を記録しました" not in await page.inner_text("main")


async def test_inquiry_only_in_one_step_and_call_next_takes_whoever_is_next(new_page, staff, login):
    await staff("S-kiyota-a", "supporter", wards=["kiyota"])
    await staff("S-kiyota-b", "supporter", wards=["kiyota"])
    a = await new_page(**DESK_TABLET)
    b = await new_page(**DESK_TABLET)
    await login(a, "S-kiyota-a")
    await login(b, "S-kiyota-b")
    await press(a, "チェックイン（従事開始）")
    await press(b, "チェックイン（従事開始）")

    # A short question: gender (回答なし by default) and age band, one button.
    await a.get_by_label("50代").check()
    await a.get_by_role("button", name="問合せのみとして記録").click()
    await a.wait_for_load_state("domcontentloaded")
    assert "問合せのみとして記録しました" in await a.inner_text(".flash.ok")
    assert "対応済み 1名" in await a.inner_text("#queue")

    # Two waiting; both supporters see 2 as next and press at once: each gets someone, no 409.
    await press(a, "番号札を発行")
    await press(a, "番号札を発行")
    await b.reload()
    await a.reload()
    results = []
    for page in (a, b):
        results.append(page.get_by_role("button", name="次の方を呼び出す").click())
    import asyncio

    await asyncio.gather(*results)
    await a.wait_for_load_state("domcontentloaded")
    await b.wait_for_load_state("domcontentloaded")
    texts = [await a.inner_text(".flash.ok"), await b.inner_text(".flash.ok")]
    assert sorted(t.split("番")[0] for t in texts) == ["2", "3"], texts


async def test_the_display_chimes_announces_only_a_new_number_and_keeps_the_last_five(
    new_page, staff, login, screenshots
):
    await staff("S-teine", "supporter", wards=["teine"])
    page = await new_page(**DESK_TABLET)
    await login(page, "S-teine")
    await press(page, "チェックイン（従事開始）")
    display = await page.context.new_page()
    await display.set_viewport_size({"width": 1024, "height": 768})
    await display.goto("/display/teine-1")
    # One tap enables the sound (browsers allow audio only after a gesture); it chimes once to confirm.
    await display.get_by_role("button", name="音を出す").click()
    assert await display.evaluate("window.madoguchiDisplay.chimes") == 1
    await display.get_by_label("音声でも案内").check()
    assert await display.inner_text("[data-testid=announce]") == ""

    # Seven numbers called one after another (and not answered): each chimes and is announced once.
    for n in range(1, 8):
        await press(page, "番号札を発行")
        await press(page, "次の方を呼び出す")
        await display.locator("[data-testid=calling-number]", has_text=str(n)).wait_for()
        await display.locator("[data-testid=announce]", has_text=f"{n}番の方は窓口へお越しください").wait_for()
        await page.locator(f".called-ticket[data-ticket='{n}']").get_by_role("button", name="不在").click()
        await page.wait_for_load_state("domcontentloaded")
    assert await display.evaluate("window.madoguchiDisplay.chimes") == 1 + 7
    # The board itself is not a live region: only the new number is announced.
    assert await display.locator("#display[aria-live]").count() == 0

    # The supporter steps away while number 8 is called: no 「席を外しています」 under 「お越しください」.
    await press(page, "番号札を発行")
    await press(page, "次の方を呼び出す")
    await display.locator("[data-testid=calling-number]", has_text="8").wait_for()
    recent = await display.inner_text("[data-testid=recent-calls]")
    assert recent.split() == ["7", "6", "5", "4", "3"]
    await press(page, "短時間不在")
    await page.wait_for_timeout(1500)
    assert "席を外しています" not in await display.inner_text("[data-testid=display-foot]")
    await display.screenshot(path=str(screenshots / "calling-display-1024.png"))
    # Nor does the supporter's own header claim someone present is away.
    await page.goto("/desk/teine-1")
    assert "あなたは短時間不在中" in await page.inner_text("#desk-head")
