"""The writer's fail-closed checks (SEC-2): on start and after every failure, the stored log must follow from the
last checkpoint the log's keys signed (read back from the stream and the file, never from the database) and from
what this process committed; rows missing, a moved chain_head, a broken link or a rewritten column since that
checkpoint, or a per-stream position that no record backs stop the writer for good, with an urgent HQ alert and no
signature over it."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from madoguchi_shared import bus, db, subjects
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.audit import AlertRaised, CheckpointSigned
from madoguchi_shared.logging import get_logger

from madoguchi_audit import alerts, chain, checkpoints, keys
from madoguchi_audit.config import AuditSettings
from madoguchi_audit.schema import WRITER

log = get_logger(__name__)


def _q(schema: str, table: str) -> str:
    return f'"{schema}".{table}'


class Tampered(Exception):
    """The stored log does not follow from what the writer signed or wrote: stop, alert, never sign."""

    def __init__(self, detail: str, ja: str):
        super().__init__(detail)
        self.detail = detail
        self.ja = ja  # the reason in Japanese, for the HQ alert (no personal data: positions and names)


KEY_ALERT = (
    "監査ログの署名鍵が信頼されていません",
    "署名鍵ファイルの鍵は `madoguchi audit init` で導入された鍵でも、`madoguchi audit rotate-key` で"
    "引き継がれた鍵でもないため、チェックポイントへの署名と監査ログの書き込みを停止しました。"
    "無断で置き換えられた場合はインシデントとして扱い、正規の鍵をバックアップから戻してサービスを再起動してください。"
    "鍵を変更する場合は、正規の鍵を戻してから `madoguchi audit rotate-key` を実行してください。",
)


async def raise_alert(
    js: JetStreamContext, settings: AuditSettings, kind: str, about: str, texts: tuple[str, str]
) -> None:
    """The urgent HQ alert of a writer that stopped for good (tampering, an untrusted key)."""
    title, message = texts
    municipality = settings.municipality
    about_id = alerts.about_key(settings.log_id, about, kind, alerts.stamp(datetime.now(UTC)))
    event = AlertRaised(
        municipality=municipality,
        actor=checkpoints.SERVICE_ACTOR,
        alert_id=alerts.alert_id_for(municipality, f"audit_{kind}", about_id),
        rule=f"audit_{kind}",
        severity="urgent",
        title=title,
        message=message,
        about=about_id,
    )
    try:
        await bus.append(js, event, expected=0)
    except Exception as exc:  # noqa: BLE001 - the log line above still says it
        log.error("audit.alert_failed", error=str(exc))


async def last_signed(nc: NATS, js: JetStreamContext, settings: AuditSettings) -> CheckpointSigned | None:
    """The newest checkpoint this log's trusted keys signed, from the stream and the file (not the database)."""
    ring = keys.build_chain((await keys.stream_statements(nc, settings))[0], settings.log_id).ring
    found: list[CheckpointSigned] = []
    subject = subjects.aggregate_subject("audit", settings.municipality, "checkpoint", settings.log_id)
    try:
        msg = await js.get_last_msg(bus.stream_for(subject), subject, direct=True)
        event = parse_event(msg.data) if msg.data is not None else None
        if isinstance(event, CheckpointSigned):
            found.append(event)
    except NotFoundError:
        pass
    path = settings.resolved_checkpoint_file
    found += checkpoints.read_file(path, settings.log_id, settings.municipality)[-1:]
    good = [cp for cp in found if checkpoints.signature_ok(cp, ring)]
    bad = [cp for cp in found if cp not in good]
    if bad:
        raise Tampered(
            f"a copy of the last checkpoint ({bad[0].position}) does not carry a valid signature",
            f"最後のチェックポイント（位置 {bad[0].position}）の署名を検証できません",
        )
    return max(good, key=lambda cp: cp.position, default=None)


async def check_head(
    conn: db.Connection, schema: str, log_id: str, signed: CheckpointSigned | None, committed: tuple[int, bytes] | None
) -> None:
    """Fail closed: the stored log must follow from the last checkpoint this log's keys signed (`signed`, read from
    the stream and the file) and from what this writer committed (`committed`); raises Tampered when it does not."""
    anchors: list[tuple[int, bytes, str]] = []
    if signed is not None:
        anchors.append((signed.position, bytes.fromhex(signed.head), "signed checkpoint"))
    if committed is not None:
        anchors.append((*committed, "record this writer committed"))
    log_t, head_t, seq_t = _q(schema, "log"), _q(schema, "chain_head"), _q(schema, "ingest_checkpoint")
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL ROLE {WRITER}")
        last = await conn.fetchrow(f"SELECT position, hash FROM {log_t} ORDER BY position DESC LIMIT 1")
        end, end_hash = (last["position"], bytes(last["hash"])) if last else (0, chain.GENESIS)
        head = await conn.fetchrow(f"SELECT position, hash FROM {head_t} WHERE log_id = $1", log_id)
        if head is not None and (head["position"], bytes(head["hash"])) != (end, end_hash):
            raise Tampered(
                f"chain_head says {head['position']} but the log's last record is {end}",
                f"chain_head（位置 {head['position']}）が最後の記録（位置 {end}）を指していません",
            )
        start, prev = 0, chain.GENESIS
        for position, digest, what in anchors:
            archived = await conn.fetchval(
                f"SELECT checkpoint_head FROM {_q(schema, 'archive')} WHERE verified AND deleted_at IS NOT NULL "
                "AND to_position = $1",
                position,
            )
            if archived is not None and bytes(archived) == digest and (end == 0 or end >= position):
                if position > start:  # retention deleted the range this checkpoint closes: the archive vouches
                    start, prev = position, digest
                continue
            if end < position:
                raise Tampered(
                    f"the log ends at {end} but the {what} is at {position}: records were removed",
                    f"記録が削除されています（ログは位置 {end} で終わり、位置 {position} まで記録済み）",
                )
            stored = await conn.fetchval(f"SELECT hash FROM {log_t} WHERE position = $1", position)
            if stored is None or bytes(stored) != digest:
                raise Tampered(
                    f"the record at {position} is not the {what}",
                    f"位置 {position} の記録が署名・記録済みの内容と一致しません",
                )
            if position > start:
                start, prev = position, digest
        # Every record after the anchor links to the one before it.
        rows = await conn.fetch(
            f"SELECT position, prev_hash, {chain.HEADER_SQL} AS header, data, hash, stream, stream_seq, subject "
            f"FROM {log_t} WHERE position > $1 ORDER BY position",
            start,
        )
        expected = start + 1
        for r in rows:
            if (
                r["position"] != expected
                or bytes(r["prev_hash"]) != prev
                or chain.link(prev, bytes(r["header"]), bytes(r["data"])) != bytes(r["hash"])
            ):
                raise Tampered(
                    f"the records after {start} do not follow from it (first at {expected})",
                    f"位置 {start} 以降の記録の連鎖が途切れています（位置 {expected}）",
                )
            # nothing signed vouches for these yet: a column rewritten with the chain recomputed still links,
            # so each record's envelope is derived again from its bytes, as this writer derived it
            derived = chain.header(r["stream"], r["stream_seq"], r["subject"], chain.envelope(bytes(r["data"])))
            if derived != bytes(r["header"]):
                raise Tampered(
                    f"the envelope columns of the record at {r['position']} differ from its bytes",
                    f"位置 {r['position']} の記録の列が記録内容と一致しません",
                )
            prev = bytes(r["hash"])
            expected += 1
        # Every stream position the writer stored is backed by its record: the one at the position stored with it
        # (schema.STREAM_POSITION_SQL) is of that stream and sequence. A tail cut (chain_head moved back), a
        # record deleted and the rest renumbered, or the stream's last record edited away: not there.
        for r in await conn.fetch(f"SELECT stream, last_seq, last_position FROM {seq_t}"):
            at = r["last_position"]
            top = None
            if at is not None:
                top = await conn.fetchrow(f"SELECT stream, stream_seq FROM {log_t} WHERE position = $1", at)
            if top is None or (top["stream"], top["stream_seq"]) != (r["stream"], r["last_seq"]):
                found = f"{top['stream']} seq {top['stream_seq']}" if top is not None else "none"
                raise Tampered(
                    f"{r['stream']} is stored as read to {r['last_seq']} at position {at} but the record there is "
                    f"{found}: records were removed",
                    f"{r['stream']} の記録が削除されています（読込位置 {r['last_seq']}、位置 {at} の記録がありません）",
                )
