"""Personal data on disk (SEC-2: nobody stores personal information on the PC).

A watchdog observer watches the policy's folders (and removable mounts, found by glob) for new,
changed and moved-in files. A file quiet for a moment is scanned when it is text-like (by
extension, or no NUL byte in its head; UTF-8, UTF-16 with BOM or Shift_JIS/CP932) or an Office
Open XML / OpenDocument file (its XML parts, tags turned into line breaks so two cells never join
into one number), with the PII guard's `find_personal_data`. A hit is reported with the folder's
label, the sanitised relative path (see events/device.py) and the kinds found, never the data;
when the policy says quarantine, the file is moved to the agent's protected folder (mode 0700)
under the event's id.

watchdog calls handlers on its own thread: they only hand the path to the asyncio loop.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import unescape

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from madoguchi_agent.policy import Policy, WatchedFolder
from madoguchi_shared.logging import get_logger
from madoguchi_shared.pii import find_personal_data

log = get_logger(__name__)

TEXT_SUFFIXES = {
    ".txt", ".csv", ".tsv", ".json", ".xml", ".html", ".htm", ".md", ".log", ".ini", ".yaml", ".yml",
    ".conf", ".sql", ".eml", ".vcf", ".rtf", ".tex", ".py", ".js",
}
OFFICE_SUFFIXES = {".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp"}
_OFFICE_PARTS = re.compile(r"^(word/document\.xml|xl/sharedStrings\.xml|xl/worksheets/[^/]+\.xml|ppt/slides/[^/]+\.xml|content\.xml)$")
_TAG = re.compile(r"<[^>]*>")
QUIET_S = 0.3  # a file is scanned once no event touched it for this long


@dataclass(frozen=True)
class Hit:
    root: WatchedFolder
    path: str  # absolute
    kinds: tuple[str, ...]
    findings: int
    size: int


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def read_text(path: Path, max_bytes: int) -> str | None:
    """The text of a text-like or office file, or None when it is neither (or too big)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size > max_bytes or not path.is_file():
        return None
    suffix = path.suffix.lower()
    try:
        if suffix in OFFICE_SUFFIXES:
            return _office_text(path, max_bytes)
        with open(path, "rb") as f:
            data = f.read(max_bytes)
    except (OSError, zipfile.BadZipFile):
        return None
    if suffix not in TEXT_SUFFIXES:
        head = data[:8192]
        if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return None  # binary
    return decode(data)


def _office_text(path: Path, max_bytes: int) -> str:
    parts = []
    budget = max_bytes
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not _OFFICE_PARTS.match(info.filename) or budget <= 0:
                continue
            raw = z.read(info)[:budget]
            budget -= len(raw)
            parts.append(unescape(_TAG.sub("\n", raw.decode("utf-8", errors="replace"))))
    return "\n".join(parts)


def scan_file(root: WatchedFolder, path: Path, max_bytes: int) -> Hit | None:
    text = read_text(path, max_bytes)
    if not text:
        return None
    findings = find_personal_data(text)
    if not findings:
        return None
    kinds = tuple(sorted({f.kind for f in findings}, key=["my_number", "twelve_digits", "phone", "email"].index))
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return Hit(root, str(path), kinds, len(findings), size)


def quarantine(path: Path, folder: Path, name: str) -> tuple[bool, str | None]:
    """Move the file into the protected folder as `name`; (moved, errno name)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        target = folder / name
        shutil.move(str(path), str(target))  # a rename, or copy + delete across file systems
        os.chmod(target, 0o600)
        return True, None
    except OSError as exc:
        return False, errno.errorcode.get(exc.errno or 0, type(exc).__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, hand_over: Callable[[str], None]):
        self._hand_over = hand_over

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        path = getattr(event, "dest_path", "") or event.src_path
        self._hand_over(os.fsdecode(path))


class FileWatch:
    """Watches folders; `changed()` yields paths that have been quiet for QUIET_S."""

    def __init__(self, loop: asyncio.AbstractEventLoop, quarantine_dir: Path):
        self._loop = loop
        self._quarantine_dir = Path(quarantine_dir).resolve()
        self._observer = Observer()
        self._observer.daemon = True
        self._watches: dict[str, tuple[WatchedFolder, object]] = {}  # resolved root -> (folder, watch)
        self._pending: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._started = False

    def _hand_over(self, path: str) -> None:
        try:
            self._loop.call_soon_threadsafe(self._note, path)
        except RuntimeError:
            pass

    def _note(self, path: str) -> None:
        self._pending[path] = self._loop.time()
        self._wake.set()

    def apply(self, policy: Policy) -> list[WatchedFolder]:
        """Watch the policy's folders and the removable mounts present now; returns new roots."""
        wanted: dict[str, WatchedFolder] = {}
        for folder in policy.watched_folders:
            wanted[str(Path(folder.path).expanduser().resolve())] = folder
        for pattern in policy.removable_globs:
            for mount in glob.glob(pattern):
                if os.path.isdir(mount):
                    wanted.setdefault(str(Path(mount).resolve()), WatchedFolder(label="removable", path=mount))
        added = []
        for root in list(self._watches):
            if root not in wanted:
                _, watch = self._watches.pop(root)
                self._observer.unschedule(watch)
        for root, folder in wanted.items():
            if root in self._watches or not os.path.isdir(root):
                continue
            try:
                watch = self._observer.schedule(_Handler(self._hand_over), root, recursive=True)
            except OSError as exc:
                log.warning("files.watch_failed", label=folder.label, error=type(exc).__name__)
                continue
            self._watches[root] = (folder, watch)
            added.append(folder)
        if not self._started:
            self._observer.start()
            self._started = True
        return added

    def root_of(self, path: str) -> tuple[str, WatchedFolder] | None:
        resolved = os.path.realpath(path)
        if resolved.startswith(str(self._quarantine_dir) + os.sep):
            return None
        best = None
        for root, (folder, _) in self._watches.items():
            if resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep):
                if best is None or len(root) > len(best[0]):
                    best = (root, folder)
        return best

    async def quiet_paths(self) -> list[str]:
        """Wait until some changed paths have been quiet for QUIET_S; return them."""
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            now = self._loop.time()
            ready = [p for p, t in self._pending.items() if now - t >= QUIET_S]
            if ready:
                for p in ready:
                    del self._pending[p]
                return ready
            await asyncio.sleep(QUIET_S / 2)

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
