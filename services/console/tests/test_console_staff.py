"""Staff administration in the console (issue 15), driven as the manager and a new supporter would:
add a person, record the training, the person sets a password and checks in; a disabled person's
open session is refused at the next action. No page breaks the content security policy."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TABLET = {"width": 1280, "height": 800}


def csp_watch(page) -> list[str]:
    """Console messages about the content security policy (a refused inline script, a framed page...)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def add_person(page, staff_id: str, role_label: str, ward_label: str) -> str:
    """On 職員管理: add a person; the temporary password shown once."""
    await page.goto("/staff")
    await page.fill("#f-staff_id", staff_id)
    await page.select_option("#f-role", label=role_label)
    await page.get_by_label(ward_label, exact=True).check()
    await press(page, "追加する")
    assert await page.inner_text("[data-testid=staff-id]") == staff_id
    return (await page.inner_text("[data-testid=temporary-password]")).strip()


async def first_login(page, staff_id: str, temporary: str, new_password: str, municipality: str) -> None:
    await page.goto("/login")
    await page.fill("#f-username", staff_id)
    await page.fill("#f-password", temporary)
    await page.fill("#f-municipality", municipality)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")
    # the password was set by the manager: the person chooses their own now
    await page.locator("#f-new_password").wait_for()
    assert "パスワードがリセットされています" in await page.inner_text("main")
    await page.fill("#f-password", temporary)
    await page.fill("#f-new_password", new_password)
    await page.fill("#f-new_password2", new_password)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")


async def test_a_manager_adds_a_supporter_records_the_training_and_the_supporter_checks_in(
    new_page, staff, login, stack_municipality, screenshots, screen_check
):
    await staff("M-staff", "manager")
    manager = await new_page()
    csp = csp_watch(manager)
    await login(manager, "M-staff")
    await manager.get_by_role("link", name="職員管理").click()
    await manager.wait_for_load_state("domcontentloaded")
    assert manager.url.endswith("/staff")
    await screen_check(manager, "職員一覧")
    temporary = await add_person(manager, "S-new", "支援員", "手稲区")
    assert "研修未了" in await manager.inner_text("[data-testid=cleared-desk]")
    await screen_check(manager, "職員（仮のパスワード）")

    # the new supporter cannot work yet
    supporter = await new_page(**TABLET)
    csp += csp_watch(supporter)
    await first_login(supporter, "S-new", temporary, "S-new-own-password", stack_municipality)
    assert supporter.url.endswith("/desk/teine-1")
    await press(supporter, "チェックイン（従事開始）")
    assert "研修が完了していないため従事できません" in await supporter.inner_text("main")

    # the manager records the training: every item of the plan, then the test
    boxes = manager.locator("[data-testid=training-form] input[name=items]")
    assert await boxes.count() == 10
    for i in range(await boxes.count()):
        await boxes.nth(i).check()
    await manager.fill("#t-on", "2021-03-25")
    await press(manager, "選んだ項目の修了を記録")
    assert "研修 10 項目の修了を記録しました" in await manager.inner_text(".flash.ok")
    assert "研修未了" in await manager.inner_text("[data-testid=cleared-desk]")  # the test is still missing
    await manager.fill("#x-score", "88")
    await manager.fill("#x-on", "2021-03-26")
    await press(manager, "結果を記録")
    assert "88点・合格" in await manager.inner_text(".flash.ok")
    assert "従事可" in await manager.inner_text("[data-testid=cleared-desk]")
    row = manager.locator("[data-testid=training-table] tr[data-item=compliance]")
    assert "M-staff" in await row.inner_text() and "令和3年3月25日" in await row.inner_text()
    await manager.screenshot(path=str(screenshots / "staff-detail.png"), full_page=True)
    await screen_check(manager, "職員（研修記録）")
    await manager.goto("/staff")
    await screen_check(manager, "職員一覧（追加後）")
    assert "可" in await manager.inner_text("[data-testid=cleared-desk-S-new]")
    assert "手稲区" in await manager.inner_text("tr[data-staff=S-new]")
    await manager.screenshot(path=str(screenshots / "staff-list.png"), full_page=True)

    # now the supporter checks in
    await supporter.goto("/desk/teine-1")
    await press(supporter, "チェックイン（従事開始）")
    assert "チェックインしました" in await supporter.inner_text(".flash.ok")
    assert csp == []
    assert screen_check.problems == [], "\n".join(screen_check.problems)
    headers = (await supporter.request.get("/staff")).headers
    assert (
        "frame-ancestors 'none'" in headers["content-security-policy"]
        and "script-src 'self'" in headers["content-security-policy"]
    )


async def test_a_disabled_supporters_open_session_is_refused_at_the_next_action(
    new_page, browser, stack, staff, login, screenshots
):
    await staff("M-staff2", "manager")
    await staff("S-leaving", "supporter", wards=["nishi"])
    # The desk tablet's screen (live updates on) and a second screen of the same person without
    # script (so nothing but the person's own press reaches the console).
    supporter = await new_page(**TABLET)
    await login(supporter, "S-leaving")
    assert supporter.url.endswith("/desk/nishi-1")
    await press(supporter, "チェックイン（従事開始）")
    assert "チェックインしました" in await supporter.inner_text(".flash.ok")
    plain_context = await browser.new_context(java_script_enabled=False, base_url=stack.url, locale="ja-JP")
    try:
        plain = await plain_context.new_page()
        await login(plain, "S-leaving")
        assert plain.url.endswith("/desk/nishi-1")

        manager = await new_page()
        await login(manager, "M-staff2")
        await manager.goto("/staff/S-leaving")
        await manager.select_option("select[name=reason]", label="退職")
        await press(manager, "無効にする")
        assert "無効にしました" in await manager.inner_text(".flash.ok")
        assert await manager.inner_text("[data-testid=status]") == "無効"

        # the next press on the open page is refused and leads to the login form, saying why
        await press(plain, "番号札を発行")
        assert "/login" in plain.url
        assert "このログインは無効になりました" in await plain.inner_text("main")
        # the live screen's next refresh is refused the same way
        await supporter.wait_for_url("**/login?**")
        assert "このログインは無効になりました" in await supporter.inner_text("main")
        await supporter.screenshot(path=str(screenshots / "session-revoked.png"))
        # and logging in again is refused too
        await login(plain, "S-leaving")
        assert "/login" in plain.url and "無効" in await plain.inner_text("main")

        # enabled again: a new login works (the old sessions stay ended)
        await manager.goto("/staff/S-leaving")
        await press(manager, "有効にする")
        await login(plain, "S-leaving")
        assert plain.url.endswith("/desk/nishi-1")
    finally:
        await plain_context.close()


async def test_city_staff_and_auditors_log_in_and_work_with_the_desk_service_down(new_page, staff, login, stack):
    """Login is served by the console itself over the shared account store: no desk needed."""
    await staff("C-nodesk", "city_staff")
    await staff("A-nodesk", "auditor")
    urls = stack.console.app.state.service_urls
    saved = urls["desk"]
    urls["desk"] = "http://127.0.0.1:9"  # nothing listens there: the desk is down
    try:
        city = await new_page()
        await login(city, "C-nodesk")
        assert city.url.endswith("/reports")
        assert "報告書" in await city.inner_text("h1")
        auditor = await new_page()
        await login(auditor, "A-nodesk")
        assert auditor.url.endswith("/audit")
        assert "窓口サービスに接続できません" not in await auditor.inner_text("main")
    finally:
        urls["desk"] = saved


async def test_an_operator_is_refused_a_seat_until_the_manager_records_the_training(
    new_page, staff, login, stack_municipality
):
    await staff("M-staff3", "manager")
    manager = await new_page()
    await login(manager, "M-staff3")
    temporary = await add_person(manager, "O-new", "オペレーター", "中央区")
    operator = await new_page()
    await first_login(operator, "O-new", temporary, "O-new-own-password", stack_municipality)
    assert operator.url.endswith("/phone")
    await operator.fill("#seat-id", "17")
    await press(operator, "着席する")
    assert "研修が完了していないため電話対応に従事できません" in await operator.inner_text("main")

    boxes = manager.locator("[data-testid=training-form] input[name=items]")
    for i in range(await boxes.count()):
        await boxes.nth(i).check()
    await press(manager, "選んだ項目の修了を記録")
    await manager.fill("#x-score", "95")
    await press(manager, "結果を記録")
    assert "従事可" in await manager.inner_text("[data-testid=cleared-phone]")

    await operator.goto("/phone")
    await operator.fill("#seat-id", "17")
    await press(operator, "着席する")
    assert "17番席に着席中" in await operator.inner_text("main")
