"""The callback phone store (CALL-4, ARCHITECTURE rule 5): the only place a citizen's phone number
is kept, outside the event log, so that it can really be forgotten.

Design
* Schema ``calls`` (owned by this service) holds two tables:
  ``callback_contact(callback_id, municipality, nonce, ciphertext, created_at)`` and
  ``callback_key(callback_id, key, created_at)``. Each callback task gets a fresh random
  256-bit key; the number is sealed with AES-256-GCM under it, the associated data binding the
  ciphertext to its municipality and callback id (a row copied onto another task does not open).
  Events carry only the callback id.
* When the task ends (done, failed for good, cancelled) ``destroy`` overwrites the key row with
  random bytes, deletes it, deletes the ciphertext, in one transaction: without the key the
  ciphertext is noise, and it is gone too.
* PostgreSQL never overwrites in place (MVCC): the UPDATE and DELETE leave the old row versions,
  key included, in the table's pages as dead tuples until vacuumed — and a plain VACUUM does not
  reliably erase them either (pruning compacts a page by moving live tuples; a dead tuple at the
  page's low end keeps its bytes). So after destroying, ``sweep`` runs ``VACUUM (FULL)`` on both
  tables — outside a transaction, as VACUUM must — which rewrites them into new files holding
  live rows only. Both tables are tiny (a row per OPEN callback), so the rewrite takes
  milliseconds; its exclusive lock only waits for the store's own short transactions. If an old
  snapshot somewhere keeps a dead row alive ("dead row versions cannot be removed yet"), the
  store stays dirty and the periodic check sweeps again until it is clean.
* Limits, stated plainly: WAL segments (until recycled), streaming replicas and base backups
  taken while a task was open contain its key like any other row; keep the store's WAL retention
  and backup retention short (or put the key table on an UNLOGGED table, trading crash safety of
  open callbacks for never writing keys to WAL). The overwrite before the delete is kept
  because it is cheap and protects against a later change of storage (e.g. in-place engines).

Phone numbers are accepted in Japanese domestic or +81 forms (half- or full-width, hyphens,
spaces) and kept normalised (digits, with a leading + for international ones). A number is
never logged or put in an exception message.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from madoguchi_shared import db
from madoguchi_shared.logging import get_logger
from madoguchi_shared.pii import phone_digits

log = get_logger(__name__)

SCHEMA = "calls"
KEY_BYTES = 32

MIGRATIONS = [
    """
    CREATE TABLE callback_contact (
        callback_id uuid PRIMARY KEY,
        municipality text NOT NULL,
        nonce bytea NOT NULL,
        ciphertext bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE callback_key (
        callback_id uuid PRIMARY KEY,
        key bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    -- 32 bytes never need TOAST; keep them in the heap page that VACUUM FULL rewrites.
    ALTER TABLE callback_key ALTER COLUMN key SET STORAGE PLAIN;
    ALTER TABLE callback_contact ALTER COLUMN ciphertext SET STORAGE PLAIN;
    """,
]

_DEAD_LEFT = re.compile(r"(\d+) dead row versions cannot be removed yet")


class InvalidPhoneNumber(ValueError):
    """Not a Japanese phone number (the message never contains the input)."""

    def __init__(self) -> None:
        super().__init__("電話番号の形式が正しくありません（例: 090-1234-5678、011-123-4567）。")


def normalize_phone(raw: str) -> str:
    """The number as digits (``0312345678``, ``+819012345678``); InvalidPhoneNumber otherwise."""
    digits = phone_digits(raw)
    if digits is None:
        raise InvalidPhoneNumber()
    return digits


def _aad(municipality: str, callback_id: UUID) -> bytes:
    return b"madoguchi-callback-v1|" + municipality.encode() + b"|" + callback_id.bytes


class PhoneStore:
    """Seal, open and destroy callback phone numbers in the service's own schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str = SCHEMA):
        self.pool = pool
        self.schema = schema
        self.dirty = False  # a destruction whose dead rows may still be in the pages

    async def put(self, municipality: str, callback_id: UUID, phone: str) -> None:
        """Seal `phone` under a new key of its own (replacing whatever the task held before)."""
        number = normalize_phone(phone)
        key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, number.encode(), _aad(municipality, callback_id))
        async with self.pool.acquire() as conn, conn.transaction():
            replaced = await self._destroy_rows(conn, callback_id)
            await conn.execute(
                f"INSERT INTO {self.schema}.callback_key(callback_id, key) VALUES ($1, $2)", callback_id, key
            )
            await conn.execute(
                f"INSERT INTO {self.schema}.callback_contact(callback_id, municipality, nonce, ciphertext)"
                " VALUES ($1, $2, $3, $4)",
                callback_id,
                municipality,
                nonce,
                sealed,
            )
        if replaced:
            self.dirty = True
        del key, number

    async def get(self, municipality: str, callback_id: UUID) -> str | None:
        """The number, or None when the task holds none (never stored, or destroyed)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"""SELECT c.nonce, c.ciphertext, k.key FROM {self.schema}.callback_contact c
                    JOIN {self.schema}.callback_key k USING (callback_id)
                    WHERE c.callback_id = $1 AND c.municipality = $2""",
                callback_id,
                municipality,
            )
        if row is None:
            return None
        return (
            AESGCM(bytes(row["key"]))
            .decrypt(bytes(row["nonce"]), bytes(row["ciphertext"]), _aad(municipality, callback_id))
            .decode()
        )

    async def holds(self, callback_id: UUID) -> bool:
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    f"SELECT EXISTS(SELECT 1 FROM {self.schema}.callback_key WHERE callback_id = $1)"
                    f" OR EXISTS(SELECT 1 FROM {self.schema}.callback_contact WHERE callback_id = $1)",
                    callback_id,
                )
            )

    async def destroy(self, callback_id: UUID, *, sweep: bool = True) -> bool:
        """Make the task's number unrecoverable; True if the store held something for it."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                had = await self._destroy_rows(conn, callback_id)
            self.dirty = self.dirty or had
            if sweep and self.dirty:
                await self._sweep(conn)
        log.info("phone_store.destroyed", callback_id=str(callback_id), had_contact=had)
        return had

    async def _destroy_rows(self, conn: db.Connection, callback_id: UUID) -> bool:
        # Overwrite the key before deleting it (see the module docstring for what this does and
        # does not achieve under MVCC); then the ciphertext goes as well.
        overwritten = await conn.execute(
            f"UPDATE {self.schema}.callback_key SET key = $2 WHERE callback_id = $1", callback_id, os.urandom(KEY_BYTES)
        )
        await conn.execute(f"DELETE FROM {self.schema}.callback_key WHERE callback_id = $1", callback_id)
        deleted = await conn.execute(f"DELETE FROM {self.schema}.callback_contact WHERE callback_id = $1", callback_id)
        return overwritten != "UPDATE 0" or deleted != "DELETE 0"

    async def sweep(self) -> int:
        """VACUUM FULL both tables; returns how many dead row versions could not be removed yet."""
        async with self.pool.acquire() as conn:
            return await self._sweep(conn)

    async def _sweep(self, conn: db.Connection) -> int:
        notices: list[str] = []

        def listener(_conn, message) -> None:
            detail = getattr(message, "detail", None) or ""
            notices.append(f"{message.message}\n{detail}")

        conn.add_log_listener(listener)
        try:
            # Outside any transaction (VACUUM refuses to run inside one). FULL rewrites the
            # tables into new files, so no page of them keeps a destroyed key.
            await conn.execute(f"VACUUM (FULL, VERBOSE) {self.schema}.callback_key, {self.schema}.callback_contact")
            await asyncio.sleep(0)  # notices are delivered with call_soon
        finally:
            conn.remove_log_listener(listener)
        left = sum(int(m.group(1)) for text in notices for m in _DEAD_LEFT.finditer(text))
        self.dirty = left > 0
        if left:
            log.warning("phone_store.dead_rows_left", count=left)
        return left

    async def entries(self) -> list[tuple[UUID, str | None, timedelta]]:
        """(callback_id, municipality, age) of every task the store holds something for; the age is
        measured by the database's clock (real time, whatever the service's business clock says)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT callback_id, municipality, now() - created_at AS age FROM {self.schema}.callback_contact"
                f" UNION SELECT k.callback_id, NULL, now() - k.created_at FROM {self.schema}.callback_key k"
                f" WHERE NOT EXISTS (SELECT 1 FROM {self.schema}.callback_contact c WHERE c.callback_id = k.callback_id)"
            )
        return [(r["callback_id"], r["municipality"], r["age"]) for r in rows]
