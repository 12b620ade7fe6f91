"""The audit schema: the append-only log, its roles, checkpoints, archives, alerts.

Roles (cluster-wide, created once, NOLOGIN; the service's login user is a member and switches
with SET LOCAL ROLE per transaction):

- ``audit_owner``  owns the log tables. Nobody writes as the owner except the retention job,
  which deletes an archived and verified range (and the trigger checks exactly that).
- ``audit_writer`` the application role of the ingest: SELECT and INSERT on the log, nothing
  else (no UPDATE, DELETE, TRUNCATE); it moves its own bookkeeping (chain head, per-stream
  position, checkpoint export flag).
- ``audit_reader`` SELECT for the query API and the verifier.

A trigger refuses UPDATE and DELETE row by row and TRUNCATE per statement, for every role,
the owner included, so even a slip by an administrator fails loudly. A PostgreSQL superuser can
still disable the trigger or edit the files: the chain and the signed checkpoints kept outside
the database detect that (see README.md).
"""

from __future__ import annotations

import asyncpg

from madoguchi_shared import db

OWNER = "audit_owner"
WRITER = "audit_writer"
READER = "audit_reader"
RETENTION_FLAG = "madoguchi.audit_retention"  # SET LOCAL to 'verified-archive' by the retention job

ROLES_SQL = f"""
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['{OWNER}', '{WRITER}', '{READER}'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- another schema's migration won
      END;
    END IF;
  END LOOP;
  -- The login user must be able to SET ROLE to them (a superuser always can; a provisioned
  -- migrator is a member already).
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    FOREACH r IN ARRAY ARRAY['{OWNER}', '{WRITER}', '{READER}'] LOOP
      IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', r, current_user);
      END IF;
    END LOOP;
  END IF;
END $$;
"""

LOG_SQL = f"""
-- A role that owns a table must be allowed to create in its schema (the migrator is no superuser).
DO $$ BEGIN
  EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO {OWNER}', current_schema());
END $$;
CREATE TABLE log (
    position       bigint PRIMARY KEY,
    stream         text NOT NULL,
    stream_seq     bigint NOT NULL,
    subject        text NOT NULL,
    parsed         boolean NOT NULL,
    event_id       uuid,
    type           text,
    occurred_at    timestamptz,
    municipality   text,
    ward           text,
    desk           text,
    actor_id       text,
    actor_role     text,
    device_id      text,
    correlation_id uuid,
    data           bytea NOT NULL,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL
);
-- Indexes for the selective filters only (every index costs the writer on every record): who
-- (actor), which PC (device), which kind of event (rare types: alerts, queries, violations) and
-- one case (correlation). Ward and desk are not selective (a tenth of the records each): a page
-- of them is found scanning by position; a time range is pruned by the BRIN index (occurred_at
-- grows with position).
CREATE INDEX log_occurred_at ON log USING brin (occurred_at);
CREATE INDEX log_actor ON log (actor_id, position);
CREATE INDEX log_device ON log (device_id, position) WHERE device_id IS NOT NULL;
CREATE INDEX log_type ON log (type, position);
CREATE INDEX log_correlation ON log (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE chain_head (
    log_id   text PRIMARY KEY,
    position bigint NOT NULL,
    hash     bytea NOT NULL
);

CREATE TABLE ingest_checkpoint (
    stream     text PRIMARY KEY,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A copy of the signed checkpoints (the trusted copies are the file and the stream), also the
-- outbox for exporting them: `exported` turns true once the file and JetStream have them.
CREATE TABLE checkpoint (
    position          bigint PRIMARY KEY,
    log_id            text NOT NULL,
    head              bytea NOT NULL,
    signed_at         timestamptz NOT NULL,
    key_id            text NOT NULL,
    previous_position bigint NOT NULL,
    event             bytea NOT NULL,
    exported          boolean NOT NULL DEFAULT false
);

CREATE TABLE archive (
    archive_id          text PRIMARY KEY,
    from_position       bigint NOT NULL,
    to_position         bigint NOT NULL,
    records             bigint NOT NULL,
    checkpoint_position bigint NOT NULL,
    checkpoint_head     bytea NOT NULL,
    file_name           text NOT NULL,
    file_sha256         text NOT NULL,
    verified            boolean NOT NULL,
    made_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);

CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' THEN
        -- Retention only: the owner role, flagged, deleting a range already archived and verified.
        IF current_user = '{OWNER}'
           AND current_setting('{RETENTION_FLAG}', true) = 'verified-archive'
           AND EXISTS (SELECT 1 FROM archive a
                       WHERE a.verified AND OLD.position BETWEEN a.from_position AND a.to_position) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoint_append_only BEFORE DELETE ON checkpoint
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoint_no_truncate BEFORE TRUNCATE ON checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

ALTER TABLE log OWNER TO {OWNER};
ALTER TABLE chain_head OWNER TO {OWNER};
ALTER TABLE ingest_checkpoint OWNER TO {OWNER};
ALTER TABLE checkpoint OWNER TO {OWNER};
ALTER TABLE archive OWNER TO {OWNER};
ALTER FUNCTION refuse_change() OWNER TO {OWNER};

DO $$ BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {OWNER}, {WRITER}, {READER}', current_schema());
END $$;
REVOKE ALL ON log, chain_head, ingest_checkpoint, checkpoint, archive FROM PUBLIC;
GRANT SELECT, INSERT ON log TO {WRITER};
GRANT SELECT, INSERT, UPDATE ON chain_head, ingest_checkpoint TO {WRITER};
GRANT SELECT, INSERT ON checkpoint TO {WRITER};
GRANT UPDATE (exported) ON checkpoint TO {WRITER};
GRANT SELECT ON archive TO {WRITER};
GRANT SELECT ON log, chain_head, ingest_checkpoint, checkpoint, archive TO {READER};
"""

ALERTS_SQL = """
-- Open and past HQ alerts, projected from the alert events in the log (the list and SSE backlog).
CREATE TABLE alert (
    alert_id        text PRIMARY KEY,
    municipality    text NOT NULL,
    rule            text NOT NULL,
    severity        text NOT NULL,
    status          text NOT NULL,  -- open | acknowledged | resolved
    ward            text,
    desk            text,
    device_id       text,
    about           text NOT NULL,
    title           text NOT NULL,
    message         text NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    reraise_count   int NOT NULL DEFAULT 0,
    last_raised_at  timestamptz NOT NULL,
    resolved_at     timestamptz,
    position        bigint NOT NULL  -- the log position of the last event applied
);
CREATE INDEX alert_open ON alert (municipality, status, raised_at);

-- The alert engine's position in the log and its rule state, stored together (exactly once).
CREATE TABLE alert_engine (
    log_id     text PRIMARY KEY,
    position   bigint NOT NULL,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""

# The writer checks on start that every stream position it stored is backed by a record of that
# stream (fail closed); the reconciliation finds a stream message's record.
STREAM_SEQ_SQL = """
CREATE INDEX log_stream_seq ON log (stream, stream_seq);
"""

# Least privilege: the service's login role (member of audit_writer and audit_reader, never of
# audit_owner) runs the alert engine and reads the version; the migrator owns the rest.
PRIVILEGES_SQL = f"""
-- A role that owns a table must be allowed to create in its schema (the migrator is no superuser).
DO $$ BEGIN
  EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO {OWNER}', current_schema());
END $$;
ALTER TABLE alert OWNER TO {OWNER};
ALTER TABLE alert_engine OWNER TO {OWNER};
REVOKE ALL ON alert, alert_engine FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON alert, alert_engine TO {WRITER};
GRANT SELECT ON alert, alert_engine TO {READER};
GRANT SELECT ON schema_version TO {WRITER}, {READER};
"""

# Auditors' pages (query.build: every page is `municipality = $1 AND position > $after ... ORDER BY
# position LIMIT n`): a municipality that is not first in the log, or a desk or ward whose matches run
# out, is found by index instead of walking the primary key (issue 13 item 7: 476 ms / 554 ms at 1 M).
AUDITOR_INDEXES_SQL = """
CREATE INDEX log_municipality ON log (municipality, position);
CREATE INDEX log_desk ON log (municipality, desk, position) WHERE desk IS NOT NULL;
CREATE INDEX log_ward ON log (municipality, ward, position) WHERE ward IS NOT NULL;
"""

# An event sent again after the stream's duplicate window (a desk laptop's outbox after a kill -9 and a
# night off) is a second message on the stream: the log records it like every message (it vouches for
# the stream), and the writer names it here, in the same transaction, with the position of the record
# that first carried its event id. Counts (device activity, the alert rules) leave these out.
DUPLICATES_SQL = f"""
CREATE INDEX log_event_id ON log (event_id) WHERE event_id IS NOT NULL;
CREATE TABLE duplicate (
    position       bigint PRIMARY KEY,
    first_position bigint NOT NULL CHECK (first_position < position)
);
ALTER TABLE duplicate OWNER TO {OWNER};
REVOKE ALL ON duplicate FROM PUBLIC;
GRANT SELECT, INSERT ON duplicate TO {WRITER};
GRANT SELECT ON duplicate TO {READER};
"""

# Keyset paging for every auditor filter (issue 13 item 7): each page is `municipality = $1 AND <filter> AND
# position > $after ORDER BY position LIMIT n`, so each filter has an index (municipality, <filter>, position)
# that starts at the page and stops after n matches, whatever the log's size and the other municipalities in it.
# Type keeps its unscoped index too (the alert engine reads by type across the log); actor and device move
# under the municipality. Time: `day_span` holds, per municipality and UTC day of occurred_at, the first and
# last position of its records (the writer keeps it in the batch's transaction); a time range becomes the
# exact position range of its days, which the (municipality[, desk | ward | ...], position) indexes walk.
DAY_SPANS_SELECT = """SELECT municipality, (occurred_at AT TIME ZONE 'UTC')::date, min(position), max(position) FROM log
    WHERE municipality IS NOT NULL AND occurred_at IS NOT NULL GROUP BY 1, 2"""

AUDITOR_KEYSET_SQL = f"""
CREATE INDEX log_m_type ON log (municipality, type, position);
CREATE INDEX log_m_actor ON log (municipality, actor_id, position) WHERE actor_id IS NOT NULL;
CREATE INDEX log_m_device ON log (municipality, device_id, position) WHERE device_id IS NOT NULL;
DROP INDEX log_actor;
DROP INDEX log_device;
CREATE TABLE day_span (
    municipality   text NOT NULL,
    day            date NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    PRIMARY KEY (municipality, day)
);
INSERT INTO day_span {DAY_SPANS_SELECT};
ALTER TABLE day_span OWNER TO {OWNER};
REVOKE ALL ON day_span FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON day_span TO {WRITER};
GRANT SELECT ON day_span TO {READER};
"""

# The log partitioned by day (issue 13 item 7): PostgreSQL range partitions on `day`, the UTC date of the
# database's clock when the record was written (a column default, never the event's own occurred_at). So a
# partition is a run of consecutive positions (a day of writing), retention and verification can take it whole,
# and an event dated anywhere (a desk laptop's outbox replayed weeks later, a device whose clock is off by
# years) lands in today's partition like every other record; the auditors' time filter goes by occurred_at
# through day_span, as before. The partitions are created ahead by `ensure_log_ahead()` (today - 1 .. today +
# 7), which the writer calls in every batch's transaction: a cheap look when they exist, and creation when the
# database's clock has reached (or jumped to) a day without one, so no write waits for an operator. A batch
# that still failed is retried from the stream positions it did not move: nothing is lost. No DEFAULT partition:
# rows in it would block creating the partition of their day later.
#
# Append-only on every partition: the row trigger of the parent is cloned onto each partition (an UPDATE or
# DELETE naming a partition fires it too); the TRUNCATE trigger, which is not cloned, is created on each
# partition. Privileges: the partitions are owned by audit_owner (made by the SECURITY DEFINER function) and
# grant nothing to anyone — the writer inserts and reads through the parent only, so it can neither change,
# delete nor truncate a partition, nor detach or drop one (only the owner may).
#
# An existing plain table is migrated in place: each record keeps its position, columns and hashes (so the
# chain and the signed checkpoints verify as before); its day (the write day of old records is not known) is
# the running maximum of occurred_at's UTC day up to it, leaving out days after today (log_plain_day).
PARTITION_BY_DAY_SQL = f"""
SET LOCAL ROLE {OWNER};
ALTER TABLE log RENAME TO log_plain;
ALTER INDEX log_pkey RENAME TO log_plain_pkey;
CREATE TABLE log (
    position       bigint NOT NULL,
    stream         text NOT NULL,
    stream_seq     bigint NOT NULL,
    subject        text NOT NULL,
    parsed         boolean NOT NULL,
    event_id       uuid,
    type           text,
    occurred_at    timestamptz,
    municipality   text,
    ward           text,
    desk           text,
    actor_id       text,
    actor_role     text,
    device_id      text,
    correlation_id uuid,
    data           bytea NOT NULL,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL,
    day            date NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (position, day)
) PARTITION BY RANGE (day);

CREATE FUNCTION ensure_log_days(first_day date, last_day date) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    d date;
    part text;
    made int := 0;
BEGIN
    IF last_day < first_day OR last_day - first_day > 400 THEN
        RAISE EXCEPTION 'audit log partitions: % .. % is not a range of at most 400 days', first_day, last_day;
    END IF;
    d := first_day;
    WHILE d <= last_day LOOP
        part := 'log_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(format('%I.%I', current_schema(), part)) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF log FOR VALUES FROM (%L) TO (%L)', part, d, d + 1);
                EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', part);
                EXECUTE format('CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON %I '
                               'FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', part);
                made := made + 1;
            EXCEPTION WHEN duplicate_table THEN NULL;  -- made meanwhile by another session
            END;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN made;
END
$fn$;

CREATE FUNCTION ensure_log_ahead() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    IF to_regclass(format('%I.%I', current_schema(), 'log_' || to_char(today, 'YYYYMMDD'))) IS NOT NULL
       AND to_regclass(format('%I.%I', current_schema(), 'log_' || to_char(today + 2, 'YYYYMMDD'))) IS NOT NULL THEN
        RETURN 0;
    END IF;
    RETURN ensure_log_days(today - 1, today + 7);
END
$fn$;

CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The day of an old record: the running maximum of the UTC days of occurred_at up to it, leaving out days after
-- today (a clock far ahead); before the first dated record, the first day found; today when none is.
CREATE VIEW log_plain_day AS
SELECT position, coalesce(running, min(running) OVER (), (now() AT TIME ZONE 'UTC')::date) AS day
FROM (SELECT position, max(CASE WHEN (occurred_at AT TIME ZONE 'UTC')::date <= (now() AT TIME ZONE 'UTC')::date
                                THEN (occurred_at AT TIME ZONE 'UTC')::date END) OVER (ORDER BY position) AS running
      FROM log_plain) r;
DO $$
DECLARE d date;
BEGIN
    FOR d IN SELECT DISTINCT day FROM log_plain_day LOOP
        PERFORM ensure_log_days(d, d);
    END LOOP;
END $$;
SELECT ensure_log_ahead();
INSERT INTO log
SELECT l.position, stream, stream_seq, subject, parsed, event_id, type, occurred_at, municipality, ward, desk,
       actor_id, actor_role, device_id, correlation_id, data, prev_hash, hash, d.day
FROM log_plain l JOIN log_plain_day d USING (position) ORDER BY l.position;
DROP VIEW log_plain_day;
DROP TABLE log_plain;

CREATE INDEX log_occurred_at ON log USING brin (occurred_at);
CREATE INDEX log_type ON log (type, position);
CREATE INDEX log_correlation ON log (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX log_stream_seq ON log (stream, stream_seq);
CREATE INDEX log_municipality ON log (municipality, position);
CREATE INDEX log_desk ON log (municipality, desk, position) WHERE desk IS NOT NULL;
CREATE INDEX log_ward ON log (municipality, ward, position) WHERE ward IS NOT NULL;
CREATE INDEX log_event_id ON log (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX log_m_type ON log (municipality, type, position);
CREATE INDEX log_m_actor ON log (municipality, actor_id, position) WHERE actor_id IS NOT NULL;
CREATE INDEX log_m_device ON log (municipality, device_id, position) WHERE device_id IS NOT NULL;

REVOKE ALL ON log FROM PUBLIC;
GRANT SELECT, INSERT ON log TO {WRITER};
GRANT SELECT ON log TO {READER};
REVOKE ALL ON FUNCTION ensure_log_days(date, date), ensure_log_ahead() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_log_ahead() TO {WRITER};
RESET ROLE;
"""

# The writer's cost (issue 12: audit ingest >= 75 % of its ceiling). Every index of the log is paid on every
# record; each one left serves a reader (test_audit_query_plan.py holds every auditor filter to its index by
# EXPLAIN): (position, day) the key, the verifier and keyset paging; (municipality, position) a page without a
# filter; (municipality, desk | ward | type | actor_id | device_id, position) the filters; (correlation_id) one
# case; (type, position) the alert engine across municipalities; (stream, stream_seq) the writer's fail-closed
# check and the reconciliation. Gone: the BRIN on occurred_at (never chosen: a time range goes through day_span)
# and the event_id index, whose per-record lookup for duplicates probed every day's partition; `event_first`
# (event id -> first position, one row per event id, written in the batch's transaction) answers it in one probe.
WRITER_COST_SQL = f"""
DROP INDEX log_occurred_at;
CREATE TABLE event_first (
    event_id uuid PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO event_first SELECT event_id, min(position) FROM log WHERE event_id IS NOT NULL GROUP BY event_id;
DROP INDEX log_event_id;
ALTER TABLE event_first OWNER TO {OWNER};
REVOKE ALL ON event_first FROM PUBLIC;
GRANT SELECT, INSERT ON event_first TO {WRITER};
GRANT SELECT ON event_first TO {READER};
"""

# Time filter by the hour (issue 13 item 7): a time range narrowed to whole days made a page of one hour in the
# middle of a busy day walk the municipality's records from the start of the day (2 s at 10 M records in 30 days);
# `hour_span` holds, per municipality and UTC hour of occurred_at, the first and last position of its records (the
# writer keeps it in each batch's transaction, as it kept day_span), so the walk starts at the hour.
HOUR_SPANS_V11 = """SELECT municipality, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
    min(position), max(position) FROM log WHERE municipality IS NOT NULL AND occurred_at IS NOT NULL GROUP BY 1, 2"""

HOUR_SPANS_SQL = f"""
CREATE TABLE hour_span (
    municipality   text NOT NULL,
    hour           timestamptz NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    PRIMARY KEY (municipality, hour)
);
INSERT INTO hour_span {HOUR_SPANS_V11};
DROP TABLE day_span;
ALTER TABLE hour_span OWNER TO {OWNER};
REVOKE ALL ON hour_span FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON hour_span TO {WRITER};
GRANT SELECT ON hour_span TO {READER};
"""

# Every index of the log costs the writer on every record (issue 12: ingest >= 75 % of its ceiling; the COPY with
# the ten indexes ran at ~12,000 records/s against ~45,000 without them): each index left serves an auditor filter
# (query.build), or the writer's and the verifier's per-stream lookups (stream, stream_seq). (type, position) served
# no auditor filter (they are scoped by municipality: (municipality, type, position)); its readers now go by
# position: the alert engine walks the new records in windows of positions up to the head (it reads every
# heartbeat anyway), the verifier counts erasures through (municipality, type, position).
WRITER_INDEXES_SQL = """
DROP INDEX log_type;
"""

# Late records split an hour's span (issue 13 item 7): with one (first, last) per municipality and hour, a record
# of an hour that arrived days later (an offline desk's outbox, the bench's 0.1 % three days late) stretched the
# hour's range over those days, and a page or a count of that hour walked all the municipality's records between
# (165 ms at 3 M records, growing with the log). `hour_span` now holds runs: a record more than SPAN_GAP positions
# after its hour's last run starts a new run (the writer keeps this in each batch's transaction; SPAN_GAP is above
# any batch, so the writer's runs and HOUR_SPANS_SELECT's are the same). A time range is the union of its hours'
# runs, merged where they touch (query.build): the page walks each interval from its start, a late record is one
# more short interval.
SPAN_GAP = 100_000

HOUR_SPANS_SELECT = f"""SELECT municipality, hour, min(position), max(position) FROM (
    SELECT municipality, hour, position, sum(CASE WHEN prev IS NULL OR position - prev > {SPAN_GAP} THEN 1 ELSE 0 END)
        OVER (PARTITION BY municipality, hour ORDER BY position) AS run
    FROM (SELECT municipality, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, position,
                 lag(position) OVER (PARTITION BY municipality, date_trunc('hour', occurred_at AT TIME ZONE 'UTC')
                                     ORDER BY position) AS prev
          FROM log WHERE municipality IS NOT NULL AND occurred_at IS NOT NULL) r) g
    GROUP BY municipality, hour, run"""

HOUR_RUNS_SQL = f"""
ALTER TABLE hour_span DROP CONSTRAINT hour_span_pkey;
DELETE FROM hour_span;
INSERT INTO hour_span {HOUR_SPANS_SELECT};
ALTER TABLE hour_span ADD PRIMARY KEY (municipality, hour, first_position);
"""

# The writer's fail-closed check that each stored stream position has its record (ingest/failclosed.py `check_head`) looked
# for the stream's highest sequence through (stream, stream_seq), an index paid on every record (~2 µs of
# PostgreSQL's time each, issue 12) for a look taken at start and after a failure. The writer now stores, with each
# stream's last sequence, the position of that record (in the batch's transaction); the check reads the record at
# that position, which must be of that stream and sequence. Nothing else used the index (incremental verify walks
# back by position).
STREAM_POSITION_SQL = """
ALTER TABLE ingest_checkpoint ADD COLUMN last_position bigint;
UPDATE ingest_checkpoint ic SET last_position = (
    SELECT max(position) FROM log l WHERE l.stream = ic.stream AND l.stream_seq = ic.last_seq);
DROP INDEX log_stream_seq;
"""

# Text comparisons of the log's indexes (issue 12: make bench-national, 1,741 municipalities interleaved): every
# auditor index starts with the municipality, and each record's insertion descends each of them comparing its text
# columns under the database's collation (C.UTF-8 through strcoll; only the names "C" and "POSIX" compare bytes
# directly). The columns the indexes hold are codes, ids and event type names: compared byte by byte ("C") they
# sort and match the same, and the comparison is a memcmp. Equality filters and the type prefix (LIKE 'x.%', which
# "C" lets an index range serve) give the same records; the indexes are rebuilt, the rows are not rewritten.
TEXT_C_SQL = f"""
SET LOCAL ROLE {OWNER};
ALTER TABLE log
    ALTER COLUMN municipality TYPE text COLLATE "C",
    ALTER COLUMN ward TYPE text COLLATE "C",
    ALTER COLUMN desk TYPE text COLLATE "C",
    ALTER COLUMN type TYPE text COLLATE "C",
    ALTER COLUMN actor_id TYPE text COLLATE "C",
    ALTER COLUMN device_id TYPE text COLLATE "C";
ALTER TABLE hour_span ALTER COLUMN municipality TYPE text COLLATE "C";
RESET ROLE;
"""

MIGRATIONS = [
    ROLES_SQL,
    LOG_SQL,
    ALERTS_SQL,
    STREAM_SEQ_SQL,
    PRIVILEGES_SQL,
    AUDITOR_INDEXES_SQL,
    DUPLICATES_SQL,
    AUDITOR_KEYSET_SQL,
    PARTITION_BY_DAY_SQL,
    WRITER_COST_SQL,
    HOUR_SPANS_SQL,
    WRITER_INDEXES_SQL,
    HOUR_RUNS_SQL,
    STREAM_POSITION_SQL,
    TEXT_C_SQL,
]


async def migrate(conn: db.Connection, schema: str) -> int:
    return await db.migrate(conn, schema, MIGRATIONS)


async def migrate_pool(pool: asyncpg.Pool, schema: str) -> int:
    async with pool.acquire() as conn:
        return await migrate(conn, schema)


async def version(conn: db.Connection, schema: str) -> int:
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema}".schema_version'):
        return 0
    return await db.fetch_int(conn, f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version')


class NotMigrated(RuntimeError):
    pass


async def ensure(pool: asyncpg.Pool, schema: str) -> int:
    """At service start: nothing to do when the migrator has brought the schema up to date; else migrate
    (which only a role allowed to, such as the migrator or a test's superuser, can)."""
    async with pool.acquire() as conn:
        current = await version(conn, schema)
        if current >= len(MIGRATIONS):
            return current
        try:
            return await migrate(conn, schema)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise NotMigrated(
                f"the audit schema {schema!r} is at version {current} of {len(MIGRATIONS)} and this "
                f"role may not migrate it: run `madoguchi audit migrate` with the owner role "
                f"(MADOGUCHI_PG_DSN of {'mg_migrator'})"
            ) from exc


async def rebuild_day_spans(conn: db.Connection, schema: str) -> None:
    """hour_span from the records (the migration does this once; tests and benches that load records directly)."""
    async with conn.transaction():
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await conn.execute("DELETE FROM hour_span")
        await conn.execute(f"INSERT INTO hour_span {HOUR_SPANS_SELECT}")
