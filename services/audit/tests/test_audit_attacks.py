"""The attacks an independent auditor tries with PostgreSQL superuser access (the append-only trigger
bypassed with session_replication_role = replica), each caught by `madoguchi audit verify` — the
command itself, with its default reconciliation against the streams of record — which exits 1
and names the first bad log position and, where the streams locate it, the stream position.

One real log is written by the writer (checkpoints every 40 records, and a crash so that the last
records are not yet signed); every attack runs on a copy of it (its own schema, its own copy of
the data folder) against the same streams of record, which an attacker cannot rewrite.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime

from audit_harness import migrator_pool, service_pool, cli_env, publish, running_ingest, sample_events
from typer.testing import CliRunner

from madoguchi_shared import bus, subjects
from madoguchi_shared.events import Actor, Role, dump_event, parse_event
from madoguchi_shared.events.admin import AccessDenied, LoginSucceeded
from madoguchi_shared.events.audit import AlertRaised, CheckpointSigned, SigningKeyIntroduced

from madoguchi_shared.reader import read_all

from madoguchi_audit import chain, checkpoints, schema
from madoguchi_audit.cli import app
from madoguchi_audit.ingest import Ingest


async def _crashed_log(nc, js, pg_pool, audit, n: int = 200):
    """A log written by the real writer that then crashed: signed every 40 records, an unsigned tail."""
    audit = audit.model_copy(update={"checkpoint_every": 40, "ingest_batch": 40, "checkpoint_seconds": 3600})
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, n))
    ingest = Ingest(audit, nc, service_pool())
    task = asyncio.create_task(ingest.run())
    await ingest.wait_idle()
    ingest.settings = audit.model_copy(update={"checkpoint_every": 10**6})  # what follows stays unsigned
    await publish(js, sample_events(audit.municipality, 8, seed=4))
    await ingest.wait_idle()
    task.cancel()  # a crash: no clean stop, so nothing signs the tail
    await asyncio.gather(task, return_exceptions=True)
    for p in ingest.pullers:
        await p.stop()
    async with pg_pool.acquire() as conn:
        end = await conn.fetchval(f'SELECT max(position) FROM "{audit.schema_name}".log')
        signed = await conn.fetchval(f'SELECT max(position) FROM "{audit.schema_name}".checkpoint')
    assert end - signed >= 8, (end, signed)  # records after the last checkpoint: the unsigned tail
    return audit, end, signed


async def _copy(pg_pool, audit, name: str):
    """The log and its bookkeeping in a schema of its own, the data folder copied: what an attack edits."""
    target = f"{audit.schema_name}_{name}"[:63]
    await schema.migrate_pool(migrator_pool(), target)
    async with pg_pool.acquire() as conn:
        for table in ("log", "checkpoint", "chain_head", "ingest_checkpoint", "hour_span"):
            await conn.execute(f'INSERT INTO "{target}".{table} SELECT * FROM "{audit.schema_name}".{table}')
    folder = audit.data_dir.parent / f"{audit.data_dir.name}-{name}"
    shutil.copytree(audit.data_dir, folder)
    return audit.model_copy(update={"schema_name": target, "data_dir": folder})


async def _superuser(pg_pool, *statements, args=()):
    async with pg_pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")  # the trigger no longer fires
        try:
            for sql in statements:
                await conn.execute(sql, *args) if args else await conn.execute(sql)
        finally:
            await conn.execute("SET session_replication_role = origin")


async def _insert_at(pg_pool, audit, t: str, position: int, message) -> None:
    """As a superuser: shift the records from `position` on by one, slip `message` in at `position`, and
    recompute the chain from there (an insertion no hash link betrays)."""
    await _superuser(
        pg_pool,
        f"UPDATE {t} SET position = -position WHERE position >= {position}",
        f"UPDATE {t} SET position = -position + 1 WHERE position < 0",
    )
    values = chain.chain_records([message], position - 1, bytes(32))[0][0]
    async with pg_pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table("log", schema_name=audit.schema_name, records=[values], columns=chain.COLUMNS)
        await conn.execute("SET session_replication_role = origin")
    await _relink_from(pg_pool, audit, position)


async def _relink_from(pg_pool, audit, position: int) -> None:
    """What an attacker does to hide an edit: recompute every hash from `position` to the head."""
    t = f'"{audit.schema_name}".log'
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {', '.join(chain.COLUMNS)} FROM {t} WHERE position >= $1 ORDER BY position", position
        )
        prev = bytes(await conn.fetchval(f"SELECT hash FROM {t} WHERE position = $1", position - 1) or chain.GENESIS)
        updates = []
        for r in rows:
            row = chain.row_from_columns(tuple(r))
            digest = chain.link(prev, row.header, row.data)
            updates.append((prev, digest, r["position"]))
            prev = digest
        await conn.execute("SET session_replication_role = replica")
        await conn.executemany(f"UPDATE {t} SET prev_hash = $1, hash = $2 WHERE position = $3", updates)
        await conn.execute(
            f'UPDATE "{audit.schema_name}".chain_head SET position = $1, hash = $2', updates[-1][2], prev
        )
        await conn.execute("SET session_replication_role = origin")


async def _verify(settings, audit) -> tuple[int, str]:
    """`madoguchi audit verify` as an operator runs it (default: the stream copy and the reconciliation)."""
    args = [
        "verify",
        "--dsn",
        settings.resolved_pg_dsn(),
        "--data-dir",
        str(audit.data_dir),
        "--schema",
        audit.schema_name,
        "--nats",
        settings.nats_url,
        "--grace",
        "0",
    ]
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=cli_env(audit))
    return result.exit_code, result.stdout


async def _record(pg_pool, audit, position: int):
    async with pg_pool.acquire() as conn:
        return await conn.fetchrow(f'SELECT * FROM "{audit.schema_name}".log WHERE position = $1', position)


def _edit(data: bytes) -> bytes:
    return data.replace(b'"version":1', b'"version":2', 1)


async def test_every_attack_on_the_table_is_caught_at_the_first_bad_record(nc, js, pg_pool, settings, audit_settings):
    audit, _end, signed = await _crashed_log(nc, js, pg_pool, audit_settings)
    code, out = await _verify(settings, audit)
    assert code == 0, out
    assert out.startswith("OK  log oplog: ") and "every message once, in stream order, same bytes" in out
    assert "(current)" in out  # the key chain is printed
    print(out)  # pytest -s shows the clean report

    async def attack(name: str, statements, want_position: int, want_kind: str, want_stream: tuple | None = None):
        copy = await _copy(pg_pool, audit, name)
        t = f'"{copy.schema_name}".log'
        if callable(statements):
            await statements(copy, t)
        else:
            await _superuser(pg_pool, *[s.format(t=t) for s in statements])
        code, out = await _verify(settings, copy)
        head = out.splitlines()[0]
        assert code == 1, (name, out)
        assert head.startswith(f"BAD log oplog: first bad position {want_position}"), (name, out)
        assert want_kind in head, (name, out)
        if want_stream is not None:
            assert f"({want_stream[0]} seq {want_stream[1]})" in head, (name, out)
        return out

    def at(position: int) -> tuple[str, int]:
        return where[position]["stream"], where[position]["stream_seq"]

    async with pg_pool.acquire() as conn:
        where = {
            r["position"]: r
            for r in await conn.fetch(
                f'SELECT position, stream, stream_seq FROM "{audit.schema_name}".log WHERE position IN (57, 58, 70, 101)'
            )
        }

    # 1. edit a field of an event (the chain breaks there; the streams say which message)
    out = await attack(
        "edit",
        [
            "UPDATE {t} SET data = convert_to(replace(convert_from(data, 'UTF8'), '\"version\":1', "
            "'\"version\":2'), 'UTF8') WHERE position = 57"
        ],
        57,
        "edited",
        at(57),
    )
    assert f"{at(57)[0]} seq {at(57)[1]} (log position 57): altered" in out, out
    # ... or an envelope column only (the bytes still match the stream: the chain names it)
    await attack("column", ["UPDATE {t} SET ward = 'teine' WHERE position = 58"], 58, "edited", at(58))
    # 2. delete a record in the middle: the streams of record name the message that is gone
    out = await attack("delete", ["DELETE FROM {t} WHERE position = 57"], 57, "deleted", at(57))
    assert f"{at(57)[0]} seq {at(57)[1]} (expected after log position 56): missing" in out, out
    # 3. delete and renumber the later records
    await attack(
        "renumber",
        [
            "DELETE FROM {t} WHERE position = 57",
            "UPDATE {t} SET position = -position WHERE position > 57",
            "UPDATE {t} SET position = -position - 1 WHERE position < 0",
        ],
        57,
        "deleted",
        at(57),
    )
    # 4. swap two records: position 60 now holds the record of position 70
    await attack(
        "swap",
        [
            "UPDATE {t} SET position = -1 WHERE position = 60",
            "UPDATE {t} SET position = 60 WHERE position = 70",
            "UPDATE {t} SET position = 70 WHERE position = -1",
        ],
        60,
        "reordered",
        at(70),
    )

    # 5. insert a forged record and recompute the chain from there to the head: the checkpoints only
    #    bound it to a range, the streams of record name the record
    async def forge(copy, t):
        forged = LoginSucceeded(
            municipality=copy.municipality,
            staff_id="S0001",
            service="desk",
            occurred_at=datetime(2021, 4, 1, 9, tzinfo=UTC),
            actor=Actor(id="S0001", role=Role.supporter),
        )
        message = chain.Message("MG_ADMIN", 10**6, forged.subject, dump_event(forged))
        await _insert_at(pg_pool, copy, t, 90, message)

    await attack("forge", forge, 90, "chain_replaced", ("MG_ADMIN", 10**6))

    # 6. rebuild the chain after editing one record inside the signed range: located exactly
    async def rebuild(copy, t):
        await _superuser(
            pg_pool,
            f"UPDATE {t} SET data = $1 WHERE position = 101",
            args=(_edit(bytes((await _record(pg_pool, copy, 101))["data"])),),
        )
        await _relink_from(pg_pool, copy, 101)

    out = await attack("rebuild", rebuild, 101, "chain_replaced", at(101))
    assert f"{at(101)[0]} seq {at(101)[1]} (log position 101): altered" in out, out

    # 7. cut the tail after the last signed checkpoint (and point chain_head at the new end)
    cut = signed + 2
    async with pg_pool.acquire() as conn:
        gone = await conn.fetch(
            f'SELECT stream, stream_seq FROM "{audit.schema_name}".log WHERE position > $1 '
            "AND type <> 'audit.checkpoint_signed' ORDER BY position",
            cut,
        )
    assert len(gone) >= 5

    async def cut_tail(copy, t):
        head = (await _record(pg_pool, copy, cut))["hash"]
        await _superuser(pg_pool, f"DELETE FROM {t} WHERE position > {cut}")
        async with pg_pool.acquire() as conn:
            await conn.execute(f'UPDATE "{copy.schema_name}".chain_head SET position = $1, hash = $2', cut, head)

    out = await attack("tail", cut_tail, cut + 1, "missing")
    for record in gone:  # every cut record is named by its stream position
        assert f"{record['stream']} seq {record['stream_seq']} (expected after log position {cut}): missing" in out, out

    # 8. edit a copy of a checkpoint: the file's, the database's; or add one to the stream
    async def edit_file(copy, t):
        path = copy.resolved_checkpoint_file
        lines = path.read_text().splitlines()
        doc = json.loads(lines[2])
        doc["head"] = "0" * 64
        lines[2] = json.dumps(doc)
        path.write_text("\n".join(lines) + "\n")

    third = checkpoints.read_file(audit.resolved_checkpoint_file)[2].position
    await attack("cpfile", edit_file, third, "")

    async def edit_db(copy, t):
        await _superuser(
            pg_pool,
            f'UPDATE "{copy.schema_name}".checkpoint SET event = convert_to(replace('
            f"convert_from(event, 'UTF8'), '\"position\":{third},', '\"position\":{third + 1},'), "
            f"'UTF8') WHERE position = {third}",
        )

    out = await attack("cpdb", edit_db, third, "")
    assert "differs between" in out or "does not verify" in out, out

    # 9. replace the signing key and rewrite every local copy: statements, file, database
    async def replace_key(copy, t):
        intruder = checkpoints.generate_key(copy.data_dir / "intruder.key")
        shutil.copy(copy.data_dir / "intruder.key", copy.resolved_signing_key_file)
        intro = SigningKeyIntroduced(
            municipality=copy.municipality,
            actor=checkpoints.SERVICE_ACTOR,
            log_id=copy.log_id,
            key_id=intruder.key_id,
            public_key=checkpoints.public_bytes(intruder.public).hex(),
        )
        copy.resolved_statements_file.write_text(intro.model_dump_json() + "\n")
        await _superuser(
            pg_pool,
            f"UPDATE {t} SET data = $1 WHERE position = 101",
            args=(_edit(bytes((await _record(pg_pool, copy, 101))["data"])),),
        )
        await _relink_from(pg_pool, copy, 101)
        async with pg_pool.acquire() as conn:
            heads = {r["position"]: bytes(r["hash"]) for r in await conn.fetch(f"SELECT position, hash FROM {t}")}
            resigned, previous = [], 0
            for cp in checkpoints.read_file(copy.resolved_checkpoint_file):
                resigned.append(
                    checkpoints.sign(
                        intruder,
                        municipality=copy.municipality,
                        log_id=copy.log_id,
                        position=cp.position,
                        head=heads[cp.position],
                        previous_position=previous,
                    )
                )
                previous = cp.position
            copy.resolved_checkpoint_file.write_text("".join(c.model_dump_json() + "\n" for c in resigned))
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(f'DELETE FROM "{copy.schema_name}".checkpoint')
            for c in resigned:
                await conn.execute(
                    f'INSERT INTO "{copy.schema_name}".checkpoint (position, log_id, head, signed_at, key_id, '
                    "previous_position, event, exported) VALUES ($1, $2, $3, $4, $5, $6, $7, true)",
                    c.position,
                    c.log_id,
                    bytes.fromhex(c.head),
                    c.signed_at,
                    c.key_id,
                    c.previous_position,
                    c.model_dump_json().encode(),
                )
            await conn.execute("SET session_replication_role = origin")

    first_cp = checkpoints.read_file(audit.resolved_checkpoint_file)[0].position
    out = await attack("newkey", replace_key, first_cp, "")
    assert "untrusted_key" in out or "copies_disagree" in out, out
    assert "(current)" in out  # the key chain printed
    assert f"{at(101)[0]} seq {at(101)[1]} (log position 101): altered" in out, out  # the streams name the record


async def test_live_deletion_while_the_service_runs_stops_the_writer_and_verify_names_the_records(
    nc, js, pg_pool, settings, migrated
):
    """The reported attack: wait for a checkpoint, make 5 failed logins, delete the log rows past the last signed
    position and point chain_head at that position's hash."""
    audit = migrated.model_copy(update={"checkpoint_every": 40, "checkpoint_seconds": 3600})
    await publish(js, sample_events(audit.municipality, 80))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
        async with pg_pool.acquire() as conn:
            signed = await conn.fetchval(f'SELECT max(position) FROM "{audit.schema_name}".checkpoint')
        denied = [
            AccessDenied(
                municipality=audit.municipality,
                ward="chuo",
                subject_id="S0666",
                service="desk",
                method="POST",
                path="/v1/login",
                reason="role",
                occurred_at=datetime.now(UTC),
                actor=Actor(id="S0666", role=Role.supporter),
            )
            for _ in range(5)
        ]
        await publish(js, denied)
        await ingest.wait_idle()
        async with pg_pool.acquire() as conn:
            first_gone = await conn.fetchrow(
                f'SELECT stream, stream_seq FROM "{audit.schema_name}".log WHERE event_id = $1', denied[0].event_id
            )
            head = await conn.fetchval(f'SELECT hash FROM "{audit.schema_name}".log WHERE position = $1', signed)
        assert first_gone is not None
        t = f'"{audit.schema_name}".log'
        await _superuser(pg_pool, f"DELETE FROM {t} WHERE position > {signed}")
        async with pg_pool.acquire() as conn:
            await conn.execute(f'UPDATE "{audit.schema_name}".chain_head SET position = $1, hash = $2', signed, head)
        await publish(js, sample_events(audit.municipality, 3, seed=11))  # the writer's next write meets the forgery
        for _ in range(100):
            if ingest.halted:
                break
            await asyncio.sleep(0.1)
        assert ingest.halted and ingest.halted.startswith("tampered"), ingest.halted
    stream_cps = [
        s.event
        for s in await bus.load(nc, subjects.aggregate_subject("audit", audit.municipality, "checkpoint", audit.log_id))
        if isinstance(s.event, CheckpointSigned)
    ]
    assert max(cp.position for cp in stream_cps) <= signed  # never signed over the forged head
    alerts = [
        parse_event(m.data) async for m in read_all(nc, subjects.context_filter("audit", audit.municipality, "alert"))
    ]
    assert [(a.rule, a.severity) for a in alerts if isinstance(a, AlertRaised)] == [("audit_tampered", "urgent")]

    code, out = await _verify(settings, audit)
    assert code == 1, out
    assert out.splitlines()[0].startswith(
        f"BAD log oplog: first bad position {signed + 1} ({first_gone['stream']} seq {first_gone['stream_seq']}): missing"
    ), out
    assert "AccessDenied" not in out and out.count("missing") >= 1
    print(out)  # the closing note shows it


async def test_a_tail_cut_while_the_writer_was_down_stops_it_at_start(nc, js, pg_pool, audit_settings):
    """The live attack done while the writer is not running: the unsigned tail deleted and chain_head pointed at the
    last signed record. Nothing of this process's own anchors the tail; the per-stream positions stored with the
    records do: the record at a stream's stored position is gone, so the writer stops at start, alerts, signs nothing."""
    audit, end, signed = await _crashed_log(nc, js, pg_pool, audit_settings)
    assert end > signed
    t = f'"{audit.schema_name}".log'
    async with pg_pool.acquire() as conn:
        head = await conn.fetchval(f"SELECT hash FROM {t} WHERE position = $1", signed)
        cut = {r["stream"] for r in await conn.fetch(f"SELECT DISTINCT stream FROM {t} WHERE position > $1", signed)}
    assert cut
    await _superuser(pg_pool, f"DELETE FROM {t} WHERE position > {signed}")
    async with pg_pool.acquire() as conn:
        await conn.execute(f'UPDATE "{audit.schema_name}".chain_head SET position = $1, hash = $2', signed, head)
    ingest = Ingest(audit, nc, service_pool())
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), 20)
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 20)
    assert ingest.halted and ingest.halted.startswith("tampered") and "records were removed" in ingest.halted
    assert any(stream in ingest.halted for stream in cut), ingest.halted
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT max(position) FROM {t}") == signed  # nothing written over the cut
        assert await conn.fetchval(f'SELECT max(position) FROM "{audit.schema_name}".checkpoint') == signed
    alerts = [
        parse_event(m.data) async for m in read_all(nc, subjects.context_filter("audit", audit.municipality, "alert"))
    ]
    assert [(a.rule, a.severity) for a in alerts if isinstance(a, AlertRaised)] == [("audit_tampered", "urgent")]


async def test_emptied_columns_the_empty_mark_and_a_renamed_partition(nc, js, pg_pool, settings, audit_settings):
    """Shapes where the verifier either stopped unable to run (exit 2, nothing named) or said OK:

    - a NULL prev_hash, data or hash (a superuser drops NOT NULL first), in the signed range and in the unsigned tail:
      the payload PostgreSQL built was NULL and the verifier stopped; now `edited` at the record;
    - an envelope column set from NULL to E'\\x1e', the header's mark of an empty value: the header, and so every
      hash and checkpoint, stayed the same while a query showed another value; now `edited` at the record;
    - a partition renamed away from log_YYYYMMDD (to_date() of its name failed, the verifier stopped): its records
      are read by the one pass, and an intact log verifies."""
    audit, end, signed = await _crashed_log(nc, js, pg_pool, audit_settings, n=120)
    async with pg_pool.acquire() as conn:
        rows = await conn.fetch(f'SELECT position, ward FROM "{audit.schema_name}".log ORDER BY position')
        partition = await conn.fetchval(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = $1::regclass AND c.relname LIKE 'log_%' ORDER BY c.relname LIMIT 1",
            f'"{audit.schema_name}".log',
        )
    no_ward = [r["position"] for r in rows if r["ward"] is None]
    in_signed = next(p for p in no_ward if p < signed)
    in_tail = next(p for p in no_ward if p > signed)
    outcomes: list[tuple[str, int, str]] = []

    async def trial(name: str, statements: list[str]) -> None:
        copy = await _copy(pg_pool, audit, f"empty{len(outcomes)}")
        t = f'"{copy.schema_name}".log'
        await _superuser(pg_pool, *[s.format(t=t, schema=f'"{copy.schema_name}"') for s in statements])
        code, out = await _verify(settings, copy)
        outcomes.append((name, code, out))

    expected: dict[str, int] = {}
    for p in (30, end - 2):
        for column in ("prev_hash", "data", "hash"):
            name = f"{column}-null-{p}"
            expected[name] = p
            await trial(
                name,
                [
                    f"ALTER TABLE {{t}} ALTER COLUMN {column} DROP NOT NULL",
                    f"UPDATE {{t}} SET {column} = NULL WHERE position = {p}",
                ],
            )
    for p in (in_signed, in_tail):
        expected[f"ward-empty-mark-{p}"] = p
        await trial(f"ward-empty-mark-{p}", [f"UPDATE {{t}} SET ward = E'\\x1e' WHERE position = {p}"])
    await trial("partition-renamed", [f"ALTER TABLE {{schema}}.{partition} RENAME TO kept_aside"])
    await trial("partition-renamed-no-date", [f"ALTER TABLE {{schema}}.{partition} RENAME TO log_20261399"])

    for name, code, out in outcomes:
        if name.startswith("partition-renamed"):
            assert code == 0 and out.startswith("OK  log oplog: "), (name, out)
            continue
        assert code == 1, (name, code, out)
        assert out.startswith(f"BAD log oplog: first bad position {expected[name]} "), (name, out)
        assert "edited" in out.splitlines()[0], (name, out)


async def test_a_forged_record_of_a_stream_that_is_no_stream_of_record_is_extra(
    nc, js, pg_pool, settings, audit_settings
):
    """A superuser appends a forged record to the unsigned tail (a login that never happened: an alibi) under a stream
    name that is no stream of record (MG_DLQ, MG_FAKE), with the chain, chain_head and the auditors' time index kept
    consistent. The reconciliation reads the streams of record only, and no checkpoint covers the tail: verify said OK.
    Now every record of another stream is `extra`, named at its position."""
    audit, end, _signed = await _crashed_log(nc, js, pg_pool, audit_settings, n=60)
    for stream in ("MG_DLQ", "MG_FAKE"):
        copy = await _copy(pg_pool, audit, f"nostream_{stream.lower()}")
        when = datetime.now(UTC).replace(microsecond=0)
        forged = LoginSucceeded(
            municipality=copy.municipality,
            staff_id="S0001",
            service="desk",
            occurred_at=when,
            actor=Actor(id="S0001", role=Role.supporter),
        )
        await _insert_at(
            pg_pool,
            copy,
            f'"{copy.schema_name}".log',
            end + 1,
            chain.Message(stream, 1, forged.subject, dump_event(forged)),
        )
        hour = when.replace(minute=0, second=0)
        async with pg_pool.acquire() as conn:
            await conn.execute("SET session_replication_role = replica")
            spans = f'"{copy.schema_name}".hour_span'
            updated = await conn.execute(
                f"UPDATE {spans} SET last_position = $3 WHERE municipality = $1 AND hour = $2",
                copy.municipality,
                hour,
                end + 1,
            )
            if updated.endswith(" 0"):
                await conn.execute(
                    f"INSERT INTO {spans} (municipality, hour, first_position, last_position) VALUES ($1, $2, $3, $3)",
                    copy.municipality,
                    hour,
                    end + 1,
                )
            await conn.execute("SET session_replication_role = origin")
        code, out = await _verify(settings, copy)
        assert code == 1, (stream, out)
        assert out.startswith(f"BAD log oplog: first bad position {end + 1} ({stream} seq 1): extra"), (stream, out)
