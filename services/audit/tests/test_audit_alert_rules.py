"""HQ alert rules (SEC-2), without servers: each rule fires on a recorded scenario, and a whole
ordinary day at a desk and on the phone line raises nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from madoguchi_shared.events import Actor, Event, Role
from madoguchi_shared.events import admin, calls, desk, device
from madoguchi_shared.events.audit import AlertAcknowledged, AlertRaised, AlertReraised, AlertResolved

from madoguchi_audit.alerts import Rules, RuleState, fold, tick

TOKYO = ZoneInfo("Asia/Tokyo")
DAY = datetime(2021, 4, 1, tzinfo=TOKYO)  # a Thursday, a business day
M = "011002"
RULES = Rules()
AT = {"municipality": M, "ward": "chuo", "desk": "chuo-1"}
DESKDAY = "chuo-1_2021-04-01"
PC = "chuo-1-pc"


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


def replay(steps: list) -> tuple[RuleState, list[Event]]:
    """Feed events and clock ticks; alert events come back through the rules as the log would."""
    state = RuleState()
    produced: list[Event] = []
    seqs: dict[str, int] = {}

    def feed(out_events):
        for ev in out_events:
            produced.append(ev)
            seqs[ev.subject] = seqs.get(ev.subject, 0) + 1
            more = fold(state, ev, seqs[ev.subject], RULES)
            assert not more

    for step in steps:
        outs = tick(state, step, RULES) if isinstance(step, datetime) else fold(state, step, None, RULES)
        feed([o.event for o in outs])
    return state, produced


def raised(events: list[Event]) -> list[AlertRaised]:
    return [e for e in events if isinstance(e, AlertRaised)]


def every_minute(start: datetime, end: datetime):
    t = start
    while t <= end:
        yield t
        t += timedelta(minutes=1)


def heartbeat(t: datetime) -> device.Heartbeat:
    return device.Heartbeat(
        device_id=PC,
        agent_version="1.0",
        policy_version=3,
        outbox_depth=0,
        outbox_bytes=0,
        link_up=True,
        uptime_s=60,
        occurred_at=t,
        actor=Actor(id=PC, role=Role.device),
        **AT,
    )


# --------------------------------------------------------------------------------------------
# one scenario per rule
# --------------------------------------------------------------------------------------------

SCENARIOS = {
    "application_violation": (
        [
            device.ProcessViolation(
                device_id=PC, pid=4242, name="torrent-client", enforce=True, enforced=False, occurred_at=at(10), **AT
            )
        ],
        "urgent",
    ),
    "usb_violation": (
        [
            device.UsbViolation(
                device_id=PC,
                port="1-1.2",
                vendor_id="0781",
                product_id="5581",
                device_class="00",
                interface_classes=("08",),
                kind="mass_storage",
                block_attempted=True,
                blocked=True,
                occurred_at=at(10),
                **AT,
            )
        ],
        "warning",
    ),
    "personal_data_file": (
        [
            device.PersonalDataFileFound(
                device_id=PC,
                root="desktop",
                path="申込控え.csv",
                kinds=("my_number",),
                findings=3,
                size_bytes=2048,
                quarantine=True,
                quarantined=False,
                occurred_at=at(11),
                **AT,
            )
        ],
        "urgent",
    ),
    "card_left_in_reader": (
        [
            device.CardLeftInReader(
                device_id=PC,
                reader="Virtual PCD 00 00",
                atr="3B8F8001",
                inserted_at=at(11),
                reason="visit_ended",
                seconds_in_reader=700,
                occurred_at=at(11, 12),
                **AT,
            )
        ],
        "urgent",
    ),
    "card_left_behind": ([desk.CardLeftBehind(visit_id=uuid4(), incident_no=1, occurred_at=at(12), **AT)], "urgent"),
    "no_supporter_on_duty": (
        [
            desk.StaffingBreachDetected(
                deskday_id=DESKDAY,
                breach_no=1,
                since=at(13),
                absence_notice_shown=False,
                trigger="timer",
                message_ja="支援員が不在です",
                occurred_at=at(13, 1),
                **AT,
            )
        ],
        "urgent",
    ),
    "no_operator_seated": (
        [calls.NoOperatorSeated(municipality=M, line="main", day=DAY.date(), since=at(9), occurred_at=at(9, 1))],
        "urgent",
    ),
    "desk_capacity": (
        [
            desk.CapacityThresholdReached(
                deskday_id=DESKDAY,
                threshold=1.0,
                visitors=80,
                expected_max=80,
                message_ja="想定数に達しました",
                occurred_at=at(15),
                **AT,
            )
        ],
        "warning",
    ),
    "call_capacity": (
        [
            calls.CapacityThresholdCrossed(
                municipality=M,
                line="main",
                day=DAY.date(),
                level="exceeded",
                threshold=30,
                percent=150,
                expected_max=20,
                count=30,
                call_id=uuid4(),
                occurred_at=at(15),
            )
        ],
        "urgent",
    ),
    "callback_overdue": (
        [calls.CallbackOverdue(municipality=M, callback_id=uuid4(), due_at=at(14), occurred_at=at(14, 5))],
        "warning",
    ),
    "repeated_access_denied": (
        [
            admin.AccessDenied(
                municipality=M,
                subject_id="S0009",
                service="desk",
                method="GET",
                path="/v1/desks/{desk}/tickets",
                reason="ward",
                target_ward="kita",
                occurred_at=at(10, i * 2),
            )
            for i in range(5)
        ],
        "warning",
    ),
    "account_locked": (
        [admin.StaffAccountLocked(municipality=M, staff_id="S0010", failures=5, until=at(10, 15), occurred_at=at(10))],
        "warning",
    ),
    "desk_pc_silent": (
        [
            desk.DayStarted(deskday_id=DESKDAY, occurred_at=at(8, 30), **AT),
            *[heartbeat(t) for t in every_minute(at(8, 40), at(10))],
            *every_minute(at(10, 1), at(10, 10)),
        ],
        "warning",
    ),
}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_each_rule_fires_on_its_scenario(rule):
    steps, severity = SCENARIOS[rule]
    _, events = replay(steps)
    alerts = raised(events)
    assert [a.rule for a in alerts] == [rule]
    alert = alerts[0]
    assert alert.severity == severity
    assert alert.title and alert.message and alert.municipality == M
    assert alert.source_event_ids  # traceable to what caused it


def test_the_personal_data_alert_does_not_repeat_the_file_name():
    _, events = replay(SCENARIOS["personal_data_file"][0])
    assert "申込控え" not in raised(events)[0].message


def test_repeated_403s_need_the_count_within_the_window():
    four = SCENARIOS["repeated_access_denied"][0][:4]
    spread = [
        e.model_copy(update={"occurred_at": at(10) + timedelta(minutes=11 * i), "event_id": uuid4()})
        for i, e in enumerate(SCENARIOS["repeated_access_denied"][0])
    ]
    assert raised(replay(four)[1]) == []
    assert raised(replay(spread)[1]) == []


def test_conditions_that_end_resolve_their_alert():
    breach, _ = SCENARIOS["no_supporter_on_duty"]
    ended = desk.StaffingBreachEnded(
        deskday_id=DESKDAY, breach_no=1, duration_seconds=240, ended_by="staff_on_duty", occurred_at=at(13, 5), **AT
    )
    _, events = replay([*breach, ended])
    assert [type(e) for e in events] == [AlertRaised, AlertResolved]

    silent_steps, _ = SCENARIOS["desk_pc_silent"]
    _, events = replay([*silent_steps, heartbeat(at(10, 11)), at(10, 12)])
    assert [type(e) for e in events] == [AlertRaised, AlertResolved]

    overdue, _ = SCENARIOS["callback_overdue"]
    done = calls.CallbackCompleted(
        municipality=M,
        callback_id=overdue[0].callback_id,
        attempt=1,
        resolution="answered_on_spot",
        duration_seconds=120,
        occurred_at=at(14, 30),
    )
    _, events = replay([*overdue, done])
    assert [type(e) for e in events] == [AlertRaised, AlertResolved]


def test_an_unacknowledged_urgent_alert_is_reraised_until_someone_acknowledges_it():
    steps, _ = SCENARIOS["card_left_behind"]
    state, events = replay([*steps, at(12, 10), at(12, 16), at(12, 20), at(12, 32)])
    assert [type(e) for e in events] == [AlertRaised, AlertReraised, AlertReraised]
    assert [e.reraise_count for e in events[1:]] == [1, 2]
    alert = events[0]
    ack = AlertAcknowledged(
        alert_id=alert.alert_id,
        acknowledged_by="S0001",
        municipality=M,
        actor=Actor(id="S0001", role=Role.manager),
        occurred_at=at(12, 33),
    )
    fold(state, ack, 9, RULES)
    assert tick(state, at(13, 30), RULES) == []
    # a warning is never re-raised
    _, events = replay([*SCENARIOS["desk_capacity"][0], at(17)])
    assert [type(e) for e in events] == [AlertRaised]


def test_an_alert_from_an_event_dated_years_back_is_reraised_within_what_the_event_holds():
    """An urgent alert raised by an event dated long ago (a replayed old stream, a laptop clock set years
    back) is re-raised with its waiting time held at the event's bound instead of failing the tick,
    which would stop the re-raising of every other alert too."""
    steps, _ = SCENARIOS["card_left_behind"]
    thirty_years_on = DAY.replace(year=2051)
    _, events = replay([*steps, thirty_years_on])
    reraised = [e for e in events if isinstance(e, AlertReraised)]
    assert len(reraised) == 1 and reraised[0].unacknowledged_seconds == 315_360_000


def test_replaying_the_same_events_proposes_the_same_alert_once():
    steps, _ = SCENARIOS["usb_violation"]
    state, events = replay(steps)
    again = fold(state, steps[0], None, RULES)
    assert again == []  # the state knows it; after a crash, the same id hits the create check
    _, fresh = replay(steps)
    assert raised(fresh)[0].alert_id == raised(events)[0].alert_id


def test_an_ordinary_day_raises_no_alert():
    visits = []
    for n, hh in enumerate(range(9, 17), start=1):
        visit_id = uuid4()
        visits += [
            desk.TicketIssued(deskday_id=DESKDAY, ticket_no=n, occurred_at=at(hh, 0), **AT),
            desk.VisitStarted(
                visit_id=visit_id,
                deskday_id=DESKDAY,
                ticket_no=n,
                staff_id="S0001",
                waited_seconds=60,
                occurred_at=at(hh, 1),
                **AT,
            ),
            device.CardInserted(device_id=PC, reader="Virtual PCD 00 00", atr="3B8F8001", occurred_at=at(hh, 5), **AT),
            desk.CardHandedToStaff(visit_id=visit_id, occurred_at=at(hh, 6), **AT),
            desk.CardReturned(visit_id=visit_id, occurred_at=at(hh, 20), **AT),
            device.CardRemoved(
                device_id=PC, reader="Virtual PCD 00 00", atr="3B8F8001", dwell_s=900, occurred_at=at(hh, 20), **AT
            ),
            desk.VisitEnded(visit_id=visit_id, outcome="completed", service_seconds=1200, occurred_at=at(hh, 25), **AT),
            desk.DevicesDisinfected(deskday_id=DESKDAY, after_visit_id=visit_id, occurred_at=at(hh, 27), **AT),
        ]
    phone = []
    for hh in (9, 11, 14, 16):
        call_id = uuid4()
        phone += [
            calls.CallReceived(
                municipality=M,
                call_id=call_id,
                line="main",
                within_hours=True,
                seats_signed_in=2,
                seats_free=1,
                occurred_at=at(hh, 10),
            ),
            calls.CallAnswered(
                municipality=M,
                call_id=call_id,
                seat="seat-1",
                operator="S0101",
                wait_seconds=5,
                occurred_at=at(hh, 10, 5),
            ),
            calls.CallClosed(
                municipality=M,
                call_id=call_id,
                categories=("mykey_id",),
                resolution="answered_on_spot",
                duration_seconds=300,
                occurred_at=at(hh, 15),
            ),
        ]
    callback_id = uuid4()
    phone += [
        calls.CallbackRequested(
            municipality=M,
            callback_id=callback_id,
            call_id=uuid4(),
            line="main",
            reason="overflow",
            due_at=at(15),
            max_attempts=3,
            occurred_at=at(13),
        ),
        calls.CallbackCompleted(
            municipality=M,
            callback_id=callback_id,
            attempt=1,
            resolution="answered_on_spot",
            duration_seconds=200,
            occurred_at=at(14),
        ),
    ]
    staffing = [
        desk.DayStarted(deskday_id=DESKDAY, occurred_at=at(8, 30), **AT),
        desk.StaffCheckedIn(deskday_id=DESKDAY, staff_id="S0001", role="supporter", occurred_at=at(8, 35), **AT),
        calls.OperatorSignedIn(
            municipality=M, line="main", day=DAY.date(), seat="seat-1", operator="S0101", occurred_at=at(8, 40)
        ),
        admin.AccessDenied(
            municipality=M,
            subject_id="S0002",
            service="desk",
            method="GET",
            path="/v1/x",
            reason="role",
            occurred_at=at(9, 30),
        ),
        admin.AccessDenied(
            municipality=M,
            subject_id="S0002",
            service="desk",
            method="GET",
            path="/v1/x",
            reason="role",
            occurred_at=at(9, 31),
        ),
        desk.StaffCheckedOut(deskday_id=DESKDAY, staff_id="S0001", occurred_at=at(17, 20), **AT),
        desk.DayEnded(deskday_id=DESKDAY, occurred_at=at(17, 25), **AT),
    ]
    heartbeats = [heartbeat(t) for t in every_minute(at(8, 30), at(17, 30))]
    clock = list(every_minute(at(8, 0), at(19, 0)))
    stream = sorted([*visits, *phone, *staffing, *heartbeats], key=lambda e: e.occurred_at)
    # interleave the clock with the events in time order, as the engine sees them
    steps: list = []
    events_iter = iter(stream)
    pending = next(events_iter, None)
    for t in clock:
        while pending is not None and pending.occurred_at <= t:
            steps.append(pending)
            pending = next(events_iter, None)
        steps.append(t)
    _, events = replay(steps)
    assert events == []
