"""Tamper shapes a third independent pass tried as a PostgreSQL superuser (adversary1, 2026-12-06), beside the
randomised trials of test_audit_adversary.py: each judged by `madoguchi audit verify` as an operator runs it,
which must exit 1 and name the first bad log position (or the range a signed checkpoint bounds).

- two records of DIFFERENT streams swapped inside the signed range, the chain recomputed to the head;
- a record edited, the chain recomputed AND the database copy of the checkpoints rewritten to the new heads;
- the head of the log cut and every later record renumbered from 1, the chain recomputed from the genesis;
- the auditors' time index (hour_span) emptied for an hour, or a run shrunk: a time-filtered query of the
  auditors' API would no longer show those records, although every record and link is intact;
- the trusted key statements replaced by a file introducing only the intruder's key.
"""

from __future__ import annotations

import json
import re

from test_audit_attacks import _copy, _crashed_log, _relink_from, _superuser, _verify

from madoguchi_shared.events.audit import SigningKeyIntroduced

from madoguchi_audit import checkpoints


async def test_new_tamper_shapes_are_caught(nc, js, pg_pool, settings, audit_settings):
    audit, _end, signed = await _crashed_log(nc, js, pg_pool, audit_settings, n=160)
    code, out = await _verify(settings, audit)
    assert code == 0, out
    async with pg_pool.acquire() as conn:
        base = {r["position"]: dict(r) for r in await conn.fetch(f'SELECT * FROM "{audit.schema_name}".log')}
        cps = sorted(r["position"] for r in await conn.fetch(f'SELECT position FROM "{audit.schema_name}".checkpoint'))
    results: list[tuple[str, bool, str]] = []

    async def trial(name: str, fn, want: int | tuple[int, int] | None, names: str = "") -> None:
        copy = await _copy(pg_pool, audit, f"shape{len(results)}")
        await fn(copy, f'"{copy.schema_name}".log')
        code, out = await _verify(settings, copy)
        head = out.splitlines()[0] if out else ""
        m = re.match(r"BAD log oplog: first bad position ([0-9]+)[ :]", head)
        lo, hi = (want, want) if isinstance(want, int) else (want or (0, 10**9))
        ok = code == 1 and m is not None and lo <= int(m.group(1)) <= hi and names in out
        results.append((name, ok, out[:600]))

    # two records of different streams swapped in the signed range, the chain recomputed
    p = next(q for q in range(cps[0] + 5, signed) if base[q]["stream"] != base[q + 1]["stream"])

    async def swap(copy, t) -> None:
        await _superuser(
            pg_pool,
            f"UPDATE {t} SET position = -1 WHERE position = {p}",
            f"UPDATE {t} SET position = {p} WHERE position = {p + 1}",
            f"UPDATE {t} SET position = {p + 1} WHERE position = -1",
        )
        await _relink_from(pg_pool, copy, p)

    below = max(c for c in cps if c < p)
    await trial(f"swap-other-streams-signed-{p}", swap, (below + 1, p))

    # a record edited, the chain recomputed, and the database copy of the checkpoints rewritten to match
    e = cps[1] - 3

    async def edit_and_checkpoints(copy, t) -> None:
        edited = bytes(base[e]["data"]).replace(b'"municipality":', b'"municipality" :', 1)
        await _superuser(pg_pool, f"UPDATE {t} SET data = $1 WHERE position = {e}", args=(edited,))
        await _relink_from(pg_pool, copy, e)
        await _superuser(
            pg_pool,
            f'UPDATE "{copy.schema_name}".checkpoint c SET head = l.hash FROM {t} l WHERE l.position = c.position',
        )

    await trial(f"edit-and-checkpoint-table-{e}", edit_and_checkpoints, e)

    # the first records cut and the rest renumbered from 1, the chain recomputed from the genesis
    k = 3

    async def shift(copy, t) -> None:
        await _superuser(
            pg_pool,
            f"DELETE FROM {t} WHERE position <= {k}",
            f"UPDATE {t} SET position = -(position - {k})",
            f"UPDATE {t} SET position = -position",
        )
        await _relink_from(pg_pool, copy, 1)

    await trial("head-cut-renumbered-from-1", shift, 1)

    # the time index: an hour's run deleted, or shrunk to its first record
    async with pg_pool.acquire() as conn:
        spans = await conn.fetch(
            f'SELECT municipality, hour, first_position, last_position FROM "{audit.schema_name}".hour_span '
            "ORDER BY last_position - first_position DESC"
        )
    widest = spans[0]

    async def span_deleted(copy, t) -> None:
        await _superuser(
            pg_pool,
            f'DELETE FROM "{copy.schema_name}".hour_span WHERE first_position = {widest["first_position"]}',
        )

    await trial("hour-span-deleted", span_deleted, widest["first_position"])

    async def span_shrunk(copy, t) -> None:
        await _superuser(
            pg_pool,
            f'UPDATE "{copy.schema_name}".hour_span SET last_position = first_position '
            f"WHERE first_position = {widest['first_position']}",
        )

    await trial("hour-span-shrunk", span_shrunk, (widest["first_position"] + 1, widest["last_position"]))

    # the trusted key statements replaced by a file that introduces only the intruder's key
    async def statements_replaced(copy, t) -> None:
        intruder = checkpoints.generate_key(copy.data_dir / "intruder.key")
        statement = SigningKeyIntroduced(
            municipality=copy.municipality,
            actor=checkpoints.SERVICE_ACTOR,
            log_id=copy.log_id,
            key_id=intruder.key_id,
            public_key=checkpoints.public_bytes(intruder.public).hex(),
        )
        copy.resolved_statements_file.write_text(json.dumps(json.loads(statement.model_dump_json())) + "\n")

    await trial("key-statements-replaced", statements_replaced, None, "key statement")

    caught = sum(ok for _, ok, _ in results)
    print(f"new shapes caught: {caught}/{len(results)}")
    assert caught == len(results), [r for r in results if not r[1]]
