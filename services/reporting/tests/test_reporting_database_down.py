"""Fault injection: PostgreSQL killed with -9 under the reporting service. A report asked for then is a
503 with Retry-After and a Japanese problem document, never a 500 (it was: asyncpg's InternalClientError
from a pooled connection whose server had died), and the service serves again by itself once the
database is back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

from madoguchi_shared.runtime import PostgresServer

from reporting_harness import headers, reporting_settings, running_app


async def test_reports_while_postgresql_is_killed_are_503_then_served_again(settings, js, municipality, tmp_path):
    server = PostgresServer(tmp_path / "pg").start()
    s = reporting_settings(settings).model_copy(update={"pg_dsn": server.dsn})
    params = {"desk": "chuo-1", "date": "2021-04-01"}
    try:
        async with running_app(s) as (_app, client):
            h = await headers(js, s, municipality)
            assert (await client.get("/v1/reports/daily", params=params, headers=h)).status_code == 200

            assert server.proc is not None
            # the kill lands while reports are being built: a pooled connection dies under a query
            inflight = [
                asyncio.create_task(client.get("/v1/reports/weekly", params={"week_start": d}, headers=h))
                for d in ("2021-03-29", "2021-04-05", "2021-04-12", "2021-04-19", "2021-04-26", "2021-05-03")
            ]
            await asyncio.sleep(0.02)
            os.kill(server.proc.pid, signal.SIGKILL)  # the postmaster; its backends follow it
            server.proc.wait()
            statuses = [r.status_code for r in await asyncio.gather(*inflight)]
            for _ in range(8):
                r = await client.get("/v1/reports/daily", params=params, headers=h)
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert r.headers["content-type"].startswith("application/problem+json")
                    assert int(r.headers["retry-after"]) > 0 and r.json()["title"] == "一時的に利用できません"
                await asyncio.sleep(0.1)
            assert 503 in statuses and set(statuses) <= {200, 503}, statuses  # (200: a backend not yet gone)
            assert (await client.get("/readyz")).status_code == 503

            server.start()  # the same data folder and port
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (r := await client.get("/v1/reports/daily", params=params, headers=h)).status_code != 200:
                assert r.status_code == 503, r.text
                assert loop.time() < deadline, "not served again within 30 s"
                await asyncio.sleep(0.2)
    finally:
        server.stop()


async def test_readyz_says_down_within_seconds_while_postgresql_is_frozen(settings, js, municipality, tmp_path):
    """A frozen server (SIGSTOP: a stalled disk, a partition without a reset) keeps the pooled connections
    open and never answers: /readyz hung for 40 s and more, now it says "down" in a few seconds."""
    server = PostgresServer(tmp_path / "pg").start()
    s = reporting_settings(settings).model_copy(update={"pg_dsn": server.dsn})
    assert server.proc is not None
    frozen: list[int] = []
    try:
        async with running_app(s) as (_app, client):
            assert (await client.get("/readyz")).status_code == 200
            children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
            frozen = [server.proc.pid, *(int(pid) for pid in children.split())]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            ready = await client.get("/readyz")
            waited = time.monotonic() - started
            assert ready.status_code == 503 and ready.json()["checks"]["postgres"] == "down"
            assert waited < 8, waited
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            frozen = []
            deadline = asyncio.get_running_loop().time() + 30
            while (await client.get("/readyz")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.2)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        server.stop()


async def test_reports_while_postgresql_is_frozen_are_503_within_seconds_then_served(
    settings, js, municipality, tmp_path
):
    """A frozen server on a request path: a report asked for waited the pool's 60 s command timeout (and a
    connection's release as long again) before any answer. Now each statement and each wait for a pooled
    connection of a request is bounded (Settings.db_request_timeout, 5 s): a 503 problem document with
    Retry-After in seconds, for every request while it lasts (the pool's connections are not used up by the
    hung ones), and the reports again once the server goes on."""
    server = PostgresServer(tmp_path / "pg").start()
    s = reporting_settings(settings).model_copy(update={"pg_dsn": server.dsn})
    assert server.proc is not None
    params = {"desk": "chuo-1", "date": "2021-04-01"}
    frozen: list[int] = []
    try:
        async with running_app(s) as (_app, client):
            h = await headers(js, s, municipality)
            assert (await client.get("/v1/reports/daily", params=params, headers=h)).status_code == 200
            children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
            frozen = [server.proc.pid, *(int(pid) for pid in children.split())]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            # more requests at once than the pool has connections (10): none may wait for a hung one
            asked = [
                client.get("/v1/reports/weekly", params={"week_start": f"2021-04-{d:02d}"}, headers=h)
                for d in range(1, 13)
            ]
            answers = await asyncio.gather(client.get("/v1/reports/daily", params=params, headers=h), *asked)
            waited = time.monotonic() - started
            assert [r.status_code for r in answers] == [503] * len(answers), [r.text[:200] for r in answers]
            for r in answers:
                assert r.headers["content-type"].startswith("application/problem+json")
                assert int(r.headers["retry-after"]) > 0 and r.json()["title"] == "一時的に利用できません"
            assert waited < 15, waited
            # still frozen: the next request is as quick (no connection left hanging in the pool)
            started = time.monotonic()
            assert (await client.get("/v1/reports/daily", params=params, headers=h)).status_code == 503
            assert time.monotonic() - started < 15
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            frozen = []
            deadline = asyncio.get_running_loop().time() + 30
            while (r := await client.get("/v1/reports/daily", params=params, headers=h)).status_code != 200:
                assert r.status_code == 503, r.text
                assert asyncio.get_running_loop().time() < deadline, "not served again within 30 s"
                await asyncio.sleep(0.2)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        server.stop()
