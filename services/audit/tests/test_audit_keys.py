"""Pinned signing keys (SEC-2, ARCHITECTURE rule 9): a key signs only once introduced explicitly
(`audit init`) or handed on by the key it replaces (`audit rotate-key`); a new key on disk is an
alarm, not a key."""

from __future__ import annotations

import asyncio
import sys

from audit_harness import service_pool, cli_env, publish, running_ingest, sample_events

from madoguchi_shared import bus, subjects
from madoguchi_shared.events.audit import AlertRaised, CheckpointSigned, SigningKeyIntroduced, SigningKeyRotated

from madoguchi_audit import checkpoints, keys, verify
from madoguchi_audit.ingest import Ingest


async def _cli(*args: str, env: dict) -> tuple[int, str, str]:
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


async def _alerts(nc, municipality: str) -> list[AlertRaised]:
    found = []
    async for m in _read(nc, subjects.context_filter("audit", municipality, "alert")):
        found.append(m)
    return [e for e in found if isinstance(e, AlertRaised)]


async def _read(nc, filter_subject: str):
    from madoguchi_shared.events import parse_event
    from madoguchi_shared.reader import read_all

    async for m in read_all(nc, filter_subject):
        yield parse_event(m.data)


async def _checkpoints_on_stream(nc, audit) -> list[CheckpointSigned]:
    subject = subjects.aggregate_subject("audit", audit.municipality, "checkpoint", audit.log_id)
    return [s.event for s in await bus.load(nc, subject) if isinstance(s.event, CheckpointSigned)]


async def _run_until_halted(ingest: Ingest, timeout: float = 20.0) -> None:
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 20)


async def test_init_introduces_one_key_prints_its_fingerprint_and_refuses_a_second(nc, settings, audit_settings):
    audit = audit_settings
    env = cli_env(audit)
    common = ["--data-dir", str(audit.data_dir), "--nats", settings.nats_url]
    code, out, err = await _cli("init", *common, env=env)
    assert code == 0, out + err
    key = keys.private_key(audit)
    assert key is not None and f"key id      {key.key_id}" in out
    assert keys.fingerprint(key.public) in out and "記録してください" in out
    assert (audit.resolved_signing_key_file.stat().st_mode & 0o777) == 0o600
    statements, _ = await keys.stream_statements(nc, audit)
    assert [type(s) for s in statements] == [SigningKeyIntroduced] and statements[0].key_id == key.key_id

    code, out, err = await _cli("init", *common, env=env)  # an install happens once
    assert code == 1 and "rotate-key" in err
    # Even a statement forced past the CLI (no expected-sequence header) is no key: the chain names it.
    stranger = checkpoints.generate_key(audit.data_dir / "stranger.key")
    forged = SigningKeyIntroduced(
        municipality=audit.municipality,
        actor=checkpoints.SERVICE_ACTOR,
        log_id=audit.log_id,
        key_id=stranger.key_id,
        public_key=checkpoints.public_bytes(stranger.public).hex(),
    )
    await bus.append(nc.jetstream(), forged)
    chain, _ = await keys.load_chain(audit, nc)
    assert [k.key_id for k in chain.keys] == [key.key_id]
    assert chain.faults and "second introduction" in chain.faults[0]


async def test_a_key_replaced_on_disk_is_refused_alerted_and_never_signs(nc, js, pg_pool, migrated):
    audit = migrated
    await publish(js, sample_events(audit.municipality, 120))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        trusted = ingest.key
    before = await _checkpoints_on_stream(nc, audit)
    assert before and {cp.key_id for cp in before} == {trusted.key_id}

    # Replace the key on disk and restart: the writer refuses, alerts, says how to fix it, signs nothing.
    audit.resolved_signing_key_file.unlink()
    intruder = checkpoints.generate_key(audit.resolved_signing_key_file)
    await publish(js, sample_events(audit.municipality, 30, seed=2))
    ingest = Ingest(audit, nc, service_pool())
    await _run_until_halted(ingest)
    assert ingest.halted is not None and ingest.halted.startswith("untrusted_key")
    assert intruder.key_id in ingest.halted and "rotate-key" in ingest.halted and "backup" in ingest.halted
    alerts = [a for a in await _alerts(nc, audit.municipality) if a.rule == "audit_untrusted_key"]
    assert len(alerts) == 1 and alerts[0].severity == "urgent" and "rotate-key" in alerts[0].message
    after = await _checkpoints_on_stream(nc, audit)
    assert after == before and all(cp.key_id != intruder.key_id for cp in after)
    chain, _ = await keys.load_chain(audit, nc)
    assert [k.key_id for k in chain.keys] == [trusted.key_id]  # nothing wrote the intruder into the trust

    # A key swapped while the writer runs is caught before its next signature.
    audit.resolved_signing_key_file.unlink()
    audit.resolved_signing_key_file.write_text(trusted.private.private_bytes_raw().hex() + "\n")
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        audit.resolved_signing_key_file.unlink()
        checkpoints.generate_key(audit.resolved_signing_key_file)
        await publish(js, sample_events(audit.municipality, 10, seed=3))
        for _ in range(100):
            if ingest.halted:
                break
            await asyncio.sleep(0.1)
        assert ingest.halted and ingest.halted.startswith("untrusted_key")
    assert {cp.key_id for cp in await _checkpoints_on_stream(nc, audit)} == {trusted.key_id}


async def test_rotation_end_to_end_while_the_writer_runs(nc, js, pg_pool, settings, migrated):
    audit = migrated
    env = cli_env(audit)
    await publish(js, sample_events(audit.municipality, 150))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        old = ingest.key
        code, out, err = await _cli(
            "rotate-key", "--data-dir", str(audit.data_dir), "--nats", settings.nats_url, env=env
        )
        assert code == 0, out + err
        new = keys.private_key(audit)
        assert new.key_id != old.key_id and f"new key id  {new.key_id}" in out
        assert (audit.resolved_signing_key_file.parent / f"signing.key.{old.key_id}.retired").exists()
        await publish(js, sample_events(audit.municipality, 150, seed=5))
        for _ in range(100):
            if ingest.key.key_id == new.key_id:
                break
            await asyncio.sleep(0.1)
        await ingest.wait_idle()
        assert ingest.halted is None
    statements, _ = await keys.stream_statements(nc, audit)
    assert [type(s) for s in statements] == [SigningKeyIntroduced, SigningKeyRotated]
    signers = [cp.key_id for cp in await _checkpoints_on_stream(nc, audit)]
    assert signers[0] == old.key_id and signers[-1] == new.key_id and set(signers) == {old.key_id, new.key_id}

    code, out, err = await _cli(
        "verify",
        "--dsn",
        settings.resolved_pg_dsn(),
        "--data-dir",
        str(audit.data_dir),
        "--schema",
        audit.schema_name,
        "--nats",
        settings.nats_url,
        env=env,
    )
    assert code == 0, out + err
    assert f"1. {old.key_id} {keys.fingerprint(old.public)}  introduced" in out
    assert f"2. {new.key_id} {keys.fingerprint(new.public)}  rotated from {old.key_id}" in out and "(current)" in out

    # A rotation not signed by the current key hands nothing on.
    rogue = checkpoints.generate_key(audit.data_dir / "rogue.key")
    fake = SigningKeyRotated(
        municipality=audit.municipality,
        actor=checkpoints.SERVICE_ACTOR,
        log_id=audit.log_id,
        old_key_id=new.key_id,
        new_key_id=rogue.key_id,
        new_public_key=checkpoints.public_bytes(rogue.public).hex(),
        signature="ab" * 64,
    )
    await bus.append(js, fake)
    chain, _ = await keys.load_chain(audit, nc)
    assert chain.current.key_id == new.key_id and "not signed by the current key" in chain.faults[0]
    async with pg_pool.acquire() as conn:
        report = await verify.verify_all(conn, nc, audit, grace_seconds=0)
    assert not report.ok and report.first_fault.kind == "untrusted_key"
