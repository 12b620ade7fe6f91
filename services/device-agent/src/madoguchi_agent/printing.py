"""Print jobs of the PC (SEC-2 "every operation"), from CUPS over IPP.

`PrintWatch.step()` asks the CUPS scheduler for every job (IPP Get-Jobs, which-jobs = all, over
HTTP to `cups_url`) and returns what changed since the last look: a job seen for the first time
(queued, or already finished) and a job that reached a final state (completed, cancelled,
aborted) or stopped. Only the job id, the printer's name, the state, the pages printed and the
size are read: never the document's title (it often holds a citizen's name), its content or the
account name. A small IPP encoder/decoder (RFC 8010) keeps the agent free of a CUPS binding.
"""

from __future__ import annotations

import itertools
import struct
import urllib.request
from dataclasses import dataclass

OPERATION_ATTRIBUTES, JOB_ATTRIBUTES, END = 0x01, 0x02, 0x03
TAG_INTEGER, TAG_BOOLEAN, TAG_ENUM = 0x21, 0x22, 0x23
TAG_URI, TAG_CHARSET, TAG_LANGUAGE, TAG_KEYWORD = 0x45, 0x47, 0x48, 0x44
GET_JOBS = 0x000A
REQUESTED = ("job-id", "job-state", "job-printer-uri", "job-k-octets", "job-impressions-completed")
STATES = {3: "queued", 4: "queued", 5: "queued", 6: "stopped", 7: "cancelled", 8: "aborted", 9: "completed"}
FINAL = ("completed", "cancelled", "aborted")

_request_ids = itertools.count(1)


def _attr(tag: int, name: str, value: bytes) -> bytes:
    n = name.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(value)) + value


def get_jobs_request(printer_uri: str) -> bytes:
    body = struct.pack(">BBHI", 2, 0, GET_JOBS, next(_request_ids)) + bytes([OPERATION_ATTRIBUTES])
    body += _attr(TAG_CHARSET, "attributes-charset", b"utf-8")
    body += _attr(TAG_LANGUAGE, "attributes-natural-language", b"en")
    body += _attr(TAG_URI, "printer-uri", printer_uri.encode())
    body += _attr(TAG_KEYWORD, "which-jobs", b"all")
    for i, name in enumerate(REQUESTED):
        body += _attr(TAG_KEYWORD, "requested-attributes" if i == 0 else "", name.encode())
    return body + bytes([END])


def parse_jobs(data: bytes) -> tuple[int, list[dict]]:
    """(IPP status code, one dict per job group)."""
    status = struct.unpack_from(">H", data, 2)[0]
    pos, jobs, current, name = 8, [], None, ""
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag <= 0x0F:  # a delimiter: a new group
            if tag == END:
                break
            current = {} if tag == JOB_ATTRIBUTES else None
            if current is not None:
                jobs.append(current)
            continue
        nlen = struct.unpack_from(">H", data, pos)[0]
        pos += 2
        if nlen:
            name = data[pos : pos + nlen].decode("utf-8", "replace")
        pos += nlen
        vlen = struct.unpack_from(">H", data, pos)[0]
        pos += 2
        raw = data[pos : pos + vlen]
        pos += vlen
        if current is None or nlen == 0:
            continue  # operation attributes, or a further value of a 1setOf
        if tag in (TAG_INTEGER, TAG_ENUM) and vlen == 4:
            current[name] = struct.unpack(">i", raw)[0]
        elif tag == TAG_BOOLEAN and vlen == 1:
            current[name] = bool(raw[0])
        else:
            current[name] = raw.decode("utf-8", "replace")
    return status, jobs


@dataclass(frozen=True)
class Job:
    job_id: int
    printer: str
    state: str
    pages: int | None
    size_bytes: int | None


class PrintWatch:
    def __init__(self, cups_url: str):
        self.url = cups_url.rstrip("/") + "/"
        host = self.url.split("://", 1)[-1].split("/", 1)[0]
        self.printer_uri = f"ipp://{host}/"
        self._known: dict[int, str] = {}  # job id -> last state reported
        self._first = True

    def jobs(self, timeout: float = 5.0) -> list[Job]:
        request = urllib.request.Request(
            self.url,
            data=get_jobs_request(self.printer_uri),
            headers={"Content-Type": "application/ipp"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # a configured local URL
            status, groups = parse_jobs(response.read())
        if status >= 0x0400 and status != 0x0406:  # client/server error (0x0406: no jobs, not found)
            raise OSError(f"IPP status 0x{status:04x}")
        out = []
        for g in groups:
            if "job-id" not in g:
                continue
            uri = str(g.get("job-printer-uri", ""))
            k = g.get("job-k-octets")
            out.append(
                Job(
                    int(g["job-id"]),
                    uri.rstrip("/").rsplit("/", 1)[-1] or "?",
                    STATES.get(int(g.get("job-state", 3)), "queued"),
                    g.get("job-impressions-completed"),
                    k * 1024 if isinstance(k, int) else None,
                )
            )
        return out

    def step(self) -> list[Job]:
        """Jobs new since the last look (not at the first look: those are history) or in a new
        final/stopped state."""
        changes = []
        for job in self.jobs():
            before = self._known.get(job.job_id)
            if before == job.state:
                continue
            self._known[job.job_id] = job.state
            if self._first and before is None:
                continue
            if before is None or job.state in (*FINAL, "stopped"):
                changes.append(job)
        self._first = False
        return changes
