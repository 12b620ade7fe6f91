"""HQ alert rules (SEC-2): pure functions over events, no I/O.

    outs = fold(state, event, seq, rules)   # an event from the log: update state, maybe alert
    outs = tick(state, now, rules)          # time passes: silences, re-raises

`state` is a `RuleState` value owned by the caller (the engine stores it as JSON with its log
position, in one transaction); both functions update it and return `Out(event, expected)`: the
alert events to append and the expected last sequence of the alert's subject (0 = the alert must
be new). Alert ids are derived from (municipality, rule, what it is about), so replaying the log
after a crash proposes the same alert and the create check refuses the second copy.

The rules, matched on event `type` strings of the other contexts:

| rule | fires on | severity |
|---|---|---|
| application_violation | device.process_violation | warning if terminated, else urgent |
| usb_violation | device.usb_violation | warning if blocked, else urgent |
| personal_data_file | device.personal_data_file_found | warning if quarantined, else urgent |
| card_left_in_reader | device.card_left_in_reader (DESK-9) | urgent |
| card_left_behind | desk.card_left_behind (DESK-9) | urgent |
| no_supporter_on_duty | desk.staffing_breach_detected .. _ended (DESK-5) | warning with the absence notice shown, else urgent |
| no_operator_seated | calls.no_operator_seated .. seat_coverage_restored (CALL-1) | urgent |
| desk_pc_silent | no device.heartbeat for N s while the desk is open (tick) | warning |
| desk_capacity | desk.capacity_threshold_reached (DESK-2) | info < 100 %, warning, urgent >= 150 % |
| call_capacity | calls.capacity_threshold_crossed (CALL-1) | info approaching, warning reached, urgent exceeded |
| callback_overdue | calls.callback_overdue .. completed/failed/cancelled | warning |
| repeated_access_denied | admin.access_denied N times in T minutes, same subject | warning |
| account_locked | admin.staff_account_locked (too many failed logins, ASVS 6.3) | warning |

Alerts never carry personal data: texts name desks, devices, staff ids and codes, never file
paths or process arguments, and every text passes the PII guard (FreeText) on the event.
"""

from __future__ import annotations

from pydantic import ValidationError

import hashlib
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from madoguchi_shared.calendar import Calendar, Hours
from madoguchi_shared.events import Actor, Event, Role
from madoguchi_shared.events.audit import AlertRaised, AlertReraised, AlertResolved
from madoguchi_shared.events.device import PersonalDataFileFound
from madoguchi_shared.pii import find_personal_data

from madoguchi_audit import device_rules  # its rules use the helpers below at call time

ALERT_ACTOR = Actor(id="audit-alerts", role=Role.system)
_NAMESPACE = uuid.UUID("6f1c2a52-3c55-4b8e-9a35-6d2b1c0f8e21")
_IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Out(NamedTuple):
    event: Event
    expected: int | None  # the alert subject's expected last sequence; 0 = must be new


@dataclass(frozen=True)
class Rules:
    """The thresholds (from AuditSettings)."""

    timezone: str = "Asia/Tokyo"
    opening_time: time = time(8, 45)
    closing_time: time = time(17, 15)
    heartbeat_silence: timedelta = timedelta(seconds=300)
    reraise_after: timedelta = timedelta(seconds=900)
    denied_count: int = 5
    denied_window: timedelta = timedelta(seconds=600)
    keep_for: timedelta = timedelta(days=2)  # forget closed alerts and silent devices after this

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def calendar(self) -> Calendar:
        return Calendar(regular=Hours(self.opening_time, self.closing_time), tz=self.tz)

    @classmethod
    def from_settings(cls, s) -> Rules:
        return cls(
            timezone=s.timezone,
            opening_time=time.fromisoformat(s.opening_time),
            closing_time=time.fromisoformat(s.closing_time),
            heartbeat_silence=timedelta(seconds=s.heartbeat_silence_seconds),
            reraise_after=timedelta(seconds=s.reraise_after_seconds),
            denied_count=s.denied_count,
            denied_window=timedelta(seconds=s.denied_window_seconds),
        )


@dataclass
class RuleState:
    """Everything the rules remember; plain JSON types only (stored with the engine's position)."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # "m/device" -> last heartbeat etc.
    desk_days: dict[str, dict[str, Any]] = field(default_factory=dict)  # "m/desk" -> {day, open}
    denied: dict[str, list[str]] = field(default_factory=dict)  # "m/subject" -> times in the window
    conditions: dict[str, str] = field(default_factory=dict)  # an open condition -> its alert id
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert id -> status for re-raising

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RuleState:
        return cls(**(data or {}))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s)


def about_key(*parts: object) -> str:
    """An Ident naming what an alert is about; hashed when the readable form does not fit."""
    raw = "_".join(str(p) for p in parts if p is not None and p != "")
    if _IDENT.match(raw):
        return raw
    head = re.sub(r"[^A-Za-z0-9_-]", "-", str(parts[0]))[:30] if parts else "x"
    return f"{head}_{hashlib.sha256(raw.encode()).hexdigest()[:24]}"


def stamp(moment: datetime) -> str:
    """A moment inside an alert's `about` key: compact UTC (20261205T213055Z), not epoch seconds, whose ten
    digits beside a staff or device id ending in digits (M0001_1796498972) read as a My Number to the
    personal-data scan."""
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def alert_id_for(municipality: str, rule: str, about: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{municipality}/{rule}/{about}"))


def _safe(text: str, fallback: str) -> str:
    """A text for an alert: the fallback when the guard would refuse it (a name of a process ...)."""
    return fallback if find_personal_data(text) else text


def _where(event: Event, device: str | None = None) -> str:
    if event.desk:
        return f"窓口 {event.desk}"
    if device:
        return f"端末 {device}"
    if event.ward:
        return f"{event.ward} 区"
    return "所在不明の端末"


def _hhmm(t: datetime, rules: Rules) -> str:
    return t.astimezone(rules.tz).strftime("%H:%M")


def _raise(
    state: RuleState,
    rule: str,
    severity: str,
    about: str,
    title: str,
    message: str,
    source: Event,
    *,
    device_id: str | None = None,
    condition: str | None = None,
    at: datetime | None = None,
    ward: str | None = None,
    desk: str | None = None,
) -> list[Out]:
    alert_id = alert_id_for(source.municipality, rule, about)
    if alert_id in state.alerts:
        return []  # already raised (replay, or the same condition reported twice)
    fields: dict[str, Any] = dict(
        municipality=source.municipality,
        ward=ward or source.ward,
        desk=desk or source.desk,
        actor=ALERT_ACTOR,
        correlation_id=source.correlation_id or source.event_id,
        causation_id=source.event_id,
        occurred_at=at or source.occurred_at,
        alert_id=alert_id,
        rule=rule,
        severity=severity,
        title=title,
        source_event_ids=(source.event_id,),
        device_id=device_id,
        about=about,
    )
    try:
        event = AlertRaised(message=message, **fields)
    except ValidationError:
        # A composed message the personal-data guard refuses (ids, times and counts read together as a
        # number) must not stop the alert, nor every alert after it: raise it with its title only.
        event = AlertRaised(message=f"{title}。詳細は操作ログの元の記録を確認してください。", **fields)
    state.alerts[alert_id] = {
        "m": source.municipality,
        "rule": rule,
        "severity": severity,
        "raised_at": _iso(event.occurred_at),
        "last_raised_at": _iso(event.occurred_at),
        "count": 0,
        "acked": False,
        "resolved": False,
        "seq": 0,
        "ward": event.ward,
        "desk": event.desk,
    }
    if condition:
        state.conditions[condition] = alert_id
    return [Out(event, 0)]


def _resolve(state: RuleState, condition: str, source: Event) -> list[Out]:
    alert_id = state.conditions.pop(condition, None)
    if alert_id is None:
        return []
    info = state.alerts.get(alert_id)
    if info is None or info["resolved"]:
        return []
    info["resolved"] = True
    event = AlertResolved(
        municipality=info["m"],
        ward=info["ward"],
        desk=info["desk"],
        actor=ALERT_ACTOR,
        correlation_id=source.correlation_id or source.event_id,
        causation_id=source.event_id,
        alert_id=alert_id,
        reason="condition_cleared",
        source_event_ids=(source.event_id,),
    )
    return [Out(event, info["seq"] or None)]


# --------------------------------------------------------------------------------------------
# event rules
# --------------------------------------------------------------------------------------------


def _process_violation(state, e, rules) -> list[Out]:
    day = e.occurred_at.astimezone(rules.tz).date().isoformat()
    severity = "warning" if e.enforced else "urgent"
    name = _safe(e.name[:40], "名称非表示")
    done = "強制終了しました。" if e.enforced else "終了できていません。至急確認してください。"
    # one alert per program a day; a renamed copy, another reason (inline code...) is another alert
    return _raise(
        state,
        "application_violation",
        severity,
        about_key(e.device_id, e.sha256 or e.name, e.name, getattr(e, "reason", ""), day),
        "許可されていないアプリケーション",
        f"{_where(e, e.device_id)}の端末で許可されていないアプリケーション（{name}）が起動されました。{done}",
        e,
        device_id=e.device_id,
    )


def _usb_violation(state, e, rules) -> list[Out]:
    day = e.occurred_at.astimezone(rules.tz).date().isoformat()
    severity = "warning" if e.blocked else "urgent"
    kind = "記憶装置" if e.kind == "mass_storage" else "許可されていない種類の機器"
    done = "遮断しました。" if e.blocked else "遮断できていません。至急確認してください。"
    # a stick re-authorised after its block (tamper) is a new alert each time
    return _raise(
        state,
        "usb_violation",
        severity,
        about_key(
            e.device_id,
            e.vendor_id + e.product_id,
            e.port.replace(".", "-").replace(":", "-"),
            day,
            e.event_id if getattr(e, "reauthorized", False) else None,
        ),
        "許可されていないUSB機器",
        f"{_where(e, e.device_id)}の端末にUSB機器（{kind}、{e.vendor_id}:{e.product_id}）が接続されました。{done}",
        e,
        device_id=e.device_id,
    )


_KINDS_JA = {
    "my_number": "個人番号",
    "twelve_digits": "12桁の数字",
    "phone": "電話番号",
    "email": "メールアドレス",
    "name": "氏名",
    "address": "住所",
    "birth_date": "生年月日",
}


def _personal_data_file(state, e: PersonalDataFileFound, rules) -> list[Out]:
    severity = "warning" if e.quarantined else "urgent"
    kinds = "、".join(_KINDS_JA.get(k, k) for k in e.kinds)
    done = "隔離フォルダへ移動しました。" if e.quarantined else "端末上に残っています。至急確認し、削除してください。"
    # The path is not repeated here: the guard cannot recognise a name in a file name.
    return _raise(
        state,
        "personal_data_file",
        severity,
        about_key(e.device_id, e.event_id),
        "個人情報を含むファイル",
        f"{_where(e, e.device_id)}の端末の「{e.root}」で個人情報（{kinds}）を含むファイルを検知しました。{done}",
        e,
        device_id=e.device_id,
    )


def _card_left_in_reader(state, e, rules) -> list[Out]:
    minutes = int(e.seconds_in_reader // 60)
    why = "受付終了後も" if e.reason == "visit_ended" else f"受付中でないのに {minutes} 分以上"
    return _raise(
        state,
        "card_left_in_reader",
        "urgent",
        about_key(e.device_id, e.event_id),
        "カードが読取機に残っています",
        f"{_where(e, e.device_id)}の読取機に{why}マイナンバーカードが残っています。"
        "至急確認し、業務責任者は直ちに市へ連絡してください。",
        e,
        device_id=e.device_id,
    )


def _card_left_behind(state, e, rules) -> list[Out]:
    return _raise(
        state,
        "card_left_behind",
        "urgent",
        about_key("visit", e.visit_id),
        "マイナンバーカードの置き忘れ",
        f"{_where(e)}でマイナンバーカードの置き忘れがありました（インシデント {e.incident_no}）。"
        "業務責任者は直ちに市へ電話連絡してください。",
        e,
    )


def _staffing_breach(state, e, rules) -> list[Out]:
    severity = "warning" if e.absence_notice_shown else "urgent"
    note = "（一時不在の表示あり）" if e.absence_notice_shown else ""
    return _raise(
        state,
        "no_supporter_on_duty",
        severity,
        about_key(e.deskday_id, f"b{e.breach_no}"),
        "支援員不在",
        f"{_where(e)}に支援員がいません（{_hhmm(e.since, rules)} から）{note}。",
        e,
        condition=f"staffing/{e.municipality}/{e.deskday_id}/{e.breach_no}",
    )


def _staffing_breach_ended(state, e, rules) -> list[Out]:
    return _resolve(state, f"staffing/{e.municipality}/{e.deskday_id}/{e.breach_no}", e)


def _no_operator(state, e, rules) -> list[Out]:
    return _raise(
        state,
        "no_operator_seated",
        "urgent",
        about_key(e.line_day, int(e.since.timestamp())),
        "オペレーター不在",
        f"電話回線 {e.line} でオペレーターが着席していません（{_hhmm(e.since, rules)} から）。",
        e,
        condition=f"seat/{e.municipality}/{e.line_day}",
    )


def _coverage_restored(state, e, rules) -> list[Out]:
    return _resolve(state, f"seat/{e.municipality}/{e.line_day}", e)


def _desk_capacity(state, e, rules) -> list[Out]:
    share = e.visitors / e.expected_max
    severity = "urgent" if e.threshold >= 1.5 else "warning" if e.threshold >= 1.0 else "info"
    advice = "市への協議が必要です。" if e.threshold >= 1.0 else "混雑に備えてください。"
    return _raise(
        state,
        "desk_capacity",
        severity,
        about_key(e.deskday_id, f"t{round(e.threshold * 100)}"),
        "来庁者数の閾値",
        f"{_where(e)}の来庁者数が {e.visitors} 人（想定 {e.expected_max} 人の {share:.0%}）に達しました。{advice}",
        e,
    )


def _call_capacity(state, e, rules) -> list[Out]:
    severity = {"approaching": "info", "reached": "warning", "exceeded": "urgent"}[e.level]
    label = {"approaching": "に近づいています", "reached": "に達しました", "exceeded": "を超えました"}[e.level]
    return _raise(
        state,
        "call_capacity",
        severity,
        about_key(e.line_day, e.level),
        "入電数の閾値",
        f"電話回線 {e.line} の本日の入電数が {e.count} 件となり、想定（{e.expected_max} 件）{label}。",
        e,
    )


def _callback_overdue(state, e, rules) -> list[Out]:
    return _raise(
        state,
        "callback_overdue",
        "warning",
        about_key(e.callback_id, int(e.due_at.timestamp())),
        "折り返しの期限超過",
        f"折り返し（受付 {str(e.callback_id)[:8]}）が期限 {_hhmm(e.due_at, rules)} を過ぎています。",
        e,
        condition=f"callback/{e.municipality}/{e.callback_id}/{int(e.due_at.timestamp())}",
    )


def _callback_done(state, e, rules) -> list[Out]:
    prefix = f"callback/{e.municipality}/{e.callback_id}/"
    outs: list[Out] = []
    for condition in [c for c in state.conditions if c.startswith(prefix)]:
        outs += _resolve(state, condition, e)
    return outs


def _access_denied(state, e, rules) -> list[Out]:
    key = f"{e.municipality}/{e.subject_id}"
    horizon = e.occurred_at - rules.denied_window
    times = [t for t in state.denied.get(key, []) if _dt(t) > horizon]
    times.append(_iso(e.occurred_at))
    times.sort()
    if len(times) < rules.denied_count:
        state.denied[key] = times
        return []
    state.denied.pop(key, None)
    minutes = max(1, int(rules.denied_window.total_seconds() // 60))
    return _raise(
        state,
        "repeated_access_denied",
        "warning",
        about_key(e.subject_id, int(_dt(times[0]).timestamp())),
        "権限外アクセスの繰り返し",
        f"職員ID {e.subject_id} による権限外の操作が {minutes} 分間に {len(times)} 回ありました"
        f"（{e.service}、理由: {e.reason}）。",
        e,
    )


def _account_locked(state, e, rules) -> list[Out]:
    return _raise(
        state,
        "account_locked",
        "warning",
        about_key(e.staff_id, int(e.until.timestamp())),
        "ログイン失敗によるアカウントのロック",
        f"職員ID {e.staff_id} のログインが {e.failures} 回続けて失敗したため、{_hhmm(e.until, rules)} まで"
        "ロックしました。本人に確認し、心当たりがなければ業務責任者がパスワードをリセットしてください。",
        e,
    )


def _heartbeat(state, e, rules) -> list[Out]:
    key = f"{e.municipality}/{e.device_id}"
    d = state.devices.get(key)
    if d is None or _dt(d["last_hb"]) < e.occurred_at:
        state.devices[key] = d = {
            "m": e.municipality,
            "device": e.device_id,
            "ward": e.ward or (d or {}).get("ward"),
            "desk": e.desk or (d or {}).get("desk"),
            "last_hb": _iso(e.occurred_at),
            "hb_id": str(e.event_id),
            "silent": (d or {}).get("silent"),
        }
    if d.get("silent"):
        condition = f"silent/{key}"
        d["silent"] = None
        return _resolve(state, condition, e)
    return []


def _desk_day(state, e, rules) -> list[Out]:
    key = f"{e.municipality}/{e.desk}"
    day = e.deskday_id.rpartition("_")[2]
    is_open = e.type in ("desk.day_started", "desk.day_resumed")
    opened = (state.desk_days.get(key) or {}).get("at") if e.type == "desk.day_resumed" else None
    state.desk_days[key] = {"day": day, "open": is_open, "at": opened or (_iso(e.occurred_at) if is_open else None)}
    return []


# Alert events coming back through the log: what re-raising and resolving need to know.
def _alert_raised(state, e, rules, seq) -> list[Out]:
    info = state.alerts.setdefault(
        e.alert_id,
        {
            "m": e.municipality,
            "rule": e.rule,
            "severity": e.severity,
            "raised_at": _iso(e.occurred_at),
            "last_raised_at": _iso(e.occurred_at),
            "count": 0,
            "acked": False,
            "resolved": False,
            "seq": 0,
            "ward": e.ward,
            "desk": e.desk,
        },
    )
    info["seq"] = max(info["seq"], seq or 0)
    return []


def _alert_changed(state, e, rules, seq) -> list[Out]:
    info = state.alerts.get(e.alert_id)
    if info is None:
        return []
    info["seq"] = max(info["seq"], seq or 0)
    if e.type == "audit.alert_acknowledged":
        info["acked"] = True
    elif e.type == "audit.alert_resolved":
        info["resolved"] = True
        for condition, alert_id in list(state.conditions.items()):
            if alert_id == e.alert_id:
                del state.conditions[condition]
    elif e.type == "audit.alert_reraised":
        info["count"] = max(info["count"], e.reraise_count)
        info["last_raised_at"] = max(info["last_raised_at"], _iso(e.occurred_at))
    return []


RULES = {
    "device.process_violation": _process_violation,
    "device.usb_violation": _usb_violation,
    "device.personal_data_file_found": _personal_data_file,
    "device.card_left_in_reader": _card_left_in_reader,
    "device.heartbeat": _heartbeat,
    "desk.card_left_behind": _card_left_behind,
    "desk.staffing_breach_detected": _staffing_breach,
    "desk.staffing_breach_ended": _staffing_breach_ended,
    "desk.capacity_threshold_reached": _desk_capacity,
    "desk.day_started": _desk_day,
    "desk.day_resumed": _desk_day,
    "desk.day_ended": _desk_day,
    "desk.day_cannot_continue": _desk_day,
    "desk.day_cannot_start": _desk_day,
    "calls.no_operator_seated": _no_operator,
    "calls.seat_coverage_restored": _coverage_restored,
    "calls.capacity_threshold_crossed": _call_capacity,
    "calls.callback_overdue": _callback_overdue,
    "calls.callback_completed": _callback_done,
    "calls.callback_failed": _callback_done,
    "calls.callback_cancelled": _callback_done,
    "admin.access_denied": _access_denied,
    "admin.staff_account_locked": _account_locked,
}
ALERT_EVENTS = {
    "audit.alert_raised": _alert_raised,
    "audit.alert_acknowledged": _alert_changed,
    "audit.alert_resolved": _alert_changed,
    "audit.alert_reraised": _alert_changed,
}
RULES.update(device_rules.DEVICE_RULES)
TYPES = frozenset(RULES) | frozenset(ALERT_EVENTS)


def fold(state: RuleState, event: Event, seq: int | None, rules: Rules) -> list[Out]:
    """One event from the log: update `state`, return the alert events it causes."""
    if event.type in ALERT_EVENTS:
        return ALERT_EVENTS[event.type](state, event, rules, seq)
    rule = RULES.get(event.type)
    return rule(state, event, rules) if rule else []


# --------------------------------------------------------------------------------------------
# time-driven rules
# --------------------------------------------------------------------------------------------


def desk_open(state: RuleState, municipality: str, desk: str | None, now: datetime, rules: Rules) -> bool:
    """Is the desk open now? Its day events decide when seen today, else the regular hours (DESK-1)."""
    today = now.astimezone(rules.tz).date()
    day = state.desk_days.get(f"{municipality}/{desk}") if desk else None
    if day is not None and day["day"] == today.isoformat():
        return bool(day["open"])
    return rules.calendar.is_open(now, desk)


def tick(state: RuleState, now: datetime, rules: Rules) -> list[Out]:
    """Time passed: silent desk PCs, re-raise unacknowledged urgent alerts, forget what is old."""
    outs: list[Out] = []
    today: date = now.astimezone(rules.tz).date()
    # silent desk PCs (device_rules.py); the last heartbeat stands in as the alert's source
    outs += device_rules.silent_pcs(state, now, rules)
    for alert_id, info in list(state.alerts.items()):
        if info["resolved"] or info["acked"]:
            if now - _dt(info["raised_at"]) > rules.keep_for:
                del state.alerts[alert_id]
            continue
        if info["severity"] != "urgent" or now - _dt(info["last_raised_at"]) < rules.reraise_after:
            continue
        count = min(info["count"] + 1, 10_000)  # the event holds up to 10,000 re-raises
        info["count"], info["last_raised_at"] = count, _iso(now)
        outs.append(
            Out(
                AlertReraised(
                    municipality=info["m"],
                    ward=info["ward"],
                    desk=info["desk"],
                    actor=ALERT_ACTOR,
                    occurred_at=now,
                    alert_id=alert_id,
                    severity="urgent",
                    reraise_count=count,
                    unacknowledged_seconds=unacknowledged_seconds(now, info["raised_at"]),
                ),
                info["seq"] or None,
            )
        )
    for key, times in list(state.denied.items()):
        if not times or now - _dt(times[-1]) > rules.denied_window:
            del state.denied[key]
    for key, day in list(state.desk_days.items()):
        if day["day"] < (today - timedelta(days=1)).isoformat():
            del state.desk_days[key]
    return outs


def unacknowledged_seconds(now: datetime, raised_at: str) -> int:
    """How long an alert has waited, within what the event may hold (an alert raised by an event dated
    years back, or a clock set back, must not stop the re-raising of every other alert)."""
    field = AlertReraised.model_fields["unacknowledged_seconds"]
    most = next(m.le for m in field.metadata if getattr(m, "le", None) is not None)
    return max(0, min(most, int((now - _dt(raised_at)).total_seconds())))


class _Tick(Event):
    """A stand-in source for time-driven alerts (never published)."""

    type: str = "audit.tick"
