"""The dead-letter stream (MG_DLQ): sending a dead letter with its reason and HQ alert, and
`madoguchi dlq list | show | replay` for operators.

    madoguchi dlq list [--consumer reporting-desk]     every dead letter: consumer, where it came from, why
    madoguchi dlq show reporting-desk 4711              one dead letter, its payload redacted
    madoguchi dlq replay reporting-desk 4711            ask the projection to apply it again (after a fix)

A dead letter may hold exactly what the system refused to store (personal data in a free text):
`show` prints the payload's shape, never its strings. A string is shown only when it is an id,
a code, a UUID or a time AND the PII guard finds nothing in it; numbers of nine digits or more
are hidden too (a My Number, a phone number). The reason header never echoes content (see
describe_error).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import asyncpg
import typer
from nats.aio.client import Client as NATS
from pydantic import ValidationError

from madoguchi_shared import bus, subjects
from madoguchi_shared.events import Event
from madoguchi_shared.logging import get_logger, redacted
from madoguchi_shared.narrow import is_dict, is_list
from madoguchi_shared.nats_typed import jetstream
from madoguchi_shared.pii import find_personal_data
from madoguchi_shared.reader import StoredMessage, read_all
from madoguchi_shared.settings import Settings

if TYPE_CHECKING:
    from madoguchi_shared.events.audit import AlertRaised

log = get_logger(__name__)


def describe_error(exc: BaseException) -> str:
    """A reason that never echoes the message's content (it may hold text we refused to store): validation errors
    without their input, and any other error's text read by the PII guard, what it flags replaced by [redacted]
    (a projection's own ValueError quoting a field: 「unknown desk 鰐淵 はなこ様」)."""
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:10]]
        return redacted(("ValidationError: " + "; ".join(parts))[:2000])
    if isinstance(exc, asyncpg.PostgresError):
        return redacted(
            f"{type(exc).__name__} ({getattr(exc, 'sqlstate', '')}): {exc.args[0] if exc.args else ''}"[:500]
        )
    return redacted(f"{type(exc).__name__}: {exc}"[:500])


ALERT_RULE = "projection_dead_letter"
_ALERT_NS = uuid.UUID("2f5d7c1e-8a4b-4e0f-9d3c-5b6a7e8f9012")


async def dead_letter(nc: NATS, consumer: str, subject: str, seq: int, data: bytes, exc: BaseException) -> None:
    """Publish a message that could not be read or applied to mg.dlq.<consumer>, with the reason (deduplicated)."""
    reason = describe_error(exc)
    headers = {
        "Nats-Msg-Id": f"{consumer}:{seq}",
        "Mg-Reason": reason.replace("\n", " ").replace("\r", " "),
        "Mg-Original-Subject": subject,
        "Mg-Original-Seq": str(seq),
        "Mg-Dead-At": str(time.time()),
    }
    await jetstream(nc).publish(subjects.dlq_subject(consumer), data, headers=headers)
    log.warning("projection.dead_letter", consumer=consumer, subject=subject, seq=seq, reason=reason[:200])


async def raise_alert(nc: NATS, consumer: str, msg: StoredMessage, event: Event | None, reason: str) -> None:
    """An HQ alert (SEC-2 console) for one dead letter; idempotent (the alert id comes from consumer and seq)."""
    from madoguchi_shared.events.audit import AlertRaised

    if event is not None:
        municipality = event.municipality
    else:
        tokens = msg.subject.split(".")
        municipality = tokens[2] if len(tokens) > 2 and subjects.MUNICIPALITY.match(tokens[2]) else None
    if municipality is None:
        return  # a message on no municipality's subject: the dead letter and the log say it all
    kind = reason.split(":", 1)[0].split(" ", 1)[0][:60]
    try:
        alert = _alert(AlertRaised, consumer, msg, event, municipality, kind)
    except ValidationError as exc:  # never let the alert's own text stop the projection
        log.error("projection.alert_refused", consumer=consumer, seq=msg.seq, error=describe_error(exc)[:300])
        return
    try:
        await bus.append(jetstream(nc), alert, expected=0)
    except bus.ConcurrencyConflict:
        pass  # raised before (a retried batch)


def _alert(
    cls: type[AlertRaised], consumer: str, msg: StoredMessage, event: Event | None, municipality: str, kind: str
) -> AlertRaised:
    return cls(
        municipality=municipality,
        ward=event.ward if event else None,
        desk=event.desk if event else None,
        alert_id=str(uuid.uuid5(_ALERT_NS, f"{consumer}:{msg.stream}:{msg.seq}")),
        rule=ALERT_RULE,
        severity="warning",
        title="集計に反映できないイベントがあります",
        message=(
            f"集計処理 {consumer} が {msg.stream} の {msg.seq} 番のイベントを反映できず、"
            f"デッドレターに移しました（{kind}）。他のイベントの集計は続いています。"
            f"`madoguchi dlq show {consumer} {msg.seq}` で確認し、修正後に replay してください。"
        )[:400],
        source_event_ids=(event.event_id,) if event is not None else (),
        about=consumer[:64],
    )


app = typer.Typer(
    help="デッドレター（処理できなかったイベント）の確認と再処理 / the dead-letter stream.", no_args_is_help=True
)

_SAFE = re.compile(r"^(?:[A-Za-z0-9_.:+-]{1,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
HIDDEN = "＜非表示＞"


def redact(value: Any) -> Any:
    """The payload's shape with only values that cannot be personal data."""
    if is_dict(value):
        return {str(k)[:64]: redact(v) for k, v in value.items()}
    if is_list(value):
        return [redact(v) for v in value[:50]]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if abs(value) < 100_000_000 else f"{HIDDEN}（数値 {len(str(int(abs(value))))} 桁）"
    if isinstance(value, str):
        if _SAFE.match(value) and not find_personal_data(value):
            return value
        return f"{HIDDEN}（文字列 {len(value)} 文字）"
    return f"{HIDDEN}（{type(value).__name__}）"


def redacted_payload(data: bytes) -> Any:
    try:
        return redact(json.loads(data))
    except (ValueError, UnicodeDecodeError):
        return f"{HIDDEN}（JSON ではないデータ {len(data)} バイト）"


def describe(m: StoredMessage) -> dict[str, Any]:
    h = m.headers or {}
    at = h.get("Mg-Dead-At")
    return {
        "dlq_seq": m.seq,
        "consumer": m.subject.split(".", 2)[2],
        "original_subject": h.get("Mg-Original-Subject", ""),
        "original_seq": int(h["Mg-Original-Seq"]) if h.get("Mg-Original-Seq", "").isdigit() else None,
        "dead_at": dt.datetime.fromtimestamp(float(at), dt.UTC).isoformat(timespec="seconds") if at else None,
        "reason": h.get("Mg-Reason", ""),
    }


async def list_dead(nc: NATS, consumer: str | None = None) -> list[dict[str, Any]]:
    flt = subjects.dlq_subject(consumer) if consumer else subjects.DLQ_FILTER
    return [describe(m) async for m in read_all(nc, flt, stream="MG_DLQ", timeout=2.0)]


async def find(nc: NATS, consumer: str, original_seq: int) -> StoredMessage | None:
    found = None
    async for m in read_all(nc, subjects.dlq_subject(consumer), stream="MG_DLQ", timeout=2.0):
        if (m.headers or {}).get("Mg-Original-Seq") == str(original_seq):
            found = m  # the latest copy
    return found


async def request_replay(nc: NATS, consumer: str, original_seq: int) -> int:
    ack = await jetstream(nc).publish(subjects.dlq_replay_subject(consumer), json.dumps({"seq": original_seq}).encode())
    return ack.seq


T = TypeVar("T")


def _run(coro_fn: Callable[[NATS], Awaitable[T]]) -> T:
    from madoguchi_shared import bus

    settings = Settings()

    async def go() -> T:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-dlq")
        try:
            return await coro_fn(nc)
        finally:
            await nc.drain()

    return asyncio.run(go())


Consumer = Annotated[str, typer.Argument(help="consumer (projection) name, e.g. reporting-desk")]
Seq = Annotated[int, typer.Argument(help="the original stream sequence of the dead letter")]


@app.command("list")
def list_cmd(
    consumer: Annotated[str | None, typer.Option(help="only this consumer")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """デッドレターの一覧 / list dead letters."""
    rows = _run(lambda nc: list_dead(nc, consumer))
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        typer.echo("デッドレターはありません。")
        return
    typer.echo(f"{'処理名':<24} {'元の番号':>9} {'日時 (UTC)':<26} {'元のサブジェクト':<44} 理由")
    for r in rows:
        typer.echo(
            f"{r['consumer']:<24} {r['original_seq'] or '':>9} {r['dead_at'] or '':<26} "
            f"{r['original_subject'][:44]:<44} {r['reason'][:120]}"
        )
    typer.echo(f"{len(rows)} 件")


@app.command("show")
def show_cmd(consumer: Consumer, seq: Seq) -> None:
    """デッドレター1件（個人情報になりうる値は表示しません）/ one dead letter, redacted."""
    m = _run(lambda nc: find(nc, consumer, seq))
    if m is None:
        typer.echo(f"{consumer} の {seq} 番のデッドレターは見つかりません。", err=True)
        raise typer.Exit(1)
    out = describe(m)
    out["payload"] = redacted_payload(m.data)
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@app.command("replay")
def replay_cmd(consumer: Consumer, seq: Seq) -> None:
    """修正後に再処理を依頼します / ask the consumer to apply the dead letter again."""

    async def go(nc: NATS) -> int | None:
        if await find(nc, consumer, seq) is None:
            return None
        return await request_replay(nc, consumer, seq)

    if _run(go) is None:
        typer.echo(f"{consumer} の {seq} 番のデッドレターは見つかりません。", err=True)
        raise typer.Exit(1)
    typer.echo(f"{consumer} に {seq} 番の再処理を依頼しました（次の待機時に反映されます）。")


__all__ = [
    "describe_error",
    "ALERT_RULE",
    "dead_letter",
    "raise_alert",
    "app",
    "redact",
    "redacted_payload",
    "list_dead",
    "find",
    "request_replay",
]
