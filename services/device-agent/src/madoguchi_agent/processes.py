"""Application restriction (SEC-2): processes of the desk session outside the role's allow-list.

A scan (psutil) looks at the processes in scope: those of the desk's OS accounts and those under
the configured session root pids. Each new process (pid + start time) is checked once against the
policy's allow rules; one that matches none is reported with name, path, sha256 and parent, and,
when the policy says enforce, terminated (SIGTERM, then SIGKILL after 2 s) and reported as such.
The agent itself is never in scope (it starts no programs).

Scans run in a worker thread (`asyncio.to_thread`): hashing an unknown executable reads it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import psutil

from madoguchi_agent.policy import Policy
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Violation:
    pid: int
    name: str
    exe: str | None
    sha256: str | None
    parent_name: str | None
    parent_exe: str | None
    uid: int | None
    enforce: bool
    enforced: bool
    error: str | None


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str | None:
    """sha256 of a file, cached by (path, mtime, size); None when unreadable."""
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        if len(_HASH_CACHE) > 4096:
            _HASH_CACHE.clear()
        _HASH_CACHE[key] = digest
        return digest
    except OSError:
        return None


def is_allowed(policy: Policy, name: str, exe: str | None) -> bool:
    needs_hash = any(rule.sha256 for rule in policy.allow)
    digest = file_sha256(exe) if needs_hash and exe else None
    return any(rule.matches(name, exe, digest) for rule in policy.allow)


class ProcessWatch:
    def __init__(self, users: tuple[str, ...] = (), root_pids: tuple[int, ...] = ()):
        self.users = set(users)
        self.root_pids = set(root_pids)
        self._seen: dict[int, float] = {}  # pid -> create_time, checked already
        self._me = os.getpid()

    def _in_scope(self, pid: int, username: str | None, parents: dict[int, int]) -> bool:
        if pid == self._me:
            return False
        # walk up the tree: descendants of a session root pid are in scope
        chain, p, depth = [], pid, 0
        while p and depth < 64:
            chain.append(p)
            p = parents.get(p, 0)
            depth += 1
        if self.root_pids and any(r in chain[1:] for r in self.root_pids):
            return True
        return bool(username and username in self.users)

    def scan(self, policy: Policy) -> list[Violation]:
        procs = list(psutil.process_iter(["pid", "ppid", "name", "username", "uids", "create_time"]))
        parents = {p.info["pid"]: p.info["ppid"] or 0 for p in procs}
        alive: dict[int, float] = {}
        out: list[Violation] = []
        for proc in procs:
            info = proc.info
            pid, created = info["pid"], info["create_time"] or 0.0
            alive[pid] = created
            if self._seen.get(pid) == created:
                continue
            self._seen[pid] = created
            if not self._in_scope(pid, info["username"], parents):
                continue
            violation = self._check(proc, policy)
            if violation is not None:
                out.append(violation)
        # forget pids that are gone so a reused pid is checked again
        self._seen = {pid: t for pid, t in self._seen.items() if alive.get(pid) == t}
        return out

    def _check(self, proc: psutil.Process, policy: Policy) -> Violation | None:
        name = proc.info["name"] or "?"
        try:
            exe = proc.exe() or None
        except (psutil.AccessDenied, psutil.ZombieProcess):
            exe = None
        except psutil.NoSuchProcess:
            return None
        if is_allowed(policy, name, exe):
            return None
        parent_name = parent_exe = None
        try:
            parent = proc.parent()
            if parent is not None:
                parent_name = parent.name()
                try:
                    parent_exe = parent.exe() or None
                except psutil.AccessDenied:
                    pass
        except psutil.Error:
            pass
        digest = file_sha256(exe) if exe else None
        enforced, error = False, None
        if policy.process_enforce:
            enforced, error = terminate(proc)
        log.warning("process.violation", pid=proc.pid, exe_known=exe is not None, enforced=enforced)
        uids = proc.info.get("uids")
        return Violation(proc.pid, name, exe, digest, parent_name, parent_exe, uids.real if uids else None,
                         policy.process_enforce, enforced, error)


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
        time.sleep(0.05)
