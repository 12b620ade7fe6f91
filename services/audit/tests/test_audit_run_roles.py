"""Least privilege in the embedded default (`madoguchi run`, what `make run` starts): every service logs
in to PostgreSQL as its own role, none a superuser; the audit schema is migrated by a separate owner
role before the service starts; a login without the password is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from madoguchi_shared.runtime import free_port

REPO = Path(__file__).resolve().parents[3]


def _ready(url: str, proc: subprocess.Popen, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"madoguchi run exited with {proc.returncode}: {proc.stdout.read()}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {timeout} s")


async def test_make_run_connects_every_service_as_its_own_role(tmp_path):
    data = tmp_path / "var"
    audit_port, reporting_port, pg_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "MADOGUCHI_DATA_DIR": str(data),
        "MADOGUCHI_NATS_PORT": str(free_port()),
        "MADOGUCHI_NATS_MONITOR_PORT": str(free_port()),
        "MADOGUCHI_PG_PORT": str(pg_port),
        "MADOGUCHI_AUDIT_PORT": str(audit_port),
        "MADOGUCHI_REPORTING_PORT": str(reporting_port),
        "MADOGUCHI_LOG_LEVEL": "WARNING",
    }
    env.pop("MADOGUCHI_PG_DSN", None)
    env.pop("MADOGUCHI_NATS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "madoguchi_shared.cli", "run", "--only", "audit", "--only", "reporting"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await asyncio.to_thread(_ready, f"http://127.0.0.1:{audit_port}/readyz", proc)
        await asyncio.to_thread(_ready, f"http://127.0.0.1:{reporting_port}/readyz", proc)
        password = (data / "postgres" / "superuser.password").read_text().strip()
        with pytest.raises(asyncpg.InvalidPasswordError):  # TCP logins need the password now
            await asyncpg.connect(f"postgresql://madoguchi@127.0.0.1:{pg_port}/madoguchi")
        conn = await asyncpg.connect(f"postgresql://madoguchi:{password}@127.0.0.1:{pg_port}/madoguchi")
        try:
            for _ in range(100):
                users = {
                    r["usename"]
                    for r in await conn.fetch(
                        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'madoguchi' AND pid <> pg_backend_pid()"
                        " AND backend_type = 'client backend'"
                    )
                }
                if {"mg_audit", "mg_reporting"} <= users:
                    break
                await asyncio.sleep(0.2)
            assert users == {"mg_audit", "mg_reporting"}, users  # nobody else, and no superuser
            roles = {
                r["rolname"]: r
                for r in await conn.fetch(
                    "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname LIKE 'mg\\_%'"
                )
            }
            assert set(roles) == {"mg_audit", "mg_reporting", "mg_migrator"}
            assert not any(r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] for r in roles.values())
            owners = dict(
                await conn.fetch(
                    "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                    "WHERE nspname IN ('audit', 'reporting')"
                )
            )
            assert owners == {"audit": "mg_migrator", "reporting": "mg_reporting"}
            assert (
                await conn.fetchval("SELECT tableowner FROM pg_tables WHERE schemaname = 'audit' AND tablename = 'log'")
                == "audit_owner"
            )
            # The audit role appends to the log and reads it; it cannot change it, nor read reporting's tables.
            audit_pw = (data / "secrets" / "pg-mg_audit.password").read_text().strip()
            as_audit = await asyncpg.connect(f"postgresql://mg_audit:{audit_pw}@127.0.0.1:{pg_port}/madoguchi")
            try:
                assert await as_audit.fetchval("SELECT has_table_privilege('audit.log', 'INSERT')")
                for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
                    assert not await as_audit.fetchval(f"SELECT has_table_privilege('audit.log', '{privilege}')")
                assert not await as_audit.fetchval("SELECT has_schema_privilege('reporting', 'USAGE')")
            finally:
                await as_audit.close()
        finally:
            await conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=90)
    assert proc.returncode == 0, out
    assert password not in out  # the superuser's password is not printed
