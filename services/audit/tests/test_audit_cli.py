"""`madoguchi audit verify` and `keygen` as an operator runs them (a separate process)."""

from __future__ import annotations

import asyncio
import sys

from audit_harness import cli_env, publish, running_ingest, sample_events


async def _cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "madoguchi_audit.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_verify_says_ok_on_a_clean_log_and_names_the_first_bad_position_on_a_tampered_one(
    nc, js, pg_pool, settings, migrated
):
    audit = migrated
    await publish(js, sample_events(audit.municipality, 300))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    common = [
        "--dsn",
        settings.resolved_pg_dsn(),
        "--data-dir",
        str(audit.data_dir),
        "--schema",
        audit.schema_name,
        "--nats",
        settings.nats_url,
    ]
    env = cli_env(audit)

    code, out, err = await _cli("verify", *common, env=env)
    assert code == 0, out + err
    assert out.startswith("OK  log oplog: ") and "signed checkpoints verified" in out

    code, out, _ = await _cli("verify", "--from-checkpoint", *common, env=env)
    assert code == 0 and "started after the signed checkpoint" in out

    # Incremental: from the newest signed checkpoint the last successful run covered, proportional to what is new.
    await publish(js, sample_events(audit.municipality, 40, seed=21))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    code, out, err = await _cli("verify", "--incremental", *common, env=env)
    assert code == 0, out + err
    assert "started after the signed checkpoint at" in out
    start = int(out.split("started after the signed checkpoint at ")[1].split()[0])
    assert start >= 300 and "every message once" in out

    async with pg_pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")  # a superuser switching the trigger off
        stream, seq = await conn.fetchrow(
            f'SELECT stream, stream_seq FROM "{audit.schema_name}".log WHERE position = 123'
        )
        await conn.execute(f"UPDATE \"{audit.schema_name}\".log SET actor_id = 'S9999' WHERE position = 123")
        await conn.execute("SET session_replication_role = origin")
    code, out, _ = await _cli("verify", *common, env=env)
    assert code == 1
    assert out.startswith(f"BAD log oplog: first bad position 123 ({stream} seq {seq}): edited"), out

    code, out, err = await _cli(
        "verify", "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--data-dir", str(audit.data_dir)
    )
    assert code == 2 and "could not verify" in err
