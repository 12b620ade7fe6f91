"""CALL-4 / ARCHITECTURE rule 5: the callback's phone number lives only in the encrypted store and
is unrecoverable once the task ends. Proven by reading the store's tables and raw files directly."""

from __future__ import annotations

from uuid import UUID

import pytest
from calls_harness import jst, running_line

from madoguchi_calls.phone_store import InvalidPhoneNumber, PhoneStore, normalize_phone
from madoguchi_shared.events import new_id

PHONE = "090-2468-1357"
DIGITS = "09024681357"


async def raw_relation(conn, relation: str) -> bytes:
    """The relation's file on disk (after a checkpoint), i.e. what a stolen disk would show."""
    await conn.execute("CHECKPOINT")
    path = await conn.fetchval("SELECT pg_relation_filepath($1::regclass)", relation)
    size = await conn.fetchval("SELECT pg_relation_size($1::regclass)", relation)
    if size == 0:
        return b""
    return bytes(await conn.fetchval("SELECT pg_read_binary_file($1)", path))


def digit_forms(digits: str) -> list[bytes]:
    forms = {digits, f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", digits[1:]}
    out = [f.encode() for f in forms]
    out += [f.encode("utf-16-le") for f in forms]
    out.append("".join(chr(0xFF10 + int(c)) for c in digits).encode())  # full-width
    return out


async def test_call4_phone_number_unrecoverable_after_the_task_ends(settings, municipality, pg_pool):
    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 0)) as line:
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": PHONE}, expect=201)
        cid = UUID(call_id)
        async with pg_pool.acquire() as conn:
            # While the task is open: a key of its own in its own table, the number sealed elsewhere.
            key = bytes(await conn.fetchval("SELECT key FROM calls.callback_key WHERE callback_id = $1", cid))
            row = await conn.fetchrow(
                "SELECT nonce, ciphertext FROM calls.callback_contact WHERE callback_id = $1", cid
            )
            nonce, sealed = bytes(row["nonce"]), bytes(row["ciphertext"])
            assert len(key) == 32 and DIGITS.encode() not in sealed
            contact_raw = await raw_relation(conn, "calls.callback_contact")
            assert sealed in contact_raw and not any(f in contact_raw for f in digit_forms(DIGITS))
            assert key in await raw_relation(conn, "calls.callback_key")
        line.clock.set(jst(2021, 4, 9, 9, 30))
        assert (await line.get(f"/v1/callbacks/{call_id}/phone", line.operator))["phone"] == DIGITS
        await line.post(f"/v1/callbacks/{call_id}/attempts", line.operator, {"reached": True, "duration_seconds": 90})
        report = await line.service.run_checks(municipality)  # sweeps again if an old snapshot held a dead row
        assert report.dead_rows_left == 0
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM calls.callback_key WHERE callback_id = $1", cid) == 0
            assert await conn.fetchval("SELECT count(*) FROM calls.callback_contact WHERE callback_id = $1", cid) == 0
            for relation in ("calls.callback_key", "calls.callback_contact"):
                raw = await raw_relation(conn, relation)
                assert key not in raw, f"the destroyed key is still in {relation}'s pages"
                assert sealed not in raw and nonce not in raw
                assert not any(f in raw for f in digit_forms(DIGITS))
        # and the event log never had it: only the task reference, and the erasure is recorded
        assert not any(f in raw for raw in await line.raw_messages() for f in digit_forms(DIGITS))
        erased = [
            e
            for e in await line.events(aggregate="callback", aggregate_id=call_id)
            if e.type == "calls.callback_contact_erased"
        ]
        assert len(erased) == 1 and erased[0].had_contact
        await line.get(f"/v1/callbacks/{call_id}/phone", line.manager, expect=410)


async def test_call4_phone_store_seals_per_task_and_refuses_bad_numbers(pg_pool, settings, municipality):
    async with running_line(settings, municipality, jst(2021, 4, 8, 10, 0)) as line:  # migrates the schema
        store: PhoneStore = line.service.store
        a, b = new_id(), new_id()
        await store.put(municipality, a, "０９０－１１１１－２２２２")  # full-width input
        await store.put(municipality, b, "+81 90 3333 4444")
        assert await store.get(municipality, a) == "09011112222"
        assert await store.get(municipality, b) == "+819033334444"
        assert await store.get("999999", a) is None  # another municipality sees nothing
        async with pg_pool.acquire() as conn:
            keys = await conn.fetch("SELECT key FROM calls.callback_key WHERE callback_id = ANY($1::uuid[])", [a, b])
            assert len({bytes(k["key"]) for k in keys}) == 2  # a key of its own per callback
            # a ciphertext moved onto another task does not open (bound by the associated data)
            await conn.execute(
                """UPDATE calls.callback_contact SET ciphertext = (SELECT ciphertext FROM calls.callback_contact
                                  WHERE callback_id = $1), nonce = (SELECT nonce FROM calls.callback_contact WHERE callback_id = $1)
                                  WHERE callback_id = $2""",
                a,
                b,
            )
        with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
            await store.get(municipality, b)
        assert await store.destroy(a) and await store.destroy(b)
        assert not await store.destroy(a)
        for bad in ("12345", "090-1234-5678 まで", "someone@example.jp", "1234-5678-9012"):
            with pytest.raises(InvalidPhoneNumber) as refused:
                normalize_phone(bad)
            assert bad not in str(refused.value)
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        r = await line.client.post(
            f"/v1/calls/{call_id}/callback", json={"phone": "電話番号は後ほどお伝えします"}, headers=line.phone_system
        )
        assert r.status_code == 422 and r.json()["field"] == "phone"
        assert [e.type for e in await line.events(aggregate="callback", aggregate_id=call_id)] == []


async def test_call4_periodic_check_erases_numbers_left_behind_by_a_crash(settings, municipality, pg_pool):
    from madoguchi_shared import bus
    from madoguchi_shared.events import calls as ev

    async with running_line(settings, municipality, jst(2021, 4, 8, 18, 0)) as line:
        service = line.service
        # 1. a task that ended while the process died before destroying the number
        call_id = (await line.post("/v1/calls", line.phone_system, {}, expect=201))["call_id"]
        await line.post(f"/v1/calls/{call_id}/callback", line.phone_system, {"phone": PHONE}, expect=201)
        cid = UUID(call_id)
        subject = service.subject(municipality, "callback", cid)
        await bus.append(
            service.js,
            ev.CallbackCancelled(municipality=municipality, callback_id=cid, reason="withdrawn"),
            await bus.last_sequence(service.js, subject),
        )
        # 2. a number stored for a task that was never created (the append failed), an hour ago
        orphan = new_id()
        await service.store.put(municipality, orphan, "090-7777-8888")
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE calls.callback_contact SET created_at = now() - interval '1 hour' WHERE callback_id = $1",
                orphan,
            )
        line.clock.set(jst(2021, 4, 9, 8, 0))
        report = await service.run_checks(municipality)
        assert report.erased == [cid] and report.orphans_destroyed == 1
        assert not await service.store.holds(cid) and not await service.store.holds(orphan)
        types = [e.type for e in await line.events(aggregate="callback", aggregate_id=call_id)]
        assert types[-2:] == ["calls.callback_cancelled", "calls.callback_contact_erased"]
        assert (await service.run_checks(municipality)).erased == []
