"""Client command ids (`Idempotency-Key`) at headquarters: a command sent again is answered, not decided again.

The console gives every form a command id and sends `Idempotency-Key: <id>-<n>` with each POST, so a
form sent twice (a double click, a retry after a dropped answer) makes one ticket, one visit, one call.
The desk edge keeps its own journal (services/desk/EDGE.md); the HQ desk and calls services ignored the
header, and a repeated 発券 counted a visitor twice (REP-5). Here the first answer is kept in a JetStream
key-value bucket (shared by every worker process and replica) for a day, keyed by a hash of the caller's
credential, the path and the key, so one caller never sees another's answer:

* no entry: a "pending" marker is created (atomically: a concurrent repeat sees it), the command runs,
  and its answer replaces the marker when it succeeded (2xx: something was decided and stored). A
  refusal (4xx) or a failure (5xx) removes it: nothing was decided, so the same command is decided
  again when sent again — the console's command id is the same for a re-rendered unchanged screen,
  and a check-in refused for missing training must succeed once the training is recorded (as the
  desk edge's journal, which keeps answers with the events they made);
* an answer: sent back as it was, with `Idempotent-Replayed: true`;
* a marker: 409 (the first is still being handled, or its answer was lost with its process: the screen
  shows what was stored).

With the bus out of reach the bucket is too: the command runs unkeyed (it then meets the same outage).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from nats.js import api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from madoguchi_shared.logging import get_logger
from madoguchi_shared.nats_typed import create_key_value

log = get_logger(__name__)

BUCKET = "mg_command_ids"
TTL_SECONDS = 24 * 3600
KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PENDING = b'{"pending":true}'
# answers never kept: logins and staff administration (tokens, temporary passwords)
UNKEPT = ("/v1/auth", "/v1/staff")
MAX_KEPT = 256 * 1024  # a larger answer is not kept: its repeat is refused (409) instead


def _problem(status: int, title: str, detail: str) -> bytes:
    return json.dumps({"title": title, "status": status, "detail": detail}, ensure_ascii=False).encode()


class CommandIds:
    """ASGI middleware of the HQ command services (desk, calls); `app.state.js` is the bus."""

    def __init__(self, app: ASGIApp, state: Any, replicas: int = 1) -> None:
        self.app = app
        self.state = state
        self.replicas = replicas
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        kv = self._kv
        if kv is None:
            js = self.state.js
            try:
                kv = await js.key_value(BUCKET)
            except BucketNotFoundError:
                kv = await create_key_value(
                    js, api.KeyValueConfig(bucket=BUCKET, history=1, ttl=TTL_SECONDS, replicas=self.replicas)
                )
            self._kv = kv
        return kv

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].startswith(UNKEPT):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        raw = headers.get(b"idempotency-key")
        if raw is None:
            return await self.app(scope, receive, send)
        key = raw.decode("latin-1")
        if not KEY.match(key):
            detail = "Idempotency-Key は8～64文字の英数字・ハイフン・下線で指定してください。"
            return await _answer(send, 422, _problem(422, "入力内容に誤りがあります", detail), replayed=False)
        caller = headers.get(b"authorization", b"")
        digest = hashlib.sha256(b"\0".join((caller, scope["path"].encode(), raw))).hexdigest()
        try:
            kv = await self._bucket()
            try:
                entry = await kv.get(digest)
            except KeyNotFoundError:
                entry = None
            if entry is None or not entry.value:
                await kv.create(digest, PENDING)
            else:
                return await self._repeat(send, entry.value)
        except KeyWrongLastSequenceError:  # a concurrent repeat created the marker first
            return await self._repeat(send, PENDING)
        except Exception as exc:  # noqa: BLE001 - the bus out of reach: the command runs unkeyed
            log.warning("command_ids.unavailable", error_type=type(exc).__name__)
            return await self.app(scope, receive, send)

        status = 500
        content_type = b"application/json"
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await self._keep(kv, digest, status, content_type, b"".join(body))

    async def _keep(self, kv: KeyValue, digest: str, status: int, content_type: bytes, body: bytes) -> None:
        try:
            if not 200 <= status < 300:
                await kv.delete(digest)  # refused or failed: nothing was decided, it may be decided again
                return
            kept = body if len(body) <= MAX_KEPT else None
            record = {"status": status, "content_type": content_type.decode("latin-1"), "at": time.time()}
            if kept is not None:
                record["body"] = kept.decode("utf-8", "replace")
            await kv.put(digest, json.dumps(record, ensure_ascii=False).encode())
        except Exception as exc:  # noqa: BLE001 - the answer went out; its repeat meets the marker (409)
            log.warning("command_ids.not_kept", error_type=type(exc).__name__)

    async def _repeat(self, send: Send, value: bytes) -> None:
        record = json.loads(value)
        if record.get("pending") or "body" not in record:
            detail = (
                "同じ操作を受け付け中か、その結果を確認できません。二重の登録を防ぐため実行しませんでした。"
                "画面を更新して、登録されているかを確認してください。"
            )
            return await _answer(send, 409, _problem(409, "現在の状態では実行できません", detail), replayed=True)
        return await _answer(
            send, record["status"], record["body"].encode(), replayed=True, content_type=record["content_type"]
        )


async def _answer(send: Send, status: int, body: bytes, *, replayed: bool, content_type: str | None = None) -> None:
    kind = content_type or ("application/json" if status < 400 else "application/problem+json")
    headers = [(b"content-type", kind.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
