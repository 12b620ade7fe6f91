"""Helpers for the simulator's tests: small scenarios, and the ordering rules each aggregate's
events must follow (checked here by hand: the tests cannot import the services' domains)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.events import Event
from madoguchi_shared.municipality import load_municipality

from madoguchi_sim.generator import Scenario, resize

SAPPORO_TOML = Path(__file__).resolve().parents[3] / "config" / "municipalities" / "011002.toml"
WEEK = date(2021, 4, 5)  # Monday 5 April 2021: an extended day, then a regular week


def fresh_codes(n: int) -> list[str]:
    """Throw-away municipality codes (9xxxxx is never real), unique enough for one test session."""
    rng = random.Random()
    return [f"9{rng.randrange(0, 100000):05d}" for _ in range(n)]


def scenario(
    code: str = "011002", *, days: int = 2, desks: int | None = None, seed: int = 7, start: date = WEEK, **changes
) -> Scenario:
    m = load_municipality(SAPPORO_TOML, code=code)
    if desks is not None:
        m = resize(m, desks)
    return Scenario(municipalities=(m,), start=start, days=days, seed=seed, **changes)


def order_problems(events: list[Event]) -> list[str]:
    """Every broken ordering rule in a stream, per aggregate, in stream order."""
    by_subject: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_subject[e.subject].append(e)
    problems: list[str] = []
    for subject, evs in by_subject.items():
        for a, b in zip(evs, evs[1:], strict=False):
            if b.occurred_at < a.occurred_at:
                problems.append(f"{subject}: {b.type} at {b.occurred_at} before {a.type} at {a.occurred_at}")
        check = {
            "deskday": _deskday,
            "visit": _visit,
            "call": _call,
            "callback": _callback,
            "line": _line,
            "agent": _agent,
        }.get(subject.split(".")[3])
        if check:
            problems.extend(f"{subject}: {p}" for p in check(evs))
    return problems


def _deskday(evs: list[Event]) -> list[str]:
    out = []
    types = [e.type for e in evs]
    if types[0] != "desk.day_started":
        out.append(f"starts with {types[0]}")
    if types[-1] != "desk.day_ended" or types.count("desk.day_ended") != 1:
        out.append("does not end with one desk.day_ended")
    on_duty: set[str] = set()
    absent: set[str] = set()
    tickets: dict[int, str] = {}
    escalations: dict[int, str] = {}
    incidents: dict[int, set] = {}
    breach_open = False
    served: set = set()
    thresholds: list[float] = []
    next_ticket = 1
    for e in evs:
        t = e.type
        if t == "desk.staff_checked_in":
            if e.staff_id in on_duty:
                out.append(f"{e.staff_id} checked in twice")
            on_duty.add(e.staff_id)
        elif t == "desk.staff_checked_out":
            if e.staff_id not in on_duty or e.staff_id in absent:
                out.append(f"{e.staff_id} checked out while not on duty or absent")
            on_duty.discard(e.staff_id)
        elif t == "desk.short_absence_started":
            if e.staff_id not in on_duty or e.staff_id in absent:
                out.append(f"absence of {e.staff_id} not on duty")
            absent.add(e.staff_id)
        elif t == "desk.short_absence_ended":
            if e.staff_id not in absent:
                out.append(f"absence of {e.staff_id} ended twice")
            absent.discard(e.staff_id)
        elif t == "desk.staffing_breach_detected":
            if breach_open or on_duty - absent:
                out.append("breach detected with someone on duty or a breach open")
            breach_open = True
        elif t == "desk.staffing_breach_ended":
            if not breach_open:
                out.append("breach ended without one open")
            breach_open = False
        elif t == "desk.ticket_issued":
            if e.ticket_no != next_ticket:
                out.append(f"ticket {e.ticket_no} issued, expected {next_ticket}")
            next_ticket += 1
            tickets[e.ticket_no] = "waiting"
        elif t == "desk.capacity_threshold_reached":
            if thresholds and e.threshold <= thresholds[-1]:
                out.append("capacity thresholds not ascending")
            thresholds.append(e.threshold)
        elif t == "desk.ticket_called":
            if tickets.get(e.ticket_no) != "waiting" or any(
                s == "waiting" for n, s in tickets.items() if n < e.ticket_no
            ):
                out.append(f"ticket {e.ticket_no} called out of order")
            if e.staff_id not in on_duty or e.staff_id in absent:
                out.append(f"ticket {e.ticket_no} called by {e.staff_id} not on duty")
            tickets[e.ticket_no] = "called"
        elif t in ("desk.ticket_recalled", "desk.ticket_no_show", "desk.ticket_served"):
            if tickets.get(e.ticket_no) != "called":
                out.append(f"{t} for ticket {e.ticket_no} not called")
            if t == "desk.ticket_no_show":
                tickets[e.ticket_no] = "no_show"
            elif t == "desk.ticket_served":
                tickets[e.ticket_no] = "served"
                served.add(e.visit_id)
        elif t == "desk.devices_disinfected":
            if e.after_visit_id not in served:
                out.append("disinfected after a visit not served")
        elif t == "desk.escalation_raised":
            if e.escalation_no != len(escalations) + 1:
                out.append(f"escalation numbered {e.escalation_no}")
            escalations[e.escalation_no] = "raised"
        elif t == "desk.escalation_acknowledged":
            if escalations.get(e.escalation_no) != "raised":
                out.append(f"escalation {e.escalation_no} acknowledged out of order")
            escalations[e.escalation_no] = "acknowledged"
        elif t == "desk.escalation_escalated_to_city":
            if escalations.get(e.escalation_no) not in ("raised", "acknowledged"):
                out.append(f"escalation {e.escalation_no} to the city out of order")
            escalations[e.escalation_no] = "city"
        elif t == "desk.escalation_resolved":
            if escalations.get(e.escalation_no) in (None, "resolved"):
                out.append(f"escalation {e.escalation_no} resolved out of order")
            if (e.resolved_by == "city") != (escalations.get(e.escalation_no) == "city"):
                out.append(f"escalation {e.escalation_no} resolved_by {e.resolved_by}")
            escalations[e.escalation_no] = "resolved"
        elif t == "desk.incident_opened":
            if e.incident_no != len(incidents) + 1:
                out.append(f"incident numbered {e.incident_no}")
            incidents[e.incident_no] = set()
        elif t == "desk.incident_step_done":
            if e.incident_no not in incidents:
                out.append(f"step of unknown incident {e.incident_no}")
            else:
                incidents[e.incident_no].add(e.step)
        elif t == "desk.incident_closed":
            if e.incident_no not in incidents or len(incidents[e.incident_no]) < 2:
                out.append(f"incident {e.incident_no} closed before its checklist")
    if any(s in ("waiting", "called") for s in tickets.values()):
        out.append("tickets left waiting or called at the end of the day")
    if on_duty:
        out.append(f"still on duty at the end: {sorted(on_duty)}")
    if breach_open:
        out.append("breach still open at the end")
    if any(s != "resolved" for s in escalations.values()):
        out.append("escalation left open")
    return out


def _visit(evs: list[Event]) -> list[str]:
    out = []
    if evs[0].type != "desk.visit_started":
        out.append(f"starts with {evs[0].type}")
    held = False
    ended = False
    failures = 0
    warned = False
    for e in evs[1:]:
        t = e.type
        if ended and t not in ("desk.card_left_behind", "desk.visit_corrected"):
            out.append(f"{t} after the visit ended")
        if t == "desk.card_handed_to_staff":
            if held:
                out.append("card handed twice")
            held = True
        elif t == "desk.card_returned":
            if not held:
                out.append("card returned but not held")
            held = False
        elif t == "desk.pin_failure_recorded":
            failures += 1
            if e.failures != failures or e.locked != (failures >= e.limit):
                out.append(f"PIN failure {e.failures} (locked {e.locked}) out of order")
        elif t == "desk.pin_lock_warning_issued":
            warned = True
            if e.failures != failures or e.remaining != 1:
                out.append("PIN warning at the wrong failure")
        elif t == "desk.visit_ended":
            if held:
                out.append("visit ended while the card is held")
            if ended:
                out.append("visit ended twice")
            ended = True
        elif t == "desk.visit_corrected" and not ended:
            out.append("corrected before it ended")
    if not ended:
        out.append("visit never ended")
    if failures >= 2 and not warned:
        out.append("two PIN failures without the lock warning")
    return out


def _call(evs: list[Event]) -> list[str]:
    out = []
    if evs[0].type != "calls.call_received":
        out.append(f"starts with {evs[0].type}")
    terminal = [
        e.type
        for e in evs
        if e.type in ("calls.call_answered", "calls.call_missed", "calls.call_abandoned", "calls.call_out_of_hours")
    ]
    if len(terminal) != 1:
        out.append(f"connection outcomes: {terminal}")
    types = [e.type for e in evs]
    if "calls.call_closed" in types and (
        terminal != ["calls.call_answered"] or types.index("calls.call_closed") < types.index("calls.call_answered")
    ):
        out.append("closed without being answered first")
    if terminal == ["calls.call_answered"] and "calls.call_closed" not in types:
        out.append("answered but never closed")
    return out


def _callback(evs: list[Event]) -> list[str]:
    out = []
    types = [e.type for e in evs]
    if types[0] != "calls.callback_requested":
        out.append(f"starts with {types[0]}")
    ended = [t for t in types if t in ("calls.callback_completed", "calls.callback_failed", "calls.callback_cancelled")]
    if len(ended) > 1:
        out.append(f"ended {len(ended)} times")
    if ended and types[-1] != "calls.callback_contact_erased":
        out.append("contact not erased at the end")
    if "calls.callback_contact_erased" in types and not ended:
        out.append("contact erased while open")
    attempts = [e.attempt for e in evs if e.type in ("calls.callback_attempt_failed", "calls.callback_completed")]
    if attempts != list(range(1, len(attempts) + 1)):
        out.append(f"attempts numbered {attempts}")
    first = evs[0]
    if first.needs_city:
        if "calls.callback_number_read" in types and "calls.city_answered" not in types:
            out.append("called back before the city answered")
    return out


def _line(evs: list[Event]) -> list[str]:
    out = []
    seats: dict[str, str] = {}
    breach = False
    for e in evs:
        if e.type == "calls.operator_signed_in":
            if e.seat in seats:
                out.append(f"seat {e.seat} signed in twice")
            seats[e.seat] = e.operator
        elif e.type == "calls.operator_signed_out":
            if seats.get(e.seat) != e.operator:
                out.append(f"seat {e.seat} signed out by someone not seated")
            seats.pop(e.seat, None)
        elif e.type == "calls.no_operator_seated":
            if seats or breach:
                out.append("no-operator breach with a seat taken")
            breach = True
        elif e.type == "calls.seat_coverage_restored":
            breach = False
    if seats:
        out.append(f"seats still taken at the end: {seats}")
    return out


def _agent(evs: list[Event]) -> list[str]:
    out = []
    runs = 0
    up = False
    last_uptime = -1
    for e in evs:
        if e.type == "device.agent_started":
            if up:
                out.append("started twice")
            up, runs, last_uptime = True, runs + 1, -1
        elif e.type == "device.agent_stopped":
            up = False
        elif not up:
            out.append(f"{e.type} while the agent is not running")
        if e.type == "device.heartbeat":
            if e.uptime_s <= last_uptime:
                out.append("heartbeat uptime not increasing")
            last_uptime = e.uptime_s
    if up:
        out.append("agent still running at the end")
    return out


def local_hour(e: Event) -> float:
    t = e.occurred_at.astimezone(TOKYO)
    return t.hour + t.minute / 60


def days_between(a: date, b: date) -> int:
    return (b - a) // timedelta(days=1)
