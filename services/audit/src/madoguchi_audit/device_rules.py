"""HQ alert rules about the desk PCs' monitoring itself (SEC-2), kept apart from alerts.py.

| rule | fires on | severity |
|---|---|---|
| monitoring_gap | device.monitoring_gap (open; the closing event resolves it) | warning; "agent cannot connect" for the link |
| agent_stopped | device.agent_stopped while the desk is open (not at closing time) | warning |
| agent_unclean_restart | device.agent_started with previous_run = unclean (killed, crashed, power cut) | warning |
| notice_declined | device.monitoring_notice_declined | warning (the manager) |
| file_not_scanned | device.file_not_scanned | info |
| outbox_critical | device.outbox_size_alarm at critical or shedding (urgent when the disk is full); `cleared` resolves it | warning / urgent |
| desk_pc_silent | no heartbeat for N s while the desk is open, counted from the desk's opening when the last heartbeat is older; re-raised every `reraise_after` until a heartbeat resolves it (tick) | warning |

Texts name desks, devices, staff ids and reasons, never paths or names of files or programs.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from madoguchi_shared.events.audit import AlertRaised, AlertReraised

from madoguchi_audit import alerts as a

# A silent PC is remembered this long after its last heartbeat (a PC killed on Friday evening is
# still missed on Monday morning, and after a long weekend).
DEVICE_MEMORY = timedelta(days=14)

_MONITOR_JA = {
    "processes": "アプリケーション（プロセス）",
    "usb": "USB機器",
    "files": "ファイル",
    "card": "カード読取機",
    "link": "本部との通信",
    "sessions": "ログオン",
    "printing": "印刷",
}
_GAP_JA = {
    "no_desk_user": "監視対象の利用者（OSアカウント）がありません",
    "no_sysfs": "USB機器の一覧（sysfs）を読めません",
    "no_watched_folder": "監視するフォルダがありません",
    "no_kernel_notices": "カーネルのプロセス通知を受けられず、定期確認で代替しています（短時間のプログラムを見逃すおそれ）",
    "connect_failed": "エージェントが本部（NATS）に接続できません",
    "no_logind": "ログオン・画面ロックの通知（logind）を受けられません",
    "no_cups": "印刷の状況（CUPS）を確認できません",
}


def _monitoring_gap(state, e, rules) -> list[a.Out]:
    condition = f"gap/{e.municipality}/{e.device_id}/{e.monitor}/{e.reason}"
    if e.closed:
        return a._resolve(state, condition, e)
    if condition in state.conditions:
        return []
    what = _MONITOR_JA.get(e.monitor, e.monitor)
    why = _GAP_JA.get(e.reason, e.reason)
    title = "エージェントが接続できません" if e.monitor == "link" else "監視されていない項目があります"
    return a._raise(
        state,
        "monitoring_gap",
        "warning",
        a.about_key(e.device_id, e.monitor, e.reason, e.event_id),
        title,
        f"{a._where(e, e.device_id)}の端末（{e.device_id}）で{what}が監視されていません: {why}。",
        e,
        device_id=e.device_id,
        condition=condition,
    )


def _agent_stopped(state, e, rules) -> list[a.Out]:
    if not a.desk_open(state, e.municipality, e.desk, e.occurred_at, rules):
        return []  # stopped at closing time or on a closed day: an ordinary shutdown
    why = {"signal": "停止操作（シャットダウン等）", "requested": "停止要求", "error": "エラー"}[e.reason]
    return a._raise(
        state,
        "agent_stopped",
        "warning",
        a.about_key(e.device_id, e.event_id),
        "監視エージェントの停止",
        f"{a._where(e, e.device_id)}の端末（{e.device_id}）で、窓口の開設時間中に監視エージェントが停止しました"
        f"（{why}、{a._hhmm(e.occurred_at, rules)}）。",
        e,
        device_id=e.device_id,
    )


def _agent_started(state, e, rules) -> list[a.Out]:
    if e.previous_run != "unclean":
        return []
    return a._raise(
        state,
        "agent_unclean_restart",
        "warning",
        a.about_key(e.device_id, e.event_id),
        "監視エージェントの異常終了",
        f"{a._where(e, e.device_id)}の端末（{e.device_id}）の監視エージェントは、前回正常に終了していません"
        "（強制終了・電源断・異常終了のおそれ）。停止中の操作は監視されていません。",
        e,
        device_id=e.device_id,
    )


def _notice_declined(state, e, rules) -> list[a.Out]:
    return a._raise(
        state,
        "notice_declined",
        "warning",
        a.about_key(e.staff_id, e.event_id),
        "監視への同意拒否",
        f"職員ID {e.staff_id} が{a._where(e, e.device_id)}の端末で監視についてのお知らせに同意しませんでした。"
        "この職員は窓口で受付を開始できません。業務責任者は確認してください。",
        e,
        device_id=e.device_id,
    )


_NOT_SCANNED_JA = {
    "too_large": "大きすぎるため途中まで",
    "unreadable": "読み取れないため",
    "archive_limit": "圧縮ファイルの上限のため一部",
    "archive_encrypted": "暗号化されているため",
    "archive_damaged": "壊れているため",
}


def _file_not_scanned(state, e, rules) -> list[a.Out]:
    why = _NOT_SCANNED_JA.get(e.reason, e.reason)
    return a._raise(
        state,
        "file_not_scanned",
        "info",
        a.about_key(e.device_id, e.event_id),
        "個人情報の検査ができないファイル",
        f"{a._where(e, e.device_id)}の端末の「{e.root}」に、{why}しか個人情報の検査ができないファイルがあります"
        f"（{e.size_bytes:,} バイト）。確認してください。",
        e,
        device_id=e.device_id,
    )


def _outbox_alarm(state, e, rules) -> list[a.Out]:
    condition = f"outbox/{e.municipality}/{e.device_id}"
    if e.level == "cleared":
        return a._resolve(state, condition, e)
    if e.level == "warning" or condition in state.conditions:
        return []
    if e.disk_full:
        what = "端末のディスクが満杯のため、違反・カードの警報など失えない記録だけを予備領域に保存しています"
    else:
        what = "本部へ送れていない記録が保存上限に近づいています（通信が長く途絶えているおそれ）"
    shed = f"（保存できなかった重要度の低い記録 {e.shed:,} 件）" if e.shed else ""
    return a._raise(
        state,
        "outbox_critical",
        "urgent" if e.disk_full else "warning",
        a.about_key(e.device_id, e.event_id),
        "窓口PCの記録の保存が危険な状態です",
        f"{a._where(e, e.device_id)}の端末（{e.device_id}）: {what}{shed}。ディスクの空きと通信を確認してください。",
        e,
        device_id=e.device_id,
        condition=condition,
    )


DEVICE_RULES = {
    "device.outbox_size_alarm": _outbox_alarm,
    "device.monitoring_gap": _monitoring_gap,
    "device.agent_stopped": _agent_stopped,
    "device.agent_started": _agent_started,
    "device.monitoring_notice_declined": _notice_declined,
    "device.file_not_scanned": _file_not_scanned,
}


def _opened_at(state, municipality: str, desk: str | None, now: datetime, rules) -> datetime:
    """When the desk opened today: its day_started event when seen today, else the regular time."""
    today = now.astimezone(rules.tz).date()
    day = state.desk_days.get(f"{municipality}/{desk}") if desk else None
    if day is not None and day["day"] == today.isoformat() and day.get("at"):
        return a._dt(day["at"])
    intervals = rules.calendar.hours(today, desk).intervals
    opened = [start for start, _ in intervals if start <= now]
    return opened[-1] if opened else datetime.combine(today, rules.opening_time, tzinfo=rules.tz)


def silent_pcs(state, now: datetime, rules) -> list[a.Out]:
    """Desk PCs without a heartbeat for `heartbeat_silence` while their desk is open, counted from
    the desk's opening when the last heartbeat came earlier (killed Friday evening, desk open Monday:
    alerted Monday once the silence since opening is long enough). Re-raised every `reraise_after`
    until a heartbeat resolves it."""
    outs: list[a.Out] = []
    for key, d in list(state.devices.items()):
        last = a._dt(d["last_hb"])
        if now - last > DEVICE_MEMORY:
            del state.devices[key]
            continue
        alert_id = d.get("silent")
        if alert_id:
            outs += _reraise_silence(state, alert_id, now, rules)
            continue
        if not a.desk_open(state, d["m"], d.get("desk"), now, rules):
            continue
        since = max(last, _opened_at(state, d["m"], d.get("desk"), now, rules))
        if now - since < rules.heartbeat_silence:
            continue
        source = a._Tick(
            municipality=d["m"], ward=d.get("ward"), desk=d.get("desk"), occurred_at=now, event_id=uuid.UUID(d["hb_id"])
        )
        minutes = int((now - since).total_seconds() // 60)
        earlier = last.astimezone(rules.tz).date() != now.astimezone(rules.tz).date()
        when = (
            f"開設（{a._hhmm(since, rules)}）から {minutes} 分以上、最後の応答は "
            f"{last.astimezone(rules.tz):%m/%d %H:%M}"
            if earlier
            else f"{minutes} 分以上"
        )
        raised = a._raise(
            state,
            "desk_pc_silent",
            "warning",
            a.about_key(d["device"], a.stamp(last)),
            "窓口PCの応答なし",
            f"{a._where(source, d['device'])}の端末（{d['device']}）から{when}応答（ハートビート）が"
            "ありません。通信・電源・盗難のおそれを確認してください。",
            source,
            device_id=d["device"],
            condition=f"silent/{key}",
            at=now,
        )
        event = raised[0].event if raised else None
        if isinstance(event, AlertRaised):  # what _raise raises, unless it is raised already
            d["silent"] = event.alert_id
            outs += raised
    return outs


def _reraise_silence(state, alert_id: str, now: datetime, rules) -> list[a.Out]:
    info: dict[str, Any] | None = state.alerts.get(alert_id)
    if info is None or info["resolved"] or now - a._dt(info["last_raised_at"]) < rules.reraise_after:
        return []
    count = min(info["count"] + 1, 10_000)  # the event holds up to 10,000 re-raises
    info["count"], info["last_raised_at"] = count, a._iso(now)
    return [
        a.Out(
            AlertReraised(
                municipality=info["m"],
                ward=info["ward"],
                desk=info["desk"],
                actor=a.ALERT_ACTOR,
                occurred_at=now,
                alert_id=alert_id,
                severity=info["severity"],
                reraise_count=count,
                unacknowledged_seconds=a.unacknowledged_seconds(now, info["raised_at"]),
            ),
            info["seq"] or None,
        )
    ]
