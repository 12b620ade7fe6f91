"""PostgreSQL helpers: a pool, and per-schema migrations. Services never share tables:
each owns one schema (reporting, audit, ...)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import msgspec
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from madoguchi_shared.request_bound import DB_REQUEST_TIMEOUT

# What a function that runs SQL takes: a connection, or the proxy of one that `pool.acquire()` hands out
# (the proxy forwards every Connection method; asyncpg types the two apart).
Connection = asyncpg.Connection | PoolConnectionProxy


async def fetch_one(conn: Connection, query: str, *args: object) -> asyncpg.Record:
    """The row of a query that always returns one (an aggregate without GROUP BY, a row the caller just wrote):
    no row is a bug, raised here rather than as a TypeError where the None is used."""
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise LookupError(f"no row from a query that always returns one: {query.strip()[:120]}")
    return row


async def fetch_int(conn: Connection, query: str, *args: object) -> int:
    """The integer a query always returns (a count, a coalesce(max(...), 0)); NULL is a bug, raised here."""
    value = await conn.fetchval(query, *args)
    if value is None:
        raise LookupError(f"NULL from a query that always returns a number: {query.strip()[:120]}")
    return int(value)


# Many rows (or values) as ONE query parameter: `json_rows(rows)` is a JSON array (of arrays), as
# bytes, read back by `rows_from`. asyncpg encodes an array parameter element by element in Python
# (an ABC check on each, to find sub-arrays): about 10 us a row of 20 columns, ten times what
# msgspec takes to write the same rows, which PostgreSQL parses in C. UUIDs, dates and aware instants
# are written in the forms PostgreSQL reads (RFC 3339, the offset kept), so every value arrives the same.
json_rows = msgspec.json.Encoder().encode


def rows_from(param: str, columns: Sequence[tuple[str, str]], alias: str = "u") -> str:
    """A FROM item reading `json_rows` bytes (parameter `param`, e.g. "$3", a bytea) as typed columns:
    (SELECT (r->>0)::text AS municipality, ... FROM jsonb_array_elements(...) AS r) AS u."""
    cols = ", ".join(f"(r->>{i})::{t} AS {c}" for i, (c, t) in enumerate(columns))
    return f"(SELECT {cols} FROM jsonb_array_elements({json_param(param)}) AS r) AS {alias}"


def json_param(param: str) -> str:
    """The jsonb of a `json_rows` parameter (sent as bytea: asyncpg takes bytes for it as they are)."""
    return f"convert_from({param}::bytea, 'UTF8')::jsonb"


# A request's statements and its wait for a pooled connection (and its release) are bounded by
# DB_REQUEST_TIMEOUT (Settings.db_request_timeout, set by the HTTP layer for the time of a request); outside
# a request the pool's command timeout (60 s) holds. A frozen server (SIGSTOP, a stalled disk, a partition
# without a reset) keeps its connections open and never answers: a report asked for then waited 60 s for
# its statement and as long again for the connection's release, 120 s before its 503.


class NoAnswer(TimeoutError):
    """The database did not answer a request's statement, or give it a connection, within the request's bound."""


def _bounded(timeout: float | None) -> tuple[float | None, bool]:
    if timeout is not None:
        return timeout, False
    bound = DB_REQUEST_TIMEOUT.get()
    return bound, bound is not None


def _no_answer(bound: float | None) -> NoAnswer:
    return NoAnswer(f"the database did not answer within {bound} s")


class BoundedConnection(asyncpg.Connection):
    """A connection whose statements, inside a request, wait at most DB_REQUEST_TIMEOUT (asyncpg then cancels
    the statement on the server, or closes the connection if that cannot be done either)."""

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        bound, ours = _bounded(timeout)
        try:
            return await super().execute(query, *args, timeout=bound)
        except TimeoutError as exc:
            raise (_no_answer(bound) if ours else exc) from exc

    async def executemany(
        self, command: str, args: Iterable[Sequence[object]], *, timeout: float | None = None
    ) -> None:
        bound, ours = _bounded(timeout)
        try:
            await super().executemany(command, args, timeout=bound)
        except TimeoutError as exc:
            raise (_no_answer(bound) if ours else exc) from exc

    # the stubs type fetch by overloads over record_class; one signature that passes it on
    async def fetch(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, query: str, *args: object, timeout: float | None = None, record_class: type[asyncpg.Record] | None = None
    ) -> list[asyncpg.Record]:
        bound, ours = _bounded(timeout)
        try:
            if record_class is None:
                return await super().fetch(query, *args, timeout=bound)
            return await super().fetch(query, *args, timeout=bound, record_class=record_class)
        except TimeoutError as exc:
            raise (_no_answer(bound) if ours else exc) from exc

    # the stubs type fetchrow by overloads over record_class; one signature that passes it on
    async def fetchrow(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, query: str, *args: object, timeout: float | None = None, record_class: type[asyncpg.Record] | None = None
    ) -> asyncpg.Record | None:
        bound, ours = _bounded(timeout)
        try:
            if record_class is None:
                return await super().fetchrow(query, *args, timeout=bound)
            return await super().fetchrow(query, *args, timeout=bound, record_class=record_class)
        except TimeoutError as exc:
            raise (_no_answer(bound) if ours else exc) from exc

    async def fetchval(self, query: str, *args: object, column: int = 0, timeout: float | None = None) -> object:
        bound, ours = _bounded(timeout)
        try:
            return await super().fetchval(query, *args, column=column, timeout=bound)
        except TimeoutError as exc:
            raise (_no_answer(bound) if ours else exc) from exc


class _BoundedAcquire(PoolAcquireContext):
    __slots__ = ()

    async def __aenter__(self) -> PoolConnectionProxy:
        try:
            return await super().__aenter__()
        except TimeoutError as exc:
            raise _no_answer(self.timeout) from exc


class BoundedPool(asyncpg.Pool):
    """A pool whose `acquire()` inside a request waits at most DB_REQUEST_TIMEOUT for a connection; its release
    (resetting the connection, or waiting for a statement's cancellation) is bounded by the same."""

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        bound, ours = _bounded(timeout)
        return _BoundedAcquire(self, bound) if ours else super().acquire(timeout=timeout)


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = BoundedPool(
        dsn,
        connection_class=BoundedConnection,
        record_class=asyncpg.Record,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        command_timeout=60,
    )
    await pool
    return pool


async def migrate(conn: Connection, schema: str, migrations: Sequence[str]) -> int:
    """Apply, in order and once each, the SQL migrations of one schema. Returns the version.

    Migration i (1-based) runs in a transaction together with recording it; an advisory lock
    keeps two starting replicas from migrating at once.
    """
    # A schema made for the service's own role at provisioning (see `provision`) already exists:
    # CREATE SCHEMA would need the database-wide CREATE privilege that role does not have.
    if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(
        f'CREATE TABLE IF NOT EXISTS "{schema}".schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())'
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        current = await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version') or 0
        for version, sql in enumerate(migrations, start=1):
            if version <= current:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            await conn.execute(sql)
            await conn.execute(f'INSERT INTO "{schema}".schema_version(version) VALUES ($1)', version)
            current = version
    return current


CHECKPOINTS_SQL = """
CREATE TABLE IF NOT EXISTS projection_checkpoint (
    name text PRIMARY KEY,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


# --------------------------------------------------------------------------------------------
# Least privilege: one login role per service, a separate owner role for migrations
# --------------------------------------------------------------------------------------------

# The schemas a service owns outright (it migrates them itself and can touch nothing else).
OWN_SCHEMAS = {"reporting": ("reporting",), "calls": ("calls",)}
MIGRATOR = "mg_migrator"  # runs the audit migrations at start; owns the audit schema
AUDIT_ROLES = ("audit_owner", "audit_writer", "audit_reader")


def role_of(service: str) -> str:
    return f"mg_{service}"


def _password(secrets_dir: Path, role: str) -> str:
    path = secrets_dir / f"pg-{role}.password"
    if not path.exists():
        secrets_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def dsn_as(dsn: str, role: str, password: str) -> str:
    """The same server and database, another login."""
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(role)}:{quote(password)}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def provision(
    superuser_dsn: str,
    secrets_dir: Path,
    services: Sequence[str] = ("reporting", "calls", "audit"),
) -> dict[str, str]:
    """Create (idempotently) a login role per service and the migration owner; returns name -> DSN.

    - ``mg_reporting``, ``mg_calls``: own their schema and nothing else (no CREATE on the database);
    - ``mg_audit``: member of audit_writer and audit_reader (INSERT/SELECT on the log, its own
      bookkeeping), never of audit_owner;
    - ``mg_migrator``: creates the audit schema and runs its migrations at start (member of the
      audit roles, CREATE on the database), never used by a running service.
    None is a superuser, none can create roles. Passwords live in ``secrets_dir`` (0600), one per role.
    The returned DSNs include ``"migrator"``.
    """
    conn = await asyncpg.connect(superuser_dsn)
    out: dict[str, str] = {}
    try:
        database = await conn.fetchval("SELECT current_database()")
        for role in (*[role_of(s) for s in services], MIGRATOR, *AUDIT_ROLES):
            login = role.startswith("mg_")
            exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)
            options = "LOGIN" if login else "NOLOGIN"
            if not exists:
                await conn.execute(f'CREATE ROLE "{role}" {options} NOSUPERUSER NOCREATEDB NOCREATEROLE')
            if login:
                password = _password(secrets_dir, role)
                await conn.execute(
                    f"ALTER ROLE \"{role}\" {options} NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
                )
                key = "migrator" if role == MIGRATOR else role.removeprefix("mg_")
                out[key] = dsn_as(superuser_dsn, role, password)
        await conn.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {MIGRATOR}')
        await conn.execute(f"GRANT {', '.join(AUDIT_ROLES)} TO {MIGRATOR}")
        for service, schemas in OWN_SCHEMAS.items():
            if service not in services:
                continue
            role = role_of(service)
            for schema in schemas:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{role}"')
                await _give(conn, schema, role)
        if "audit" in services:
            await conn.execute(f"GRANT audit_writer, audit_reader TO {role_of('audit')}")
            await conn.execute(f"REVOKE audit_owner FROM {role_of('audit')}")
            if await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = 'audit'"):
                # Made before provisioning by the superuser: the migrator takes the schema and its
                # version table, the audit owner role every other table.
                await conn.execute(f"ALTER SCHEMA audit OWNER TO {MIGRATOR}")
                for r in await conn.fetch(
                    """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'audit' AND c.relkind IN ('r', 'p')"""
                ):
                    owner = MIGRATOR if r["relname"] == "schema_version" else "audit_owner"
                    await conn.execute(f'ALTER TABLE audit."{r["relname"]}" OWNER TO {owner}')
    finally:
        await conn.close()
    return out


async def _give(conn: Connection, schema: str, role: str) -> None:
    """Hand a schema made before provisioning (by the superuser) and everything in it to its service's role."""
    await conn.execute(f'ALTER SCHEMA "{schema}" OWNER TO "{role}"')
    rows = await conn.fetch(
        """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'f')
             AND pg_get_userbyid(c.relowner) <> $2""",
        schema,
        role,
    )
    for r in rows:  # (sequences of a serial column follow their table; the services make no others)
        await conn.execute(f'ALTER TABLE "{schema}"."{r["relname"]}" OWNER TO "{role}"')
    for f in await conn.fetch(
        """SELECT p.oid::regprocedure::text AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2""",
        schema,
        role,
    ):
        await conn.execute(f'ALTER ROUTINE {f["sig"]} OWNER TO "{role}"')
