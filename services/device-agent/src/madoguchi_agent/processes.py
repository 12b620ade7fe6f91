"""Every program start and application restriction (SEC-2).

Where programs come from: the kernel's process connector (netlink, `NETLINK_CONNECTOR` /
`CN_IDX_PROC`) tells every exec as it happens; `ExecListener` reads those notices on a thread of
its own and, for each exec, reads /proc/<pid> at once (uid, parent, executable, arguments), so a
program that runs for a second is seen whole. Listening needs root (CAP_NET_ADMIN); without it the
agent falls back to polling /proc every `process_scan_s` and says so loudly (a MonitoringGap).

What is in scope: processes of the desk users (`Scope`: the configured OS accounts, else the
accounts logged in now with uid >= 1000) and the process trees under the configured session root
pids. The agent itself never is.

What is allowed (`decide`): the executable must match an allow rule; a script run by an
interpreter (`python3 tool.py`, `bash x.sh`) must match one too, by its own path; inline code
(`python3 -c`, `perl -e`, `python3 -m`) in an interpreter of the policy's `inline_code_forbidden`
is a violation, since the code runs inside an allowed program and no exec of its own shows it.
A script owned by root and writable by no one else (installed by the administrator: the desktop's
session scripts) and the agent's own commands are not checked against the list.
Arguments themselves are never recorded (they may hold anything); only the script's sanitised path.

Enforcement: SIGTERM, then SIGKILL after 2 s (`terminate`), in a worker thread.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import pwd
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from madoguchi_agent.policy import Policy
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

PROC = "/proc"
SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox")
INTERPRETERS = (
    *SHELLS,
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
# options that make the interpreter run code from its command line (or a module by name)
INLINE_FLAGS = {"-c", "-e", "-E", "-m", "-r", "--eval", "--print", "-p", "--command"}
# options that take a value as the next argument (so that value is not taken for the script)
VALUE_FLAGS = {"-W", "-X", "-o", "-I", "--require", "--import", "-M", "-x", "-l"}


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    uid: int | None
    name: str
    exe: str | None
    argv: tuple[str, ...]
    cwd: str | None
    start: int  # start time in clock ticks since boot: (pid, start) names one process


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # allowed | not_allowed | script_not_allowed | inline_code
    script: str | None
    inline_code: bool


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start ticks) from /proc/<pid>/stat."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def read_status(pid: int) -> tuple[str, int, int | None] | None:
    """(name, ppid, real uid) from /proc/<pid>/status, or None when the process is gone."""
    try:
        with open(f"{PROC}/{pid}/status", "rb") as f:
            raw = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    name, ppid, uid = "?", 0, None
    for line in raw.splitlines():
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
            if len(name) >= 15:  # the kernel cuts the name at 15 characters: the executable's is whole
                with _suppress_oserror():
                    exe = os.path.basename(os.readlink(f"{PROC}/{pid}/exe").removesuffix(" (deleted)"))
                    if exe.startswith(name):
                        name = exe
        elif key == "PPid":
            ppid = int(value.strip() or 0)
        elif key == "Uid":
            uid = int(value.split()[0])
            break
    return name, ppid, uid


def read_proc(pid: int, status: tuple[str, int, int | None] | None = None) -> ProcInfo | None:
    status = status or read_status(pid)
    if status is None:
        return None
    name, ppid, uid = status
    try:
        exe = os.readlink(f"{PROC}/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        exe = None
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            argv = tuple(a.decode("utf-8", "replace") for a in f.read(65536).split(b"\0") if a)
    except OSError:
        argv = ()
    try:
        cwd = os.readlink(f"{PROC}/{pid}/cwd")
    except OSError:
        cwd = None
    st = _stat(pid)
    return ProcInfo(pid, ppid, uid, name, exe, argv, cwd, st[1] if st else 0)


def parent_of(info: ProcInfo) -> tuple[str | None, str | None]:
    status = read_status(info.ppid) if info.ppid else None
    if status is None:
        return None, None
    try:
        exe = os.readlink(f"{PROC}/{info.ppid}/exe").removesuffix(" (deleted)")
    except OSError:
        exe = None
    return status[0], exe


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str, fallback: str | None = None) -> str | None:
    """sha256 of a file, cached by (path, mtime, size); `fallback` (/proc/<pid>/exe) when the path
    is gone; None when unreadable."""
    for candidate in filter(None, (path, fallback)):
        try:
            st = os.stat(candidate)
            key = (path, st.st_mtime_ns, st.st_size)
            if key in _HASH_CACHE:
                return _HASH_CACHE[key]
            h = hashlib.sha256()
            with open(candidate, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
            if len(_HASH_CACHE) > 4096:
                _HASH_CACHE.clear()
            _HASH_CACHE[key] = digest
            return digest
        except OSError:
            continue
    return None


def _matches_any(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def script_of(info: ProcInfo) -> tuple[str | None, bool]:
    """(the script an interpreter runs, absolute; inline code given?)."""
    base = os.path.basename(info.exe or info.name)
    if not _matches_any(base, INTERPRETERS) or len(info.argv) < 2:
        return None, False
    args = list(info.argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in INLINE_FLAGS or (
            arg.startswith("-") and not arg.startswith("--") and 2 < len(arg) <= 4 and any(c in "ceE" for c in arg[1:])
        ):
            return None, True  # `sh -ec '...'`, `perl -pe '...'` too
        if arg.startswith("-"):
            i += 2 if arg in VALUE_FLAGS else 1
            continue
        break
    if i >= len(args):
        return None, False  # an interactive interpreter, or code on standard input
    script = args[i]
    if not os.path.isabs(script):
        script = os.path.join(info.cwd or "/", script)
    return os.path.normpath(script), False


def is_allowed(policy: Policy, name: str, exe: str | None) -> bool:
    needs_hash = any(rule.sha256 for rule in policy.allow)
    digest = file_sha256(exe) if needs_hash and exe else None
    return any(rule.matches(name, exe, digest) for rule in policy.allow)


# The agent's own commands (the notice at each login runs `madoguchi-agent notice` in the desk
# user's session): never stopped by the agent.
OWN_BIN = os.path.join(os.path.realpath(sys.prefix), "bin") + os.sep


def system_file(path: str) -> bool:
    """Owned by root and writable by nobody else: installed by the administrator, not by a desk
    user (who cannot create such a file). Session scripts of the desktop live in /etc, /usr/share..."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & 0o022


def decide(policy: Policy, info: ProcInfo) -> Decision:
    script, inline = script_of(info)
    if not is_allowed(policy, info.name, info.exe):
        return Decision(False, "not_allowed", script, inline)
    base = os.path.basename(info.exe or info.name)
    if inline and _matches_any(base, policy.inline_code_forbidden):
        return Decision(False, "inline_code", script, inline)
    if (
        script is not None
        and not script.startswith(OWN_BIN)
        and not system_file(script)
        and not is_allowed(policy, os.path.basename(script), script)
    ):
        return Decision(False, "script_not_allowed", script, inline)
    return Decision(True, "allowed", script, inline)


class Scope:
    """Which processes are the desk's: the desk users' (uid) and the trees under the root pids."""

    def __init__(self, users: tuple[str, ...] = (), root_pids: tuple[int, ...] = ()):
        self.users = tuple(users)
        self.root_pids = set(root_pids)
        self.uids: frozenset[int] = frozenset()
        self.homes: tuple[str, ...] = ()
        self._me = os.getpid()
        self.refresh()

    def refresh(self) -> None:
        """Resolve the desk accounts again (the logged-in users change)."""
        names = self.users or tuple(sorted({u.name for u in psutil.users()}))
        uids, homes = set(), []
        for name in names:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if not self.users and entry.pw_uid < 1000:
                continue  # logged in, but a system account (root at the console is no desk user)
            uids.add(entry.pw_uid)
            homes.append(entry.pw_dir)
        self.uids, self.homes = frozenset(uids), tuple(homes)

    @property
    def empty(self) -> bool:
        return not self.uids and not any(os.path.exists(f"{PROC}/{p}") for p in self.root_pids)

    def contains(self, pid: int, uid: int | None, ppid: int) -> bool:
        if pid == self._me:
            return False
        if uid is not None and uid in self.uids:
            return True
        if not self.root_pids:
            return False
        p, depth = ppid, 0
        while p > 1 and depth < 64:
            if p in self.root_pids:
                return True
            st = _stat(p)
            if st is None:
                return False
            p, depth = st[0], depth + 1
        return False


def running(scope: Scope) -> list[ProcInfo]:
    """Every process in scope now."""
    out = []
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        pid = int(entry)
        status = read_status(pid)
        if status is None or not scope.contains(pid, status[2], status[1]):
            continue
        info = read_proc(pid, status)
        if info is not None:
            out.append(info)
    return out


# ---------------------------------------------------------------------------------------------
# The kernel's process connector
# ---------------------------------------------------------------------------------------------

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_EXEC = 0x00000002
NLMSG_DONE = 3
_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_PROC_EVENT = struct.Struct("=IIQ")


class ExecListener:
    """Calls `on_exec(pid)` on its own thread for every exec on the machine (netlink proc connector).

    `start()` raises OSError when the kernel refuses (no root, no connector). A receive-buffer
    overflow (ENOBUFS: execs lost) calls `on_overflow()`, after which the agent rescans /proc."""

    def __init__(self, on_exec: Callable[[int], None], on_overflow: Callable[[], None]):
        self.on_exec = on_exec
        self.on_overflow = on_overflow
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.execs = 0

    def start(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            with _suppress_oserror():
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((0, CN_IDX_PROC))
            payload = struct.pack("=I", PROC_CN_MCAST_LISTEN)
            cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0)
            msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn) + len(payload), NLMSG_DONE, 0, 0, 0) + cn + payload
            sock.send(msg)
            sock.settimeout(0.5)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="exec-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("processes.netlink_overflow")
                    self.on_overflow()
                    continue
                if self._stop.is_set():
                    return
                log.warning("processes.netlink_failed", error=errno.errorcode.get(exc.errno or 0, type(exc).__name__))
                time.sleep(0.5)
                continue
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length = _NLMSGHDR.unpack_from(data, offset)[0]
                if length < _NLMSGHDR.size:
                    break
                body = offset + _NLMSGHDR.size + _CN_MSG.size
                if body + _PROC_EVENT.size + 8 <= offset + length:
                    what = _PROC_EVENT.unpack_from(data, body)[0]
                    if what == PROC_EVENT_EXEC:
                        _pid, tgid = struct.unpack_from("=II", data, body + _PROC_EVENT.size)
                        self.execs += 1
                        try:
                            self.on_exec(tgid)
                        except Exception:  # one bad exec never stops the listener
                            log.exception("processes.exec_failed")
                offset += (length + 3) & ~3

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()


class _suppress_oserror:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, OSError)


# ---------------------------------------------------------------------------------------------
# Termination
# ---------------------------------------------------------------------------------------------


def terminate_pid(pid: int, start: int, grace: float = 2.0) -> tuple[bool, str | None]:
    """Terminate the process (pid, start): never another one that reused the pid."""
    st = _stat(pid)
    if st is None or (start and st[1] != start):
        return True, None  # gone already
    try:
        return terminate(psutil.Process(pid), grace)
    except psutil.NoSuchProcess:
        return True, None


def terminate(proc: psutil.Process, grace: float = 2.0) -> tuple[bool, str | None]:
    """SIGTERM, then SIGKILL; True once the process is gone (a zombie awaiting its parent counts)."""
    try:
        proc.terminate()
        if _gone(proc, grace):
            return True, None
        proc.kill()
        if _gone(proc, grace):
            return True, None
        return False, "still_running"
    except psutil.NoSuchProcess:
        return True, None
    except psutil.AccessDenied:
        return False, "EACCES"
    except psutil.Error as exc:
        return False, type(exc).__name__


def _gone(proc: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
