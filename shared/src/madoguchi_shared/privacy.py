"""`madoguchi privacy ...`: the proof an auditor asks for, and the erasure of free text.

    madoguchi privacy scan [--data-dir var]     every stream, table and log file under the data
                                                folder through the PII guard; counts by kind and
                                                location, never a value; exit 1 when anything is found

The scan uses the same detector as every free-text field (madoguchi_shared.pii), on every string
value: JSON payloads of stream messages (and their headers) are walked value by value, table
columns of a text or JSON type row by row, log files line by line (JSON lines value by value).
Machine values that are not writing are left out: UUIDs, hashes, base64 blobs, timestamps and
sealed free text (ciphertext, see madoguchi_shared.sealed).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from madoguchi_shared.narrow import is_dict, is_list
from madoguchi_shared.pii import KIND_JA, KINDS, find_personal_data
from madoguchi_shared.settings import Settings

if TYPE_CHECKING:
    from uuid import UUID

    from nats.aio.client import Client as NATS
    from nats.js import JetStreamContext

    from madoguchi_shared.bus import Loaded
    from madoguchi_shared.events import Actor
    from madoguchi_shared.events.admin import TextErased, TextErasureRequested

T = TypeVar("T")

app = typer.Typer(
    help="個人情報の検査と自由記述の消去 / personal-data scan and erasure of free text.", no_args_is_help=True
)

# --------------------------------------------------------------------------------------------
# What a value is
# --------------------------------------------------------------------------------------------

_MACHINE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # UUID
    r"|[0-9a-fA-F]{16,}"  # hash, key id
    r"|[A-Za-z0-9+/_-]{24,}={0,2}"  # base64
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"  # timestamp
    r"|sealed:v1:[A-Za-z0-9:_=+/-]+)$"  # sealed free text
)


def text_findings(value: str) -> list[str]:
    """Kinds of personal data in one string value (nothing for machine values)."""
    if len(value) < 10 or _MACHINE.match(value):
        return []
    return [f.kind for f in find_personal_data(value)]


def walk(value: Any) -> list[str]:
    """Kinds found in every string of a decoded JSON value (object keys are field names: skipped)."""
    if isinstance(value, str):
        return text_findings(value)
    if is_dict(value):
        return [k for v in value.values() for k in walk(v)]
    if is_list(value):
        return [k for v in value for k in walk(v)]
    return []


def payload_findings(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return walk(json.loads(text))
    except (ValueError, RecursionError):
        return text_findings(text)


# --------------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------------


@dataclass
class Place:
    area: str  # ストリーム / テーブル / ログ
    name: str
    items: int = 0
    kinds: Counter[str] = field(default_factory=Counter[str])


@dataclass
class ScanReport:
    places: list[Place] = field(default_factory=list[Place])
    problems: list[str] = field(default_factory=list[str])

    def total(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for p in self.places:
            out.update(p.kinds)
        return out

    def lines(self) -> list[str]:
        out: list[str] = []
        for p in self.places:
            found = sum(p.kinds.values())
            detail = "、".join(f"{KIND_JA[k]} {p.kinds[k]}" for k in KINDS if p.kinds[k])
            unit = {"ストリーム": "メッセージ", "テーブル": "行", "ログ": "行"}[p.area]
            out.append(
                f"{p.area:<6s} {p.name:<48s} {p.items:>9,d} {unit}  検出 {found}" + (f"（{detail}）" if detail else "")
            )
        total = self.total()
        items: Counter[str] = Counter()
        for p in self.places:
            items[p.area] += 1
        out.append(
            f"合計: ストリーム {items['ストリーム']}、テーブル {items['テーブル']}、ログ {items['ログ']} を検査、検出 {sum(total.values())} 件（"
            + "、".join(f"{KIND_JA[k]} {total[k]}" for k in KINDS)
            + "）"
        )
        out.extend(f"検査できなかった箇所: {p}" for p in self.problems)
        return out


TEXT_KEYS_BUCKET = "MG_TEXT_KEYS"  # keys of sealed free text: random bytes, not writing


async def scan_streams(nats_url: str, report: ScanReport) -> None:
    from madoguchi_shared import bus
    from madoguchi_shared.nats_typed import jetstream
    from madoguchi_shared.reader import read_all

    nc = await bus.connect_tool(nats_url, name="madoguchi-privacy-scan")
    try:
        js = jetstream(nc)
        infos = await js.streams_info()
        for info in sorted(infos, key=lambda i: i.config.name or ""):
            name = info.config.name or ""
            if name == TEXT_KEYS_BUCKET:
                continue
            place = Place("ストリーム", name)
            report.places.append(place)
            if not info.state.messages:
                continue
            async for msg in read_all(nc, list(info.config.subjects or [">"]), stream=name):
                place.items += 1
                place.kinds.update(payload_findings(msg.data))
                for key, value in (msg.headers or {}).items():
                    if not key.startswith("Nats-"):
                        place.kinds.update(text_findings(str(value)))
    finally:
        await nc.drain()


# bytea too: the audit log keeps each message's bytes as the streams hold them (a digest is shorter
# than _MIN_PAYLOAD and is not read).
_TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY", "bytea")
_MIN_PAYLOAD = 64


async def scan_tables(dsn: str, report: ScanReport) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            """SELECT c.table_schema, c.table_name, c.column_name, c.data_type
                 FROM information_schema.columns c
                 JOIN information_schema.tables t USING (table_schema, table_name)
                WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg_%'
                  AND t.table_type = 'BASE TABLE'
                ORDER BY 1, 2, c.ordinal_position"""
        )
        tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in columns:
            tables.setdefault((r["table_schema"], r["table_name"]), []).append((r["column_name"], r["data_type"]))
        for (schema, table), cols in tables.items():
            place = Place("テーブル", f"{schema}.{table}")
            report.places.append(place)
            texty = [(c, t) for c, t in cols if t in _TEXT_TYPES]
            if not texty:
                place.items = await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{table}"')
                continue
            select = ", ".join(f'"{c}"' if t == "bytea" else f'"{c}"::text' for c, t in texty)
            async with conn.transaction():
                async for row in conn.cursor(f'SELECT {select} FROM "{schema}"."{table}"', prefetch=2000):
                    place.items += 1
                    for (_, kind), value in zip(texty, row, strict=True):
                        if value is None:
                            continue
                        if kind == "bytea":
                            if len(value) >= _MIN_PAYLOAD:
                                place.kinds.update(payload_findings(bytes(value)))
                        elif kind in ("json", "jsonb", "ARRAY"):
                            place.kinds.update(payload_findings(value))
                        else:
                            place.kinds.update(text_findings(value))
    finally:
        await conn.close()


_LOG_NAMES = ("*.log", "*.log.*", "*.jsonl", "*.out", "*.err")


def scan_logs(data_dir: Path, report: ScanReport) -> None:
    seen: set[Path] = set()
    for pattern in _LOG_NAMES:
        for path in sorted(data_dir.rglob(pattern)):
            if path in seen or not path.is_file() or ("pgdata" in path.parts and path.suffix != ".log"):
                continue
            seen.add(path)
            place = Place("ログ", str(path.relative_to(data_dir)))
            report.places.append(place)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        place.items += 1
                        line = line.rstrip("\n")
                        if line.startswith("{"):
                            place.kinds.update(payload_findings(line))
                        else:
                            place.kinds.update(text_findings(line))
            except OSError as exc:
                report.problems.append(f"{place.name}: {type(exc).__name__}")


async def scan_all(settings: Settings, *, streams: bool = True, tables: bool = True, logs: bool = True) -> ScanReport:
    report = ScanReport()
    if streams:
        await scan_streams(settings.nats_url, report)
    if tables:
        await scan_tables(settings.resolved_pg_dsn(), report)
    if logs:
        scan_logs(settings.data_dir.resolve(), report)
    return report


@app.command()
def scan(
    data_dir: Annotated[Path | None, typer.Option(help="data folder (default: settings)")] = None,
    streams: Annotated[bool, typer.Option(help="scan the JetStream streams")] = True,
    tables: Annotated[bool, typer.Option(help="scan the PostgreSQL tables")] = True,
    logs: Annotated[bool, typer.Option(help="scan the log files under the data folder")] = True,
) -> None:
    """Scan every stream, table and log file for personal data; print counts by kind and place, never
    a value. Exit code 1 when something was found."""
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    report = asyncio.run(scan_all(settings, streams=streams, tables=tables, logs=logs))
    typer.echo(f"個人情報スキャン: データフォルダ {settings.data_dir}")
    for line in report.lines():
        typer.echo(line)
    if sum(report.total().values()):
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------------
# Erasure of free text: a manager requests, an auditor approves (two people, two roles)
# --------------------------------------------------------------------------------------------
#
#     madoguchi privacy erase <reference> --staff S0001 --reason "…"   (manager: the request)
#     madoguchi privacy approve <reference> --staff A0001              (auditor: key destroyed)
#     madoguchi privacy status <reference>                             (requested / erased / held)
#
# The reference is the one in the sealed text ("sealed:v1:<reference>:…"), which reports and
# auditors' queries show next to the record. Each person proves who they are with their password
# (prompted, or --password-stdin). The approval destroys the key (madoguchi_shared.sealed) and
# publishes admin.text_erased: who asked, who approved, when, why — never the text.


class ErasureRefused(Exception):
    """A clear Japanese reason (exit code 1)."""


async def _who(js: JetStreamContext, municipality: str, staff_id: str, password: str, role: str) -> Actor:
    from madoguchi_shared import auth
    from madoguchi_shared.events import Actor, Role

    record, reason = await auth.authenticate(js, municipality, staff_id, password)
    if record is None:
        raise ErasureRefused(
            f"職員 {staff_id} を確認できませんでした（{ {'unknown_staff': '未登録', 'bad_password': 'パスワード不一致', 'disabled': '無効'}.get(reason, reason) }）。"
        )
    if role not in record["roles"]:
        label = {"manager": "管理者（マネージャー）", "auditor": "監査担当"}[role]
        raise ErasureRefused(f"職員 {staff_id} には{label}の役割がありません。")
    return Actor(id=staff_id, role=Role(role))


async def _text_history(nc: NATS, municipality: str, ref: UUID) -> tuple[Loaded, int]:
    from madoguchi_shared import bus, subjects

    subject = subjects.aggregate_subject("admin", municipality, "text", str(ref))
    stored = await bus.load(nc, subject)
    return stored, stored.last_seq


async def request_erasure(
    nc: NATS, municipality: str, ref: UUID, staff_id: str, password: str, reason: str
) -> TextErasureRequested:
    from madoguchi_shared import bus
    from madoguchi_shared.events.admin import TextErasureRequested
    from madoguchi_shared.nats_typed import jetstream
    from madoguchi_shared.sealed import TextVault

    js = jetstream(nc)
    actor = await _who(js, municipality, staff_id, password, "manager")
    event = TextErasureRequested(municipality=municipality, text_ref=ref, reason=reason, actor=actor)
    stored, _ = await _text_history(nc, municipality, ref)
    if any(s.event.type == "admin.text_erased" for s in stored):
        raise ErasureRefused("この記述はすでに消去されています。")
    if stored:
        raise ErasureRefused("この記述の消去はすでに申請されています。監査担当の承認を待っています。")
    if not await TextVault(js).holds(municipality, ref):
        raise ErasureRefused(
            "この参照の暗号化された記述は見つかりません（参照の誤り、または暗号化前の記述で消去できません）。"
        )
    try:
        await bus.append(js, event, 0)
    except bus.ConcurrencyConflict:
        raise ErasureRefused("この記述の消去はすでに申請されています。") from None
    return event


async def approve_erasure(nc: NATS, municipality: str, ref: UUID, staff_id: str, password: str) -> TextErased:
    from madoguchi_shared import bus
    from madoguchi_shared.events.admin import TextErased, TextErasureRequested
    from madoguchi_shared.nats_typed import jetstream
    from madoguchi_shared.sealed import TextVault

    js = jetstream(nc)
    actor = await _who(js, municipality, staff_id, password, "auditor")
    stored, seq = await _text_history(nc, municipality, ref)
    if any(s.event.type == "admin.text_erased" for s in stored):
        raise ErasureRefused("この記述はすでに消去されています。")
    requests = [s.event for s in stored if isinstance(s.event, TextErasureRequested)]
    if not requests:
        raise ErasureRefused("この参照への消去申請がありません。先に管理者が申請してください。")
    request = requests[-1]
    if request.actor.id == staff_id:
        raise ErasureRefused("申請した本人は承認できません。別の職員（監査担当）が承認してください。")
    event = TextErased(
        municipality=municipality,
        text_ref=ref,
        requested_by=request.actor.id,
        requested_at=request.occurred_at,
        reason=request.reason,
        actor=actor,
        causation_id=request.event_id,
        correlation_id=request.correlation_id or request.event_id,
    )
    await TextVault(js).erase(municipality, ref)  # the key first: a crash before the record leaves it erased
    try:
        await bus.append(js, event, seq)
    except bus.ConcurrencyConflict:
        raise ErasureRefused("同時に別の操作がありました。状態を確認してください。") from None
    return event


def _password(staff_id: str, stdin: bool) -> str:
    import getpass
    import sys

    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(f"{staff_id} のパスワード: ")


def _run_erasure(fn: Callable[..., Awaitable[T]], ref: str, municipality: str | None, *args: str) -> T:
    from uuid import UUID

    from madoguchi_shared import bus

    settings = Settings()
    m = municipality or settings.municipality
    try:
        text_ref = UUID(ref.removeprefix("sealed:v1:").split(":")[0])
    except ValueError:
        raise typer.BadParameter("参照（UUID）を指定してください") from None

    async def go() -> T:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-privacy")
        try:
            return await fn(nc, m, text_ref, *args)
        finally:
            await nc.drain()

    try:
        return asyncio.run(go())
    except ErasureRefused as exc:
        typer.echo(f"できません: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def erase(
    reference: Annotated[str, typer.Argument(help="the text's reference (UUID)")],
    staff: Annotated[str, typer.Option("--staff", help="the requesting manager's staff id")],
    reason: Annotated[str, typer.Option("--reason", help="why (no personal data)")],
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """A manager requests the erasure of one free text (an auditor must approve)."""
    event = _run_erasure(request_erasure, reference, municipality, staff, _password(staff, password_stdin), reason)
    typer.echo(f"消去を申請しました（参照 {event.text_ref}）。監査担当の承認で鍵が破棄されます。")


@app.command()
def approve(
    reference: Annotated[str, typer.Argument(help="the text's reference (UUID)")],
    staff: Annotated[str, typer.Option("--staff", help="the approving auditor's staff id")],
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """An auditor approves a requested erasure: the key is destroyed and a redaction event published."""
    event = _run_erasure(approve_erasure, reference, municipality, staff, _password(staff, password_stdin))
    typer.echo(
        f"消去しました（参照 {event.text_ref}）。鍵を破棄し、記録は「削除済み」と表示されます。"
        f"申請 {event.requested_by}、承認 {event.actor.id}。"
    )
