"""Personal data on disk (SEC-2: nobody stores personal information on the PC).

A watchdog observer watches the policy's folders (and removable mounts, found by glob) for new,
changed and moved-in files. A file quiet for a moment is scanned when it is text-like (by
extension, or no NUL byte in its head; UTF-8, UTF-16 with BOM or Shift_JIS/CP932) or an Office
Open XML / OpenDocument file (its XML parts: runs of a paragraph joined, cells kept apart so two
cells never join into one number), with the shared PII guard's `find_personal_data` — the same
detector, on the same normalised text, as every free-text field. A hit is reported with the folder's
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
from pathlib import Path, PurePath
from xml.sax.saxutils import unescape

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from madoguchi_agent.policy import Policy, WatchedFolder
from madoguchi_shared.logging import get_logger
from madoguchi_shared.pii import KINDS, find_personal_data

log = get_logger(__name__)

TEXT_SUFFIXES = {
    ".txt",
    ".csv",
    ".tsv",
    ".json",
    ".xml",
    ".html",
    ".htm",
    ".md",
    ".log",
    ".ini",
    ".yaml",
    ".yml",
    ".conf",
    ".sql",
    ".eml",
    ".vcf",
    ".rtf",
    ".tex",
    ".py",
    ".js",
}
OFFICE_SUFFIXES = {".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp"}
_OFFICE_PARTS = re.compile(
    r"^(word/document\.xml|xl/sharedStrings\.xml|xl/worksheets/[^/]+\.xml|ppt/slides/[^/]+\.xml|content\.xml)$"
)
_TAG = re.compile(r"<[^>]*>")
QUIET_S = 0.3  # a file is scanned once no event touched it for this long


@dataclass(frozen=True)
class Hit:
    root: WatchedFolder
    path: str  # absolute
    kinds: tuple[str, ...]
    findings: int
    size: int
    in_name: bool = False
    in_archive: bool = False


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


KIND_ORDER: list[str] = list(
    KINDS
)  # every kind the guard names (a birth date missing here made the sort raise: no event)
CHUNK = 4 * 1024 * 1024  # large text files are read this much at a time
OVERLAP = 256  # characters carried over between chunks, so no number is cut in two
ARCHIVE_SUFFIXES = {".zip"}


@dataclass(frozen=True)
class NotScanned:
    reason: str  # too_large | unreadable | archive_limit | archive_encrypted | archive_damaged
    scanned_bytes: int
    size: int


@dataclass(frozen=True)
class Scan:
    hit: Hit | None = None
    not_scanned: NotScanned | None = None


def _kinds(findings) -> set[str]:
    return {f.kind for f in findings}


def _is_binary(head: bytes) -> bool:
    return b"\x00" in head[:8192] and not head.startswith((b"\xff\xfe", b"\xfe\xff"))


def _encoding(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    for encoding in ("utf-8-sig", "cp932"):
        try:
            head.decode(encoding)
            return encoding
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # only the last character was cut by the chunk
                return encoding
            continue
    return "utf-8"


def read_text(path: Path, max_bytes: int) -> str | None:
    """The text of a small text-like or office file, or None when it is neither (or too big)."""
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
    if suffix not in TEXT_SUFFIXES and _is_binary(data):
        return None
    return decode(data)


_CSV_SEP = {".csv": ",", ".tsv": "\t"}


def _cells_apart(text: str, sep: str) -> str:
    """A CSV/TSV chunk with its cells apart (a blank line between them, which the detector takes
    as a boundary): a column of counts 1,2,3,... never joins into one long number, while a cell
    such as "1234 5678 9018" or "0九0-…" is read whole."""
    import csv
    import io

    rows = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        return "\n\n".join("\n\n".join(row) for row in rows)
    except csv.Error:
        return text.replace(sep, "\n\n")


def _scan_stream(f, first: bytes, budget: int, suffix: str = "") -> tuple[set[str], int, int]:
    """Scan a text stream chunk by chunk: (kinds, findings, bytes read)."""
    import codecs

    decoder = codecs.getincrementaldecoder(_encoding(first))(errors="replace")
    kinds: set[str] = set()
    count, read, carry = 0, 0, ""
    chunk = first
    while chunk:
        read += len(chunk)
        decoded = decoder.decode(chunk)
        text = carry + (_cells_apart(decoded, _CSV_SEP[suffix]) if suffix in _CSV_SEP else decoded)
        findings = find_personal_data(text)
        # a finding wholly inside the carried-over head was counted with the previous chunk
        fresh = [f for f in findings if f.end > len(carry)]
        kinds |= _kinds(fresh)
        count += len(fresh)
        carry = text[-OVERLAP:]
        if read >= budget:
            break
        chunk = f.read(min(CHUNK, budget - read))
    return kinds, count, read


def _office_text(path: Path, max_bytes: int) -> str:
    parts = []
    budget = max_bytes
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not _OFFICE_PARTS.match(info.filename) or budget <= 0:
                continue
            raw = z.read(info)[:budget]
            budget -= len(raw)
            parts.append(unescape(_xml_text(info.filename, raw.decode("utf-8", errors="replace"))))
    return "\n\n".join(parts)


_LINE_TAGS = re.compile(
    r"<w:tab/>|<w:br/>|<w:cr/>|</w:p>|</a:p>|<a:br/>|</text:p>|</text:h>|<text:line-break/>|<text:tab/>"
)
_CELL_ENDS = re.compile(r"</si>|</c>|</is>|</table:table-cell>|</w:tc>")


def _xml_text(name: str, xml: str) -> str:
    """The text of an OOXML/ODF part as a person reads it: runs of a paragraph joined (Word splits
    "090-1234" over several runs), paragraphs on their own lines, and table/sheet cells apart (a
    blank line, which the detector takes as a boundary: two cells never join into one number)."""
    xml = _CELL_ENDS.sub("\x00", xml)
    xml = _LINE_TAGS.sub(lambda m: " " if "tab" in m.group() else "\n", xml)
    return _TAG.sub("", xml).replace("\x00", "\n\n")


def _archive(path: Path, budget: int) -> tuple[set[str], int, NotScanned | None]:
    """Member names and text-like / office members of a .zip, up to `budget` uncompressed bytes."""
    kinds: set[str] = set()
    count = 0
    problem = None
    used = 0
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name_findings = find_personal_data(info.filename)
                kinds |= _kinds(name_findings)
                count += len(name_findings)
                if info.is_dir():
                    continue
                if info.flag_bits & 0x1:
                    problem = problem or NotScanned("archive_encrypted", used, size)
                    continue
                suffix = PurePath(info.filename).suffix.lower()
                if used + info.file_size > budget:
                    problem = NotScanned("archive_limit", used, size)
                    break
                if suffix in OFFICE_SUFFIXES or suffix in ARCHIVE_SUFFIXES:
                    import io

                    data = z.read(info)
                    used += len(data)
                    try:
                        with zipfile.ZipFile(io.BytesIO(data)) as inner:
                            if suffix in ARCHIVE_SUFFIXES:
                                problem = problem or NotScanned("archive_limit", used, size)  # one level only
                                continue
                            text = "\n\n".join(
                                unescape(_xml_text(i.filename, inner.read(i).decode("utf-8", "replace")))
                                for i in inner.infolist()
                                if _OFFICE_PARTS.match(i.filename)
                            )
                    except zipfile.BadZipFile:
                        continue
                else:
                    data = z.read(info)
                    used += len(data)
                    if suffix not in TEXT_SUFFIXES and _is_binary(data):
                        continue
                    text = decode(data)
                findings = find_personal_data(text)
                kinds |= _kinds(findings)
                count += len(findings)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError):
        return kinds, count, NotScanned("archive_damaged", used, size)
    return kinds, count, problem


def scan_file(root: WatchedFolder, path: Path, max_bytes: int, max_archive_bytes: int | None = None) -> Scan:
    """Scan a file's name and content (text, office, .zip), bounded: a file read only in part, or
    not at all, comes back as `not_scanned` (the agent reports it; never a silent skip)."""
    max_archive_bytes = max_bytes if max_archive_bytes is None else max_archive_bytes
    try:
        size = path.stat().st_size
        if not path.is_file():
            return Scan()
    except OSError:
        return Scan()
    name_findings = find_personal_data(path.name)
    kinds, count = _kinds(name_findings), len(name_findings)
    in_archive = False
    problem: NotScanned | None = None
    suffix = path.suffix.lower()
    try:
        if suffix in ARCHIVE_SUFFIXES:
            k, n, problem = _archive(path, max_archive_bytes)
            in_archive = bool(n)
            kinds, count = kinds | k, count + n
        elif suffix in OFFICE_SUFFIXES:
            if size > max_bytes:
                problem = NotScanned("too_large", 0, size)
            else:
                try:
                    findings = find_personal_data(_office_text(path, max_bytes))
                except zipfile.BadZipFile:
                    findings = []
                kinds, count = kinds | _kinds(findings), count + len(findings)
        else:
            with open(path, "rb") as f:
                first = f.read(min(CHUNK, max_bytes))
                if first and (suffix in TEXT_SUFFIXES or not _is_binary(first)):
                    k, n, read = _scan_stream(f, first, max_bytes, suffix)
                    kinds, count = kinds | k, count + n
                    if read < size:
                        problem = NotScanned("too_large", read, size)
    except OSError:
        problem = NotScanned("unreadable", 0, size)
    hit = None
    if count:
        hit = Hit(
            root,
            str(path),
            tuple(sorted(kinds, key=KIND_ORDER.index)),
            count,
            size,
            in_name=bool(name_findings),
            in_archive=in_archive,
        )
    return Scan(hit, problem)


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
    def __init__(self, hand_over: Callable[[str, str, str | None], None]):
        self._hand_over = hand_over

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        kind = event.event_type
        if kind not in ("created", "modified", "moved", "closed", "deleted"):
            return
        dest = getattr(event, "dest_path", "") or None
        self._hand_over(kind, os.fsdecode(event.src_path), os.fsdecode(dest) if dest else None)


def _xdg_dirs(home: str) -> dict[str, str]:
    """~/.config/user-dirs.dirs of a home: {"DESKTOP": "/home/u/デスクトップ", ...}."""
    out = {}
    try:
        text = Path(home, ".config", "user-dirs.dirs").read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r'^XDG_([A-Z]+)_DIR="(.*)"\s*$', line.strip())
        if m:
            out[m.group(1)] = m.group(2).replace("$HOME", home)
    return out


_XDG_NAMES = {"Desktop": "DESKTOP", "Documents": "DOCUMENTS", "Downloads": "DOWNLOAD"}


def resolve_folders(policy: Policy, homes: tuple[str, ...]) -> dict[str, WatchedFolder]:
    """The policy's folders as real paths: "~/X" in each desk user's home (XDG names apply)."""
    wanted: dict[str, WatchedFolder] = {}
    for folder in policy.watched_folders:
        if folder.path.startswith("~/") or folder.path == "~":
            rest = folder.path[2:]
            for home in homes:
                first, _, tail = rest.partition("/")
                xdg = _xdg_dirs(home).get(_XDG_NAMES.get(first, ""))
                path = os.path.join(xdg, tail) if xdg else os.path.join(home, rest)
                wanted[str(Path(path).resolve())] = folder
        elif not folder.path.startswith("~"):
            wanted[str(Path(folder.path).resolve())] = folder
    for pattern in policy.removable_globs:
        for mount in glob.glob(pattern):
            if os.path.isdir(mount):
                wanted.setdefault(str(Path(mount).resolve()), WatchedFolder(label="removable", path=mount))
    return wanted


# what a quiet path was: created wins over modified
_RANK = {"modified": 0, "created": 1}


class FileWatch:
    """Watches folders (inotify through watchdog). `quiet_paths()` yields (path, action) once a
    path has been quiet for QUIET_S; moves and deletions come at once through `moves()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, quarantine_dir: Path):
        self._loop = loop
        self._quarantine_dir = Path(quarantine_dir).resolve()
        self._observer = Observer()
        self._observer.daemon = True
        self._watches: dict[str, tuple[WatchedFolder, ObservedWatch]] = {}  # resolved root -> (folder, watch)
        self._pending: dict[str, tuple[float, str]] = {}
        self._immediate: list[tuple[str, str, str | None]] = []
        self._wake = asyncio.Event()
        self._started = False
        self.ours: set[str] = set()  # paths the agent moved itself (quarantine): no activity event

    def _hand_over(self, kind: str, src: str, dest: str | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._note, kind, src, dest)
        except RuntimeError:
            pass

    def _note(self, kind: str, src: str, dest: str | None) -> None:
        if kind in ("moved", "deleted"):
            if src in self.ours:
                self.ours.discard(src)
                return
            self._pending.pop(src, None)
            self._immediate.append((kind, src, dest))
            if kind == "moved" and dest:
                self._pending[dest] = (self._loop.time(), "created")  # the moved-in file is scanned
        else:
            action = "created" if kind == "created" else "modified"
            old = self._pending.get(src)
            if old is not None and _RANK[old[1]] > _RANK[action]:
                action = old[1]
            self._pending[src] = (self._loop.time(), action)
        self._wake.set()

    def roots(self) -> dict[str, WatchedFolder]:
        return {root: folder for root, (folder, _) in self._watches.items()}

    def apply(self, policy: Policy, homes: tuple[str, ...] = ()) -> list[tuple[str, WatchedFolder]]:
        """Watch the policy's folders and the removable mounts present now; returns the new roots."""
        wanted = resolve_folders(policy, homes)
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
            added.append((root, folder))
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

    def take_immediate(self) -> list[tuple[str, str, str | None]]:
        out, self._immediate = self._immediate, []
        return out

    async def quiet_paths(self) -> list[tuple[str, str]]:
        """Wait until some changed paths have been quiet for QUIET_S (or a move/delete came)."""
        while True:
            if not self._pending and not self._immediate:
                self._wake.clear()
                await self._wake.wait()
            now = self._loop.time()
            ready = [(p, a) for p, (t, a) in self._pending.items() if now - t >= QUIET_S]
            if ready or self._immediate:
                for p, _ in ready:
                    del self._pending[p]
                return ready
            await asyncio.sleep(QUIET_S / 2)

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)


def walk(root: str, limit: int = 200_000) -> list[str]:
    """Every file under a watched root (for the scan at start), at most `limit`."""
    out: list[str] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            out.append(os.path.join(dirpath, name))
            if len(out) >= limit:
                log.warning("files.walk_limit", limit=limit)
                return out
    return out
