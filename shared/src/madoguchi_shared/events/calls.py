"""Phone-line events (電話対応, CALL-1 … CALL-5): context ``calls``, stream MG_CALLS.

Aggregates and subjects (one subject per aggregate, so the expected-last-subject-sequence check
gives optimistic concurrency per aggregate; see madoguchi_shared.subjects):

``line``  ``mg.calls.<municipality>.line.<line>_<YYYY-MM-DD>``
    One phone line on one business day: operators signing in and out of seats, the
    "no operator seated during hours" breach and its end (CALL-1), and the daily volume
    thresholds against the expected maximum (20 calls a day, configurable; CALL-1, CALL-3).
    Events carry ``line`` and ``day`` and the derived id ``line_day``.

``call``  ``mg.calls.<municipality>.call.<call_id>``  (UUIDv7)
    One incoming call: received (the time is ``occurred_at``; the line, whether the line was
    open, seats signed in and free), then exactly one connection outcome — answered by an
    operator at a seat, or never connected: missed (rang out, or the caller chose a callback
    while every seat was busy), abandoned (hung up while waiting), out of hours. An overflow
    offer (wait or callback, CALL-3) is recorded when every seat is busy or the line is closed.
    An answered call is closed with the inquiry categories, the resolution (CALL-2, CALL-4),
    the duration, notes and opinions (free text through the PII guard) and the FAQ entries used.
    The share of calls that never connect per day is (missed + abandoned + out_of_hours) /
    received (CALL-3).

``callback``  ``mg.calls.<municipality>.callback.<callback_id>``
    One callback task (折り返し, CALL-3, CALL-4). A call has at most one callback task and the
    task's id IS the call's id (a UUIDv7): a second request for the same call then hits the
    create check (expected last sequence 0) and is refused, with no cross-aggregate bookkeeping.
    Lifecycle: requested (desired time window, due time in business hours, maximum attempts) →
    optionally escalated to the city by the manager → the city answers → called back: done, or
    an attempt fails and the next one is due, up to the maximum; then failed for good. Also
    cancelled, overdue detected, the phone number read by a staff member, and the contact
    erased (the key destroyed).
    The citizen's phone number is NEVER in an event (ARCHITECTURE rule 5): it lives in the
    calls service's encrypted phone store under the callback id, with a key of its own that is
    destroyed when the task ends; ``CallbackContactErased`` records that destruction.

``faq``  ``mg.calls.<municipality>.faq.<faq_id>``  (UUIDv7)
    One entry of the operators' Q&A (電話対応Q&A), versioned by events: created (revision 1),
    revised (revision n+1, the whole new text), retired. Closed calls name the entries used as
    (faq_id, revision) pairs, so a report can show which wording was given.

Inquiry categories are codes from a configurable tree (``mykey_id``, ``mynapoint.application``,
``card.application``, ``card.issue``, ``pin``, ``payment_services``, ``desk_locations_hours``,
``health_insurance``, ``complaint_card_system``, ``other``, ...); the event keeps the code, the
calls service validates it against the municipality's current tree.

Alerts shown to people (Japanese) are rendered by the services from these events' codes;
events carry codes and numbers, never message text.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from madoguchi_shared.events.base import Event, Frozen, Ident
from madoguchi_shared.events.desk import OpinionKind, ProcedureStep
from madoguchi_shared.narrow import is_dict
from madoguchi_shared.pii import FreeText
from madoguchi_shared.sealed import ErasableText

CONTEXT = "calls"

# A category code of the configurable inquiry tree: dotted lowercase path, e.g. "card.issue".
CategoryCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}(\.[a-z0-9_]{1,32}){0,3}$")]

Resolution = Literal[
    "answered_on_spot",  # その場で回答
    "referred_national_call_centre",  # 国のコールセンター（マイナンバー総合フリーダイヤル）を案内
    "referred_payment_provider",  # キャッシュレス決済事業者の問い合わせ先を案内
    "guided_to_ward_desk",  # 区役所の支援窓口を案内
    "escalated_callback",  # 業務責任者経由で委託者へエスカレーション、折り返し
]
# The category of cashless payment provider a caller was referred to (never the company name
# alone: the category is what the reports count; CALL-2).
# Same codes as the desk's PaymentServiceCategory, so reports add desk and phone up.
ProviderCategory = Literal[
    "electronic_money",
    "qr_code",
    "credit_card",
    "debit_card",
    "prepaid_card",
    "other",
]
OverflowReason = Literal["all_seats_busy", "out_of_hours"]
OverflowOption = Literal["wait", "callback", "call_again"]
CallbackReason = Literal["out_of_hours", "overflow", "missed", "abandoned", "escalation"]
AttemptFailure = Literal["no_answer", "busy", "voicemail", "wrong_number", "other"]
CapacityLevel = Literal["approaching", "reached", "exceeded"]
Keyword = Annotated[FreeText, StringConstraints(min_length=1, max_length=40)]  # search words of an FAQ entry


# The reference a caller is given (受付番号, e.g. 「4821-0937」): derived from the call id, so nothing
# about the caller is kept; a repeat call quotes it to link to the earlier call (RepeatCallLinked).
CallReference = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{4}$")]


def call_reference(call_id: UUID) -> str:
    """The 8-digit reference of a call (受付番号), the same wherever it is computed."""
    n = int.from_bytes(hashlib.sha256(call_id.bytes).digest()[:8], "big") % 10**8
    return f"{n // 10**4:04d}-{n % 10**4:04d}"


def line_day_id(line: str, day: date) -> str:
    """The id of a line-day aggregate: ``<line>_<YYYY-MM-DD>``."""
    return f"{line}_{day.isoformat()}"


# --------------------------------------------------------------------------------------------
# Line day: seats, coverage breach, volume thresholds (CALL-1)
# --------------------------------------------------------------------------------------------


class _LineDayEvent(Event):
    context: ClassVar[str] = CONTEXT
    aggregate: ClassVar[str] = "line"
    aggregate_field: ClassVar[str] = "line_day"

    line: Ident
    day: date
    line_day: Ident = ""  # derived from line and day; given explicitly it must agree

    @model_validator(mode="before")
    @classmethod
    def _derive_line_day(cls, data: Any) -> Any:
        if is_dict(data) and data.get("line") and data.get("day"):
            day = data["day"] if isinstance(data["day"], date) else date.fromisoformat(str(data["day"]))
            expected = line_day_id(str(data["line"]), day)
            given = data.get("line_day")
            if given and given != expected:
                raise ValueError(f"line_day {given!r} does not match line and day ({expected!r})")
            data = {**data, "line_day": expected}
        return data


class OperatorSignedIn(_LineDayEvent):
    """An operator takes a seat on the line (CALL-1)."""

    type: Literal["calls.operator_signed_in"] = "calls.operator_signed_in"
    seat: Ident
    operator: Ident  # staff id


class OperatorSignedOut(_LineDayEvent):
    type: Literal["calls.operator_signed_out"] = "calls.operator_signed_out"
    seat: Ident
    operator: Ident
    reason: Literal["end_of_shift", "break", "handover", "other"] = "end_of_shift"


class NoOperatorSeated(_LineDayEvent):
    """CALL-1 breach: during the line's hours no seat is staffed (raised once per gap)."""

    type: Literal["calls.no_operator_seated"] = "calls.no_operator_seated"
    since: AwareDatetime  # when the gap began (last sign-out, or the opening time)


class SeatCoverageRestored(_LineDayEvent):
    """The gap of a NoOperatorSeated breach ends: an operator signed in again."""

    type: Literal["calls.seat_coverage_restored"] = "calls.seat_coverage_restored"
    gap_seconds: int = Field(ge=0, le=86_400)


class CapacityThresholdCrossed(_LineDayEvent):
    """The day's received calls reached a threshold of the expected maximum (CALL-1, CALL-3).

    Raised once per threshold and day; ``count`` is the number of calls received when it was
    crossed (the call that crossed it is ``call_id``).
    """

    type: Literal["calls.capacity_threshold_crossed"] = "calls.capacity_threshold_crossed"
    level: CapacityLevel
    threshold: int = Field(ge=1, le=1_000_000)  # the call count that makes this level
    percent: int = Field(ge=1, le=1000)  # the threshold as a percentage of expected_max
    expected_max: int = Field(ge=1, le=1_000_000)
    count: int = Field(ge=1, le=1_000_000)
    call_id: UUID


# --------------------------------------------------------------------------------------------
# Call (CALL-2, CALL-3, CALL-4, CALL-5)
# --------------------------------------------------------------------------------------------


class _CallEvent(Event):
    context: ClassVar[str] = CONTEXT
    aggregate: ClassVar[str] = "call"
    aggregate_field: ClassVar[str] = "call_id"

    call_id: UUID


class CallReceived(_CallEvent):
    """A call came in on a line at ``occurred_at`` (CALL-5: every call is recorded)."""

    type: Literal["calls.call_received"] = "calls.call_received"
    line: Ident
    within_hours: bool
    seats_signed_in: int = Field(ge=0, le=10_000)
    seats_free: int = Field(ge=0, le=10_000)


class OverflowOffered(_CallEvent):
    """CALL-3: every seat busy or the line closed: the caller is offered waiting or a callback."""

    type: Literal["calls.overflow_offered"] = "calls.overflow_offered"
    reason: OverflowReason
    options: tuple[OverflowOption, ...] = Field(min_length=1, max_length=20)


class OfferChoiceRecorded(_CallEvent):
    """The caller's choice at an overflow or out-of-hours offer (CALL-3): wait for an operator, a
    callback, or call again later."""

    type: Literal["calls.offer_choice_recorded"] = "calls.offer_choice_recorded"
    choice: OverflowOption


class RepeatCallLinked(_CallEvent):
    """This call repeats a caller's earlier call, known by the reference the caller was given on it
    (`call_reference`); no phone number is kept. Lets unconnected callers be counted as people."""

    type: Literal["calls.repeat_call_linked"] = "calls.repeat_call_linked"
    earlier_reference: CallReference


class CallAnswered(_CallEvent):
    type: Literal["calls.call_answered"] = "calls.call_answered"
    seat: Ident
    operator: Ident
    wait_seconds: int = Field(ge=0, le=86_400)


class CallMissed(_CallEvent):
    """Never connected during hours: it rang out, or the caller left a callback request instead."""

    type: Literal["calls.call_missed"] = "calls.call_missed"
    reason: Literal["no_answer", "callback_chosen"] = "no_answer"
    ring_seconds: int = Field(ge=0, default=0, le=86_400)


class CallAbandoned(_CallEvent):
    """Never connected: the caller hung up while waiting."""

    type: Literal["calls.call_abandoned"] = "calls.call_abandoned"
    wait_seconds: int = Field(ge=0, le=86_400)


class CallOutOfHours(_CallEvent):
    """Never connected: the call came when the line was closed (CALL-3)."""

    type: Literal["calls.call_out_of_hours"] = "calls.call_out_of_hours"
    next_opening: AwareDatetime | None = None


class CallOpinion(Frozen):
    """An opinion, request or topic raised by the caller (CALL-5: "as at the desk", DESK-7);
    same kinds and procedure steps as the desk's ``desk.opinion_recorded``."""

    kind: OpinionKind
    step: ProcedureStep | None = None  # where in the procedure the caller struggled
    text: ErasableText = Field(min_length=1)


class FaqRef(Frozen):
    faq_id: UUID
    revision: int = Field(ge=1, le=1_000_000)


class CallClosed(_CallEvent):
    """An answered call ends (CALL-2, CALL-4, CALL-5)."""

    type: Literal["calls.call_closed"] = "calls.call_closed"
    categories: tuple[CategoryCode, ...] = Field(min_length=1, max_length=10)
    resolution: Resolution
    provider_category: ProviderCategory | None = None  # with referred_payment_provider
    ward: Ident | None = None  # with guided_to_ward_desk: the ward whose desk was suggested
    duration_seconds: int = Field(ge=0, le=6 * 3600)
    notes: ErasableText | None = None
    opinions: tuple[CallOpinion, ...] = Field(default=(), max_length=20)
    faq_used: tuple[FaqRef, ...] = Field(default=(), max_length=20)

    @model_validator(mode="after")
    def _resolution_details(self) -> CallClosed:
        if (self.resolution == "referred_payment_provider") != (self.provider_category is not None):
            raise ValueError("provider_category is given exactly when the resolution is referred_payment_provider")
        if self.ward is not None and self.resolution != "guided_to_ward_desk":
            raise ValueError("ward is only given with the resolution guided_to_ward_desk")
        return self


# --------------------------------------------------------------------------------------------
# Callback task (CALL-3, CALL-4). Never the phone number: only the task's id.
# --------------------------------------------------------------------------------------------


class _CallbackEvent(Event):
    context: ClassVar[str] = CONTEXT
    aggregate: ClassVar[str] = "callback"
    aggregate_field: ClassVar[str] = "callback_id"

    callback_id: UUID


class CallbackRequested(_CallbackEvent):
    """A callback task is opened; the number is in the phone store under ``callback_id``."""

    type: Literal["calls.callback_requested"] = "calls.callback_requested"
    call_id: UUID
    line: Ident
    reason: CallbackReason
    window_start: AwareDatetime | None = None  # when the citizen wants to be called
    window_end: AwareDatetime | None = None
    due_at: AwareDatetime  # within business hours
    max_attempts: int = Field(ge=1, le=10)
    needs_city: bool = False  # CALL-4: the city must decide before the call back
    topic: CategoryCode | None = None

    @model_validator(mode="after")
    def _window(self) -> CallbackRequested:
        if self.window_start and self.window_end and self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class CallbackEscalatedToCity(_CallbackEvent):
    """CALL-4: the manager asked the city (委託者) for instructions."""

    type: Literal["calls.callback_escalated_to_city"] = "calls.callback_escalated_to_city"
    channel: Literal["phone", "email", "meeting", "other"] = "phone"
    question: FreeText


class CityAnswered(_CallbackEvent):
    """CALL-4: the city's answer or instruction, recorded by the manager."""

    type: Literal["calls.city_answered"] = "calls.city_answered"
    answer: FreeText
    due_at: AwareDatetime  # the call back is due again from the answer on


class CallbackNumberRead(_CallbackEvent):
    """A staff member read the phone number back from the store (the number is not here)."""

    type: Literal["calls.callback_number_read"] = "calls.callback_number_read"
    purpose: Literal["call_back"] = "call_back"


class CallbackAttemptFailed(_CallbackEvent):
    type: Literal["calls.callback_attempt_failed"] = "calls.callback_attempt_failed"
    attempt: int = Field(ge=1, le=100)
    reason: AttemptFailure
    next_due_at: AwareDatetime


class CallbackCompleted(_CallbackEvent):
    """Called back: the citizen was reached and the matter settled."""

    type: Literal["calls.callback_completed"] = "calls.callback_completed"
    attempt: int = Field(ge=1, le=100)
    resolution: Resolution
    categories: tuple[CategoryCode, ...] = Field(default=(), max_length=10)
    duration_seconds: int = Field(ge=0, le=6 * 3600)
    notes: ErasableText | None = None


class CallbackFailed(_CallbackEvent):
    """Failed for good: the last allowed attempt failed."""

    type: Literal["calls.callback_failed"] = "calls.callback_failed"
    attempts: int = Field(ge=1, le=100)
    last_reason: AttemptFailure


class CallbackCancelled(_CallbackEvent):
    type: Literal["calls.callback_cancelled"] = "calls.callback_cancelled"
    reason: Literal["citizen_called_again", "withdrawn", "duplicate", "other"]


class CallbackOverdue(_CallbackEvent):
    """The task is still open past its due time (raised once per due time)."""

    type: Literal["calls.callback_overdue"] = "calls.callback_overdue"
    due_at: AwareDatetime


class CallbackContactErased(_CallbackEvent):
    """The task ended and its phone number was made unrecoverable (key overwritten and deleted,
    ciphertext deleted)."""

    type: Literal["calls.callback_contact_erased"] = "calls.callback_contact_erased"
    method: Literal["key_destroyed"] = "key_destroyed"
    had_contact: bool = True  # False when the store held nothing for the task any more


# --------------------------------------------------------------------------------------------
# FAQ (電話対応Q&A), versioned by events
# --------------------------------------------------------------------------------------------


class _FaqEvent(Event):
    context: ClassVar[str] = CONTEXT
    aggregate: ClassVar[str] = "faq"
    aggregate_field: ClassVar[str] = "faq_id"

    faq_id: UUID


class FaqEntryCreated(_FaqEvent):
    type: Literal["calls.faq_entry_created"] = "calls.faq_entry_created"
    revision: Literal[1] = 1
    question: FreeText
    answer: FreeText
    categories: tuple[CategoryCode, ...] = Field(default=(), max_length=10)
    keywords: tuple[Keyword, ...] = Field(default=(), max_length=20)


class FaqEntryRevised(_FaqEvent):
    type: Literal["calls.faq_entry_revised"] = "calls.faq_entry_revised"
    revision: int = Field(ge=2, le=1_000_000)
    question: FreeText
    answer: FreeText
    categories: tuple[CategoryCode, ...] = Field(default=(), max_length=10)
    keywords: tuple[Keyword, ...] = Field(default=(), max_length=20)


class FaqEntryRetired(_FaqEvent):
    type: Literal["calls.faq_entry_retired"] = "calls.faq_entry_retired"
    revision: int = Field(ge=1, le=1_000_000)  # the last revision, which stays readable for old call records
    reason: Literal["outdated", "duplicate", "wrong", "other"] = "outdated"
