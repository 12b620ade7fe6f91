"""The phone line's rules as pure functions (CALL-1 … CALL-5).

For each aggregate (line day, call, callback, FAQ entry): a state folded from its events with
``evolve(state, event)``, and ``decide(state, command, ctx)`` returning the new events or raising
a shared refusal (``Refused``, ``Invalid``, ``Forbidden``, ``NotFound``) with a Japanese message. No I/O here: facts from elsewhere (is the line open now,
how many calls today, is the operator seated, the category tree, due times computed from the
calendar) come in the command, put there by the service shell, which loads, decides, appends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from madoguchi_shared.events import Actor, Envelope, Event
from madoguchi_shared.frozen import replace
from madoguchi_shared.events import calls as ev
from madoguchi_shared.errors import Forbidden, Invalid, NotFound, Refused


@dataclass(frozen=True)
class Ctx:
    """Envelope facts of one command: where, who, when, which conversation."""

    municipality: str
    actor: Actor
    at: datetime
    correlation_id: UUID | None = None

    def envelope(self) -> Envelope:
        return {
            "municipality": self.municipality,
            "actor": self.actor,
            "occurred_at": self.at,
            "correlation_id": self.correlation_id,
        }


class _LineEnvelope(Envelope):
    line: str
    day: date


class _CallEnvelope(Envelope):
    call_id: UUID


class _CallbackEnvelope(Envelope):
    callback_id: UUID


class _FaqEnvelope(Envelope):
    faq_id: UUID


# ============================================================================================
# Line day (CALL-1)
# ============================================================================================


@dataclass(frozen=True)
class LineDay:
    line: str
    day: date
    seats: dict[str, str] = field(default_factory=dict[str, str])  # seat -> operator staff id
    seated_since: dict[str, datetime] = field(default_factory=dict[str, datetime])
    breach_since: datetime | None = None  # an open NoOperatorSeated gap
    last_sign_out: datetime | None = None
    breaches: int = 0
    thresholds: frozenset[int] = frozenset()  # call counts already alerted


@dataclass(frozen=True)
class SignIn:
    line: str
    day: date
    seat: str
    operator: str


@dataclass(frozen=True)
class SignOut:
    line: str
    day: date
    seat: str
    operator: str
    within_hours: bool  # CALL-1: the last sign-out during hours opens a breach at once
    reason: Literal["end_of_shift", "break", "handover", "other"] = "end_of_shift"
    on_call: bool = False  # the operator is still on a call


@dataclass(frozen=True)
class CheckCoverage:
    """Periodic check: during hours, at least one seat must be staffed (CALL-1)."""

    line: str
    day: date
    within_hours: bool
    opens_at: datetime  # the start of the current open period


@dataclass(frozen=True)
class CountCalls:
    """The day's received-call count after call ``call_id``; raises the thresholds it reaches."""

    line: str
    day: date
    count: int
    call_id: UUID
    expected_max: int
    percents: tuple[int, ...] = (80, 100, 125)


def capacity_level(percent: int) -> ev.CapacityLevel:
    if percent < 100:
        return "approaching"
    if percent == 100:
        return "reached"
    return "exceeded"


def threshold_counts(expected_max: int, percents: Iterable[int]) -> list[tuple[int, int]]:
    """(count, percent) pairs, e.g. 20 and (80, 100, 125) -> [(16, 80), (20, 100), (25, 125)]."""
    out: dict[int, int] = {}
    for p in sorted(percents):
        count = max(1, -(-expected_max * p // 100))  # ceiling
        out.setdefault(count, p)
    return sorted(out.items())


@lru_cache(maxsize=256)
def _threshold_counts(expected_max: int, percents: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(count for count, _ in threshold_counts(expected_max, percents))


def counts_to_raise(state: LineDay | None, cmd: CountCalls) -> bool:
    """Whether decide_line(state, cmd) raises a threshold (CountCalls decides nothing otherwise): the
    question every incoming call asks, answered without building the decision."""
    raised = state.thresholds if state is not None else frozenset[int]()
    return any(
        cmd.count >= count and count not in raised for count in _threshold_counts(cmd.expected_max, cmd.percents)
    )


def decide_line(state: LineDay | None, cmd: Any, ctx: Ctx) -> list[Event]:
    state = state or LineDay(line=cmd.line, day=cmd.day)
    common: _LineEnvelope = {**ctx.envelope(), "line": cmd.line, "day": cmd.day}
    match cmd:
        case SignIn():
            if state.seats.get(cmd.seat) == cmd.operator:
                return []  # already there: signing in twice is harmless
            if cmd.seat in state.seats:
                raise Refused("この席には別のオペレーターがサインインしています。", field="seat")
            if cmd.operator in state.seats.values():
                raise Refused("このオペレーターは別の席にサインインしています。先にサインアウトしてください。")
            out: list[Event] = [ev.OperatorSignedIn(seat=cmd.seat, operator=cmd.operator, **common)]
            if state.breach_since is not None:
                gap = max(0, int((ctx.at - state.breach_since).total_seconds()))
                out.append(ev.SeatCoverageRestored(gap_seconds=gap, **common))
            return out
        case SignOut():
            if state.seats.get(cmd.seat) != cmd.operator:
                raise Refused("この席にはサインインしていません。", field="seat")
            if cmd.on_call:
                raise Refused("通話中はサインアウトできません。先に通話を終了してください。")
            out = [ev.OperatorSignedOut(seat=cmd.seat, operator=cmd.operator, reason=cmd.reason, **common)]
            if cmd.within_hours and len(state.seats) == 1 and state.breach_since is None:
                out.append(ev.NoOperatorSeated(since=ctx.at, **common))  # CALL-1
            return out
        case CheckCoverage():
            if cmd.within_hours and not state.seats and state.breach_since is None:
                since = max(cmd.opens_at, state.last_sign_out or cmd.opens_at)
                return [ev.NoOperatorSeated(since=since, **common)]
            return []
        case CountCalls():
            out = []
            for count, percent in threshold_counts(cmd.expected_max, cmd.percents):
                if cmd.count >= count and count not in state.thresholds:
                    out.append(
                        ev.CapacityThresholdCrossed(
                            level=capacity_level(percent),
                            threshold=count,
                            percent=percent,
                            expected_max=cmd.expected_max,
                            count=cmd.count,
                            call_id=cmd.call_id,
                            **common,
                        )
                    )
            return out
        case _:
            pass
    raise TypeError(f"not a line command: {cmd!r}")


def evolve_line(state: LineDay | None, event: Event) -> LineDay:
    state = state or LineDay(line=event.line, day=event.day)  # type: ignore[attr-defined]
    match event:
        case ev.OperatorSignedIn():
            return replace(
                state,
                seats={**state.seats, event.seat: event.operator},
                seated_since={**state.seated_since, event.seat: event.occurred_at},
            )
        case ev.OperatorSignedOut():
            seats = {k: v for k, v in state.seats.items() if k != event.seat}
            since = {k: v for k, v in state.seated_since.items() if k != event.seat}
            return replace(state, seats=seats, seated_since=since, last_sign_out=event.occurred_at)
        case ev.NoOperatorSeated():
            return replace(state, breach_since=event.since, breaches=state.breaches + 1)
        case ev.SeatCoverageRestored():
            return replace(state, breach_since=None)
        case ev.CapacityThresholdCrossed():
            return replace(state, thresholds=state.thresholds | {event.threshold})
        case _:
            pass
    return state


# ============================================================================================
# Call (CALL-2 … CALL-5)
# ============================================================================================

CallStatus = Literal["ringing", "waiting", "answered", "closed", "missed", "abandoned", "out_of_hours"]
NEVER_CONNECTED = ("missed", "abandoned", "out_of_hours")
IN_PROGRESS = ("ringing", "waiting", "answered")


@dataclass(frozen=True)
class Call:
    call_id: UUID
    line: str
    received_at: datetime
    within_hours: bool
    status: CallStatus
    overflow: ev.OverflowReason | None = None
    seat: str | None = None
    operator: str | None = None
    answered_at: datetime | None = None
    resolution: ev.Resolution | None = None
    missed_reason: str | None = None
    offer_choice: ev.OverflowOption | None = None
    repeat_of: str | None = None  # the reference of the caller's earlier call


@dataclass(frozen=True)
class RecordOfferChoice:
    """The caller's choice at the overflow / out-of-hours offer (CALL-3)."""

    choice: ev.OverflowOption


@dataclass(frozen=True)
class LinkRepeatCall:
    """The caller quotes the reference (受付番号) given on an earlier call."""

    reference: str


# what a caller may choose at each kind of offer: waiting makes no sense when the line is closed
OFFER_CHOICES: dict[str, tuple[str, ...]] = {
    "all_seats_busy": ("wait", "callback", "call_again"),
    "out_of_hours": ("callback", "call_again"),
}
CHOICE_JA = {"wait": "待つ", "callback": "折り返し", "call_again": "かけ直し"}


@dataclass(frozen=True)
class ReceiveCall:
    call_id: UUID
    line: str
    within_hours: bool
    seats_signed_in: int
    seats_free: int
    next_opening: datetime | None = None


@dataclass(frozen=True)
class AnswerCall:
    seat: str
    operator: str
    operator_seated: bool  # from the line day: the operator is signed in at this seat
    operator_busy: bool = False  # already on another call


@dataclass(frozen=True)
class MarkMissed:
    reason: Literal["no_answer", "callback_chosen"] = "no_answer"


@dataclass(frozen=True)
class MarkAbandoned:
    pass


@dataclass(frozen=True)
class CloseCall:
    operator: str
    categories: tuple[str, ...]
    resolution: ev.Resolution
    duration_seconds: int | None = None  # default: from answer to now
    provider_category: ev.ProviderCategory | None = None
    ward: str | None = None
    notes: str | None = None
    opinions: tuple[ev.CallOpinion, ...] = ()
    faq_used: tuple[ev.FaqRef, ...] = ()
    known_categories: frozenset[str] = frozenset()  # the municipality's category tree (leaves and inner nodes)
    known_wards: frozenset[str] | None = None
    unknown_faq: tuple[UUID, ...] = ()  # FAQ references the index does not know (shell-checked)
    by_manager: bool = False  # the manager may close a call another operator answered


def decide_call(state: Call | None, cmd: Any, ctx: Ctx) -> list[Event]:
    match cmd:
        case ReceiveCall():
            if state is not None:
                raise Refused("この通話は既に受け付けています。")
            common: _CallEnvelope = {**ctx.envelope(), "call_id": cmd.call_id}
            out: list[Event] = [
                ev.CallReceived(
                    line=cmd.line,
                    within_hours=cmd.within_hours,
                    seats_signed_in=cmd.seats_signed_in,
                    seats_free=cmd.seats_free,
                    **common,
                )
            ]
            if not cmd.within_hours:  # CALL-3: closed line -> callback or call again later
                out.append(ev.OverflowOffered(reason="out_of_hours", options=("callback", "call_again"), **common))
                out.append(ev.CallOutOfHours(next_opening=cmd.next_opening, **common))
            elif cmd.seats_free == 0:  # CALL-3: every seat busy (or none staffed) -> wait or callback
                out.append(ev.OverflowOffered(reason="all_seats_busy", options=("wait", "callback"), **common))
            return out
        case _:
            pass
    if state is None:
        raise NotFound("通話が見つかりません。")
    common: _CallEnvelope = {**ctx.envelope(), "call_id": state.call_id}
    match cmd:
        case RecordOfferChoice():
            if state.overflow is None:
                raise Refused("この通話では混雑時・時間外の案内をしていないため、選択を記録できません。")
            if state.offer_choice is not None:
                raise Refused(f"この通話の選択は既に記録されています（{CHOICE_JA[state.offer_choice]}）。")
            if cmd.choice not in OFFER_CHOICES[state.overflow]:
                raise Invalid("受付時間外の案内では「待つ」は選べません。", field="choice")
            return [ev.OfferChoiceRecorded(choice=cmd.choice, **common)]
        case LinkRepeatCall():
            if state.repeat_of is not None:
                raise Refused("この通話は既に以前の通話と結び付けられています。")
            if cmd.reference == ev.call_reference(state.call_id):
                raise Invalid("この通話自身の受付番号です。以前の通話の受付番号を入力してください。", field="reference")
            return [ev.RepeatCallLinked(earlier_reference=cmd.reference, **common)]
        case AnswerCall():
            if state.status not in ("ringing", "waiting"):
                raise Refused(_status_message(state, "応答"))
            if not cmd.operator_seated:
                raise Invalid("この席にサインインしていないため応答できません。", field="seat")
            if cmd.operator_busy:
                raise Refused("別の通話に対応中です。先にその通話を終了してください。")
            wait = max(0, int((ctx.at - state.received_at).total_seconds()))
            return [ev.CallAnswered(seat=cmd.seat, operator=cmd.operator, wait_seconds=wait, **common)]
        case MarkMissed():
            if state.status not in ("ringing", "waiting"):
                raise Refused(_status_message(state, "不在着信の記録"))
            ring = max(0, int((ctx.at - state.received_at).total_seconds()))
            return [ev.CallMissed(reason=cmd.reason, ring_seconds=ring, **common)]
        case MarkAbandoned():
            if state.status not in ("ringing", "waiting"):
                raise Refused(_status_message(state, "放棄呼の記録"))
            wait = max(0, int((ctx.at - state.received_at).total_seconds()))
            return [ev.CallAbandoned(wait_seconds=wait, **common)]
        case CloseCall():
            if state.status != "answered":
                raise Refused(_status_message(state, "終了"))
            if cmd.operator != state.operator and not cmd.by_manager:
                raise Forbidden("この通話に応答したオペレーターまたは業務責任者だけが終了できます。")
            unknown = [c for c in cmd.categories if c not in cmd.known_categories]
            if unknown:
                raise Invalid(f"問い合わせ分類が登録されていません: {', '.join(unknown)}", field="categories")
            if cmd.resolution == "referred_payment_provider" and cmd.provider_category is None:
                raise Invalid("案内した決済事業者の種類を選んでください。", field="provider_category")
            if cmd.resolution != "referred_payment_provider" and cmd.provider_category is not None:
                raise Invalid("決済事業者の種類は、決済事業者を案内した場合だけ入力します。", field="provider_category")
            if cmd.ward is not None and cmd.resolution != "guided_to_ward_desk":
                raise Invalid("区は、区役所の窓口を案内した場合だけ入力します。", field="ward")
            if cmd.ward is not None and cmd.known_wards is not None and cmd.ward not in cmd.known_wards:
                raise Invalid("その区は登録されていません。", field="ward")
            if cmd.unknown_faq:
                raise Invalid("指定されたQ&Aが見つかりません。", field="faq_used")
            duration = cmd.duration_seconds
            if duration is None:
                duration = max(0, int((ctx.at - (state.answered_at or state.received_at)).total_seconds()))
            return [
                ev.CallClosed(
                    categories=cmd.categories,
                    resolution=cmd.resolution,
                    provider_category=cmd.provider_category,
                    ward=cmd.ward,
                    duration_seconds=duration,
                    notes=cmd.notes,
                    opinions=cmd.opinions,
                    faq_used=cmd.faq_used,
                    **common,
                )
            ]
        case _:
            pass
    raise TypeError(f"not a call command: {cmd!r}")


_STATUS_JA = {
    "ringing": "呼び出し中",
    "waiting": "待機中",
    "answered": "対応中",
    "closed": "対応終了",
    "missed": "不在着信",
    "abandoned": "放棄呼",
    "out_of_hours": "時間外着信",
}


def _status_message(state: Call, action: str) -> str:
    return f"この通話は「{_STATUS_JA[state.status]}」のため、{action}できません。"


def evolve_call(state: Call | None, event: Event) -> Call:
    match event:
        case ev.CallReceived():
            return Call(
                call_id=event.call_id,
                line=event.line,
                received_at=event.occurred_at,
                within_hours=event.within_hours,
                status="ringing",
            )
        case _:
            pass
    assert state is not None, f"{event.type} before calls.call_received"
    match event:
        case ev.OverflowOffered():
            status = "waiting" if event.reason == "all_seats_busy" else state.status
            return replace(state, overflow=event.reason, status=status)
        case ev.CallOutOfHours():
            return replace(state, status="out_of_hours")
        case ev.CallAnswered():
            return replace(
                state, status="answered", seat=event.seat, operator=event.operator, answered_at=event.occurred_at
            )
        case ev.CallMissed():
            return replace(state, status="missed", missed_reason=event.reason)
        case ev.CallAbandoned():
            return replace(state, status="abandoned")
        case ev.CallClosed():
            return replace(state, status="closed", resolution=event.resolution)
        case ev.OfferChoiceRecorded():
            return replace(state, offer_choice=event.choice)
        case ev.RepeatCallLinked():
            return replace(state, repeat_of=event.earlier_reference)
        case _:
            pass
    return state


# ============================================================================================
# Callback task (CALL-3, CALL-4)
# ============================================================================================

CallbackStatus = Literal["open", "awaiting_city", "done", "failed", "cancelled"]
CALLBACK_ENDED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Callback:
    callback_id: UUID
    call_id: UUID
    line: str
    reason: ev.CallbackReason
    status: CallbackStatus
    requested_at: datetime
    due_at: datetime
    max_attempts: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    needs_city: bool = False
    city_answered: bool = False
    failed_attempts: int = 0
    overdue_for: datetime | None = None  # the due time an overdue alert was raised for
    erased: bool = False
    reads: int = 0

    @property
    def ended(self) -> bool:
        return self.status in CALLBACK_ENDED

    @property
    def ready_to_call(self) -> bool:
        return self.status == "open" and (not self.needs_city or self.city_answered)


@dataclass(frozen=True)
class RequestCallback:
    callback_id: UUID
    due_at: datetime
    max_attempts: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    needs_city: bool | None = None  # default: True for escalations (CALL-4)
    topic: str | None = None


@dataclass(frozen=True)
class EscalateToCity:
    question: str
    channel: Literal["phone", "email", "meeting", "other"] = "phone"


@dataclass(frozen=True)
class RecordCityAnswer:
    answer: str
    due_at: datetime


@dataclass(frozen=True)
class ReadNumber:
    pass


@dataclass(frozen=True)
class RecordAttempt:
    reached: bool
    failure: ev.AttemptFailure | None = None
    next_due_at: datetime | None = None  # when the next attempt is due (shell: business hours)
    resolution: ev.Resolution = "answered_on_spot"
    categories: tuple[str, ...] = ()
    duration_seconds: int = 0
    notes: str | None = None


@dataclass(frozen=True)
class CancelCallback:
    reason: Literal["citizen_called_again", "withdrawn", "duplicate", "other"]


@dataclass(frozen=True)
class CheckOverdue:
    pass


@dataclass(frozen=True)
class EraseContact:
    had_contact: bool


def callback_reason(call: Call) -> ev.CallbackReason:
    """Why a call needs a callback, or Refused when it does not qualify (CALL-3, CALL-4)."""
    match call.status:
        case "out_of_hours":
            return "out_of_hours"
        case "ringing" | "waiting":
            return "overflow"
        case "missed":
            return "missed" if call.missed_reason != "callback_chosen" else "overflow"
        case "abandoned":
            return "abandoned"
        case "closed" if call.resolution == "escalated_callback":
            return "escalation"
        case _:
            pass
    raise Refused(f"この通話（{_STATUS_JA[call.status]}）は折り返しの対象ではありません。")


def check_window(start: datetime | None, end: datetime | None, now: datetime) -> None:
    """The citizen's desired time window must be a real, future window."""
    if start and end and end <= start:
        raise Invalid("希望時間帯の終わりは始まりより後にしてください。", field="window_end")
    if end and end <= now:
        raise Invalid("希望時間帯が既に過ぎています。", field="window_end")


def decide_request_callback(call: Call | None, state: Callback | None, cmd: RequestCallback, ctx: Ctx) -> list[Event]:
    """Open the callback task of a call. The task id is the call id (one task per call).

    A call still ringing or waiting becomes a missed call whose caller chose a callback (CALL-3);
    that call event comes first so the call's own concurrency check guards the change.
    """
    if call is None:
        raise NotFound("通話が見つかりません。")
    if state is not None:
        raise Refused("この通話の折り返しは既に登録されています。")
    if cmd.callback_id != call.call_id:
        raise ValueError("the callback task of a call has the call's id")
    reason = callback_reason(call)
    check_window(cmd.window_start, cmd.window_end, ctx.at)
    out: list[Event] = []
    if call.status in ("ringing", "waiting"):
        ring = max(0, int((ctx.at - call.received_at).total_seconds()))
        out.append(ev.CallMissed(reason="callback_chosen", ring_seconds=ring, call_id=call.call_id, **ctx.envelope()))
    needs_city = cmd.needs_city if cmd.needs_city is not None else reason == "escalation"
    out.append(
        ev.CallbackRequested(
            callback_id=cmd.callback_id,
            call_id=call.call_id,
            line=call.line,
            reason=reason,
            window_start=cmd.window_start,
            window_end=cmd.window_end,
            due_at=cmd.due_at,
            max_attempts=cmd.max_attempts,
            needs_city=needs_city,
            topic=cmd.topic,
            **ctx.envelope(),
        )
    )
    return out


def decide_callback(state: Callback | None, cmd: Any, ctx: Ctx) -> list[Event]:
    if state is None:
        raise NotFound("折り返しが見つかりません。")
    common: _CallbackEnvelope = {**ctx.envelope(), "callback_id": state.callback_id}
    if isinstance(cmd, EraseContact):
        if not state.ended:
            raise ValueError("the contact is erased only when the task has ended")
        return [] if state.erased else [ev.CallbackContactErased(had_contact=cmd.had_contact, **common)]
    if isinstance(cmd, CheckOverdue):
        if state.status == "open" and ctx.at > state.due_at and state.overdue_for != state.due_at:
            return [ev.CallbackOverdue(due_at=state.due_at, **common)]
        return []
    if state.ended:
        raise Refused("この折り返しは既に終了しています。")
    match cmd:
        case EscalateToCity():
            if state.status == "awaiting_city":
                raise Refused("既に委託者へ確認中です。")
            return [ev.CallbackEscalatedToCity(channel=cmd.channel, question=cmd.question, **common)]
        case RecordCityAnswer():
            if state.status != "awaiting_city":
                raise Refused("委託者へ確認中の折り返しではありません。")
            return [ev.CityAnswered(answer=cmd.answer, due_at=cmd.due_at, **common)]
        case ReadNumber():
            _check_ready(state, ctx)
            return [ev.CallbackNumberRead(**common)]
        case RecordAttempt():
            _check_ready(state, ctx)
            attempt = state.failed_attempts + 1
            if cmd.reached:
                return [
                    ev.CallbackCompleted(
                        attempt=attempt,
                        resolution=cmd.resolution,
                        categories=cmd.categories,
                        duration_seconds=cmd.duration_seconds,
                        notes=cmd.notes,
                        **common,
                    )
                ]
            if cmd.failure is None:
                raise Invalid("つながらなかった理由を選んでください。", field="failure")
            if attempt >= state.max_attempts:
                return [ev.CallbackFailed(attempts=attempt, last_reason=cmd.failure, **common)]
            if cmd.next_due_at is None:
                raise ValueError("the shell computes the next due time")
            return [
                ev.CallbackAttemptFailed(attempt=attempt, reason=cmd.failure, next_due_at=cmd.next_due_at, **common)
            ]
        case CancelCallback():
            return [ev.CallbackCancelled(reason=cmd.reason, **common)]
        case _:
            pass
    raise TypeError(f"not a callback command: {cmd!r}")


def _check_ready(state: Callback, ctx: Ctx) -> None:
    if state.status == "awaiting_city" or (state.needs_city and not state.city_answered):
        raise Refused("委託者の回答を待っているため、まだ折り返しできません。")
    if state.window_start is not None and ctx.at < state.window_start:
        raise Refused("ご希望の時間帯になるまで折り返しできません。")


def evolve_callback(state: Callback | None, event: Event) -> Callback:
    match event:
        case ev.CallbackRequested():
            return Callback(
                callback_id=event.callback_id,
                call_id=event.call_id,
                line=event.line,
                reason=event.reason,
                status="open",
                requested_at=event.occurred_at,
                due_at=event.due_at,
                max_attempts=event.max_attempts,
                window_start=event.window_start,
                window_end=event.window_end,
                needs_city=event.needs_city,
            )
        case _:
            pass
    assert state is not None, f"{event.type} before calls.callback_requested"
    match event:
        case ev.CallbackEscalatedToCity():
            return replace(state, status="awaiting_city", needs_city=True, city_answered=False)
        case ev.CityAnswered():
            return replace(state, status="open", city_answered=True, due_at=event.due_at)
        case ev.CallbackNumberRead():
            return replace(state, reads=state.reads + 1)
        case ev.CallbackAttemptFailed():
            return replace(state, failed_attempts=event.attempt, due_at=event.next_due_at)
        case ev.CallbackCompleted():
            return replace(state, status="done")
        case ev.CallbackFailed():
            return replace(state, status="failed", failed_attempts=event.attempts)
        case ev.CallbackCancelled():
            return replace(state, status="cancelled")
        case ev.CallbackOverdue():
            return replace(state, overdue_for=event.due_at)
        case ev.CallbackContactErased():
            return replace(state, erased=True)
        case _:
            pass
    return state


# ============================================================================================
# FAQ entry (電話対応Q&A)
# ============================================================================================


@dataclass(frozen=True)
class Faq:
    faq_id: UUID
    revision: int
    question: str
    answer: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    retired: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CreateFaq:
    faq_id: UUID
    question: str
    answer: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    known_categories: frozenset[str] | None = None


@dataclass(frozen=True)
class ReviseFaq:
    question: str
    answer: str
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    expected_revision: int | None = None  # the revision the editor saw (409 when stale)
    known_categories: frozenset[str] | None = None


@dataclass(frozen=True)
class RetireFaq:
    reason: Literal["outdated", "duplicate", "wrong", "other"] = "outdated"
    expected_revision: int | None = None


def _check_faq_categories(categories: tuple[str, ...], known: frozenset[str] | None) -> None:
    if known is not None:
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise Invalid(f"問い合わせ分類が登録されていません: {', '.join(unknown)}", field="categories")


def decide_faq(state: Faq | None, cmd: Any, ctx: Ctx) -> list[Event]:
    match cmd:
        case CreateFaq():
            if state is not None:
                raise Refused("このQ&Aは既に登録されています。")
            _check_faq_categories(cmd.categories, cmd.known_categories)
            return [
                ev.FaqEntryCreated(
                    faq_id=cmd.faq_id,
                    question=cmd.question,
                    answer=cmd.answer,
                    categories=cmd.categories,
                    keywords=cmd.keywords,
                    **ctx.envelope(),
                )
            ]
        case _:
            pass
    if state is None:
        raise NotFound("Q&Aが見つかりません。")
    if state.retired:
        raise Refused("このQ&Aは廃止済みです。")
    if cmd.expected_revision is not None and cmd.expected_revision != state.revision:
        raise Refused(f"このQ&Aは他の人が更新しました（現在の版: {state.revision}）。画面を更新してください。")
    common: _FaqEnvelope = {**ctx.envelope(), "faq_id": state.faq_id}
    match cmd:
        case ReviseFaq():
            _check_faq_categories(cmd.categories, cmd.known_categories)
            if (cmd.question, cmd.answer, tuple(cmd.categories), tuple(cmd.keywords)) == (
                state.question,
                state.answer,
                state.categories,
                state.keywords,
            ):
                return []  # nothing changed: no new revision
            return [
                ev.FaqEntryRevised(
                    revision=state.revision + 1,
                    question=cmd.question,
                    answer=cmd.answer,
                    categories=cmd.categories,
                    keywords=cmd.keywords,
                    **common,
                )
            ]
        case RetireFaq():
            return [ev.FaqEntryRetired(revision=state.revision, reason=cmd.reason, **common)]
        case _:
            pass
    raise TypeError(f"not an FAQ command: {cmd!r}")


def evolve_faq(state: Faq | None, event: Event) -> Faq:
    match event:
        case ev.FaqEntryCreated() | ev.FaqEntryRevised():
            return Faq(
                faq_id=event.faq_id,
                revision=event.revision,
                question=event.question,
                answer=event.answer,
                categories=tuple(event.categories),
                keywords=tuple(event.keywords),
                updated_at=event.occurred_at,
            )
        case ev.FaqEntryRetired():
            assert state is not None
            return replace(state, retired=True, updated_at=event.occurred_at)
        case _:
            pass
    return state  # type: ignore[return-value]
