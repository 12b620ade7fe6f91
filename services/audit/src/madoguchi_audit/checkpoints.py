"""Signed checkpoints (Ed25519): "log L had head H at position P", kept outside the database.

A checkpoint is an `audit.checkpoint_signed` event. It is stored three times: in the audit
schema (convenience, least trusted), appended as one JSON line to a file outside the database
(`<data_dir>/audit/checkpoints.jsonl`, fsynced) and published on JetStream
(mg.audit.<municipality>.checkpoint.<log_id>, a stream that denies delete and purge). The
verifier trusts a checkpoint only when its signature verifies with a known public key, so a
table cut short, edited or rebuilt with a fresh chain disagrees with a checkpoint it cannot forge
without the private key.

The signing key is a 32-byte Ed25519 seed: given in settings (MADOGUCHI_AUDIT_SIGNING_KEY_HEX)
or in `<data_dir>/audit/signing.key` (mode 0600); key_id is the first 16 hex digits of
sha256(public key). A key signs only when it is the current key of the log's key chain
(keys.py): introduced by `madoguchi audit init`, or handed on by `madoguchi audit rotate-key`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from madoguchi_shared.events import Actor, Role, parse_event
from madoguchi_shared.events.audit import CheckpointSigned
from madoguchi_shared.logging import get_logger

from madoguchi_audit.config import AuditSettings

log = get_logger(__name__)

SERVICE_ACTOR = Actor(id="audit", role=Role.service)


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    @classmethod
    def from_seed_hex(cls, seed: str) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed.strip())))


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def generate_key(path: Path) -> SigningKey:
    """Create a new key file (0600); refuses to overwrite an existing one."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw().hex()
    _write_private(path, seed + "\n")
    key = SigningKey(private)
    _publish_public(key, path.with_suffix(".pub"))
    return key


def _publish_public(key: SigningKey, pub_path: Path) -> None:
    pub_hex = public_bytes(key.public).hex() + "\n"
    pub_path.write_text(pub_hex)


def load_signing_key(settings: AuditSettings) -> SigningKey | None:
    """The private key configured (settings, else the key file), or None. Never generates one and
    never trusts one: whether it may sign is for `keys.signing_key` to decide against the key chain."""
    from madoguchi_audit import keys

    return keys.private_key(settings)


def load_keyring(settings: AuditSettings) -> dict[str, Ed25519PublicKey]:
    """The keys of the chain in the local copy of the key statements (see keys.py)."""
    from madoguchi_audit import keys

    return keys.load_keyring(settings)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_bytes(
    log_id: str, position: int, head_hex: str, signed_at: datetime, key_id: str, previous_position: int
) -> bytes:
    """What the signature covers: a fixed text, so a file line can be checked without our code."""
    return (
        f"madoguchi-audit-checkpoint/1\n{log_id}\n{position}\n{head_hex}\n{_time(signed_at)}\n"
        f"{key_id}\n{previous_position}\n"
    ).encode()


def sign(
    key: SigningKey,
    *,
    municipality: str,
    log_id: str,
    position: int,
    head: bytes,
    previous_position: int,
    signed_at: datetime | None = None,
) -> CheckpointSigned:
    signed_at = signed_at or datetime.now(UTC)
    head_hex = head.hex()
    signature = key.private.sign(signed_bytes(log_id, position, head_hex, signed_at, key.key_id, previous_position))
    return CheckpointSigned(
        municipality=municipality,
        actor=SERVICE_ACTOR,
        log_id=log_id,
        position=position,
        head=head_hex,
        signed_at=signed_at,
        occurred_at=signed_at,
        key_id=key.key_id,
        signature=signature.hex(),
        previous_position=previous_position,
    )


def signature_ok(cp: CheckpointSigned, keyring: dict[str, Ed25519PublicKey]) -> bool:
    public = keyring.get(cp.key_id)
    if public is None:
        return False
    try:
        public.verify(
            bytes.fromhex(cp.signature),
            signed_bytes(cp.log_id, cp.position, cp.head, cp.signed_at, cp.key_id, cp.previous_position),
        )
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The file outside the database
# --------------------------------------------------------------------------------------------


_FILE_LOCK = threading.Lock()  # the writer appends from a worker thread: one append at a time


def append_to_file(path: Path, checkpoints: Iterable[CheckpointSigned]) -> int:
    """Append checkpoints as JSON lines, fsynced; lines already there (same event id) are skipped."""
    with _FILE_LOCK:
        have = _tail_event_ids(path)
        lines = [cp.model_dump_json() + "\n" for cp in checkpoints if str(cp.event_id) not in have]
        if not lines:
            return 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        return len(lines)


def _tail_event_ids(path: Path, size: int = 256 * 1024) -> set[str]:
    """Event ids of the file's last lines: a re-export after a crash repeats only recent ones."""
    if not path.exists():
        return set()
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(max(0, end - size))
        tail = f.read()
    ids = set()
    for line in tail.splitlines():
        try:
            ids.add(str(json.loads(line)["event_id"]))
        except (ValueError, KeyError, TypeError):
            continue  # the first, partial line of the window
    return ids


def read_file(path: Path, log_id: str | None = None, municipality: str | None = None) -> list[CheckpointSigned]:
    """Every checkpoint line of the file for one log (unreadable lines are reported and skipped). One data
    folder may hold the logs of several municipalities (each its own `oplog`): a line counts for its own."""
    out: list[CheckpointSigned] = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                event = parse_event(json.loads(line))
            except ValueError as exc:
                log.warning("audit.checkpoint_line_unreadable", path=str(path), line=number, error=str(exc)[:200])
                continue
            if (
                isinstance(event, CheckpointSigned)
                and (log_id is None or event.log_id == log_id)
                and (municipality is None or event.municipality == municipality)
            ):
                out.append(event)
    return out


async def gather_copies(settings: AuditSettings, conn=None, nc=None) -> dict[str, list[CheckpointSigned]]:
    """Each copy of the checkpoints: the stream of record (given a connection), the file, the database."""
    copies: dict[str, list[CheckpointSigned]] = {}
    if nc is not None:
        from madoguchi_shared import bus, subjects

        subject = subjects.aggregate_subject("audit", settings.municipality, "checkpoint", settings.log_id)
        copies["stream"] = [s.event for s in await bus.load(nc, subject) if isinstance(s.event, CheckpointSigned)]
    copies["file"] = read_file(settings.resolved_checkpoint_file, settings.log_id, settings.municipality)
    if conn is not None:
        rows = await conn.fetch(
            f'SELECT event FROM "{settings.schema_name}".checkpoint WHERE log_id = $1 ORDER BY position',
            settings.log_id,
        )
        db_copy = []
        for row in rows:
            try:
                event = parse_event(bytes(row["event"]))
            except ValueError:
                continue
            if isinstance(event, CheckpointSigned):
                db_copy.append(event)
        copies["database"] = db_copy
    return copies


async def gather(settings: AuditSettings, conn=None, nc=None) -> list[CheckpointSigned]:
    """Every checkpoint we can find, from every copy (the verifier checks each one's signature)."""
    return [cp for cps in (await gather_copies(settings, conn, nc)).values() for cp in cps]


__all__ = [
    "SERVICE_ACTOR",
    "SigningKey",
    "append_to_file",
    "gather",
    "gather_copies",
    "generate_key",
    "key_id_of",
    "load_keyring",
    "load_signing_key",
    "read_file",
    "sign",
    "signature_ok",
    "signed_bytes",
]
