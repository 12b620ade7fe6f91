"""Browser tests of the console: the real services on free ports (uvicorn tasks in the test's event
loop, against the session's real nats-server and PostgreSQL) and Debian's Chromium via Playwright."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from madoguchi_shared import bus
from madoguchi_shared.auth import add_staff
from madoguchi_shared.events.admin import TRAINING_ITEMS, TrainingItemCompleted, TrainingTestRecorded
from tests.utils.servers import Served, as_service, own_audit_log, unique_municipality

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct-horse-battery"  # 10+ characters (auth.hash_password)
REPO = Path(__file__).resolve().parents[3]
# The services decide with this clock: Thursday 1 April 2021 (an extended day, 8:45-19:00), 10:00 in
# Japan, advancing with real time, so the desks are open whenever the suite runs.
DAY_START = datetime(2021, 4, 1, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
UPSTREAMS = {
    "desk": "madoguchi_desk",
    "calls": "madoguchi_calls",
    "reporting": "madoguchi_reporting",
    "audit": "madoguchi_audit",
}


def _factory(module: str):
    """The service's app factory. A service that does not import is a failure of every browser test,
    never a skip (issue 20)."""
    return importlib.import_module(f"{module}.main").create_app


class Stack:
    """The console and every upstream service, all served over real HTTP."""

    def __init__(self):
        self.services: dict[str, Served] = {}
        self.console: Served | None = None

    @property
    def url(self) -> str:
        assert self.console
        return self.console.url


def make_clock():
    started = datetime.now(UTC)

    def clock() -> datetime:
        return DAY_START.astimezone(UTC) + (datetime.now(UTC) - started)

    return clock


def _build(factory, settings, clock, name: str):
    kwargs = {}
    if "clock" in inspect.signature(factory).parameters:
        kwargs["clock"] = clock
    return factory(as_service(settings, name), **kwargs)  # its own PostgreSQL login, as `madoguchi run` gives it


@pytest.fixture(scope="session")
def stack_municipality() -> str:
    """One municipality for the whole browser suite (each service serves one); tests keep apart
    by using different desks and staff ids."""
    return unique_municipality()


@pytest_asyncio.fixture(scope="session")
async def stack(settings, js, stack_municipality, tmp_path_factory):
    stack = Stack()
    extra = {**settings.extra, "contract_start": "2021-03-15", "contract_end": "2021-09-30"}
    settings = settings.model_copy(
        update={
            "municipality": stack_municipality,
            # its own data folder (signing key, checkpoint file), as a deployment has: other suites' audit
            # writers in this session use the session's folder
            "data_dir": tmp_path_factory.mktemp("stack"),
            "log_level": "WARNING",
            "extra": extra,
            "config_file": REPO / "config" / "municipalities" / "011002.toml",
        }
    )
    settings = await own_audit_log(settings, stack_municipality)
    stack.settings = settings
    clock = make_clock()
    for name, module in UPSTREAMS.items():
        factory = _factory(module)
        served = Served(_build(factory, settings, clock, name))
        await served.start()
        stack.services[name] = served
    from madoguchi_console.main import create_app

    app = create_app(settings)
    app.state.live_interval = 0.5
    console = Served(app)
    app.state.service_urls = {name: s.url for name, s in stack.services.items()}
    await console.start()
    stack.console = console
    yield stack
    for served in [console, *stack.services.values()]:
        await served.stop()


@pytest_asyncio.fixture(scope="session")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest_asyncio.fixture
async def new_page(browser, stack, request, screenshots):
    """`await new_page(viewport=...)`: a fresh browser context (own cookies) per person.
    When the test fails, every page it opened is saved as FAILED-<test>-<n>.png to show why."""
    contexts = []
    csp_refusals: list[str] = []

    async def make(width: int = 1280, height: int = 800):
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            locale="ja-JP",
            timezone_id="Asia/Tokyo",
            accept_downloads=True,
            base_url=stack.url,
        )
        context.set_default_timeout(15000)
        # A person answers "OK" to the confirmation questions (data-confirm).
        context.on("page", lambda p: p.on("dialog", lambda d: asyncio.ensure_future(d.accept())))
        # The content security policy must refuse nothing the console itself serves (issue 15).
        context.on(
            "console",
            lambda m: (
                csp_refusals.append(f"{m.page.url if m.page else ''}: {m.text}")
                if "Content Security Policy" in m.text
                else None
            ),
        )
        contexts.append(context)
        return await context.new_page()

    yield make
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        n = 0
        for c in contexts:
            for page in c.pages:
                n += 1
                try:
                    await page.screenshot(path=str(screenshots / f"FAILED-{request.node.name}-{n}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - a screenshot must not hide the failure itself
                    pass
    for c in contexts:
        await c.close()
    assert not csp_refusals, csp_refusals


@pytest.fixture
def staff(js, stack_municipality):
    """`await staff("S1", "supporter", wards=["chuo"])`: a real account, trained (ORG-4)."""

    async def make(staff_id: str, *roles: str, wards: tuple[str, ...] = ()):
        m = stack_municipality
        await add_staff(js, municipality=m, staff_id=staff_id, roles=list(roles), wards=list(wards), password=PASSWORD)
        events = [
            TrainingItemCompleted(municipality=m, staff_id=staff_id, item=item, hours=1.0) for item in TRAINING_ITEMS
        ]
        events.append(TrainingTestRecorded(municipality=m, staff_id=staff_id, score=90, passed=True))
        await bus.publish_many(js, events)
        return staff_id

    return make


@pytest.fixture
def login(stack_municipality):
    """`await login(page, "S1")`: log in through the form, as a person would."""

    async def go(page, staff_id: str, password: str = PASSWORD) -> None:
        await page.goto("/login")
        await page.fill("#f-username", staff_id)
        await page.fill("#f-password", password)
        await page.fill("#f-municipality", stack_municipality)
        await page.click("form[action='/login'] button[type=submit]")
        await page.wait_for_load_state("domcontentloaded")

    return go


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core 4.14.1 (npm pack axe-core), MPL-2.0
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# Visible text, placeholders and option labels; `.id` marks ids a person types (staff ids, hashes
# copied into the audit filter), which stay as typed. A few Latin abbreviations are how Japanese
# writes these things (マイキーID is the scheme's own name; QRコード, USB機器, PDF...): allowed.
ALLOWED_LATIN = ["ID", "PC", "QR", "NFC", "USB", "PDF", "CSV", "ZIP", "Excel"]
_VISIBLE_ASCII = """(allowed) => {
  const latin = t => /[A-Za-z]/.test(allowed.reduce((s, w) => s.split(w).join(''), t));
  const out = [];
  const skip = el => el.closest('.id, script, style, template');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || skip(el) || !latin(n.textContent)) continue;
    if (el.tagName === 'OPTION') { out.push(n.textContent.trim()); continue; }
    if (!el.checkVisibility({visibilityProperty: true})) continue;
    out.push(n.textContent.trim());
  }
  document.querySelectorAll('[placeholder]').forEach(el => { if (latin(el.placeholder) && !skip(el)) out.push('placeholder: ' + el.placeholder); });
  document.querySelectorAll('[aria-label]').forEach(el => { if (latin(el.getAttribute('aria-label')) && !skip(el)) out.push('aria-label: ' + el.getAttribute('aria-label')); });
  if (latin(document.title)) out.push('title: ' + document.title);
  return out;
}"""


@pytest.fixture
def screen_check():
    """`await screen_check(page, "HQ")`: axe-core (WCAG 2.1 A/AA) and no ASCII letters in what a
    person reads; problems are collected, `screen_check.problems` asserted by the test at the end."""
    source = AXE.read_text(encoding="utf-8")
    problems: list[str] = []

    async def check(page, name: str) -> None:
        if not await page.evaluate("typeof window.axe !== 'undefined'"):
            await page.evaluate(source)  # through the debugging protocol: not subject to the page's CSP
        result = await page.evaluate(
            "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});"
            " return r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 160)).join(' | ')); }",
            AXE_TAGS,
        )
        problems.extend(f"{name}: axe {v}" for v in result)
        ascii_text = await page.evaluate(_VISIBLE_ASCII, ALLOWED_LATIN)
        problems.extend(f"{name}: ASCII in {t!r}" for t in ascii_text)

    async def sanity(page) -> None:
        """The checks can fail: an unlabelled field and an English word are both caught."""
        await page.set_content(
            '<html lang="ja"><head><title>確認</title></head><body><main><h1>確認</h1>'
            '<input type="text"><p>Submit</p></main></body></html>'
        )
        before = len(problems)
        await check(page, "確認用")
        found = problems[before:]
        del problems[before:]
        assert any("axe label" in p for p in found) and any("'Submit'" in p for p in found), found

    check.problems = problems
    check.sanity = sanity
    return check
