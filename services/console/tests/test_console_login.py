"""Login, the session cookie and role-aware navigation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


async def test_login_lands_on_the_role_screen_and_keeps_the_token_out_of_scripts(
    new_page, staff, login, screenshots, stack_municipality
):
    await staff("A1", "auditor")
    page = await new_page()
    await page.goto("/")
    assert "/login" in page.url
    await page.fill("#f-username", "A1")
    await page.fill("#f-password", "wrong-password-123")
    await page.fill("#f-municipality", stack_municipality)
    await page.click("form[action='/login'] button[type=submit]")
    error = page.locator("[data-error-for=password]")
    await error.wait_for()
    assert "正しくありません" in await error.inner_text()
    assert await page.input_value("#f-username") == "A1"  # what was typed is kept
    await page.screenshot(path=str(screenshots / "login-error.png"))

    await login(page, "A1")
    assert page.url.endswith("/audit")
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "mg_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""
    assert "監査担当" in await page.inner_text("[data-testid=who]")

    # A screen of another role is refused with a Japanese message, not a stack trace.
    await page.goto("/hq")
    assert "権限がありません" in await page.inner_text("main")

    await page.click("text=ログアウト")
    assert "/login" in page.url
    await page.goto("/audit")
    assert "/login" in page.url
