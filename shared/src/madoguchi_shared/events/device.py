"""Device events: what the agent on each desk PC observes (SEC-2, SEC-4, DESK-9).

One aggregate per PC: `agent`, id = the device id (e.g. "chuo-1-pc"), so every event of a PC
lives on mg.device.<municipality>.agent.<device_id>. The agent writes them to its local outbox
first and drains it to JetStream with Nats-Msg-Id = event_id (ARCHITECTURE rule 1), so an event
may arrive long after `occurred_at`; consumers order by `occurred_at` where it matters.

No personal data (ARCHITECTURE rule 5):
- a card is its reader name and ATR only (the ATR identifies the card type, not the holder);
  the agent never sends an APDU that reads card data;
- a file is a root label and a path relative to that root, never its content; the watched
  root itself (which holds the OS user name, e.g. /home/<user>/Desktop) is replaced by a label;
  every path segment in which the PII guard finds something (a My Number, a 12-digit run, a
  phone number, an e-mail address) is replaced as a whole by "[redacted]" (keeping a short
  extension), since a segment holding a number usually holds a name beside it. The guard cannot
  recognise a person's name on its own: a file called "山田太郎.txt" keeps its name. The
  quarantined copy is named by the event id, so staff find the file without the event naming it;
- an executable path under a home folder is shown from "~", hiding the account name;
- every free-text field is checked again by `check_free_text` at validation, as a safety net:
  the agent sanitises first, so a refusal here is a bug, not a lost event.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from madoguchi_shared.events.base import MAX_SAFE_INT, Event, Ident
from madoguchi_shared.pii import check_free_text, find_personal_data

REDACTED = "[redacted]"

_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def redact(text: str, limit: int = 256) -> str:
    """Replace every span the PII guard flags by "[redacted]" (for names of readers, products), at most
    ``limit`` characters. Again until nothing is found: a finding may cover only part of what it stands in
    (a number written twice in a row, 「7361の7544の65717361の7544の6571」, was read as one My Number in the
    middle, and the halves left on either side made another), and the event's own check would refuse the
    rest; when three rounds leave something, or the cut at ``limit`` makes something (電話 123-4567|890),
    the whole text is replaced."""
    for _ in range(3):
        findings = find_personal_data(text)
        if not findings:
            break
        for f in reversed(findings):
            text = text[: f.start] + REDACTED + text[f.end :]
    text = text[:limit]
    return REDACTED if find_personal_data(text) else text


def _safe_segment(segment: str) -> str:
    if not find_personal_data(segment):
        return segment
    suffix = PurePosixPath(segment).suffix
    return REDACTED + (suffix if _SUFFIX.match(suffix) and not find_personal_data(suffix) else "")


def _redacted_segment(segment: str) -> str:
    suffix = PurePosixPath(segment).suffix
    return REDACTED + (suffix if _SUFFIX.match(suffix) and not find_personal_data(suffix) else "")


def _safe_join(parts: list[str], lead: str) -> str:
    """``lead`` + the segments joined by "/", each flagged segment replaced; then the whole path is read
    again, since a number may be spread over folders (1234/5678/9018.txt, 090-1234/5678.pdf): every
    segment a finding of the joined path touches is replaced too. The event's own check would refuse
    the path otherwise, and the event (a file holding personal data found) would be lost."""
    if not parts:
        return lead.rstrip("/") or lead
    segments = [_safe_segment(p) for p in parts]
    for _ in range(len(segments) + 1):
        joined = lead + "/".join(segments)
        findings = find_personal_data(joined[:1024])
        if not findings:
            return joined[:1024]
        at = len(lead)
        touched: set[int] = set()
        for i, seg in enumerate(segments):
            if any(f.start < at + len(seg) and at < f.end for f in findings):
                touched.add(i)
            at += len(seg) + 1
        fresh = {i for i in touched if segments[i] != _redacted_segment(segments[i])}
        if not fresh:
            break
        for i in fresh:
            segments[i] = _redacted_segment(segments[i])
    return lead + REDACTED


def safe_relative_path(path: str, root: str) -> str:
    """`path` relative to the watched `root`, with every flagged segment replaced (see module doc)."""
    rel = PurePosixPath(path).relative_to(PurePosixPath(root))
    return _safe_join(list(rel.parts), "") or "."


def safe_executable_path(path: str) -> str:
    """An executable's path with the home folder's account name hidden and flagged segments replaced."""
    parts = list(PurePosixPath(path).parts)
    if len(parts) >= 3 and parts[0] == "/" and parts[1] == "home":
        return _safe_join(parts[3:], "~/")
    if len(parts) >= 2 and parts[0] == "/" and parts[1] == "root":
        return _safe_join(parts[2:], "~/")
    return _safe_join([p for p in parts if p != "/"], "/")


def _checked(value: str) -> str:
    return check_free_text(value)


# A short text from the machine (reader, process, product names): screened for personal data.
MachineText = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_checked)]
SafePath = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_checked)]
# A version string or an error name from the machine (1.0, 0.1.0+build, EACCES, still_running): a word
# of a machine, never free text; a laptop cannot put a phone number or a My Number in it either.
MachineWord = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$"), AfterValidator(_checked)
]
AtrHex = Annotated[str, StringConstraints(pattern=r"^(?:[0-9A-F]{2}){2,33}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
UsbId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{4}$")]  # idVendor / idProduct
UsbClass = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{2}$")]  # bDeviceClass / bInterfaceClass
UsbPort = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.:_-]{1,32}$")]  # sysfs name, e.g. 1-1.2
PersonalDataKind = Literal["my_number", "twelve_digits", "phone", "email", "name", "address", "birth_date"]


class _AgentEvent(Event):
    context: ClassVar[str] = "device"
    aggregate: ClassVar[str] = "agent"
    aggregate_field: ClassVar[str] = "device_id"
    device_id: Ident


AgentEvent = _AgentEvent  # what the agent builds: every event of a device (madoguchi_agent.Agent.build)


# ---------------------------------------------------------------------------------------------
# Lifecycle, heartbeat, policy (SEC-2 "security management"; tamper evidence)
# ---------------------------------------------------------------------------------------------


class AgentStarted(_AgentEvent):
    """The agent started. `previous_run` = "unclean" when the last run never recorded its stop
    (killed, crashed, power cut): a tamper indicator for the auditors."""

    type: Literal["device.agent_started"] = "device.agent_started"
    agent_version: MachineWord = Field(max_length=32)
    policy_version: int = Field(ge=0, le=1_000_000_000)
    previous_run: Literal["first", "clean", "unclean"]
    outbox_depth: int = Field(ge=0, le=100_000_000)


class AgentStopped(_AgentEvent):
    """The agent stopped: on SIGTERM (shutdown, update), on request, or on an error."""

    type: Literal["device.agent_stopped"] = "device.agent_stopped"
    reason: Literal["signal", "requested", "error"]
    uptime_s: int = Field(ge=0, le=315_360_000)


class Heartbeat(_AgentEvent):
    """Every N seconds (policy). HQ alerts on a gap during opening hours (the audit service)."""

    type: Literal["device.heartbeat"] = "device.heartbeat"
    agent_version: MachineWord = Field(max_length=32)
    policy_version: int = Field(ge=0, le=1_000_000_000)
    outbox_depth: int = Field(ge=0, le=100_000_000)  # events waiting in the local journal, this one included
    outbox_bytes: int = Field(ge=0, le=1_099_511_627_776)
    link_up: bool  # the NATS link was up when the heartbeat was written
    uptime_s: int = Field(ge=0, le=315_360_000)
    card_present: bool = False


class PolicyApplied(_AgentEvent):
    """At start: the policy the agent enforces and where it came from (bus, local cache, built-in)."""

    type: Literal["device.policy_applied"] = "device.policy_applied"
    policy_version: int = Field(ge=0, le=1_000_000_000)  # the key-value revision, 0 = built-in default
    sha256: Sha256Hex
    source: Literal["bus", "cache", "default"]


class PolicyChanged(_AgentEvent):
    """A new policy revision arrived from the bus while running and now applies."""

    type: Literal["device.policy_changed"] = "device.policy_changed"
    from_version: int = Field(ge=0, le=1_000_000_000)
    policy_version: int = Field(ge=0, le=1_000_000_000)
    sha256: Sha256Hex


class OutboxSizeAlarm(_AgentEvent):
    """The local journal grows (link down for long): warning at a quarter of the cap, critical at
    three quarters, `shedding` at the cap (then only low-value events, heartbeats and device
    inventory, are refused, and counted here), `cleared` once drained. Never a silent drop."""

    type: Literal["device.outbox_size_alarm"] = "device.outbox_size_alarm"
    level: Literal["warning", "critical", "shedding", "cleared"]
    depth: int = Field(ge=0, le=100_000_000)
    bytes: int = Field(ge=0, le=1_099_511_627_776)
    cap_bytes: int = Field(ge=1, le=1_099_511_627_776)
    shed: int = Field(ge=0, default=0, le=100_000_000)  # events refused since the last alarm
    # the disk holding the journal is full: "critical" whatever the size; only events that must
    # never be lost are written (into the journal's reserve) until there is room again
    disk_full: bool = False


class SyntheticLoad(_AgentEvent):
    """Synthetic load for the agent benchmark and the outbox durability test; consumers ignore it."""

    type: Literal["device.synthetic_load"] = "device.synthetic_load"
    run_id: Ident
    seq: int = Field(ge=0, le=MAX_SAFE_INT)


# ---------------------------------------------------------------------------------------------
# Monitoring notice (SEC-2: staff are told they are monitored)
# ---------------------------------------------------------------------------------------------


class MonitoringNoticeShown(_AgentEvent):
    """SEC-2: the monitoring notice was shown to a staff member logging in on the PC."""

    type: Literal["device.monitoring_notice_shown"] = "device.monitoring_notice_shown"
    staff_id: Ident
    notice_sha256: Sha256Hex  # which text was shown
    policy_version: int | None = Field(default=None, ge=0, le=1_000_000_000)  # the policy the text was generated from
    staff_verified: bool | None = None  # the staff account was found on the bus (None: could not ask)


class MonitoringNoticeAcknowledged(_AgentEvent):
    """SEC-2: the staff member acknowledged the monitoring notice (caused by the shown event)."""

    type: Literal["device.monitoring_notice_acknowledged"] = "device.monitoring_notice_acknowledged"
    staff_id: Ident
    notice_sha256: Sha256Hex


class MonitoringNoticeDeclined(_AgentEvent):
    """SEC-2: the staff member declined the monitoring notice (caused by the shown event). The
    desk refuses that staff member's check-in and HQ alerts the manager."""

    type: Literal["device.monitoring_notice_declined"] = "device.monitoring_notice_declined"
    staff_id: Ident
    notice_sha256: Sha256Hex


# ---------------------------------------------------------------------------------------------
# Gaps in the monitoring itself (SEC-2: "every operation" or a loud warning, never silence)
# ---------------------------------------------------------------------------------------------

GapMonitor = Literal["processes", "usb", "files", "card", "link", "sessions", "printing"]


class MonitoringGap(_AgentEvent):
    """A part of the PC is not monitored, or only degraded: no desk user to watch, no USB sysfs, no
    watched folder (or one missing), no kernel process notices (polling instead), the bus refusing
    the agent. `closed` = the gap ended (the monitor works again). HQ alerts on an open gap."""

    type: Literal["device.monitoring_gap"] = "device.monitoring_gap"
    monitor: GapMonitor
    reason: Ident  # a short code: no_desk_user, no_sysfs, no_watched_folder, folder_missing,
    #                netlink_unavailable, watch_failed, connect_failed, ...
    detail: MachineText | None = None  # the error's class or message (screened like any machine text)
    closed: bool = False


# ---------------------------------------------------------------------------------------------
# Every operation (SEC-2): program starts, sessions, files, printing
# ---------------------------------------------------------------------------------------------


class ProcessStarted(_AgentEvent):
    """A program started in the desk session (the kernel's exec notice; `source` = "scan" for one
    found running by a scan: at start, after a policy change, or when kernel notices are missing).
    An interpreter's script is named (sanitised like a path); code given on the command line
    (`python3 -c`, `sh -c`) is flagged by `inline_code`, never copied."""

    type: Literal["device.process_started"] = "device.process_started"
    pid: int = Field(ge=0, le=4_294_967_295)
    name: MachineText
    path: SafePath | None = None
    sha256: Sha256Hex | None = None
    parent_pid: int | None = Field(default=None, ge=0, le=4_294_967_295)
    parent_name: MachineText | None = None
    parent_path: SafePath | None = None
    os_uid: int | None = Field(default=None, ge=0, le=4_294_967_295)
    script: SafePath | None = None
    inline_code: bool = False
    allowed: bool
    source: Literal["netlink", "scan"]


SessionAction = Literal["logon", "logoff", "lock", "unlock"]


class SessionChanged(_AgentEvent):
    """A desk-user session on the PC logged on, logged off, locked or unlocked (logind)."""

    type: Literal["device.session_changed"] = "device.session_changed"
    action: SessionAction
    session: Ident  # the logind session id
    os_uid: int | None = Field(default=None, ge=0, le=4_294_967_295)  # the account's uid (its name may be a person's)
    seat: Ident | None = None
    remote: bool = False


FileAction = Literal["created", "modified", "moved", "deleted"]


class FileActivity(_AgentEvent):
    """A file was created, changed, moved or deleted in a watched folder or on removable media
    (inotify). Path rules as for PersonalDataFileFound; `dest_path` for a move inside watched
    folders. Never the content."""

    type: Literal["device.file_activity"] = "device.file_activity"
    root: Ident
    path: SafePath
    action: FileAction
    dest_root: Ident | None = None
    dest_path: SafePath | None = None
    size_bytes: int | None = Field(default=None, ge=0, le=1_099_511_627_776)


class FileNotScanned(_AgentEvent):
    """A file in a watched folder that the personal-data scan could not read in full: never a
    silent skip. `scanned_bytes` says how much was read before giving up."""

    type: Literal["device.file_not_scanned"] = "device.file_not_scanned"
    root: Ident
    path: SafePath
    size_bytes: int = Field(ge=0, le=1_099_511_627_776)
    scanned_bytes: int = Field(ge=0, default=0, le=1_099_511_627_776)
    reason: Literal["too_large", "unreadable", "archive_limit", "archive_encrypted", "archive_damaged"]


class PrintJob(_AgentEvent):
    """A print job of the PC (CUPS): printer, pages and state; never the document's title or content."""

    type: Literal["device.print_job"] = "device.print_job"
    job_id: int = Field(ge=0, le=2_147_483_647)
    printer: MachineText
    state: Literal["queued", "completed", "cancelled", "aborted", "stopped"]
    pages: int | None = Field(default=None, ge=0, le=100_000)
    size_bytes: int | None = Field(default=None, ge=0, le=1_099_511_627_776)


# ---------------------------------------------------------------------------------------------
# Card reader (DESK-9, SEC-3): reader name and ATR only
# ---------------------------------------------------------------------------------------------


class ReaderAttached(_AgentEvent):
    """An IC card reader appeared on PC/SC (also every reader present when the agent starts)."""

    type: Literal["device.reader_attached"] = "device.reader_attached"
    reader: MachineText


class ReaderDetached(_AgentEvent):
    """An IC card reader disappeared from PC/SC."""

    type: Literal["device.reader_detached"] = "device.reader_detached"
    reader: MachineText


class CardInserted(_AgentEvent):
    """A card was put into a reader: reader name and ATR only (no APDU is ever sent)."""

    type: Literal["device.card_inserted"] = "device.card_inserted"
    reader: MachineText
    atr: AtrHex
    visit_id: Ident | None = None  # the desk's visit in progress, when the agent knows one


class CardRemoved(_AgentEvent):
    """A card was taken out of a reader."""

    type: Literal["device.card_removed"] = "device.card_removed"
    reader: MachineText
    atr: AtrHex
    dwell_s: float | None = Field(default=None, ge=0, le=86_400)  # seconds since insertion, when seen


class CardLeftInReader(_AgentEvent):
    """DESK-9: a citizen's card is still in the reader when the visit ended, or for longer than
    the policy's limit with no visit in progress. The manager phones the city at once."""

    type: Literal["device.card_left_in_reader"] = "device.card_left_in_reader"
    reader: MachineText
    atr: AtrHex
    inserted_at: AwareDatetime
    reason: Literal["visit_ended", "no_visit"]
    visit_id: Ident | None = None
    seconds_in_reader: float = Field(ge=0, le=86_400)

    def describe_ja(self) -> str:
        if self.reason == "visit_ended":
            return f"カードが読取機（{self.reader}）に残されたまま、受付が終了しました。至急確認してください。"
        minutes = int(self.seconds_in_reader // 60)
        return f"受付中でないのに、カードが読取機（{self.reader}）に {minutes} 分以上入ったままです。至急確認してください。"


# ---------------------------------------------------------------------------------------------
# Application restriction (SEC-2)
# ---------------------------------------------------------------------------------------------


class ProcessViolation(_AgentEvent):
    """A process outside the desk role's allow-list. `enforced` = it was terminated."""

    type: Literal["device.process_violation"] = "device.process_violation"
    pid: int = Field(ge=0, le=4_294_967_295)
    name: MachineText
    path: SafePath | None = None  # None when the executable cannot be read (kernel thread, gone)
    sha256: Sha256Hex | None = None
    parent_name: MachineText | None = None
    parent_path: SafePath | None = None
    os_uid: int | None = Field(
        default=None, ge=0, le=4_294_967_295
    )  # the OS account's uid (its name may be a person's)
    enforce: bool  # the policy asked for termination
    enforced: bool  # the process was terminated
    error: MachineWord | None = Field(default=None, max_length=64)  # why termination failed (errno name)
    # not_allowed: the executable; script_not_allowed: the script an interpreter runs; inline_code:
    # code given on an interpreter's command line (`python3 -c`)
    reason: Literal["not_allowed", "script_not_allowed", "inline_code"] = "not_allowed"
    script: SafePath | None = None
    source: Literal["netlink", "scan"] = "scan"


# ---------------------------------------------------------------------------------------------
# Device management (SEC-2, SEC-4)
# ---------------------------------------------------------------------------------------------


class _UsbEvent(_AgentEvent):
    port: UsbPort  # the sysfs device name, e.g. "1-1.2"
    vendor_id: UsbId
    product_id: UsbId
    device_class: UsbClass
    interface_classes: tuple[UsbClass, ...] = Field(default=(), max_length=32)
    manufacturer: MachineText | None = None
    product: MachineText | None = None
    serial: MachineText | None = None


class UsbDeviceAttached(_UsbEvent):
    """A USB device appeared (or was present at start); `allowed` by the policy's classes/ids."""

    type: Literal["device.usb_device_attached"] = "device.usb_device_attached"
    present_at_start: bool = False  # found by the first scan after the agent started
    allowed: bool


class UsbDeviceRemoved(_UsbEvent):
    """A USB device disappeared."""

    type: Literal["device.usb_device_removed"] = "device.usb_device_removed"


class UsbViolation(_UsbEvent):
    """Mass storage (interface class 08), or a class outside the policy's list. `blocked` = the
    device was de-authorised through sysfs; `block_attempted` without `blocked` = the OS refused."""

    type: Literal["device.usb_violation"] = "device.usb_violation"
    kind: Literal["mass_storage", "class_not_allowed"]
    block_attempted: bool
    blocked: bool
    error: MachineWord | None = Field(default=None, max_length=64)  # errno name when the block failed
    reauthorized: bool = False  # the device was authorised again after the agent blocked it (tamper)


# ---------------------------------------------------------------------------------------------
# Personal data on disk (SEC-2: nobody stores personal information on the PC)
# ---------------------------------------------------------------------------------------------


class PersonalDataFileFound(_AgentEvent):
    """A file in a watched folder holds personal data: where it is and which kinds, never the data.
    `in_name` = found in the file's name (as well); `in_archive` = inside a .zip archive."""

    type: Literal["device.personal_data_file_found"] = "device.personal_data_file_found"
    root: Ident  # the watched folder's label from the policy, e.g. "desktop", "removable"
    path: SafePath  # relative to that folder, flagged segments replaced (see module doc)
    kinds: tuple[PersonalDataKind, ...] = Field(min_length=1, max_length=20)
    findings: int = Field(ge=1, le=1_000_000)
    size_bytes: int = Field(ge=0, le=1_099_511_627_776)
    quarantine: bool  # the policy asked for quarantine
    quarantined: bool
    quarantine_name: str | None = Field(default=None, pattern=r"^[0-9a-f-]{36}(?:\.[A-Za-z0-9]{1,10})?$")
    error: MachineWord | None = Field(default=None, max_length=64)
    in_name: bool = False
    in_archive: bool = False

    def describe_ja(self) -> str:
        kinds = "、".join(_KIND_JA[k] for k in self.kinds)
        where = "隔離フォルダへ移動しました" if self.quarantined else "端末上に残っています"
        return f"個人情報（{kinds}）を含むファイル「{self.root}/{self.path}」を検知しました。ファイルは{where}。"


_KIND_JA = {
    "my_number": "個人番号",
    "twelve_digits": "12桁の数字",
    "phone": "電話番号",
    "email": "メールアドレス",
    "name": "氏名",
    "address": "住所",
    "birth_date": "生年月日",
}


__all__ = [
    "AgentEvent",
    "REDACTED",
    "redact",
    "safe_relative_path",
    "safe_executable_path",
    "AgentStarted",
    "AgentStopped",
    "Heartbeat",
    "PolicyApplied",
    "PolicyChanged",
    "OutboxSizeAlarm",
    "SyntheticLoad",
    "MonitoringNoticeShown",
    "MonitoringNoticeAcknowledged",
    "ReaderAttached",
    "ReaderDetached",
    "CardInserted",
    "CardRemoved",
    "CardLeftInReader",
    "ProcessViolation",
    "UsbDeviceAttached",
    "UsbDeviceRemoved",
    "UsbViolation",
    "PersonalDataFileFound",
    "MonitoringNoticeDeclined",
    "MonitoringGap",
    "ProcessStarted",
    "SessionChanged",
    "FileActivity",
    "FileNotScanned",
    "PrintJob",
]
