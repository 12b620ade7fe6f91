"""Fault injection, poison events on the desk's command side: messages that are no event (bytes, an unknown
type, JSON of the wrong shape) published by hand onto a desk-day's and a visit's subjects must not make the
desk-day or the visit unusable (the command path reads past them, as the projections dead-letter them), and
the day's report counts what the commands did, once."""

from __future__ import annotations

import uuid
from datetime import date

import httpx

from madoguchi_reporting.main import create_app as reporting_create_app
from madoguchi_shared import subjects
from madoguchi_shared.auth import Role
from madoguchi_shared.events.desk import deskday_id
from tests.test_scenario_exact import CONTRACT, SAPPORO_TOML, Desk, _train, _visit, jst, ok
from tests.utils.auth import staff_headers
from tests.utils.clock import FakeClock
from tests.utils.servers import as_service

DAY = date(2021, 4, 7)
JUNK = (b"\xff\xfe not json", b'{"type": "desk.no_such_event"}', b"[]", b'{"type": "desk.ticket_issued"}')


async def test_junk_on_a_desk_day_and_a_visit_does_not_block_them_nor_count(settings, js, municipality):
    m = municipality
    clock = FakeClock(jst(DAY, 8, 30))
    s = settings.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "log_level": "WARNING"})
    await _train(js, m, "S1")
    manager = await staff_headers(js, settings, m, "M1", [Role.manager])
    s1 = await staff_headers(js, settings, m, "S1", [Role.supporter], ["chuo"])
    city = await staff_headers(js, settings, m, "C1", [Role.city_staff])
    chuo = "/v1/desks/chuo-1"

    async def junk(subject: str) -> None:
        for raw in JUNK:
            await js.publish(subject, raw, headers={"Nats-Msg-Id": str(uuid.uuid4())})

    desk = Desk(s, clock)
    await desk.start()
    try:
        clock.at(8, 40)
        await desk.post(f"{chuo}/day/start", manager)
        await junk(subjects.aggregate_subject("desk", m, "deskday", deskday_id("chuo-1", DAY)))
        await desk.post(f"{chuo}/staff/check-in", s1)
        clock.at(9, 0)
        await desk.post(f"{chuo}/tickets", s1, status=201)
        clock.at(9, 5)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        v1 = (await desk.post(f"{chuo}/tickets/1/visit", s1, status=201))["visit_id"]
        await junk(subjects.aggregate_subject("desk", m, "visit", v1))
        await _visit(desk, s1, v1, gender="female", age="40s", purposes=["mykey_pc"], needed=True, given=True)
        clock.at(9, 20)
        await desk.post(f"/v1/visits/{v1}/end", s1, {"outcome": "completed"})
        # the service restarted reads the same subjects back from the stream (no cache): still usable
        await desk.restart()
        clock.at(9, 30)
        assert (await desk.post(f"{chuo}/tickets", s1, status=201))["ticket_no"] == 2
        clock.at(9, 40)
        await desk.post(f"{chuo}/tickets/call-next", s1)
        await desk.post(f"{chuo}/tickets/2/no-show", s1)
        clock.at(17, 20)
        await desk.post(f"{chuo}/staff/check-out", s1)
        await desk.post(f"{chuo}/day/end", manager)
    finally:
        await desk.stop()

    rs = as_service(settings, "reporting")
    rs = rs.model_copy(update={"municipality": m, "config_file": SAPPORO_TOML, "extra": {**rs.extra, **CONTRACT}})
    app = reporting_create_app(rs)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as rc:
            await app.state.reporting.caught_up()
            got = ok(
                await rc.get("/v1/reports/daily", params={"desk": "chuo-1", "date": DAY.isoformat()}, headers=city)
            )
            f = got["figures"]
            assert (f["tickets_issued"], f["visitors"], f["served"], f["completed"], f["left_unserved"]) == (
                2,
                2,
                1,
                1,
                1,
            )
