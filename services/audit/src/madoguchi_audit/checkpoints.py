"""Signed checkpoints (Ed25519): "log L had head H at position P", kept outside the database.

A checkpoint is an `audit.checkpoint_signed` event. It is stored three times: in the audit
schema (convenience, least trusted), appended as one JSON line to a file outside the database
(`<data_dir>/audit/checkpoints.jsonl`, fsynced) and published on JetStream
(mg.audit.<municipality>.checkpoint.<log_id>, a stream that denies delete and purge). The
verifier trusts a checkpoint only when its signature verifies with a known public key, so a
table cut short, edited or rebuilt with a fresh chain disagrees with a checkpoint it cannot forge
without the private key.

The signing key is a 32-byte Ed25519 seed: given in settings (MADOGUCHI_AUDIT_SIGNING_KEY_HEX)
or generated once into `<data_dir>/audit/signing.key` (mode 0600). Its public key is written
beside it and into the trusted keys folder as `<key_id>.pub`; key_id is the first 16 hex digits
of sha256(public key). Keep a copy of the public keys away from the database host: a verifier
that takes its keys from the machine it checks trusts that machine.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def load_signing_key(settings: AuditSettings) -> SigningKey:
    """The key from settings, else from its file, else a new key generated into the file."""
    seed = settings.signing_key_hex.get_secret_value()
    if seed:
        key = SigningKey.from_seed_hex(seed)
    else:
        path = settings.resolved_signing_key_file
        if path.exists():
            key = SigningKey.from_seed_hex(path.read_text())
        else:
            key = generate_key(path)
            log.info("audit.signing_key_generated", key_id=key.key_id, path=str(path))
    trust_key(settings, key.public)
    return key


def trust_key(settings: AuditSettings, public: Ed25519PublicKey) -> Path:
    """Add a public key to the trusted keys folder (idempotent)."""
    folder = settings.resolved_trusted_keys_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id_of(public)}.pub"
    if not path.exists():
        path.write_text(public_bytes(public).hex() + "\n")
    return path


def load_keyring(settings: AuditSettings, extra: Iterable[Path] = ()) -> dict[str, Ed25519PublicKey]:
    """Every trusted public key: the keys folder plus any given files (hex of the raw key)."""
    ring: dict[str, Ed25519PublicKey] = {}
    folder = settings.resolved_trusted_keys_dir
    files = sorted(folder.glob("*.pub")) if folder.exists() else []
    for path in [*files, *extra]:
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(path.read_text().strip()))
        except (ValueError, OSError) as exc:
            log.warning("audit.bad_public_key", path=str(path), error=str(exc))
            continue
        ring[key_id_of(public)] = public
    return ring


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_bytes(log_id: str, position: int, head_hex: str, signed_at: datetime, key_id: str,
                 previous_position: int) -> bytes:
    """What the signature covers: a fixed text, so a file line can be checked without our code."""
    return (
        f"madoguchi-audit-checkpoint/1\n{log_id}\n{position}\n{head_hex}\n{_time(signed_at)}\n"
        f"{key_id}\n{previous_position}\n"
    ).encode()


def sign(key: SigningKey, *, municipality: str, log_id: str, position: int, head: bytes,
         previous_position: int, signed_at: datetime | None = None) -> CheckpointSigned:
    signed_at = signed_at or datetime.now(UTC)
    head_hex = head.hex()
    signature = key.private.sign(signed_bytes(log_id, position, head_hex, signed_at, key.key_id, previous_position))
    return CheckpointSigned(
        municipality=municipality, actor=SERVICE_ACTOR, log_id=log_id, position=position, head=head_hex,
        signed_at=signed_at, occurred_at=signed_at, key_id=key.key_id, signature=signature.hex(),
        previous_position=previous_position,
    )


def signature_ok(cp: CheckpointSigned, keyring: dict[str, Ed25519PublicKey]) -> bool:
    public = keyring.get(cp.key_id)
    if public is None:
        return False
    try:
        public.verify(bytes.fromhex(cp.signature),
                      signed_bytes(cp.log_id, cp.position, cp.head, cp.signed_at, cp.key_id, cp.previous_position))
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The file outside the database
# --------------------------------------------------------------------------------------------


def append_to_file(path: Path, checkpoints: Iterable[CheckpointSigned]) -> int:
    """Append checkpoints as JSON lines, fsynced; lines already there (same event id) are skipped."""
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


def read_file(path: Path, log_id: str | None = None) -> list[CheckpointSigned]:
    """Every checkpoint line of the file (unreadable lines are reported and skipped)."""
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
            if isinstance(event, CheckpointSigned) and (log_id is None or event.log_id == log_id):
                out.append(event)
    return out


async def gather(settings: AuditSettings, conn=None, nc=None) -> list[CheckpointSigned]:
    """Every checkpoint we can find: the file, the database copy and (given a connection) the stream.

    The verifier checks each one's signature; where they come from only matters for what an
    attacker would have to reach to remove them all (the file and the stream are outside the table).
    """
    found = read_file(settings.resolved_checkpoint_file, settings.log_id)
    if conn is not None:
        rows = await conn.fetch(f'SELECT event FROM "{settings.schema_name}".checkpoint WHERE log_id = $1',
                                settings.log_id)
        for row in rows:
            try:
                found.append(parse_event(bytes(row["event"])))
            except ValueError:
                continue
    if nc is not None:
        from madoguchi_shared import bus, subjects

        subject = subjects.aggregate_subject("audit", settings.municipality, "checkpoint", settings.log_id)
        try:
            found += [s.event for s in await bus.load(nc, subject) if isinstance(s.event, CheckpointSigned)]
        except Exception as exc:  # noqa: BLE001 - the stream copy is one source of several
            log.warning("audit.checkpoint_stream_unreadable", error=str(exc))
    return found


__all__ = [
    "SERVICE_ACTOR", "SigningKey", "append_to_file", "gather", "generate_key", "key_id_of", "load_keyring",
    "load_signing_key", "read_file", "sign", "signature_ok", "signed_bytes", "trust_key",
]
