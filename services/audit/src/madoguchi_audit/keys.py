"""Pinned signing keys: a key signs checkpoints only once it was introduced by an explicit act.

The trust of a log's checkpoint keys is a chain of statements on the stream of record
(`mg.audit.<municipality>.signing_key.<log_id>`, MG_AUDIT: delete and purge denied), with a copy
in `<data_dir>/audit/keys/statements.jsonl`:

1. `audit.signing_key_introduced` — the first key, at install (`madoguchi audit init`, which
   prints its fingerprint for the city to record). Appended with "this subject must be empty":
   there is only ever one.
2. `audit.signing_key_rotated` — each later key (`madoguchi audit rotate-key`), signed by the key
   it replaces.

Anything else is an alarm, never a key: a private key on disk that is not the last key of the
chain is not used (the writer refuses to sign and raises an urgent alert), and `audit verify`
fails on a checkpoint signed by a key outside the chain and prints the chain.

The fingerprint is the sha256 of the raw 32-byte public key in groups of four hex digits; the
key id is its first 16 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nats.aio.client import Client as NATS

from madoguchi_shared import bus, subjects
from madoguchi_shared.events import parse_event
from madoguchi_shared.events.audit import SigningKeyIntroduced, SigningKeyRotated
from madoguchi_shared.logging import get_logger

from madoguchi_audit.checkpoints import SERVICE_ACTOR, SigningKey, generate_key, key_id_of, public_bytes
from madoguchi_audit.config import AuditSettings

log = get_logger(__name__)

Statement = SigningKeyIntroduced | SigningKeyRotated


def fingerprint(public: Ed25519PublicKey | bytes) -> str:
    raw = public if isinstance(public, bytes) else public_bytes(public)
    digest = hashlib.sha256(raw).hexdigest()
    return "SHA256:" + " ".join(digest[i : i + 4] for i in range(0, 64, 4))


def _fp_norm(text: str) -> str:
    return "".join(c for c in text.lower().removeprefix("sha256:") if c in "0123456789abcdef")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rotation_bytes(log_id: str, old_key_id: str, new_key_id: str, new_public_hex: str, at: datetime) -> bytes:
    """What the old key signs to hand trust on: a fixed text, checkable without our code."""
    return (
        f"madoguchi-audit-key-rotation/1\n{log_id}\n{old_key_id}\n{new_key_id}\n{new_public_hex}\n{_time(at)}\n"
    ).encode()


def subject(settings: AuditSettings) -> str:
    return subjects.aggregate_subject("audit", settings.municipality, "signing_key", settings.log_id)


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public: Ed25519PublicKey
    since: datetime
    how: str  # "introduced" | "rotated from <key id>"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


@dataclass
class KeyChain:
    """The keys a log's checkpoints may be signed with, oldest first, and what is wrong with the statements."""

    log_id: str
    keys: list[TrustedKey] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def current(self) -> TrustedKey | None:
        return self.keys[-1] if self.keys else None

    @property
    def ring(self) -> dict[str, Ed25519PublicKey]:
        return {k.key_id: k.public for k in self.keys}

    def lines(self) -> list[str]:
        if not self.keys:
            return [f"key chain of {self.log_id} ({self.source}): no key was ever introduced"]
        out = [f"key chain of {self.log_id} ({self.source}):"]
        for i, k in enumerate(self.keys, start=1):
            mark = "  (current)" if k is self.current else ""
            out.append(f"  {i}. {k.key_id} {k.fingerprint}  {k.how} {_time(k.since)}{mark}")
        out += [f"  ALARM: {f}" for f in self.faults]
        return out


def build_chain(statements: list, log_id: str, source: str = "") -> KeyChain:
    """Walk the statements in stream order; anything that does not hand trust on properly is a fault."""
    chain = KeyChain(log_id=log_id, source=source)
    for st in statements:
        if getattr(st, "log_id", None) != log_id:
            continue
        if isinstance(st, SigningKeyIntroduced):
            try:
                public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(st.public_key))
            except ValueError:
                chain.faults.append(f"introduction of {st.key_id} carries no valid public key")
                continue
            if key_id_of(public) != st.key_id:
                chain.faults.append(f"introduction of {st.key_id} names another key's id")
                continue
            if chain.keys:
                chain.faults.append(
                    f"a second introduction ({st.key_id} at {_time(st.occurred_at)}): "
                    "only a rotation signed by the current key may add a key"
                )
                continue
            chain.keys.append(TrustedKey(st.key_id, public, st.occurred_at, "introduced"))
        elif isinstance(st, SigningKeyRotated):
            current = chain.current
            if current is None:
                chain.faults.append(f"rotation to {st.new_key_id} before any key was introduced")
                continue
            if st.old_key_id != current.key_id:
                chain.faults.append(
                    f"rotation to {st.new_key_id} claims to come from {st.old_key_id}, "
                    f"but the current key is {current.key_id}"
                )
                continue
            try:
                new = Ed25519PublicKey.from_public_bytes(bytes.fromhex(st.new_public_key))
                current.public.verify(
                    bytes.fromhex(st.signature),
                    rotation_bytes(log_id, st.old_key_id, st.new_key_id, st.new_public_key, st.occurred_at),
                )
            except (ValueError, InvalidSignature):
                chain.faults.append(f"rotation to {st.new_key_id} is not signed by the current key {current.key_id}")
                continue
            if key_id_of(new) != st.new_key_id:
                chain.faults.append(f"rotation to {st.new_key_id} names another key's id")
                continue
            chain.keys.append(TrustedKey(st.new_key_id, new, st.occurred_at, f"rotated from {current.key_id}"))
    return chain


# --------------------------------------------------------------------------------------------
# The copies: the stream of record and the local file
# --------------------------------------------------------------------------------------------


def _mine(statements: list, settings: AuditSettings) -> list:
    """The statements of this log (a data folder may hold the logs of several municipalities)."""
    return [s for s in statements if s.log_id == settings.log_id and s.municipality == settings.municipality]


def read_statements(path: Path) -> list:
    out: list = []
    if not path.exists():
        return out
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(json.loads(line))
        except ValueError as exc:
            log.warning("audit.key_statement_unreadable", path=str(path), line=number, error=str(exc)[:200])
            continue
        if isinstance(event, SigningKeyIntroduced | SigningKeyRotated):
            out.append(event)
    return out


def append_statement(path: Path, statement) -> None:
    have = {str(s.event_id) for s in read_statements(path)}
    if str(statement.event_id) in have:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(statement.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


async def stream_statements(nc: NATS, settings: AuditSettings) -> tuple[list, int]:
    """The statements on the stream of record, in order, and the subject's last sequence."""
    stored = await bus.load(nc, subject(settings))
    out = [s.event for s in stored if isinstance(s.event, SigningKeyIntroduced | SigningKeyRotated)]
    return out, stored.last_seq


async def load_chain(settings: AuditSettings, nc: NATS | None) -> tuple[KeyChain, list[str]]:
    """The chain from the stream copy (the file's when there is no bus), and how the copies differ."""
    local = read_statements(settings.resolved_statements_file)
    notes: list[str] = []
    if nc is None:
        chain = build_chain(_mine(local, settings), settings.log_id, f"file {settings.resolved_statements_file}")
    else:
        remote, _ = await stream_statements(nc, settings)
        chain = build_chain(remote, settings.log_id, "the MG_AUDIT stream")
        foreign = not_on_stream(_mine(local, settings), remote)
        if foreign:
            # a statement only the local copy holds (a key added to the trusted folder by hand, or one altered)
            chain.faults.append(
                f"{len(foreign)} key statement(s) in {settings.resolved_statements_file} that the stream of record "
                f"does not hold: {', '.join(_key_of(s) for s in foreign)} — a key is trusted only when introduced "
                "on the stream (`madoguchi audit init` / `rotate-key`)"
            )
        elif [str(s.event_id) for s in remote] != [str(s.event_id) for s in _mine(local, settings)]:
            notes.append(f"the key statements in {settings.resolved_statements_file} differ from the stream's")
    if (
        settings.root_fingerprint
        and chain.keys
        and _fp_norm(chain.keys[0].fingerprint) != _fp_norm(settings.root_fingerprint)
    ):
        chain.faults.append(
            f"the first key's fingerprint {chain.keys[0].fingerprint} is not the recorded {settings.root_fingerprint}"
        )
    return chain, notes


def not_on_stream(local: list[Statement], remote: list[Statement]) -> list[Statement]:
    """The local statements the stream of record does not hold as they are (added by hand, or altered)."""
    held = {s.model_dump_json() for s in remote}
    return [s for s in local if s.model_dump_json() not in held]


def _key_of(statement: Statement) -> str:
    return statement.key_id if isinstance(statement, SigningKeyIntroduced) else statement.new_key_id


def load_keyring(settings: AuditSettings) -> dict[str, Ed25519PublicKey]:
    """The trusted keys by the local copy of the statements (no bus at hand: tests, archives)."""
    return build_chain(_mine(read_statements(settings.resolved_statements_file), settings), settings.log_id).ring


# --------------------------------------------------------------------------------------------
# The acts: init, rotate; and the writer's check
# --------------------------------------------------------------------------------------------


def private_key(settings: AuditSettings) -> SigningKey | None:
    """The private key configured (settings, else the key file), or None."""
    seed = settings.signing_key_hex.get_secret_value()
    if seed:
        return SigningKey.from_seed_hex(seed)
    path = settings.resolved_signing_key_file
    if path.exists():
        return SigningKey.from_seed_hex(path.read_text())
    return None


class KeyRefused(Exception):
    """The key on disk may not sign. `fix` says what the operator can do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason} — {fix}")
        self.reason = reason
        self.fix = fix


async def introduce(settings: AuditSettings, nc: NATS, key: SigningKey | None = None) -> tuple[SigningKey, TrustedKey]:
    """`audit init`: introduce the first key of a log (a new one unless given or on disk)."""
    js = nc.jetstream()
    statements, last = await stream_statements(nc, settings)
    if build_chain(statements, settings.log_id).keys or last:
        raise KeyRefused(
            "this log already has an introduced signing key", "use `madoguchi audit rotate-key` to replace it"
        )
    key = key or private_key(settings) or generate_key(settings.resolved_signing_key_file)
    statement = SigningKeyIntroduced(
        municipality=settings.municipality,
        actor=SERVICE_ACTOR,
        log_id=settings.log_id,
        key_id=key.key_id,
        public_key=public_bytes(key.public).hex(),
    )
    try:
        await bus.append(js, statement, expected=0)
    except bus.ConcurrencyConflict as exc:
        raise KeyRefused("another key was introduced at the same moment", "run `madoguchi audit verify`") from exc
    append_statement(settings.resolved_statements_file, statement)
    trusted = TrustedKey(key.key_id, key.public, statement.occurred_at, "introduced")
    log.warning(
        "audit.signing_key_introduced",
        key_id=key.key_id,
        fingerprint=trusted.fingerprint,
        note="record this fingerprint: it is the root of trust of the audit log's checkpoints",
    )
    return key, trusted


async def rotate(settings: AuditSettings, nc: NATS) -> tuple[SigningKey, SigningKey]:
    """`audit rotate-key`: a new key, handed trust by the current one; the old key file is retired."""
    js = nc.jetstream()
    statements, last = await stream_statements(nc, settings)
    chain = build_chain(statements, settings.log_id, "the MG_AUDIT stream")
    old = private_key(settings)
    if chain.current is None:
        raise KeyRefused("no key was ever introduced for this log", "run `madoguchi audit init` first")
    if old is None or old.key_id != chain.current.key_id:
        raise KeyRefused(
            f"the key on disk is not the current trusted key {chain.current.key_id}",
            "only the holder of the trusted key can rotate it: restore that key file first",
        )
    if settings.signing_key_hex.get_secret_value():
        raise KeyRefused(
            "the key is given in MADOGUCHI_AUDIT_SIGNING_KEY_HEX",
            "rotate by hand: unset it, put the key in the key file, rotate, then set the new one",
        )
    path = settings.resolved_signing_key_file
    staged = path.with_name(path.name + ".new")
    staged.unlink(missing_ok=True)
    new = generate_key(staged)
    at = datetime.now(UTC)
    new_hex = public_bytes(new.public).hex()
    signature = old.private.sign(rotation_bytes(settings.log_id, old.key_id, new.key_id, new_hex, at)).hex()
    statement = SigningKeyRotated(
        municipality=settings.municipality,
        actor=SERVICE_ACTOR,
        log_id=settings.log_id,
        occurred_at=at,
        old_key_id=old.key_id,
        new_key_id=new.key_id,
        new_public_key=new_hex,
        signature=signature,
    )
    await bus.append(js, statement, expected=last)
    append_statement(settings.resolved_statements_file, statement)
    path.rename(path.with_name(f"{path.name}.{old.key_id}.retired"))
    staged.rename(path)
    return old, new


async def signing_key(settings: AuditSettings, nc: NATS, key: SigningKey | None = None) -> SigningKey:
    """The writer's check before it signs anything: the configured key must be the chain's current key.

    On a virgin log (no statement anywhere, no key) with `init_on_first_start`, introduce one.
    Raises KeyRefused otherwise.
    """
    key = key or private_key(settings)
    statements, last = await stream_statements(nc, settings)
    chain = build_chain(statements, settings.log_id, "the MG_AUDIT stream")
    if not chain.keys and not last:
        local = _mine(read_statements(settings.resolved_statements_file), settings)
        if local:
            raise KeyRefused(
                "the local key statements name a key the stream of record never saw",
                "check MADOGUCHI_NATS_URL and the municipality; an install is introduced with `madoguchi audit init`",
            )
        if not settings.init_on_first_start:
            raise KeyRefused(
                "no signing key was introduced for this log",
                "run `madoguchi audit init` and record the fingerprint it prints",
            )
        key, _ = await introduce(settings, nc, key)
        return key
    if chain.faults:
        raise KeyRefused(
            "the key chain on the stream of record is broken: " + "; ".join(chain.faults),
            "run `madoguchi audit verify` and treat it as an incident",
        )
    current = chain.current
    assert current is not None
    if settings.root_fingerprint and _fp_norm(chain.keys[0].fingerprint) != _fp_norm(settings.root_fingerprint):
        raise KeyRefused(
            f"the first key {chain.keys[0].fingerprint} is not the recorded root {settings.root_fingerprint}",
            "treat it as an incident",
        )
    if key is None:
        raise KeyRefused(
            f"the trusted signing key {current.key_id} is not on this machine "
            f"({settings.resolved_signing_key_file} is missing)",
            "restore the key file from its backup (mode 0600)",
        )
    if key.key_id != current.key_id:
        raise KeyRefused(
            f"the private key in {settings.resolved_signing_key_file} (key id {key.key_id}, "
            f"{fingerprint(key.public)}) is not the trusted signing key {current.key_id} ({current.fingerprint})",
            "a key that was not introduced is never used. If it was replaced without authorisation, treat it as an "
            "incident and restore the trusted key from its backup; to change the key on purpose, put the trusted key "
            "back and run `madoguchi audit rotate-key`",
        )
    every = read_statements(settings.resolved_statements_file)
    foreign = not_on_stream(_mine(every, settings), statements)
    if foreign:
        log.error(
            "audit.key_statement_not_on_stream",
            keys=[_key_of(s) for s in foreign],
            note="a key statement the stream of record does not hold was found in the trusted-keys file and is "
            "dropped from it: it was never trusted (audit verify reports it until then)",
        )
    if [str(s.event_id) for s in _mine(every, settings)] != [str(s.event_id) for s in statements]:
        # The stream is the record; keep the local copy of this log in step with it (others' lines kept).
        path = settings.resolved_statements_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        others = [s for s in every if s not in _mine(every, settings)]
        tmp.write_text("".join(s.model_dump_json() + "\n" for s in [*others, *statements]), encoding="utf-8")
        tmp.replace(path)
    return key


__all__ = [
    "KeyChain",
    "KeyRefused",
    "TrustedKey",
    "append_statement",
    "build_chain",
    "fingerprint",
    "introduce",
    "load_chain",
    "load_keyring",
    "private_key",
    "read_statements",
    "rotate",
    "rotation_bytes",
    "signing_key",
    "stream_statements",
    "subject",
]
