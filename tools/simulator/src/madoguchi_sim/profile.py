"""The rates that make a simulated day plausible, in one place.

Figures are judgement calls from the 2021 specification (up to 80 visitors per desk and day, about
20 calls a day) and from what support desks of that time reported: most visitors were older, most
came to set up a MyKey ID and apply for Mynapoint on the desk PC, and the common reasons for not
finishing were a forgotten or locked PIN, a card left at home and a phone without NFC. Change
them here, not in the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _w(**weights: float) -> tuple[tuple[str, float], ...]:
    return tuple(weights.items())


@dataclass(frozen=True)
class Profile:
    # --- desk: arrivals (DESK-2, REP-1) ------------------------------------------------------
    visitors_mean: float = 62.0  # per desk and regular day; sd below puts ~10 % of days above 80
    visitors_sd: float = 14.0
    visitors_min: int = 20
    visitors_max: int = 130
    # relative arrival intensity by local hour (morning peak); hours not listed weigh 0.4
    hourly_weights: tuple[tuple[int, float], ...] = (
        (8, 1.6),
        (9, 1.6),
        (10, 1.45),
        (11, 1.15),
        (12, 0.7),
        (13, 0.95),
        (14, 0.9),
        (15, 0.8),
        (16, 0.6),
        (17, 0.5),
        (18, 0.4),
    )
    weekday_factor: tuple[float, ...] = (1.12, 1.0, 0.97, 0.98, 1.05, 0.8, 0.8)  # Mon..Sun
    supporters_per_desk: int = 2
    extra_supporter_above: int = 90  # a third supporter on very busy days
    no_show_rate: float = 0.03
    no_show_after_long_wait: float = 0.08  # called after more than an hour: gone meanwhile
    minutes_per_visitor: float = 6.5  # what the desk tells an arriving visitor about the wait
    balk_minutes: float = 90.0  # a longer announced wait sends most people home without a ticket
    balk_rate: float = 0.7
    # --- desk: who comes (REP-1 by gender, by age band): skewed older ----------------------
    genders: tuple[tuple[str, float], ...] = _w(female=0.52, male=0.45, other=0.005, not_stated=0.025)
    age_bands: tuple[tuple[str, float], ...] = _w(
        under_20=0.015,
        **{"20s": 0.04, "30s": 0.06, "40s": 0.09, "50s": 0.13, "60s": 0.22, "70s": 0.30},
        **{"80_and_over": 0.145},
    )
    # --- desk: why they come (DESK-4) ---------------------------------------------------------
    # (purposes, weight); the smartphone route is chosen more by the younger (see generator)
    purpose_sets: tuple[tuple[tuple[str, ...], float], ...] = (
        (("mykey_pc", "mynapoint_application"), 0.40),
        (("mykey_pc", "mynapoint_application", "health_insurance_registration"), 0.12),
        (("mynapoint_application",), 0.08),
        (("mykey_smartphone", "mynapoint_application"), 0.09),
        (("health_insurance_registration",), 0.07),
        (("mykey_pc",), 0.04),
        (("inquiry_only",), 0.15),
        (("inquiry_only", "flyer"), 0.03),
        (("flyer",), 0.02),
    )
    support_needed_procedure: float = 0.93
    support_needed_inquiry: float = 0.45
    support_given_when_needed: float = 0.97
    details_rerecorded_rate: float = 0.05  # a second details record during the visit (latest wins)
    # --- desk: outcomes (DESK-4) ---------------------------------------------------------------
    not_completed_rate: float = 0.17
    not_completed_rate_older: float = 0.22  # 70s and over
    not_completed_reasons: tuple[tuple[str, float], ...] = _w(
        pin_locked_or_forgotten=0.38,
        card_not_brought=0.2,
        card_not_issued=0.08,
        phone_not_nfc=0.12,
        certificate_expired=0.09,
        others_payment_service=0.05,
        other=0.08,
    )
    # PIN (the 4-digit user-authentication PIN, 3 tries)
    pin_slip_rate: float = 0.12  # one failure, then success
    pin_double_slip_rate: float = 0.05  # two failures (the lock warning), then success
    locked_after_attempts: float = 0.55  # of pin_locked_or_forgotten: failures up to the lock
    card_held_by_staff_rate: float = 0.35  # of PC procedures (DESK-9)
    card_left_behind_rate: float = 0.0015
    payment_services: tuple[tuple[str, float], ...] = _w(
        qr_code=0.38,
        electronic_money=0.24,
        credit_card=0.26,
        debit_card=0.03,
        prepaid_card=0.04,
        other=0.02,
        not_chosen=0.03,
    )
    opinion_rate: float = 0.12
    opinion_kinds: tuple[tuple[str, float], ...] = _w(difficulty=0.5, opinion=0.2, request=0.18, topic=0.12)
    escalation_rate: float = 0.02
    escalation_categories: tuple[tuple[str, float], ...] = _w(
        complaint=0.25,
        procedure=0.25,
        system_trouble=0.15,
        card=0.15,
        payment_service=0.08,
        city_decision=0.07,
        other=0.05,
    )
    escalation_to_city_rate: float = 0.2
    # --- desk: hygiene, staffing, equipment (DESK-5, DESK-8, DESK-10) --------------------------
    disinfection_miss_rate: float = 0.02
    restroom_absences: tuple[int, int] = (0, 2)  # per supporter and day
    breach_day_rate: float = 0.03  # desk-days where everyone is away for a few minutes once
    equipment_missing_day_rate: float = 0.01  # a non-valuable item missing at the opening check
    laptop_missing_day_rate: float = 0.001  # an incident (DESK-10)
    # the city extends a regular day's hours at run time (DESK-1), deciding during the day
    extended_hours_day_rate: float = 0.03
    extended_closes: tuple[str, ...] = ("18:30", "19:00", "19:30")
    # --- phone line (CALL-1 .. CALL-5) ---------------------------------------------------------
    calls_range: tuple[int, int, int] = (10, 30, 18)  # low, high, mode of calls during hours
    out_of_hours_calls: tuple[int, int] = (0, 3)
    second_operator_absent_rate: float = 0.05  # then the lunch break leaves no seat (CALL-1 breach)
    ring_seconds: tuple[int, int] = (4, 30)
    call_minutes: tuple[float, float, float] = (2.0, 14.0, 5.0)
    overflow_choice: tuple[tuple[str, float], ...] = _w(wait=0.55, callback=0.3, hang_up=0.15)
    patience_minutes: tuple[float, float] = (1.5, 6.0)
    rang_out_rate: float = 0.03
    out_of_hours_callback_rate: float = 0.6
    offer_choice_recorded_rate: float = 0.8  # out of hours, without a callback: the caller says "call again"
    redial_rate: float = 0.4  # a caller who never got through and left no callback calls again ...
    redial_minutes: tuple[float, float] = (15.0, 120.0)  # ... this much later, quoting the reference
    # codes of the calls service's default inquiry tree (services/calls categories.py)
    call_categories: tuple[tuple[str, float], ...] = _w(
        **{
            "mykey_id.setup": 0.12,
            "mykey_id.trouble": 0.08,
            "mynapoint.application": 0.16,
            "mynapoint.eligibility": 0.04,
            "mynapoint.points": 0.05,
            "card.application": 0.1,
            "card.issue": 0.08,
            "pin": 0.1,
            "payment_services": 0.09,
            "desk_locations_hours": 0.12,
            "health_insurance": 0.03,
            "complaint_card_system": 0.02,
            "other": 0.01,
        },
    )
    second_category_rate: float = 0.25
    resolutions: tuple[tuple[str, float], ...] = _w(
        answered_on_spot=0.7,
        referred_national_call_centre=0.09,
        referred_payment_provider=0.08,
        guided_to_ward_desk=0.09,
        escalated_callback=0.04,
    )
    provider_categories: tuple[tuple[str, float], ...] = _w(
        qr_code=0.4,
        credit_card=0.25,
        electronic_money=0.25,
        debit_card=0.03,
        prepaid_card=0.05,
        other=0.02,
    )
    call_notes_rate: float = 0.35
    call_opinion_rate: float = 0.1
    callback_reach_rate: float = 0.8
    callback_max_attempts: int = 3
    callback_late_rate: float = 0.05  # done after its due time: an overdue alert first
    # --- device agent (SEC-2) ------------------------------------------------------------------
    heartbeat_minutes: float = 1.0
    unclean_start_rate: float = 0.02
    process_violation_day_rate: float = 0.015
    usb_violation_day_rate: float = 0.01
    extra: dict[str, float] = field(default_factory=dict)


DEFAULT = Profile()
# A national peak day (issue 9 part 4): 300,000 visits at 4,000 desks = 75 a desk; the agents
# report every 30 seconds.
PEAK = Profile(visitors_mean=75.0, visitors_sd=16.0, heartbeat_minutes=0.5, calls_range=(15, 40, 26))
