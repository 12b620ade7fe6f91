"""Erasable free text (crypto-shredding, ARCHITECTURE rule 5; issue 14).

What a person writes into an opinion, an escalation summary or outcome, or a call/callback note
is published SEALED: the event carries ``sealed:v1:<ref>:<nonce+ciphertext, base64url>`` and
nothing else of the text. The 256-bit AES-GCM key of each text lives outside the event log, in
the JetStream stream ``MG_TEXT_KEYS`` (subject ``mg_textkey.<municipality>.<ref>``; not a log of
record: delete allowed), and the associated data binds the ciphertext to its municipality and
reference. Streams of record,
projections and the audit chain therefore only ever hold ciphertext and a reference: their hashes
and proofs do not depend on whether the key still exists.

Reading is DECRYPT-AT-READ: projections copy the sealed string as it is; a report or a screen
calls `TextVault.reveal` when it is built. After `erase` the key is gone, and every report,
screen and rebuilt projection shows 「削除済み」 — no projection is rewritten, nothing is
removed from a stream.

Erasure deletes the key's message with JetStream's default secure erase (the stored bytes are
overwritten, not only unlinked) and leaves an empty tombstone, so the reference reads as erased.

Existing events (written before sealing) hold the text as a plain string. They stay readable with
no migration: the field type accepts a plain string as a "version 0" text, still screened by the
PII guard, and `reveal` returns it unchanged (an upcast on read). Such a legacy text cannot be
shredded (there is no key, and the streams deny delete); `madoguchi privacy erase` refuses it and
says so.
"""

from __future__ import annotations

import base64
import functools
import os
import re
from typing import Annotated, Any, TypeGuard
from uuid import UUID, uuid4

from pydantic import BaseModel, GetCoreSchemaHandler, StringConstraints
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from madoguchi_shared.narrow import is_dict, is_list, is_sequence
from madoguchi_shared.pii import _refuse, _screen  # pyright: ignore[reportPrivateUsage] - the PII guard's own validators, run by the erasable field type too

BUCKET = "MG_TEXT_KEYS"  # the stream holding the keys
ERASED_JA = "削除済み"
UNREADABLE_JA = "（読み取れません）"
PLAIN_MAX = 2000  # characters of the text itself (as FreeText)
SEALED_MAX = 4 * PLAIN_MAX * 3 // 3 + 200  # UTF-8 up to 3 bytes a character, base64 4/3, and the prefix

_ENVELOPE = re.compile(
    r"^sealed:v1:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([A-Za-z0-9_-]{38,}={0,2})$"
)


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and _ENVELOPE.match(value) is not None


def ref_of(value: object) -> UUID | None:
    m = _ENVELOPE.match(value) if isinstance(value, str) else None
    return UUID(m.group(1)) if m else None


def _aad(municipality: str, ref: UUID) -> bytes:
    return b"madoguchi-text-v1|" + municipality.encode() + b"|" + ref.bytes


SUBJECT = "mg_textkey"


def _subject(municipality: str, ref: UUID) -> str:
    return f"{SUBJECT}.{municipality}.{ref}"


# --------------------------------------------------------------------------------------------
# The field type
# --------------------------------------------------------------------------------------------


def _screen_erasable(value: Any) -> Any:
    if is_sealed(value):
        return value
    screened = _screen(value)
    if isinstance(screened, str) and screened is value and len(value) > PLAIN_MAX:
        raise PydanticCustomError(
            "string_too_long", "String should have at most {max_length} characters", {"max_length": PLAIN_MAX}
        )
    return screened


class _Erasable:
    """Annotated marker: a sealed text, or a plain one (legacy, or before the service seals it)
    that passes the PII guard. `seal_event` finds the fields to seal by this marker."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = handler(source)
        return core_schema.chain_schema(
            [
                core_schema.no_info_plain_validator_function(_screen_erasable, json_schema_input_schema=inner),
                core_schema.no_info_plain_validator_function(_refuse),
                inner,
            ]
        )

    def __repr__(self) -> str:
        return "Erasable()"


ERASABLE = _Erasable()
ErasableText = Annotated[str, StringConstraints(max_length=SEALED_MAX), ERASABLE]


@functools.cache
def _erasable_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, f in model.model_fields.items()
        if any(m is ERASABLE for m in f.metadata) or any(a is ERASABLE for a in _flatten(f.annotation))
    )


@functools.cache
def _may_hold_text(model: type[BaseModel]) -> bool:
    """Whether a model (or a model inside it) has an erasable field: most events have none."""
    if _erasable_fields(model):
        return True
    for f in model.model_fields.values():
        for arg in _flatten(f.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg is not model and _may_hold_text(arg):
                return True
    return False


def _models(value: object) -> TypeGuard[tuple[BaseModel, ...]]:
    """A non-empty tuple of models (value objects inside an event)."""
    if not (is_sequence(value) and isinstance(value, tuple)):
        return False
    return bool(value) and all(isinstance(v, BaseModel) for v in value)


def _flatten(annotation: Any) -> list[Any]:
    import typing

    out: list[Any] = []
    todo: list[Any] = [annotation]
    while todo:
        a = todo.pop()
        out.append(a)
        todo.extend(typing.get_args(a))
    return out


# --------------------------------------------------------------------------------------------
# The vault
# --------------------------------------------------------------------------------------------


class TextVault:
    """Seal, reveal and erase free text; keys in the `MG_TEXT_KEYS` stream (see module doc)."""

    def __init__(self, js: Any, replicas: int = 1):
        self.js = js
        self.replicas = replicas
        self._ready = False

    async def _stream(self) -> None:
        if self._ready:
            return
        from nats.js.errors import NotFoundError

        try:
            await self.js.stream_info(BUCKET)
        except NotFoundError:
            try:
                await self.js.add_stream(
                    name=BUCKET,
                    subjects=[f"{SUBJECT}.>"],
                    allow_direct=True,
                    deny_delete=False,
                    deny_purge=False,
                    num_replicas=self.replicas,
                    description="keys of sealed free text (crypto-shredding); not a log of record",
                )
            except Exception:  # noqa: BLE001 - another process made it at the same moment
                await self.js.stream_info(BUCKET)
        self._ready = True

    async def ensure(self) -> None:
        """Make the key stream now (a service at start), for writers that may not create streams
        (a desk edge on a laptop seals with a credential limited to its own keys)."""
        await self._stream()

    async def seal(self, municipality: str, text: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        await self._stream()
        ref = uuid4()
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, text.encode(), _aad(municipality, ref))
        from madoguchi_shared import bus

        await bus.publish_new(self.js, _subject(municipality, ref), key, stream=BUCKET, msg_id=f"key-{ref}")
        del key
        return f"sealed:v1:{ref}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    async def _last(self, municipality: str, ref: UUID):
        from nats.js.errors import NotFoundError

        await self._stream()
        try:
            return await self.js.get_last_msg(BUCKET, _subject(municipality, ref), direct=True)
        except NotFoundError:
            return None

    async def _key(self, municipality: str, ref: UUID) -> bytes | None:
        msg = await self._last(municipality, ref)
        return bytes(msg.data) if msg is not None and msg.data else None  # empty: the erasure's tombstone

    async def reveal(self, municipality: str, value: str | None) -> str | None:
        """The text to show: a plain (legacy) text as it is, a sealed one decrypted, 「削除済み」 when
        its key was erased."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        for _ in range(3):  # a sealed text that was copied and sealed again opens layer by layer
            m = _ENVELOPE.match(value) if isinstance(value, str) else None
            if m is None:
                return value
            ref = UUID(m.group(1))
            key = await self._key(municipality, ref)
            if key is None:
                return ERASED_JA
            blob = base64.urlsafe_b64decode(m.group(2))
            try:
                value = AESGCM(key).decrypt(blob[:12], blob[12:], _aad(municipality, ref)).decode()
            except (InvalidTag, ValueError):
                return UNREADABLE_JA
        return value

    async def holds(self, municipality: str, ref: UUID) -> bool:
        return await self._key(municipality, ref) is not None

    async def erase(self, municipality: str, ref: UUID) -> bool:
        """Destroy the key of `ref`: its stored message deleted with JetStream's secure erase (the
        bytes overwritten), then an empty tombstone, so the reference reads as erased; True if it existed."""
        msg = await self._last(municipality, ref)
        if msg is None or not msg.data:
            return False
        await self.js.delete_msg(BUCKET, msg.seq)  # no_erase is false: the stored bytes are overwritten
        await self.js.publish(_subject(municipality, ref), b"", stream=BUCKET, headers={"Madoguchi-Erased": "1"})
        return True

    async def seal_model(self, municipality: str, model: BaseModel) -> BaseModel:
        """A copy of `model` (an event, or a value inside one) with every erasable text sealed."""
        if not _may_hold_text(type(model)):
            return model
        changes: dict[str, Any] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name in _erasable_fields(type(model)):
                if isinstance(value, str) and not (
                    is_sealed(value) and (ref := ref_of(value)) is not None and await self.holds(municipality, ref)
                ):
                    changes[name] = await self.seal(municipality, value)
            elif isinstance(value, BaseModel):
                sealed = await self.seal_model(municipality, value)
                if sealed is not value:
                    changes[name] = sealed
            elif _models(value):
                items = tuple([await self.seal_model(municipality, v) for v in value])
                if any(a is not b for a, b in zip(items, value, strict=True)):
                    changes[name] = items
        return model.model_copy(update=changes) if changes else model

    async def seal_event(self, event: Any) -> Any:
        return await self.seal_model(event.municipality, event)

    async def reveal_tree(self, municipality: str, value: Any) -> Any:
        """Every sealed text anywhere in a JSON-like value (an event's dump) revealed; a new value."""
        if isinstance(value, str):
            return await self.reveal(municipality, value) if is_sealed(value) else value
        if is_list(value):
            return [await self.reveal_tree(municipality, v) for v in value]
        if is_dict(value):
            return {k: await self.reveal_tree(municipality, v) for k, v in value.items()}
        return value

    async def reveal_all(self, municipality: str, rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
        """Rows (dicts) with the given fields revealed, in place; returns the rows."""
        for row in rows:
            for name in fields:
                if row.get(name):
                    row[name] = await self.reveal(municipality, row[name])
        return rows


# --------------------------------------------------------------------------------------------
# The process's vault, for read sides that build reports and screens (set by the service app)
# --------------------------------------------------------------------------------------------

_vaults: list[TextVault] = []
SEALED_JA = "（暗号化された記述）"


def use(vault: TextVault) -> None:
    """Register the vault of a service app (several apps may share one test process)."""
    _vaults.append(vault)
    del _vaults[:-8]


def _current() -> TextVault | None:
    for vault in reversed(_vaults):
        nc = getattr(vault.js, "_nc", None)
        if nc is None or (nc.is_connected and not nc.is_closed):
            return vault
    return None


async def reveal(municipality: str, value: str | None) -> str | None:
    """`TextVault.reveal` with the process's vault; a sealed text in a process without one is shown
    as 「（暗号化された記述）」, never as ciphertext."""
    if not is_sealed(value):
        return value
    vault = _current()
    if vault is None:
        return SEALED_JA
    return await vault.reveal(municipality, value)
