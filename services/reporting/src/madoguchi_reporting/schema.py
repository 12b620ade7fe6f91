"""The reporting schema: statistics tables (projections) and the records of delivery.

Statistics (rebuilt from the stream by `madoguchi report rebuild`):

* ``day_count``   one row per (municipality, channel, scope, day, figure): every counted figure of a
                  desk's day (channel ``desk``, scope = desk id) or a phone line's day (channel
                  ``line``, scope = line id). Figures are additive integers ("visitors",
                  "by_hour.09", "by_gender.female", "wait_ms_sum", ...), so a projection batch is summed
                  in Python and written with one upsert, and weekly and contract totals are SUMs.
* ``visit``       one row per visit (no personal data: ticket number, gender, age band, purposes,
                  support, outcome, durations in ms): the state a late correction is applied to, and
                  the per-visit durations percentiles are computed from.
* ``ticket``      queue tickets (arrival time = the ticket's issue: "visitors per arrival hour").
* ``call_record`` one row per call, the record the final report delivers (CALL-5); ``callback``
                  one row per callback task (no phone number: it never enters the event log).
* ``note``        escalation summaries and opinions (free text already screened by the PII guard).
* ``desk_day``    ward of each desk-day and its start/end confirmations (ORG-3).
* ``calendar_override`` the city's run-time calendar changes (DESK-1), folded into the Calendar.
* ``deliverable`` deliverables and their state (REP-6), projected from the report stream.

Batch-dependent, excluded from checksums and kept by a rebuild: ``report_day`` (the data revision of
each report, which keeps counting up across a rebuild), ``outbox`` (report events still to publish).

Delivery records (never dropped by a rebuild: they are what was handed to the city):
``report_submission`` (the submitted JSON and its figures), ``report_submission_file`` (the files
and their sha256), ``report_revision`` (the last revision notice sent for a submitted report).
"""

from __future__ import annotations


from madoguchi_shared import db, projection
from madoguchi_shared.projection import DEAD_LETTERS_SQL

SCHEMA = "reporting"

MIGRATIONS = [
    db.CHECKPOINTS_SQL,
    """
    CREATE TABLE day_count (
        municipality text NOT NULL,
        channel text NOT NULL CHECK (channel IN ('desk', 'line')),
        scope text NOT NULL,
        day date NOT NULL,
        figure text NOT NULL,
        n bigint NOT NULL,
        PRIMARY KEY (municipality, channel, scope, day, figure)
    );
    CREATE INDEX day_count_by_day ON day_count (municipality, channel, day);

    CREATE TABLE desk_day (
        municipality text NOT NULL,
        desk text NOT NULL,
        day date NOT NULL,
        ward text NOT NULL,
        started_at timestamptz,
        ended_at timestamptz,
        stops int NOT NULL DEFAULT 0,
        PRIMARY KEY (municipality, desk, day)
    );

    CREATE TABLE ticket (
        municipality text NOT NULL,
        desk text NOT NULL,
        day date NOT NULL,
        ticket_no int NOT NULL,
        issued_at timestamptz NOT NULL,
        PRIMARY KEY (municipality, desk, day, ticket_no)
    );

    CREATE TABLE visit (
        municipality text NOT NULL,
        visit_id uuid NOT NULL,
        desk text NOT NULL,
        ward text NOT NULL,
        day date,
        ticket_no int,
        arrival_hour smallint,
        started_at timestamptz,
        waited_ms bigint,
        gender text,
        age_band text,
        purposes text[],
        support_needed boolean,
        support_given boolean,
        payment_service text,
        outcome text,
        reason text,
        service_ms bigint,
        ended_at timestamptz,
        corrections int NOT NULL DEFAULT 0,
        PRIMARY KEY (municipality, visit_id)
    );
    CREATE INDEX visit_by_day ON visit (municipality, day, desk);

    CREATE TABLE call_record (
        municipality text NOT NULL,
        call_id uuid NOT NULL,
        line text NOT NULL,
        day date NOT NULL,
        received_at timestamptz NOT NULL,
        within_hours boolean NOT NULL,
        connection text NOT NULL DEFAULT 'pending',
        missed_reason text,
        wait_s int,
        overflow text,
        categories text[],
        resolution text,
        provider_category text,
        guided_ward text,
        duration_s int,
        notes text,
        opinions jsonb,
        callback_status text,
        PRIMARY KEY (municipality, call_id)
    );
    CREATE INDEX call_record_by_day ON call_record (municipality, day, line);

    CREATE TABLE callback (
        municipality text NOT NULL,
        callback_id uuid NOT NULL,
        call_id uuid NOT NULL,
        line text NOT NULL,
        opened_day date NOT NULL,
        reason text NOT NULL,
        needs_city boolean NOT NULL,
        status text NOT NULL,
        PRIMARY KEY (municipality, callback_id)
    );

    CREATE TABLE note (
        municipality text NOT NULL,
        channel text NOT NULL,
        scope text NOT NULL,
        day date NOT NULL,
        kind text NOT NULL CHECK (kind IN ('escalation', 'opinion')),
        ref text NOT NULL,
        at timestamptz NOT NULL,
        category text,
        step text,
        text text NOT NULL,
        status text,
        detail text,
        PRIMARY KEY (municipality, channel, scope, day, kind, ref)
    );

    CREATE TABLE calendar_override (
        municipality text NOT NULL,
        event_id uuid NOT NULL,
        seq bigint NOT NULL,
        event jsonb NOT NULL,
        PRIMARY KEY (municipality, event_id)
    );

    CREATE TABLE deliverable (
        municipality text NOT NULL,
        deliverable_id text NOT NULL,
        kind text NOT NULL,
        period_start date NOT NULL,
        period_end date NOT NULL,
        due date NOT NULL,
        contract_start date NOT NULL,
        contract_end date NOT NULL,
        submitted_on date,
        revision int NOT NULL DEFAULT 0,
        late boolean NOT NULL DEFAULT false,
        overdue_on date,
        report_ids text[] NOT NULL DEFAULT '{}',
        sha256 text,
        PRIMARY KEY (municipality, deliverable_id)
    );

    CREATE TABLE report_day (
        municipality text NOT NULL,
        channel text NOT NULL,
        scope text NOT NULL,
        day date NOT NULL,
        data_revision int NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (municipality, channel, scope, day)
    );

    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        subject text NOT NULL,
        msg_id text NOT NULL,
        payload bytea NOT NULL
    );

    CREATE TABLE report_submission (
        municipality text NOT NULL,
        report_id text NOT NULL,
        revision int NOT NULL,
        kind text NOT NULL,
        scope text NOT NULL,
        scope_id text NOT NULL,
        period_start date NOT NULL,
        period_end date NOT NULL,
        data_revision int NOT NULL,
        submitted_at timestamptz NOT NULL DEFAULT now(),
        submitted_by text NOT NULL,
        deliverable_id text,
        sha256 text NOT NULL,
        figures jsonb NOT NULL,
        report jsonb NOT NULL,
        PRIMARY KEY (municipality, report_id, revision)
    );

    CREATE TABLE report_submission_file (
        municipality text NOT NULL,
        report_id text NOT NULL,
        revision int NOT NULL,
        name text NOT NULL,
        format text NOT NULL,
        sha256 text NOT NULL,
        size int NOT NULL,
        content bytea NOT NULL,
        PRIMARY KEY (municipality, report_id, revision, name)
    );

    CREATE TABLE report_revision (
        municipality text NOT NULL,
        report_id text NOT NULL,
        revision int NOT NULL,
        based_on int NOT NULL,
        changes jsonb NOT NULL,
        detected_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (municipality, report_id)
    );
    """,
    # dead letters of the projections (madoguchi_shared.projection): recounts leave them out
    DEAD_LETTERS_SQL.format(schema=SCHEMA),
    # issue 16: the caller's choice at an offer, the repeat call's link (by the earlier call's
    # reference) and the reference itself (so a repeat can be followed to the earlier call)
    """
    ALTER TABLE call_record ADD COLUMN offer_choice text, ADD COLUMN reference text, ADD COLUMN repeat_of text;
    CREATE INDEX call_record_by_reference ON call_record (municipality, reference);
    """,
]

# Projection tables with the columns that define their content (checksums compare these; batch-
# dependent columns such as data revisions are left out so a rebuild can be compared).
STAT_TABLES: dict[str, str] = {
    "day_count": "municipality, channel, scope, day, figure, n",
    "desk_day": "municipality, desk, day, ward, started_at, ended_at, stops",
    "ticket": "municipality, desk, day, ticket_no, issued_at",
    "visit": (
        "municipality, visit_id, desk, ward, day, ticket_no, arrival_hour, started_at, waited_ms, gender, "
        "age_band, purposes, support_needed, support_given, payment_service, outcome, reason, service_ms, "
        "ended_at, corrections"
    ),
    "call_record": (
        "municipality, call_id, line, day, received_at, within_hours, connection, missed_reason, wait_s, "
        "overflow, categories, resolution, provider_category, guided_ward, duration_s, notes, opinions, "
        "callback_status, offer_choice, reference, repeat_of"
    ),
    "callback": "municipality, callback_id, call_id, line, opened_day, reason, needs_city, status",
    "note": "municipality, channel, scope, day, kind, ref, at, category, step, text, status, detail",
    "calendar_override": "municipality, event_id, seq, event",
    "deliverable": (
        "municipality, deliverable_id, kind, period_start, period_end, due, contract_start, contract_end, "
        "submitted_on, revision, late, overdue_on, report_ids, sha256"
    ),
}
# Written by the projections, but neither compared nor reset (see the module docstring).
BATCH_TABLES = ("report_day", "outbox")


async def migrate(conn: db.Connection) -> int:
    return await db.migrate(conn, SCHEMA, MIGRATIONS)


async def checksums(conn: db.Connection, municipality: str | None = None) -> dict[str, tuple[int, str]]:
    """(row count, md5 over the ordered rows' content columns) of every statistics table."""
    out: dict[str, tuple[int, str]] = {}
    for table, cols in STAT_TABLES.items():
        where = "WHERE municipality = $1" if municipality else ""
        args = [municipality] if municipality else []
        row = await db.fetch_one(
            conn,
            f"""SELECT count(*) AS n, coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), md5('')) AS h
                FROM (SELECT ROW({cols})::text AS r FROM "{SCHEMA}".{table} {where}) t""",
            *args,
        )
        out[table] = (row["n"], row["h"])
    return out


async def truncate_projections(conn: db.Connection) -> None:
    tables = ", ".join(f'"{SCHEMA}".{t}' for t in STAT_TABLES)
    await conn.execute(f"TRUNCATE {tables}")
    await conn.execute(f'DELETE FROM "{SCHEMA}".projection_checkpoint')
    await conn.execute(f'DELETE FROM "{SCHEMA}".projection_dead_letter')
    await projection.forget_applied(conn, SCHEMA)
