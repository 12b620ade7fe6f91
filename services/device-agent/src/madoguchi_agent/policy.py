"""The agent's policy: central configuration on the bus, cached locally so the agent works offline.

The policy lives in the JetStream key-value bucket `mg_policy`, as JSON: one key per municipality
and desk role (`<municipality>.<role>`, e.g. `011002.desk`) and, where one desk differs, a key of
that desk (`<municipality>.<role>.<desk>`), which wins. `madoguchi policy show/set` reads and
writes them (policy_cli.py; every change is also an admin event). Its version is the key's
revision. Every policy the agent applies is written to a local JSON cache (atomically, fsynced)
so that a PC that boots without a link enforces the last policy it knew, not the built-in one.

The built-in default protects: programs outside the allow-list are stopped, USB storage, MTP
phones and every class not on the list are blocked, the desk users' Desktop, Documents and
Downloads are watched. A watched folder written "~/..." means that folder in the home of each
desk user (the accounts of the agent config's `process_users`, or the users logged in now).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError
from pydantic import BaseModel, ConfigDict, Field

from madoguchi_shared.events.base import Ident


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
    inline_code_forbidden: tuple[str, ...] = ("python*", "perl*", "ruby*", "node", "nodejs", "php*", "lua*",
                                              "Rscript", "tclsh*", "wish*", "osascript")

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

    def as_cache(self) -> dict:
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


def load_cache(path: Path) -> LoadedPolicy | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        policy = Policy.model_validate(data["policy"])
        return LoadedPolicy(policy, int(data["version"]), policy_digest(policy), "cache")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_cache(path: Path, loaded: LoadedPolicy) -> None:
    """Write atomically: a power cut leaves the old cache or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(loaded.as_cache(), f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


async def publish(js: JetStreamContext, bucket: str, key: str, policy: Policy) -> int:
    """Put a policy into the bucket (creating it when missing). For HQ tools and tests."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        kv = await js.create_key_value(bucket=bucket, history=10)
    return await kv.put(key, policy.model_dump_json().encode())
