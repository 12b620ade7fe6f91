"""`madoguchi audit ...`: verify the log, make a signing key, run the log writer, retention.

    madoguchi audit verify [--full [--jobs N] | --incremental | --from-checkpoint] [--dsn DSN] [--checkpoints FILE] [--bus]
    madoguchi audit init                  introduce the first signing key (prints its fingerprint)
    madoguchi audit rotate-key            hand trust on to a new key, signed by the current one
    madoguchi audit ingest
    madoguchi audit archive [--delete]

Settings come from MADOGUCHI_* / MADOGUCHI_AUDIT_* variables; options override them.
`verify` exits 0 only when the log verifies, 1 when it does not, 2 when it could not run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from madoguchi_shared.settings import Settings

app = typer.Typer(help="The audit log: verify, keys, writer, retention.", no_args_is_help=True)


def _settings(dsn: str | None, data_dir: Path | None, schema: str | None, nats_url: str | None = None):
    from madoguchi_audit.config import AuditSettings

    base = Settings()
    updates = {k: v for k, v in {"pg_dsn": dsn, "data_dir": data_dir, "nats_url": nats_url}.items() if v}
    base = base.model_copy(update=updates)
    audit = AuditSettings.from_settings(base, **({"schema_name": schema} if schema else {}))
    return base, audit


DsnOpt = Annotated[str | None, typer.Option("--dsn", help="PostgreSQL DSN (default: MADOGUCHI_PG_DSN / embedded)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="where keys and checkpoints.jsonl live")]
SchemaOpt = Annotated[str | None, typer.Option("--schema", help="the audit schema (default audit)")]


@app.command("verify")
def verify_cmd(
    from_checkpoint: Annotated[
        bool, typer.Option("--from-checkpoint", help="start after the newest signed checkpoint")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="start after the newest signed checkpoint the last "
            "successful run verified (recorded on the stream); full otherwise",
        ),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="verify every record from position 1 (the default; says so explicitly, refuses --incremental)",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", min=1, max=32, help="a full run checks the day partitions on this many connections at once"
        ),
    ] = 2,
    dsn: DsnOpt = None,
    data_dir: DataDirOpt = None,
    schema: SchemaOpt = None,
    checkpoints_file: Annotated[Path | None, typer.Option("--checkpoints", help="checkpoint JSON Lines file")] = None,
    nats_url: Annotated[str | None, typer.Option("--nats", help="NATS URL (default: MADOGUCHI_NATS_URL)")] = None,
    use_bus: Annotated[
        bool,
        typer.Option(
            "--bus/--no-bus",
            help="read the key chain and checkpoints from the stream "
            "of record, reconcile the log with the streams, record the run (default)",
        ),
    ] = True,
    grace: Annotated[
        float | None,
        typer.Option(
            "--grace", help="seconds: messages stored longer ago than this must be in the log (default: the setting, 5)"
        ),
    ] = None,
    root: Annotated[
        str | None, typer.Option("--root", help="the fingerprint recorded at install: the key chain must start with it")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check the key chain, every copy of the signed checkpoints, the hash chain, and every message of the
    streams of record against the log; exit 0 only when it all holds."""
    from tqdm import tqdm

    from madoguchi_audit import verify

    if full and (incremental or from_checkpoint):
        typer.echo("ERROR --full verifies every record: leave out --incremental and --from-checkpoint", err=True)
        raise typer.Exit(2)
    base, audit = _settings(dsn, data_dir, schema, nats_url)
    if checkpoints_file:
        audit = audit.model_copy(update={"checkpoint_file": checkpoints_file})
    if root:
        audit = audit.model_copy(update={"root_fingerprint": root})

    async def go() -> verify.Report:
        import asyncpg

        nc = None
        if use_bus:
            from madoguchi_shared import bus

            nc = await bus.connect_tool(base.nats_url, name="madoguchi-audit-verify")
        conn = await asyncpg.connect(base.resolved_pg_dsn())
        bar = tqdm(unit="rec", unit_scale=True, desc="verify", file=sys.stderr, mininterval=0.3, leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            start: bool | int = from_checkpoint
            if incremental and nc is not None:
                start = await verify.last_verified_checkpoint(conn, nc, audit) or False
            dsn_of_run = base.resolved_pg_dsn()
            report = await verify.verify_all(
                conn,
                nc,
                audit,
                from_checkpoint=start,
                progress=progress,
                grace_seconds=grace,
                jobs=jobs,
                connect=lambda: asyncpg.connect(dsn_of_run),
            )
            if nc is not None:
                await _record_run(nc, audit, report)
            return report
        finally:
            bar.close()
            await conn.close()
            if nc is not None:
                await nc.drain()

    try:
        report = asyncio.run(go())
    except Exception as exc:  # any failure to run is exit 2, never a false OK
        typer.echo(f"ERROR could not verify: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(report.as_dict(), indent=2, default=str) if as_json else "\n".join(report.lines()))
    raise typer.Exit(0 if report.ok else 1)


async def _record_run(nc, audit, report) -> None:
    from madoguchi_shared import bus
    from madoguchi_shared.events import new_id
    from madoguchi_shared.events.audit import VerificationRun

    from madoguchi_audit.checkpoints import SERVICE_ACTOR

    fault = report.first_fault
    await bus.append(
        nc.jetstream(),
        VerificationRun(
            municipality=audit.municipality,
            actor=SERVICE_ACTOR,
            run_id=str(new_id()),
            log_id=audit.log_id,
            result="ok" if report.ok else "bad",
            records=report.records,
            from_position=report.from_position,
            to_position=report.to_position,
            head=report.head,
            checkpoints_checked=report.checkpoints_checked,
            first_bad_position=fault.position if fault else None,
            fault=fault.event_fault() if fault else None,
            trigger="cli",
        ),
    )


NatsOpt = Annotated[str | None, typer.Option("--nats", help="NATS URL (default: MADOGUCHI_NATS_URL)")]
MunicipalityOpt = Annotated[
    str | None, typer.Option("--municipality", help="the municipality the audit service publishes under")
]


def _key_settings(data_dir, nats_url, municipality):
    base, audit = _settings(None, data_dir, None, nats_url)
    if municipality:
        audit = audit.model_copy(update={"municipality": municipality})
    return base, audit


@app.command("init")
def init_cmd(data_dir: DataDirOpt = None, nats_url: NatsOpt = None, municipality: MunicipalityOpt = None) -> None:
    """Introduce the first checkpoint signing key of the log (install): prints the fingerprint to record."""
    from madoguchi_shared import bus

    from madoguchi_audit import keys

    base, audit = _key_settings(data_dir, nats_url, municipality)

    async def go():
        nc = await bus.connect_tool(base.nats_url, name="madoguchi-audit-init")
        try:
            await bus.ensure_streams(nc.jetstream(), base.stream_replicas)
            return await keys.introduce(audit, nc)
        finally:
            await nc.drain()

    try:
        key, trusted = asyncio.run(go())
    except keys.KeyRefused as exc:
        typer.echo(f"導入できません: {exc.reason}\n対処: {exc.fix}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"監査ログ {audit.log_id} の署名鍵を導入しました\n"
        f"key id      {key.key_id}\nfingerprint {trusted.fingerprint}\n"
        f"private key {audit.resolved_signing_key_file if not audit.signing_key_hex.get_secret_value() else '(MADOGUCHI_AUDIT_SIGNING_KEY_HEX)'}\n"
        "この指紋（fingerprint）を記録してください。監査時に `madoguchi audit verify` が表示する鍵の連鎖の先頭と照合します。"
    )


@app.command("rotate-key")
def rotate_key_cmd(data_dir: DataDirOpt = None, nats_url: NatsOpt = None, municipality: MunicipalityOpt = None) -> None:
    """Replace the signing key: a rotation statement signed by the current key, published on the stream."""
    from madoguchi_shared import bus

    from madoguchi_audit import keys

    base, audit = _key_settings(data_dir, nats_url, municipality)

    async def go():
        nc = await bus.connect_tool(base.nats_url, name="madoguchi-audit-rotate-key")
        try:
            return await keys.rotate(audit, nc)
        finally:
            await nc.drain()

    try:
        old, new = asyncio.run(go())
    except keys.KeyRefused as exc:
        typer.echo(f"ローテーションできません: {exc.reason}\n対処: {exc.fix}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"署名鍵をローテーションしました（旧鍵の署名付き）\nold key id  {old.key_id} {keys.fingerprint(old.public)}\n"
        f"new key id  {new.key_id} {keys.fingerprint(new.public)}\nprivate key {audit.resolved_signing_key_file}"
    )


@app.command("migrate")
def migrate_cmd(dsn: DsnOpt = None, schema: SchemaOpt = None) -> None:
    """Bring the audit schema up to date (run with the owner role, before the service starts)."""
    from madoguchi_audit import schema as audit_schema

    base, audit = _settings(dsn, None, schema)

    async def go() -> int:
        import asyncpg

        conn = await asyncpg.connect(base.resolved_pg_dsn())
        try:
            return await audit_schema.migrate(conn, audit.schema_name)
        finally:
            await conn.close()

    typer.echo(f"audit schema {audit.schema_name}: version {asyncio.run(go())}")


@app.command("ingest")
def ingest_cmd(
    dsn: DsnOpt = None,
    data_dir: DataDirOpt = None,
    schema: SchemaOpt = None,
    nats_url: Annotated[str | None, typer.Option("--nats", help="NATS URL")] = None,
) -> None:
    """Run only the log writer (with checkpoints) until SIGTERM/SIGINT."""
    from madoguchi_shared import bus, db
    from madoguchi_shared.logging import configure

    from madoguchi_audit import schema as audit_schema
    from madoguchi_audit.ingest import Ingest

    base, audit = _settings(dsn, data_dir, schema, nats_url)
    configure(base.log_level, base.log_json)

    async def go() -> None:
        nc = await bus.connect(base.nats_url, name="madoguchi-audit-ingest")
        await bus.ensure_streams(nc.jetstream(), base.stream_replicas)
        pool = await db.create_pool(base.resolved_pg_dsn(), max_size=4)
        await audit_schema.ensure(pool, audit.schema_name)
        ingest = Ingest(audit, nc, pool)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, ingest.stop)
        try:
            await ingest.run()
        finally:
            await pool.close()
            await nc.drain()

    asyncio.run(go())


@app.command("archive")
def archive_cmd(
    dsn: DsnOpt = None,
    data_dir: DataDirOpt = None,
    schema: SchemaOpt = None,
    days: Annotated[int | None, typer.Option("--days", help="retention in days (default: the setting)")] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="delete the range from the table after the archive verified")
    ] = False,
) -> None:
    """Archive the records older than the retention period (with their checkpoints); optionally delete them."""
    from madoguchi_shared import bus

    from madoguchi_audit import retention

    base, audit = _settings(dsn, data_dir, schema)

    async def go():
        import asyncpg

        nc = await bus.connect_tool(base.nats_url, name="madoguchi-audit-archive")
        conn = await asyncpg.connect(base.resolved_pg_dsn())
        try:
            return await retention.archive(conn, audit, nc.jetstream(), delete=delete, retention_days=days)
        finally:
            await conn.close()
            await nc.drain()

    result = asyncio.run(go())
    if result is None:
        typer.echo("nothing older than the retention period ends on a signed checkpoint: nothing to archive")
        return
    typer.echo(
        f"archive {result.path}: positions {result.from_position}..{result.to_position}, "
        f"{result.records} records, {'verified' if result.report.ok else 'NOT VERIFIED'}"
        + (", deleted from the table" if result.deleted else "")
        + (f" ({len(result.partitions_dropped)} day partitions dropped whole)" if result.partitions_dropped else "")
    )
    if not result.report.ok:
        typer.echo("\n".join(result.report.lines()), err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
