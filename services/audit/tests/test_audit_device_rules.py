"""HQ alert rules about the desk PCs' monitoring itself (device_rules.py), without servers."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

from madoguchi_shared.events import Actor, Event, Role
from madoguchi_shared.events import desk, device
from madoguchi_shared.events.audit import AlertRaised, AlertReraised, AlertResolved

from madoguchi_audit.alerts import Rules, RuleState, fold, tick

TOKYO = ZoneInfo("Asia/Tokyo")
FRIDAY = datetime(2021, 4, 2, tzinfo=TOKYO)
MONDAY = datetime(2021, 4, 5, tzinfo=TOKYO)
M = "011002"
RULES = Rules()  # opening 8:45, silence after 300 s, re-raise after 900 s
PC = "chuo-1-pc"
AT = {"municipality": M, "ward": "chuo", "desk": "chuo-1", "device_id": PC, "actor": Actor(id=PC, role=Role.device)}


def on(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)


def replay(steps: list) -> list[Event]:
    state = RuleState()
    produced: list[Event] = []
    seqs: dict[str, int] = {}
    for step in steps:
        outs = tick(state, step, RULES) if isinstance(step, datetime) else fold(state, step, None, RULES)
        for o in outs:
            produced.append(o.event)
            seqs[o.event.subject] = seqs.get(o.event.subject, 0) + 1
            assert not fold(state, o.event, seqs[o.event.subject], RULES)
    return produced


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def heartbeat(t: datetime) -> device.Heartbeat:
    return device.Heartbeat(
        agent_version="1.0",
        policy_version=3,
        outbox_depth=0,
        outbox_bytes=0,
        link_up=True,
        uptime_s=60,
        occurred_at=t,
        **AT,
    )


def test_a_pc_killed_on_friday_evening_is_alerted_on_monday_from_the_opening_and_re_raised():
    steps = [heartbeat(on(FRIDAY, 17, 9)), on(FRIDAY, 17, 30), on(MONDAY, 8, 0), on(MONDAY, 8, 49)]
    assert of(replay(steps), AlertRaised) == []  # closed, and open for less than the silence
    steps += [on(MONDAY, 8, 51)]
    events = replay(steps)
    alert = of(events, AlertRaised)[0]
    assert alert.rule == "desk_pc_silent" and alert.device_id == PC
    assert "開設（08:45）から 6 分以上" in alert.message and "04/02 17:09" in alert.message
    # re-raised every 15 minutes while silent, until a heartbeat resolves it
    steps += [on(MONDAY, 9, 0), on(MONDAY, 9, 7), on(MONDAY, 9, 22), heartbeat(on(MONDAY, 9, 30)), on(MONDAY, 9, 34)]
    events = replay(steps)
    assert [r.reraise_count for r in of(events, AlertReraised)] == [1, 2]
    assert [r.alert_id for r in of(events, AlertResolved)] == [alert.alert_id]
    assert len(of(events, AlertRaised)) == 1


def test_a_silent_alert_about_a_device_named_with_digits_reads_as_no_personal_data():
    """The alert's `about` key holds the last heartbeat as a compact UTC stamp, not epoch seconds: beside a
    device id ending in digits (M0001_1796498972) ten digits read as a My Number to the privacy scan."""
    from madoguchi_shared.privacy import text_findings

    beat = heartbeat(on(FRIDAY, 17, 9)).model_copy(update={"device_id": "M0001"})
    alert = of(replay([beat, on(MONDAY, 8, 51)]), AlertRaised)[0]
    assert alert.rule == "desk_pc_silent" and alert.about == "M0001_20210402T080900Z"
    assert text_findings(alert.about) == [] and text_findings(alert.alert_id) == []


def test_silence_counts_from_the_day_started_event_when_the_desk_opened_late():
    started = desk.DayStarted(
        deskday_id="chuo-1_2021-04-05", occurred_at=on(MONDAY, 9, 30), municipality=M, ward="chuo", desk="chuo-1"
    )
    events = replay([heartbeat(on(FRIDAY, 17, 9)), started, on(MONDAY, 9, 33)])
    assert of(events, AlertRaised) == []
    events = replay([heartbeat(on(FRIDAY, 17, 9)), started, on(MONDAY, 9, 36)])
    assert "開設（09:30）から" in of(events, AlertRaised)[0].message


def test_agent_stopped_while_open_and_an_unclean_restart_alert():
    stopped_open = device.AgentStopped(reason="signal", uptime_s=100, occurred_at=on(MONDAY, 11), **AT)
    stopped_closing = device.AgentStopped(reason="signal", uptime_s=100, occurred_at=on(MONDAY, 17, 30), **AT)
    unclean = device.AgentStarted(
        agent_version="1.0",
        policy_version=3,
        previous_run="unclean",
        outbox_depth=0,
        occurred_at=on(MONDAY, 11, 5),
        **AT,
    )
    clean = unclean.model_copy(update={"previous_run": "clean", "event_id": uuid4()})
    alerts = of(replay([stopped_open, stopped_closing, unclean, clean]), AlertRaised)
    assert [(a.rule, a.severity) for a in alerts] == [
        ("agent_stopped", "warning"),
        ("agent_unclean_restart", "warning"),
    ]
    assert "11:00" in alerts[0].message


def test_a_monitoring_gap_alerts_until_it_closes_and_a_link_gap_says_the_agent_cannot_connect():
    gap = device.MonitoringGap(monitor="usb", reason="no_sysfs", occurred_at=on(MONDAY, 9), **AT)
    again = gap.model_copy(update={"event_id": uuid4()})
    closed = device.MonitoringGap(monitor="usb", reason="no_sysfs", closed=True, occurred_at=on(MONDAY, 9, 5), **AT)
    link = device.MonitoringGap(
        monitor="link", reason="connect_failed", detail="Authorization Violation", occurred_at=on(MONDAY, 9, 6), **AT
    )
    printing = device.MonitoringGap(monitor="printing", reason="no_cups", occurred_at=on(MONDAY, 9, 7), **AT)
    events = replay([gap, again, closed, link, printing])
    alerts = of(events, AlertRaised)
    assert [a.rule for a in alerts] == ["monitoring_gap", "monitoring_gap", "monitoring_gap"]
    assert "USB機器" in alerts[0].message and alerts[1].title == "エージェントが接続できません"
    assert "印刷の状況（CUPS）を確認できません" in alerts[2].message  # every reason in Japanese
    assert [r.alert_id for r in of(events, AlertResolved)] == [alerts[0].alert_id]


def test_declined_notice_renamed_program_and_re_authorised_stick_each_alert():
    declined = device.MonitoringNoticeDeclined(
        staff_id="S0013", notice_sha256="a" * 64, occurred_at=on(MONDAY, 9), **AT
    )
    tool = device.ProcessViolation(
        pid=10, name="tool", sha256="b" * 64, enforce=True, enforced=True, occurred_at=on(MONDAY, 10), **AT
    )
    same = tool.model_copy(update={"event_id": uuid4(), "pid": 11})
    renamed = tool.model_copy(update={"event_id": uuid4(), "pid": 12, "name": "tool-copy"})
    usb = dict(
        port="1-2",
        vendor_id="0781",
        product_id="5583",
        device_class="00",
        interface_classes=("08",),
        kind="mass_storage",
        block_attempted=True,
        blocked=True,
        occurred_at=on(MONDAY, 11),
        **AT,
    )
    stick = device.UsbViolation(**usb)
    reauthorized = [device.UsbViolation(**usb, reauthorized=True) for _ in range(2)]
    alerts = of(replay([declined, tool, same, renamed, stick, *reauthorized]), AlertRaised)
    assert [a.rule for a in alerts] == [
        "notice_declined",
        "application_violation",
        "application_violation",
        "usb_violation",
        "usb_violation",
        "usb_violation",
    ]
    assert "S0013" in alerts[0].message


def test_a_file_not_scanned_is_an_info_alert_without_its_name():
    e = device.FileNotScanned(
        root="desktop",
        path="山田様_申請.csv",
        size_bytes=300_000_000,
        scanned_bytes=64,
        reason="too_large",
        occurred_at=on(MONDAY, 10),
        **AT,
    )
    alert = of(replay([e]), AlertRaised)[0]
    assert alert.severity == "info" and "山田" not in alert.message


def test_a_full_disk_on_a_pc_is_an_urgent_alert_until_the_journal_clears():
    t = on(MONDAY, 10)

    def alarm(level: str, minutes: int, disk_full: bool = False, shed: int = 0) -> device.OutboxSizeAlarm:
        return device.OutboxSizeAlarm(
            level=level,
            depth=10,
            bytes=4096,
            cap_bytes=1 << 20,
            shed=shed,
            disk_full=disk_full,
            occurred_at=t + timedelta(minutes=minutes),
            **AT,
        )

    events = replay(
        [
            alarm("warning", 0),
            alarm("critical", 1, disk_full=True, shed=40),
            alarm("critical", 2, True),
            alarm("cleared", 3),
        ]
    )
    raised = of(events, AlertRaised)
    assert [(r.rule, r.severity) for r in raised] == [("outbox_critical", "urgent")]  # once, not for the warning
    assert "ディスクが満杯" in raised[0].message and "40 件" in raised[0].message
    assert [r.alert_id for r in of(events, AlertResolved)] == [raised[0].alert_id]
    size_only = of(replay([alarm("critical", 0)]), AlertRaised)
    assert [(r.rule, r.severity) for r in size_only] == [("outbox_critical", "warning")]
