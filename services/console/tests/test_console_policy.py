"""The desk-PC policy screen (issue 17 §2), driven by a manager at 1024×768: the policy in force is
shown, a change reaches the key-value bucket the agents read and is an admin event with the
manager's staff id, one desk gets a policy of its own and gives it back, a phone number in a path
is refused with nothing stored, and two managers editing at once do not overwrite each other."""

from __future__ import annotations

import pytest

from madoguchi_shared import bus, device_policy as p
from madoguchi_shared.subjects import context_filter

from madoguchi_console.forms import FormValues
from madoguchi_console.screens.policy import form_values, parse_form

pytestmark = pytest.mark.browser

SMALL = {"width": 1024, "height": 768}


async def press(page, text: str) -> None:
    await page.get_by_role("button", name=text, exact=True).first.click()
    await page.wait_for_load_state("domcontentloaded")


async def admin_changes(nc, municipality: str) -> list:
    stored = await bus.load(nc, context_filter("admin", municipality, "config"))
    return [s.event for s in stored if s.event.type == "admin.configuration_changed"]


async def test_a_manager_sets_the_policy_per_municipality_and_desk(
    new_page, staff, login, nc, js, stack_municipality, screen_check, screenshots
):
    m = stack_municipality
    await staff("M-policy", "manager")
    await staff("S-policy", "supporter", wards=("kita",))
    page = await new_page(**SMALL)
    await login(page, "M-policy")
    await page.get_by_role("link", name="窓口PC監視").click()
    await page.wait_for_load_state("domcontentloaded")
    assert page.url.endswith("/policy")
    # nothing set yet: the protecting default is in force and says so
    assert "組み込みの既定値" in await page.inner_text("[data-testid=policy-source]")
    assert "停止する" in await page.inner_text("[data-testid=policy-enforce]")
    assert "~/Documents" in await page.inner_text("[data-testid=policy-folders]")
    # the whole screen fits 1024 px (no sideways scrolling) and passes the console's checks
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024
    await screen_check(page, "窓口PC監視（既定値）")

    # the common policy: report only, one more allowed program, one more folder
    await page.check("input[name=enforce][value=report]")
    allow = await page.input_value("#f-allow")
    await page.fill("#f-allow", allow + "\n/opt/madoguchi/bin/* madoguchi-kiosk")
    await page.fill(
        "#f-folders", "desktop ~/Desktop\ndocuments ~/Documents\ndownloads ~/Downloads\nshared /srv/desk-share"
    )
    await page.uncheck("input[name=classes][value=e0]")
    await press(page, "保存して窓口PCに反映する")
    assert "ポリシーを保存しました" in await page.inner_text("main")
    assert "窓口共通のポリシー" in await page.inner_text("[data-testid=policy-source]")
    common = await p.fetch(js, p.BUCKET, f"{m}.desk")
    assert common is not None and common.policy.process_enforce is False
    assert p.AllowRule(path="/opt/madoguchi/bin/*", name="madoguchi-kiosk") in common.policy.allow
    assert common.policy.watched_folders[-1] == p.WatchedFolder(label="shared", path="/srv/desk-share")
    assert "e0" not in common.policy.usb_allowed_classes and "0b" in common.policy.usb_allowed_classes
    assert str(common.version) in await page.inner_text("[data-testid=policy-version]")
    changes = await admin_changes(nc, m)
    assert [(c.key, c.revision, c.sha256, c.actor.id) for c in changes] == [
        ("agent_policy-desk", common.version, common.sha256, "M-policy")
    ]
    assert await page.locator("[data-testid=policy-history] tbody tr").count() == 1
    await screen_check(page, "窓口PC監視（保存後）")

    # a phone number in a folder path: refused, what was typed kept, nothing stored
    await page.fill("#f-folders", "desktop ~/Desktop\nnotes ~/090-1234-5678")
    await press(page, "保存して窓口PCに反映する")
    assert "個人情報と思われる内容" in await page.inner_text("[data-error-for=folders]")
    assert "090-1234-5678" in await page.input_value("#f-folders")
    assert (await p.fetch(js, p.BUCKET, f"{m}.desk")).version == common.version
    assert len(await admin_changes(nc, m)) == 1
    await screen_check(page, "窓口PC監視（個人情報で拒否）")

    # one desk of its own: it follows the common policy until then, and wins afterwards
    await page.select_option("#f-desk", "kita-1")
    await press(page, "表示する")
    assert "窓口共通のポリシー" in await page.inner_text("[data-testid=policy-source]")
    await page.check("input[name=enforce][value=stop]")
    await page.fill("#f-folders", "desktop ~/Desktop")
    # a second manager has the same desk open
    other = await new_page(**SMALL)
    await login(other, "M-policy")
    await other.goto("/policy?desk=kita-1")
    await press(page, "保存して窓口PCに反映する")
    assert "この窓口個別のポリシー" in await page.inner_text("[data-testid=policy-source]")
    overview = {
        await r.get_attribute("data-desk"): await r.inner_text()
        for r in await page.locator("[data-testid=policy-overview] tbody tr").all()
    }
    assert "個別" in overview["kita-1"] and "窓口共通" in overview["chuo-1"] and "記録のみ" in overview["chuo-1"]
    own = await p.fetch(js, p.BUCKET, f"{m}.desk", f"{m}.desk.kita-1")
    assert own.policy.process_enforce is True and [f.label for f in own.policy.watched_folders] == ["desktop"]
    assert (await p.fetch(js, p.BUCKET, f"{m}.desk")).version == common.version  # the common one unchanged

    # the second manager saves what they had: a conflict, not a silent overwrite
    await other.fill("#f-card_left_minutes", "5")
    await press(other, "保存して窓口PCに反映する")
    assert "ほかの人が先にポリシーを変更しました" in await other.inner_text("[data-testid=form-error]")
    assert await other.input_value("#f-card_left_minutes") == "5"
    assert (await p.fetch(js, p.BUCKET, f"{m}.desk", f"{m}.desk.kita-1")).version == own.version
    await screen_check(other, "窓口PC監視（競合）")

    # the desk gives its own policy back
    await press(page, "個別のポリシーを削除して窓口共通に戻す")
    assert "窓口共通のポリシー" in await page.inner_text("[data-testid=policy-source]")
    assert (await p.fetch(js, p.BUCKET, f"{m}.desk", f"{m}.desk.kita-1")).version == common.version
    changes = await admin_changes(nc, m)
    assert [(c.key, c.desk, c.actor.id) for c in changes[1:]] == [
        ("agent_policy-desk-kita-1", "kita-1", "M-policy"),
        ("agent_policy-desk-kita-1", "kita-1", "M-policy"),
    ]
    assert changes[-1].revision == common.version and changes[-1].sha256 == common.sha256

    # a supporter may not open the screen
    supporter = await new_page(**SMALL)
    await login(supporter, "S-policy")
    answer = await supporter.goto("/policy")
    assert answer.status == 403 and "窓口PC監視" not in await supporter.inner_text("nav")
    await page.screenshot(path=str(screenshots / "policy-1024.png"), full_page=True)
    assert not screen_check.problems, screen_check.problems


def test_the_form_round_trips_the_policy_and_refuses_bad_lines():
    policy = p.Policy(allow=(p.AllowRule(path="/usr/bin/*"), p.AllowRule(name="kiosk", sha256="a" * 64)))
    values = form_values(policy)
    pairs = [(k, v) for k, v in values.items() if not isinstance(v, (bool, list))]
    pairs += [(k, "1") for k, v in values.items() if v is True]
    pairs += [("classes", c) for c in values["classes"]]
    again, errors, _ = parse_form(FormValues(pairs), policy)
    assert errors == {} and again == policy

    def refused(**changes) -> dict[str, str]:
        form = FormValues([*[(k, v) for k, v in pairs if k not in changes], *changes.items()])
        result, errors, _ = parse_form(form, policy)
        assert result is None
        return errors

    assert "allow" in refused(allow="")  # an empty list would stop every program
    assert "allow" in refused(allow="/usr/bin/a /usr/bin/b")
    assert "folders" in refused(folders="desk top ~/Desktop")
    assert "folders" in refused(folders="docs Documents")
    assert "folders" in refused(folders="a ~/A\na ~/B")
    assert "devices" in refused(devices="054c-06c1")
    assert "card_left_minutes" in refused(card_left_minutes="0")
    assert "enforce" in refused(enforce="maybe")
    assert "allow" in refused(allow="/home/s/１２３４５６７８９０１８/*")  # a My Number, full-width


async def test_hq_sees_each_pcs_counts_and_timeline(
    new_page, staff, login, js, stack_municipality, screen_check, screenshots
):
    import asyncio
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from madoguchi_shared.events import Actor, Role
    from madoguchi_shared.events import device as dev

    m = stack_municipality
    now = datetime.now(UTC)
    pc = dict(
        municipality=m,
        ward="higashi",
        desk="higashi-1",
        device_id="higashi-1-pc",
        occurred_at=now,
        actor=Actor(id="higashi-1-pc", role=Role.device),
    )
    await bus.publish_many(
        js,
        [
            *[dev.ProcessStarted(pid=100 + i, name="chromium", allowed=True, source="netlink", **pc) for i in range(3)],
            dev.FileActivity(root="desktop", path="memo.txt", action="created", **pc),
            dev.SessionChanged(action="logon", session="2", os_uid=1000, **pc),
            dev.ProcessViolation(pid=7, name="game", enforce=True, enforced=True, **pc),
            dev.Heartbeat(
                agent_version="1", policy_version=1, outbox_depth=0, outbox_bytes=0, link_up=True, uptime_s=1, **pc
            ),
        ],
    )
    # the monitoring notice on the desk's day (the stack's clock): one staff member acknowledged, one declined
    desk_day = dict(pc, occurred_at=datetime(2021, 4, 1, 10, 1, tzinfo=ZoneInfo("Asia/Tokyo")))  # conftest.DAY_START
    await bus.publish_many(
        js,
        [
            dev.MonitoringNoticeAcknowledged(staff_id="S-ack", notice_sha256="a" * 64, **desk_day),
            dev.MonitoringNoticeDeclined(staff_id="S-dec", notice_sha256="a" * 64, **desk_day),
        ],
    )
    await staff("M-activity", "manager")
    page = await new_page(**SMALL)
    await login(page, "M-activity")
    await page.goto("/policy")
    await page.get_by_role("link", name="窓口PCの記録").click()
    row = page.locator("[data-testid=device-counts] tr[data-device=higashi-1-pc]")
    for _ in range(60):  # the audit service ingests the events in its own time
        if await row.count():
            break
        await asyncio.sleep(0.5)
        await page.reload()
    notice = page.locator("[data-testid=notice-status]")
    for _ in range(60):  # the desk service follows the notices in its own time
        if "S-dec" in await notice.inner_text():
            break
        await asyncio.sleep(0.5)
        await page.reload()
    assert "S-ack" in await page.inner_text("[data-testid=notice-acknowledged]")
    assert "S-dec" in await page.inner_text("[data-testid=notice-declined]")
    cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
    assert cells[:9] == ["東区", "higashi-1-pc", "3", "1", "1", "0", "0", "0", "1"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024
    await screen_check(page, "窓口PCの記録")
    await row.get_by_role("link", name="時系列").click()
    await page.wait_for_load_state("domcontentloaded")
    timeline = await page.inner_text("[data-testid=device-timeline]")
    assert timeline.count("プログラム起動") == 3 and "許可されていないアプリケーション" in timeline
    assert "ファイル操作" in timeline and "ログオン・ロック" in timeline and "稼働通知" not in timeline
    assert "memo" not in timeline and "chromium" not in timeline  # kinds and times only, never names
    await screen_check(page, "窓口PCの時系列")
    await page.screenshot(path=str(screenshots / "policy-activity-1024.png"), full_page=True)
    assert not screen_check.problems, screen_check.problems
