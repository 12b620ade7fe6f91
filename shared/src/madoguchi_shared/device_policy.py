"""The desk-PC policy (SEC-2): one definition for the agent, `madoguchi policy` and the console.

The policy lives in the JetStream key-value bucket `mg_policy`, as JSON: one key per municipality
and desk role (`<municipality>.<role>`, e.g. `011002.desk`) and, where one desk differs, a key of
that desk (`<municipality>.<role>.<desk>`), which wins. Its version is the key's revision. Every
change is written with `change` / `remove_desk`, which also append an admin.configuration_changed
event (key `agent_policy-<role>[-<desk>]`, revision, sha256, who): every change is on the record.
A change names the revision it was made from, so two administrators editing at once do not
overwrite each other silently (the second gets PolicyConflict).

The built-in default protects: programs outside the allow-list are stopped, USB storage, MTP
phones and every class not on the list are blocked, the desk users' Desktop, Documents and
Downloads are watched. A watched folder written "~/..." means that folder in the home of each
desk user (the agent config's `process_users`, or the users logged in now).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from pydantic import BaseModel, ConfigDict, Field

from madoguchi_shared import nats_typed
from madoguchi_shared.events.base import Actor, Ident

BUCKET = "mg_policy"
HISTORY = 64  # revisions kept per key (the bucket's history; the admin events keep every change)


class AllowRule(BaseModel):
    """One allowed executable: every given field must match (path is a glob, sha256 exact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    path: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    def matches(self, name: str, exe: str | None, sha256: str | None) -> bool:
        if self.name is not None and not fnmatch.fnmatchcase(name, self.name):
            return False
        if self.path is not None and (exe is None or not fnmatch.fnmatchcase(exe, self.path)):
            return False
        if self.sha256 is not None and sha256 != self.sha256:
            return False
        return self.name is not None or self.path is not None or self.sha256 is not None


class WatchedFolder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: Ident  # what events call it: the path itself would show the OS account name
    path: str


# Session processes of a Linux desk PC and the applications of the desk (DESK-4): the browser for
# the Mynapoint site and the console, the JPKI client. HQ replaces this with the real list.
DEFAULT_ALLOW: tuple[AllowRule, ...] = (
    AllowRule(path="/usr/lib/*"),
    AllowRule(path="/usr/libexec/*"),
    AllowRule(path="/usr/bin/*"),
    AllowRule(path="/usr/sbin/*"),
    AllowRule(path="/bin/*"),
    AllowRule(path="/sbin/*"),
    AllowRule(path="/opt/google/chrome/*"),
    AllowRule(path="/opt/jpki/*"),
    AllowRule(path="/snap/*"),
)


# "~" = the home of each desk user; XDG names (~/.config/user-dirs.dirs, e.g. デスクトップ) apply.
DEFAULT_FOLDERS: tuple[WatchedFolder, ...] = (
    WatchedFolder(label="desktop", path="~/Desktop"),
    WatchedFolder(label="documents", path="~/Documents"),
    WatchedFolder(label="downloads", path="~/Downloads"),
)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Application restriction (SEC-2)
    allow: tuple[AllowRule, ...] = DEFAULT_ALLOW
    process_enforce: bool = True  # terminate what is not allowed (else report only)
    # the fallback poll when the kernel's process notices are unavailable (not root); also how
    # often the desk users and the gaps in monitoring are looked at again
    process_scan_s: float = Field(default=5.0, gt=0)
    # Interpreters whose inline code (`python3 -c ...`) is a violation: the code runs inside an
    # allowed program, so no exec of its own shows it. Shells are not listed: every program a
    # shell starts is an exec of its own and checked.
    inline_code_forbidden: tuple[str, ...] = (
        "python*",
        "perl*",
        "ruby*",
        "node",
        "nodejs",
        "php*",
        "lua*",
        "Rscript",
        "tclsh*",
        "wish*",
        "osascript",
    )

    # Device management (SEC-2, SEC-4)
    usb_block_mass_storage: bool = True
    # 03 HID, 09 hub, 0b smart card (the IC card reader), e0 wireless, ef misc, 02/0a CDC
    # (pocket WiFi tethering), 01 audio, 0e video.
    usb_allowed_classes: tuple[str, ...] = ("01", "02", "03", "09", "0a", "0b", "0e", "e0", "ef")
    # vendor:product pairs allowed whatever their class, e.g. Sony PaSoRi readers (class ff).
    usb_allowed_devices: tuple[str, ...] = ("054c:06c1", "054c:06c3", "054c:0dc8", "054c:0dc9")
    # MTP phones (class 06 / ff), unknown and vendor-specific classes: blocked unless listed
    usb_block_not_allowed: bool = True
    usb_scan_s: float = Field(default=2.0, gt=0)

    # Personal data on disk (SEC-2)
    watched_folders: tuple[WatchedFolder, ...] = DEFAULT_FOLDERS
    removable_globs: tuple[str, ...] = ("/media/*/*", "/run/media/*/*")
    quarantine: bool = True
    # Files are read in chunks up to this many bytes (a larger file is scanned this far and
    # reported as not scanned in full); archive members up to max_archive_bytes in all.
    max_scan_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    max_archive_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    scan_at_start: bool = True  # scan the watched folders at start and after a policy change
    file_activity: bool = True  # record create/modify/move/delete in watched folders and media

    # Thresholds
    card_left_s: float = Field(default=600.0, gt=0)  # DESK-9: card in reader with no visit
    heartbeat_s: float = Field(default=60.0, gt=0)


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    version: int  # key-value revision; 0 = built-in default
    sha256: str
    source: Literal["bus", "cache", "default"]

    def as_cache(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256, "policy": self.policy.model_dump(mode="json")}


def policy_digest(policy: Policy) -> str:
    return hashlib.sha256(json.dumps(policy.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def default_policy() -> LoadedPolicy:
    policy = Policy()
    return LoadedPolicy(policy, 0, policy_digest(policy), "default")


def from_bytes(raw: bytes, version: int) -> LoadedPolicy:
    """Parse a policy value from the bucket (raises pydantic.ValidationError / ValueError)."""
    policy = Policy.model_validate_json(raw)
    return LoadedPolicy(policy, version, policy_digest(policy), "bus")


class PolicyConflict(Exception):
    """The policy changed since the revision the change was made from."""

    def __init__(self, current: int):
        self.current = current
        super().__init__(f"the policy is now at revision {current}")


def keys(municipality: str, role: str, desk: str | None) -> tuple[str, str]:
    """(key-value key, admin configuration key) of a role's or a desk's own policy."""
    kv_key = f"{municipality}.{role}" + (f".{desk}" if desk else "")
    config_key = f"agent_policy-{role}" + (f"-{desk}" if desk else "")
    return kv_key, config_key


async def fetch(js: JetStreamContext, bucket: str, key: str, *more_specific: str) -> LoadedPolicy | None:
    """The policy on the bus, or None when the bucket or key does not exist (yet). With
    `more_specific` keys (a desk's own), the most specific one present wins."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        return None
    for k in (*reversed(more_specific), key):
        try:
            entry = await kv.get(k)
        except (KeyNotFoundError, KeyDeletedError):
            continue
        if entry.value:
            return from_bytes(entry.value, entry.revision or 0)
    return None


async def _bucket(js: JetStreamContext, bucket: str = BUCKET) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await nats_typed.create_key_value(js, api.KeyValueConfig(bucket=bucket, history=HISTORY))


async def publish(js: JetStreamContext, bucket: str, key: str, policy: Policy) -> int:
    """Put a policy into the bucket (creating it when missing), unconditionally. For tests; people
    change the policy with `change` (checked against the revision, and on the record)."""
    kv = await _bucket(js, bucket)
    return await kv.put(key, policy.model_dump_json().encode())


@dataclass(frozen=True)
class Effective:
    loaded: LoadedPolicy
    where: Literal["default", "role", "desk"]  # whose policy is in force there
    own_revision: int  # the revision of the key itself (0 = none): what a change is made from


async def effective(js: JetStreamContext, municipality: str, role: str, desk: str | None = None) -> Effective:
    """The policy in force for a role, or for one desk (its own when it has one, else the role's)."""
    role_key, _ = keys(municipality, role, None)
    desk_key = keys(municipality, role, desk)[0] if desk else None
    own = await _entry(js, desk_key or role_key)
    if own is not None:
        return Effective(from_bytes(own.value or b"", own.revision or 0), "desk" if desk else "role", own.revision or 0)
    if desk:
        loaded = await fetch(js, BUCKET, role_key)
        if loaded is not None:
            return Effective(loaded, "role", 0)
    return Effective(default_policy(), "default", 0)


async def _entry(js: JetStreamContext, key: str):
    try:
        kv = await js.key_value(BUCKET)
        entry = await kv.get(key)
    except (BucketNotFoundError, KeyNotFoundError, KeyDeletedError):
        return None
    return entry if entry.value else None


@dataclass(frozen=True)
class Revision:
    revision: int
    at: datetime | None
    removed: bool
    sha256: str | None


async def history(js: JetStreamContext, municipality: str, role: str, desk: str | None = None) -> list[Revision]:
    """The kept revisions of a role's or desk's own policy, newest first."""
    try:
        kv = await js.key_value(BUCKET)
        entries = await kv.history(keys(municipality, role, desk)[0])
    except (BucketNotFoundError, NoKeysError, KeyNotFoundError):
        return []
    out: list[Revision] = []
    for e in entries:
        digest = None
        if e.value and e.operation is None:
            try:
                digest = policy_digest(Policy.model_validate_json(e.value))
            except ValueError:
                digest = None
        at = e.created
        if isinstance(at, (int, float)):  # nanoseconds in some nats-py versions
            at = datetime.fromtimestamp(at / 1e9, UTC)
        out.append(Revision(e.revision or 0, at, not e.value or e.operation is not None, digest))
    return sorted(out, key=lambda r: -r.revision)


async def change(
    js: JetStreamContext,
    municipality: str,
    role: str,
    desk: str | None,
    policy: Policy,
    actor: Actor,
    base_revision: int | None = None,
    correlation_id: UUID | None = None,
) -> int:
    """Write a role's or desk's own policy and append the admin event; returns the new revision.

    `base_revision`: the revision of the key the change was made from (0 = the key did not
    exist); a different one now raises PolicyConflict. None = unconditional (the command line
    after reading the current policy in the same step)."""
    from madoguchi_shared import bus
    from madoguchi_shared.events.admin import ConfigurationChanged

    kv = await _bucket(js)
    kv_key, config_key = keys(municipality, role, desk)
    value = policy.model_dump_json().encode()
    try:
        if base_revision is None:
            revision = await kv.put(kv_key, value)
        elif base_revision == 0:
            revision = await kv.create(kv_key, value)
        else:
            revision = await kv.update(kv_key, value, last=base_revision)
    except (KeyWrongLastSequenceError, BadRequestError) as exc:
        # nats-py maps only 10071; a replicated bucket may answer 10164 (ARCHITECTURE "Facts")
        if not isinstance(exc, KeyWrongLastSequenceError) and exc.err_code not in bus.CONFLICT_CODES:
            raise
        own = await _entry(js, kv_key)
        raise PolicyConflict((own.revision or 0) if own else 0) from exc
    await bus.append(
        js,
        ConfigurationChanged(
            municipality=municipality,
            desk=desk,
            actor=actor,
            key=config_key,
            revision=revision,
            sha256=policy_digest(policy),
            correlation_id=correlation_id,
        ),
    )
    return revision


async def remove_desk(
    js: JetStreamContext, municipality: str, role: str, desk: str, actor: Actor, correlation_id: UUID | None = None
) -> LoadedPolicy | None:
    """Remove a desk's own policy (the desk follows its role again) and append the admin event;
    returns the policy now in force there, or None when the desk had none of its own."""
    from madoguchi_shared import bus
    from madoguchi_shared.events.admin import ConfigurationChanged

    kv_key, config_key = keys(municipality, role, desk)
    if await _entry(js, kv_key) is None:
        return None
    await (await js.key_value(BUCKET)).delete(kv_key)
    now = (await effective(js, municipality, role, desk)).loaded
    await bus.append(
        js,
        ConfigurationChanged(
            municipality=municipality,
            desk=desk,
            actor=actor,
            key=config_key,
            revision=max(1, now.version),
            sha256=now.sha256,
            correlation_id=correlation_id,
        ),
    )
    return now
