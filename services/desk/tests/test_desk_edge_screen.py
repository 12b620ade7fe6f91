"""The desk screen and the calling display served on the laptop from its desk edge (issue 21): the
supporter sees 「オフライン：N件 未送信」 and then 「送信済み」; a form sent twice (same client command id)
is one ticket; the calling display keeps calling numbers while the link is down."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import httpx
import uvicorn
from desk_api import SAPPORO_TOML, FakeClock, train
from edge_harness import LinkProxy, laptop_identity, until

from madoguchi_console.main import create_app as create_console
from madoguchi_desk.edge.app import EdgeConfig, create_edge_app
from madoguchi_shared import subjects
from madoguchi_shared import auth, bus
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events.base import Role
from madoguchi_shared.runtime import free_port

PASSWORD = "edge-screen-password-1"


async def _serve(app) -> tuple[uvicorn.Server, asyncio.Task, str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the edge did not start"
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}"


async def _page_saying(browser: httpx.AsyncClient, text: str) -> str:
    """The desk screen once it says `text` (the edge sends in the background: 送信中 comes first)."""

    async def page() -> str | None:
        body = (await browser.get("/desk/chuo-1")).text
        return body if text in body else None

    return await until(page, every=0.2)


def _command_id(page: str, action: str) -> str:
    """The hidden command id of the form whose button sends `action`."""
    for form in re.findall(r"<form .*?</form>", page, re.S):
        if f'value="{action}"' in form:
            return re.search(r'name="command_id" value="([0-9a-f]{32})"', form).group(1)
    raise AssertionError(f"no form for {action}")


async def test_the_laptops_desk_screen_works_offline_and_says_so(
    settings, municipality, nc, js, nats_server, data_dir, tmp_path
):
    m = municipality
    clock = FakeClock(datetime(2021, 4, 6, 10, 0, tzinfo=TOKYO))
    s = settings.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    await auth.add_staff(js, municipality=m, staff_id="S1", roles=[Role.supporter], wards=["chuo"], password=PASSWORD)
    await train(js, m, "S1")
    await auth.revoked_bucket(js)  # made by HQ's services at their start; the edge may not create buckets
    link = await LinkProxy(nats_server.url).start()
    credentials = laptop_identity(data_dir, nats_server, m, "chuo-1")
    credentials.pop("municipality")
    edge = create_edge_app(
        s,
        EdgeConfig(
            desk="chuo-1",
            device_id="chuo-1-pc",
            state_dir=tmp_path,
            nats_url=link.url,
            connect_options=credentials,
            heartbeat_seconds=0.3,
        ),
        clock=clock,
    )
    server, task, edge_url = await _serve(edge)
    console = create_console(s)
    try:
        await until(lambda: getattr(edge.state, "accounts", None))
        async with (
            console.router.lifespan_context(console),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=console), base_url="http://laptop", follow_redirects=True, timeout=30
            ) as browser,
        ):
            console.state.service_urls = {**console.state.service_urls, "desk": edge_url}
            r = await browser.post("/login", data={"username": "S1", "password": PASSWORD, "municipality": m})
            assert r.status_code == 200, r.text
            page = await _page_saying(browser, "送信済み")  # once the edge has sent what it holds
            await browser.post(
                "/desk/chuo-1/act", data={"action": "check_in", "command_id": _command_id(page, "check_in")}
            )

            await link.cut()
            await until(lambda: not edge.state.link.online)
            page = (await browser.get("/desk/chuo-1")).text
            form = {"action": "issue", "command_id": _command_id(page, "issue")}
            first = await browser.post("/desk/chuo-1/act", data=form)
            assert "番号札 1番を発行しました。" in first.text
            again = await browser.post("/desk/chuo-1/act", data=form)  # the same form sent twice
            assert "番号札 1番を発行しました。" in again.text
            page = (await browser.get("/desk/chuo-1")).text
            called = await browser.post(
                "/desk/chuo-1/act", data={"action": "call_next", "command_id": _command_id(page, "call_next")}
            )
            assert "1番の方をお呼びしました。" in called.text, re.findall(
                r'class="[^"]*(?:error|flash)[^"]*"[^>]*>([^<]*)', called.text
            )
            page = (await browser.get("/desk/chuo-1")).text
            pending = edge.state.link.journal.depth()
            assert f"オフライン：{pending}件 未送信" in page and pending == 2  # the ticket and its call
            display = (await browser.get("/display/chuo-1")).text  # the calling display, from the laptop
            assert 'data-testid="calling-number" data-number="1"' in display

            await link.restore()
            await until(lambda: edge.state.link.online and edge.state.link.journal.depth() == 0)
            page = (await browser.get("/desk/chuo-1")).text
            assert "送信済み" in page and "オフライン：" not in page
        stored = await bus.load(nc, subjects.aggregate_subject("desk", m, "deskday", "chuo-1_2021-04-06"))
        assert [e.event.type for e in stored].count("desk.ticket_issued") == 1
        assert [e.event.type for e in stored].count("desk.ticket_called") == 1
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await link.cut()
