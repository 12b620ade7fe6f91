"""Tampering is detected and located (ASVS 16.4.2): 1,000 randomised trials on a copy of a real
log table, plus each kind of tampering done in PostgreSQL itself (as a superuser who bypasses the
append-only trigger) and found by the database verifier."""

from __future__ import annotations

import json
import random
from collections import Counter

from audit_harness import migrator_pool, publish, running_ingest, sample_events

from madoguchi_audit import chain, checkpoints, schema, verify

ENVELOPE_COLUMNS = {"stream_seq": 2, "subject": 3, "type": 6, "ward": 9, "desk": 10, "actor_id": 11}


async def _real_log(nc, js, pg_pool, audit, n: int = 200):
    """A log table written by the real writer (checkpoints every 25 records), and a copy of it."""
    audit = audit.model_copy(update={"checkpoint_every": 25, "ingest_batch": 25})
    await schema.migrate_pool(migrator_pool(), audit.schema_name)
    await publish(js, sample_events(audit.municipality, n))
    async with running_ingest(audit, nc, pg_pool) as ingest:
        await ingest.wait_idle()
    async with pg_pool.acquire() as conn:
        full = [
            tuple(r)
            for r in await conn.fetch(
                f'SELECT {", ".join(chain.COLUMNS)} FROM "{audit.schema_name}".log ORDER BY position'
            )
        ]
    cps = checkpoints.read_file(audit.resolved_checkpoint_file, audit.log_id)
    # The writer's own checkpoint records after the last checkpoint are covered by the next one
    # (a checkpoint is not news that needs a checkpoint); the trials use the signed part.
    last = max(cp.position for cp in cps)
    return audit, full[:last], cps


def _edit_json(data: bytes, rnd: random.Random) -> bytes:
    doc = json.loads(data)
    key = rnd.choice([k for k, v in doc.items() if isinstance(v, str) and k not in ("type",)])
    doc[key] = doc[key] + "x"
    return json.dumps(doc, separators=(",", ":")).encode()


def _relink(rows: list[chain.Row], start: int, prev: bytes) -> None:
    """What an attacker does after an edit: recompute every hash from `start` on."""
    for i in range(start, len(rows)):
        r = rows[i]
        digest = chain.link(prev, r.header, r.data)
        rows[i] = r._replace(prev_hash=prev, hash=digest)
        prev = digest


def tamper(kind: str, full: list[tuple], base: list[chain.Row], cp_positions: list[int], rnd: random.Random):
    """Apply one kind of tampering to a copy; returns (rows, expected kind, expected position, range end)."""
    rows = list(base)
    n = len(rows)
    if kind == "edit_data":
        k = rnd.randint(1, n)
        values = list(full[k - 1])
        values[15] = _edit_json(values[15], rnd)
        rows[k - 1] = chain.row_from_columns(values)
        return rows, "edited", k, None
    if kind == "edit_column":
        k = rnd.randint(1, n)
        values = list(full[k - 1])
        column = rnd.choice(list(ENVELOPE_COLUMNS))
        i = ENVELOPE_COLUMNS[column]
        values[i] = values[i] + 1 if isinstance(values[i], int) else (values[i] or "") + "z"
        rows[k - 1] = chain.row_from_columns(values)
        return rows, "edited", k, None
    if kind == "edit_prev_hash":
        k = rnd.randint(1, n)
        rows[k - 1] = rows[k - 1]._replace(prev_hash=bytes(32) if k > 1 else b"\x01" * 32)
        return rows, "edited", k, None
    if kind == "delete_row":
        k = rnd.randint(1, n - 1)
        del rows[k - 1]
        return rows, "deleted", k, None
    if kind == "delete_renumber":
        k = rnd.randint(1, n - 1)
        del rows[k - 1]
        rows = [r._replace(position=i + 1) for i, r in enumerate(rows)]
        return rows, "deleted", k, None
    if kind == "swap":
        i, j = sorted(rnd.sample(range(1, n + 1), 2))
        ri, rj = rows[i - 1], rows[j - 1]
        rows[i - 1], rows[j - 1] = rj._replace(position=i), ri._replace(position=j)
        return rows, "reordered", i, None
    if kind == "insert":
        k = rnd.randint(1, n - 1)  # a forged record slipped in after k, later ones renumbered, not relinked
        forged_values = list(full[k - 1])
        forged_values[15] = _edit_json(forged_values[15], rnd)
        forged = chain.row_from_columns(forged_values)
        forged = forged._replace(
            position=k + 1, prev_hash=rows[k - 1].hash, hash=chain.link(rows[k - 1].hash, forged.header, forged.data)
        )
        rows = rows[:k] + [forged] + [r._replace(position=r.position + 1) for r in rows[k:]]
        return rows, "inserted", k + 1, None
    if kind == "cut_tail":
        m = rnd.randint(0, n - 1)
        return rows[:m], "truncated", m + 1, None
    if kind == "replace_chain":
        k = rnd.choice([1, rnd.randint(1, n)])
        values = list(full[k - 1])
        values[15] = _edit_json(values[15], rnd)
        rows[k - 1] = chain.row_from_columns(values)
        _relink(rows, k - 1, rows[k - 2].hash if k > 1 else chain.GENESIS)
        before = max([p for p in cp_positions if p < k], default=0)
        after = min(p for p in cp_positions if p >= k)
        return rows, "chain_replaced", before + 1, after
    raise AssertionError(kind)


KINDS = (
    "edit_data",
    "edit_column",
    "edit_prev_hash",
    "delete_row",
    "delete_renumber",
    "swap",
    "insert",
    "cut_tail",
    "replace_chain",
)


async def test_thousand_randomised_tampering_trials_are_all_caught_at_the_first_bad_position(
    nc, js, pg_pool, audit_settings
):
    audit, full, cps = await _real_log(nc, js, pg_pool, audit_settings)
    keyring = checkpoints.load_keyring(audit)
    base = [chain.row_from_columns(r) for r in full]
    n = len(base)
    cp_positions = sorted({cp.position for cp in cps})
    assert n >= 200 and cp_positions[-1] == n and len(cp_positions) >= 8

    clean = await verify.verify_rows(base, cps, keyring, audit.log_id)
    assert clean.ok and clean.records == n and clean.head == full[-1][-1].hex()

    rnd = random.Random(20210401)
    caught: Counter[str] = Counter()
    for trial in range(1000):
        kind = KINDS[trial % len(KINDS)]
        rows, want_kind, want_position, want_upto = tamper(kind, full, base, cp_positions, rnd)
        report = await verify.verify_rows(rows, cps, keyring, audit.log_id)
        fault = report.fault
        context = f"trial {trial} {kind}: {fault}"
        assert not report.ok, context
        assert fault is not None and fault.kind == want_kind and fault.position == want_position, context
        if want_upto is not None:
            assert fault.upto == want_upto, context
        caught[kind] += 1
    assert sum(caught.values()) == 1000 and set(caught) == set(KINDS)


async def test_a_forged_checkpoint_or_an_unknown_key_is_reported(nc, js, pg_pool, audit_settings, tmp_path):
    audit, full, cps = await _real_log(nc, js, pg_pool, audit_settings, n=60)
    keyring = checkpoints.load_keyring(audit)
    rows = [chain.row_from_columns(r) for r in full]
    forged = cps[-1].model_copy(update={"head": "00" * 32})
    report = await verify.verify_rows(rows, [*cps[:-1], forged], keyring, audit.log_id)
    assert not report.ok and report.checkpoint_faults[0].kind == "bad_signature"
    other = checkpoints.generate_key(tmp_path / "other.key")
    stranger = checkpoints.sign(
        other,
        municipality=audit.municipality,
        log_id=audit.log_id,
        position=len(rows),
        head=rows[-1].hash,
        previous_position=0,
    )
    report = await verify.verify_rows(rows, [*cps, stranger], keyring, audit.log_id)
    assert not report.ok and "unknown key" in report.checkpoint_faults[0].detail


async def _scratch_copy(pg_pool, audit, name: str) -> str:
    target = f"{audit.schema_name}_{name}"[:63]
    await schema.migrate_pool(migrator_pool(), target)
    async with pg_pool.acquire() as conn:
        await conn.execute(f'INSERT INTO "{target}".log SELECT * FROM "{audit.schema_name}".log')
    return target


async def test_tampering_in_postgresql_itself_is_found_by_the_database_verifier(nc, js, pg_pool, audit_settings):
    audit, full, cps = await _real_log(nc, js, pg_pool, audit_settings, n=120)
    keyring = checkpoints.load_keyring(audit)
    n = len(full)
    async with pg_pool.acquire() as conn:
        clean = await verify.verify_db(conn, audit.schema_name, audit.log_id, cps, keyring)
        assert clean.ok and clean.records >= n, clean.lines()
        # The header PostgreSQL builds from the columns is the one the writer hashed.
        headers = await conn.fetch(
            f'SELECT position, {chain.HEADER_SQL} AS h FROM "{audit.schema_name}".log ORDER BY position'
        )
        assert [bytes(r["h"]) for r in headers][:n] == [chain.row_from_columns(r).header for r in full]

    cases = {
        "edit": (
            "UPDATE {t} SET data = convert_to(replace(convert_from(data, 'UTF8'), '\"version\":1', "
            "'\"version\":2'), 'UTF8') WHERE position = 40",
            "edited",
            40,
        ),
        "column": ("UPDATE {t} SET ward = 'teine' WHERE position = 41", "edited", 41),
        "delete": ("DELETE FROM {t} WHERE position = 42", "deleted", 42),
        "swap": (
            "UPDATE {t} SET position = CASE position WHEN 43 THEN -1 ELSE position END WHERE position = 43; "
            "UPDATE {t} SET position = 43 WHERE position = 50; UPDATE {t} SET position = 50 WHERE position = -1",
            "reordered",
            43,
        ),
        "cut": ("DELETE FROM {t} WHERE position > 70", "truncated", 71),
    }
    for name, (sql, want_kind, want_position) in cases.items():
        target = await _scratch_copy(pg_pool, audit, name)
        async with pg_pool.acquire() as conn:
            # A superuser can switch the trigger off: the chain is what catches it.
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(sql.format(t=f'"{target}".log'))
            await conn.execute("SET session_replication_role = origin")
            report = await verify.verify_db(conn, target, audit.log_id, cps, keyring)
        assert not report.ok and report.fault.kind == want_kind and report.fault.position == want_position, (
            name,
            report.lines(),
        )


def test_every_fault_the_verifier_reports_is_one_a_verification_run_records():
    """The verifier's fault kinds and the audit.verification_run event's agree (an `inserted` fault
    once failed the event's validation, so such a run could not be recorded)."""
    from typing import get_args

    from madoguchi_shared.events.audit import VerificationRun

    kinds = [k for part in get_args(verify.FaultKind) for k in (get_args(part) or (part,))]
    assert "inserted" in kinds and "duplicate" in kinds
    for kind in kinds:
        fault = verify.Fault(kind, 7, "x")
        run = VerificationRun(
            municipality="011002",
            actor={"id": "auditor-1", "role": "auditor"},
            run_id="r1",
            log_id="oplog",
            result="bad",
            records=7,
            from_position=1,
            to_position=7,
            checkpoints_checked=0,
            first_bad_position=fault.position,
            fault=fault.event_fault(),
        )
        assert run.fault == ("extra" if kind == "duplicate" else kind)
