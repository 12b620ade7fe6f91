"""Staff administration and revocable access (issue 15): accounts managed over /v1/staff (served by
every service), tokens refused by every service within a second of a disable, a role change or a
password reset, unknown accounts refused, logout, lockout after N failures, throttled logins,
training recorded with date and trainer, and the security headers of every response."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import date
from pathlib import Path

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from madoguchi_shared import auth, bus, subjects
from madoguchi_shared.auth import Role, issue_token
from madoguchi_shared.web import create_service_app
from tests.utils.auth import bearer

PASSWORD = "manager-password-1"
SAPPORO = Path(__file__).resolve().parents[2] / "config" / "municipalities" / "011002.toml"


def service_settings(settings, municipality: str, **extra):
    """Sapporo's configuration (wards, training plan) under the test's own municipality code."""
    return settings.model_copy(update={"municipality": municipality, "config_file": SAPPORO, **extra})


def ticker() -> APIRouter:
    """A live feed like the services' SSE endpoints, passed through auth.revocable."""
    router = APIRouter()

    @router.get("/v1/ticks")
    async def ticks(request: Request, principal: Annotated[auth.Principal, Depends(auth.require())]):
        async def stream():
            n = 0
            while True:
                n += 1
                yield {"event": "tick", "data": str(n)}
                await asyncio.sleep(0.05)

        return EventSourceResponse(auth.revocable(request.app, principal, stream()), ping=15)

    return router


@contextlib.asynccontextmanager
async def service(name: str, settings):
    """A service app of the shared shell (every service has /v1/auth and /v1/staff) on the real NATS."""
    app = create_service_app(name, settings, routers=[ticker()])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 5000)), base_url="http://t"
        ) as c:
            c.app = app
            yield c


@pytest.fixture
async def two(settings, municipality):
    """Two services: the manager administers through one, the staff member works through the other."""
    s = service_settings(settings, municipality)
    async with service("alpha", s) as a, service("beta", s) as b:
        yield a, b


async def login(client, username, password, municipality, **extra) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"username": username, "password": password, "municipality": municipality, **extra}
    )


async def manager_token(js, client, municipality) -> dict:
    await auth.add_staff(js, municipality=municipality, staff_id="M0001", roles=[Role.manager], password=PASSWORD)
    r = await login(client, "M0001", PASSWORD, municipality)
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def new_staff(client, manager, staff_id, roles, wards, municipality) -> dict:
    """Add through the API, then log in once with the temporary password, setting a real one."""
    r = await client.post("/v1/staff", json={"staff_id": staff_id, "roles": roles, "wards": wards}, headers=manager)
    assert r.status_code == 201, r.text
    temporary = r.json()["temporary_password"]
    first = await login(client, staff_id, temporary, municipality)
    assert first.status_code == 403 and first.json()["code"] == "password_change_required"
    r = await login(client, staff_id, temporary, municipality, new_password=f"{staff_id}-own-password")
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


async def refused_within(client, headers, seconds: float = 1.0) -> float:
    """Poll the other service until it refuses the token; the time it took (fails past `seconds`)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        r = await client.get("/v1/auth/me", headers=headers)
        if r.status_code == 401:
            return time.monotonic() - start
        assert r.status_code == 200
        await asyncio.sleep(0.01)
    raise AssertionError(f"token still accepted {seconds} s after the change")


async def admin_events(js, municipality, staff_id):
    return [
        s.event for s in await bus.load(js._nc, subjects.aggregate_subject("admin", municipality, "staff", staff_id))
    ]


async def test_disable_role_change_and_password_reset_revoke_tokens_in_every_service_within_a_second(
    two, js, municipality
):
    a, b = two
    manager = await manager_token(js, a, municipality)
    s1 = await new_staff(a, manager, "S0101", ["supporter"], ["chuo"], municipality)
    assert (await b.get("/v1/auth/me", headers=s1)).json()["staff_id"] == "S0101"

    # disable: refused by the other service within 1 s, and no login
    r = await a.post("/v1/staff/S0101/disable", json={"reason": "left"}, headers=manager)
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    await refused_within(b, s1)
    assert (await login(b, "S0101", "S0101-own-password", municipality)).status_code == 403
    # re-enabled: the old token stays dead, a new login works
    assert (await a.post("/v1/staff/S0101/enable", headers=manager)).status_code == 200
    assert (await b.get("/v1/auth/me", headers=s1)).status_code == 401
    again = await login(b, "S0101", "S0101-own-password", municipality)
    assert again.status_code == 200
    s1 = bearer(again.json()["access_token"])

    # role change (the issue's case: a rounder demoted to city staff kept the old token)
    r = await a.put("/v1/staff/S0101/roles", json={"roles": ["city_staff"], "wards": []}, headers=manager)
    assert r.status_code == 200 and r.json()["roles"] == ["city_staff"]
    await refused_within(b, s1)
    relog = await login(b, "S0101", "S0101-own-password", municipality)
    assert relog.json()["roles"] == ["city_staff"]
    s1 = bearer(relog.json()["access_token"])

    # password reset: token refused; the old password no longer works; the temporary one must be replaced
    r = await a.post("/v1/staff/S0101/password-reset", headers=manager)
    temporary = r.json()["temporary_password"]
    await refused_within(b, s1)
    assert (await login(b, "S0101", "S0101-own-password", municipality)).status_code == 401
    must = await login(b, "S0101", temporary, municipality)
    assert must.status_code == 403 and must.json()["code"] == "password_change_required"
    assert (await login(b, "S0101", temporary, municipality, new_password="short")).status_code == 422
    assert (await login(b, "S0101", temporary, municipality, new_password="S0101-second-password")).status_code == 200
    assert (await login(b, "S0101", "S0101-second-password", municipality)).status_code == 200

    types = [e.type for e in await admin_events(js, municipality, "S0101")]
    for expected in (
        "admin.staff_account_created",
        "admin.staff_account_disabled",
        "admin.staff_account_enabled",
        "admin.staff_roles_changed",
        "admin.staff_password_reset",
        "admin.staff_password_changed",
    ):
        assert expected in types
    changes = [e for e in await admin_events(js, municipality, "S0101") if e.type != "admin.login_succeeded"]
    assert all(e.actor.id in ("M0001", "S0101", "system") for e in changes)  # staff ids only


async def test_an_open_live_stream_ends_within_a_second_of_a_disable(two, js, municipality):
    a, b = two
    manager = await manager_token(js, a, municipality)
    s1 = await new_staff(a, manager, "S0150", ["supporter"], ["chuo"], municipality)
    disabled_at: list[float] = []

    async def disable_soon():
        await asyncio.sleep(0.5)
        disabled_at.append(time.monotonic())
        assert (await a.post("/v1/staff/S0150/disable", json={}, headers=manager)).status_code == 200

    task = asyncio.create_task(disable_soon())
    r = await asyncio.wait_for(b.get("/v1/ticks", headers=s1), 10)  # the stream ends by itself
    ended = time.monotonic()
    await task
    assert r.status_code == 200 and "event: tick" in r.text
    assert r.text.rstrip().splitlines()[0].startswith("event: tick")
    assert "event: expired" in r.text and "無効" in r.text
    assert ended - disabled_at[0] < 1.0


async def test_unknown_account_and_stale_version_tokens_are_refused(two, js, settings, municipality):
    _, b = two
    s = service_settings(settings, municipality)
    ghost = issue_token(s, staff_id="NOBODY1", roles=[Role.manager], municipality=municipality)
    r = await b.get("/v1/staff", headers=bearer(ghost))
    assert r.status_code == 401 and r.json()["detail"] == "このアカウントは登録されていません。"
    await auth.add_staff(js, municipality=municipality, staff_id="R0001", roles=[Role.rounder], password=PASSWORD)
    forged_version = issue_token(s, staff_id="R0001", roles=[Role.manager], municipality=municipality, version=99)
    assert (await b.get("/v1/staff", headers=bearer(forged_version))).status_code == 401


async def test_logout_revokes_the_token_everywhere(two, js, municipality):
    a, b = two
    manager = await manager_token(js, a, municipality)
    other = bearer((await login(a, "M0001", PASSWORD, municipality)).json()["access_token"])
    assert (await a.post("/v1/auth/logout", headers=manager)).status_code == 204
    await refused_within(b, manager)
    assert (await a.get("/v1/auth/me", headers=other)).status_code == 200  # another session of the same person stays


async def test_account_locks_after_n_failures_for_a_period_and_alerts(settings, js, municipality):
    s = service_settings(settings, municipality, login_max_failures=3, login_lock_seconds=2, login_rate_limit=100)
    async with service("alpha", s) as a, service("beta", s) as b:
        await auth.add_staff(
            js, municipality=municipality, staff_id="S0200", roles=[Role.supporter], wards=["chuo"], password=PASSWORD
        )
        # failures counted on the account, whichever service took them
        assert (await login(a, "S0200", "wrong-password-1", municipality)).status_code == 401
        assert (await login(b, "S0200", "wrong-password-2", municipality)).status_code == 401
        third = await login(a, "S0200", "wrong-password-3", municipality)
        assert (
            third.status_code == 423 and "ロック" in third.json()["detail"] and int(third.headers["retry-after"]) >= 1
        )
        locked = await login(b, "S0200", PASSWORD, municipality)  # even the right password
        assert locked.status_code == 423 and locked.json()["code"] == "locked"
        events = await admin_events(js, municipality, "S0200")
        [lock] = [e for e in events if e.type == "admin.staff_account_locked"]
        assert lock.failures == 3
        assert [e.reason for e in events if e.type == "admin.login_failed"] == ["bad_password"] * 3 + ["locked"]
        await asyncio.sleep(2.1)  # the period ends
        assert (await login(b, "S0200", PASSWORD, municipality)).status_code == 200


async def test_login_failures_from_one_address_are_throttled(settings, js, municipality):
    s = service_settings(settings, municipality, login_rate_limit=3, login_max_failures=50)
    async with service("alpha", s) as a:
        await auth.add_staff(
            js, municipality=municipality, staff_id="S0300", roles=[Role.supporter], wards=["chuo"], password=PASSWORD
        )
        for i in range(3):
            assert (await login(a, f"X{i}", "guess-guess-guess", municipality)).status_code == 401
        r = await login(a, "S0300", PASSWORD, municipality)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and r.json()["code"] == "rate_limited"


async def test_training_recorded_with_date_and_trainer_clears_for_duty(two, js, municipality):
    a, b = two
    manager = await manager_token(js, a, municipality)
    await new_staff(a, manager, "OP0001", ["operator"], ["chuo"], municipality)
    plan = (await a.get("/v1/staff/training-plan", headers=manager)).json()
    assert len(plan["items"]) == 10 and plan["pass_score"] == 80
    detail = (await b.get("/v1/staff/OP0001", headers=manager)).json()
    assert detail["cleared"] == {"desk": False, "phone": False}
    bad = await a.post(
        "/v1/staff/OP0001/training",
        json={"item": "juggling", "completed_on": "2021-03-20", "trainer": "M0001"},
        headers=manager,
    )
    assert bad.status_code == 422
    for item in plan["items"]:
        r = await a.post(
            "/v1/staff/OP0001/training",
            headers=manager,
            json={"item": item["key"], "completed_on": "2021-03-20", "trainer": "M0001"},
        )
        assert r.status_code == 201, r.text
    failed = (
        await a.post(
            "/v1/staff/OP0001/training-test",
            headers=manager,
            json={"score": 60, "tested_on": "2021-03-22", "trainer": "M0001"},
        )
    ).json()
    assert failed["training"]["test"]["passed"] is False and failed["cleared"]["phone"] is False
    passed = (
        await a.post(
            "/v1/staff/OP0001/training-test",
            headers=manager,
            json={"score": 85, "tested_on": "2021-03-23", "trainer": "M0001"},
        )
    ).json()
    assert passed["cleared"] == {"desk": True, "phone": True}
    done = passed["training"]["items"][0]
    assert done["completed_on"] == "2021-03-20" and done["trainer"] == "M0001" and done["recorded_by"] == "M0001"
    listing = (await b.get("/v1/staff", headers=manager)).json()["staff"]
    row = next(r for r in listing if r["staff_id"] == "OP0001")
    assert (
        row["roles"] == ["operator"]
        and row["wards"] == ["chuo"]
        and row["status"] == "active"
        and row["cleared"]["phone"]
    )
    events = await admin_events(js, municipality, "OP0001")
    item = next(e for e in events if e.type == "admin.training_item_completed")
    assert item.completed_on == date(2021, 3, 20) and item.trainer == "M0001"


async def test_staff_administration_is_for_managers_and_checks_its_input(two, js, municipality):
    a, _ = two
    manager = await manager_token(js, a, municipality)
    s1 = await new_staff(a, manager, "S0400", ["supporter"], ["kita"], municipality)
    assert (await a.get("/v1/staff", headers=s1)).status_code == 403
    assert (await a.post("/v1/staff", headers=s1, json={"staff_id": "S0401", "roles": ["manager"]})).status_code == 403
    dup = await a.post(
        "/v1/staff", headers=manager, json={"staff_id": "S0400", "roles": ["supporter"], "wards": ["kita"]}
    )
    assert dup.status_code == 409
    assert (
        await a.post("/v1/staff", headers=manager, json={"staff_id": "S0402", "roles": ["supporter"]})
    ).status_code == 422
    assert (
        await a.post(
            "/v1/staff", headers=manager, json={"staff_id": "S0403", "roles": ["supporter"], "wards": ["atlantis"]}
        )
    ).status_code == 422
    assert (
        await a.post("/v1/staff", headers=manager, json={"staff_id": "山田", "roles": ["supporter"]})
    ).status_code == 422
    assert (
        await a.post("/v1/staff", headers=manager, json={"staff_id": "S0404", "roles": ["administrator"]})
    ).status_code == 403
    assert (await a.post("/v1/staff/M0001/disable", headers=manager, json={})).status_code == 422  # not oneself
    assert (await a.post("/v1/staff/NOPE/disable", headers=manager, json={})).status_code == 404


async def test_security_headers_on_every_response(two, js, municipality):
    a, _ = two
    for response in (
        await a.get("/healthz"),
        await a.get("/v1/staff"),
        await a.get("/nothing-here"),
        await a.post("/v1/auth/token", json={}),
    ):
        h = response.headers
        assert h["content-security-policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] in ("no-referrer", "same-origin")
        assert h["x-frame-options"] == "DENY"
    docs = await a.get("/docs")
    csp = docs.headers["content-security-policy"]
    assert (
        docs.status_code == 200 and "'sha256-" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    )


def test_the_command_line_adds_trains_lists_and_disables(settings, municipality, monkeypatch):
    """`madoguchi staff add / train / list / disable / enable / reset-password` over the real bus."""
    from typer.testing import CliRunner

    from madoguchi_shared.cli import app

    monkeypatch.setenv("MADOGUCHI_NATS_URL", settings.nats_url)
    monkeypatch.setenv("MADOGUCHI_MUNICIPALITY", municipality)
    monkeypatch.setenv("MADOGUCHI_CONFIG_FILE", str(SAPPORO))
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()

    def run(*args, **kw):
        result = runner.invoke(app, ["staff", *args], **kw)
        assert result.exit_code == 0, result.output
        return result.output

    run(
        "add", "--id", "OP0500", "--role", "operator", "--ward", "chuo", "--password-stdin", input="operator-password\n"
    )
    assert "cleared: -" in run("list")
    out = run("train", "--id", "OP0500", "--trainer", "M0001", "--date", "2021-03-20", "--score", "85")
    assert "10 training item(s) recorded; test passed" in out
    listed = run("list")
    assert "OP0500" in listed and "operator" in listed and "chuo" in listed and "cleared: desk, phone" in listed
    assert "disabled" in run("disable", "--id", "OP0500", "--reason", "left")
    assert "disabled" in run("list")
    assert "すでに無効です" in runner.invoke(app, ["staff", "disable", "--id", "OP0500"]).output
    run("enable", "--id", "OP0500")
    assert "temporary password" in run("reset-password", "--id", "OP0500")
    assert "password_reset" in run("list")
