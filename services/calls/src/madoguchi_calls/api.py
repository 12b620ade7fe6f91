"""REST routes of the calls service under /v1 (one router per resource) and the live SSE feed.

Thin: each route checks the role (deps.py), calls one use case of `CallsService`, and returns
ids and states. Free text goes through the PII guard (`FreeText`) before anything is stored;
the phone number of a callback is a secret input that only the phone store ever sees.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from sse_starlette.sse import EventSourceResponse

from madoguchi_calls import domain as d
from madoguchi_calls.deps import CallWriter, CorrelationId, Manager, Operator, Reader, Service
from madoguchi_calls.live import callback_dict
from madoguchi_calls.phone_store import normalize_phone
from madoguchi_shared.errors import Invalid, NotFound
from madoguchi_shared.auth import Role, revocable
from madoguchi_shared.web import ServiceDate, ServiceInstant, event_stream, problems
from madoguchi_shared.events import Event
from madoguchi_shared.events import calls as ev
from madoguchi_shared.events.base import Ident
from madoguchi_shared.events.desk import ProcedureStep
from madoguchi_shared.hot import HotRoute
from madoguchi_shared.pii import FreeText, TypedIdent, check_fields_together


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # a number split over two free-text fields of one request (notes and an opinion) is one number
    _free_text_together = model_validator(mode="after")(check_fields_together)


def _events(events: list[Event]) -> list[dict[str, Any]]:
    return [{"type": e.type, "event_id": str(e.event_id), "subject": e.subject} for e in events]


# =============================================================================================
# Lines and seats (CALL-1)
# =============================================================================================

lines_router = APIRouter(prefix="/v1/lines", tags=["lines"], responses=problems(401, 403, 404, 422, 503))


class SignOutIn(_In):
    reason: Literal["end_of_shift", "break", "handover", "other"] = "end_of_shift"


@lines_router.post("/{line}/seats/{seat}/sign-in", status_code=201, responses=problems(409))
async def sign_in(line: Ident, seat: TypedIdent, service: Service, principal: Operator, cid: CorrelationId) -> dict:
    """An operator takes a seat on the line (CALL-1)."""
    events = await service.sign_in(principal.municipality, principal.actor, line, seat, cid)
    return {"line": line, "seat": seat, "operator": principal.staff_id, "events": _events(events)}


@lines_router.post("/{line}/seats/{seat}/sign-out", responses=problems(409))
async def sign_out(
    line: Ident, seat: TypedIdent, body: SignOutIn, service: Service, principal: Operator, cid: CorrelationId
) -> dict:
    """An operator leaves a seat; the last one leaving during hours raises the CALL-1 alert."""
    events = await service.sign_out(principal.municipality, principal.actor, line, seat, body.reason, cid)
    return {"line": line, "seat": seat, "events": _events(events)}


@lines_router.get("/{line}/state")
async def line_state(line: Ident, service: Service, principal: Reader) -> dict:
    """The live line state: seats, calls in progress, callback queue, today's alerts and counts."""
    service.check_line(line)
    view = await service.view(principal.municipality)
    await view.catch_up()
    now = service.clock()
    return view.snapshot(line, now, open_now=service.calendar(principal.municipality).is_open(now))


@lines_router.get("/{line}/days/{day}/stats")
async def day_stats(line: Ident, day: ServiceDate, service: Service, principal: Reader) -> dict:
    """One day of the line in numbers (CALL-5, REP-2), with the never-connected share (CALL-3)."""
    service.check_line(line)
    view = await service.view(principal.municipality)
    await view.catch_up()
    cal = service.calendar(principal.municipality)
    return {
        "line": line,
        "day": day.isoformat(),
        "business_day": cal.is_business_day(day),
        **view.day_stats(line, day).as_dict(),
    }


@lines_router.get("/{line}/never-connected")
async def never_connected(
    line: Ident,
    service: Service,
    principal: Reader,
    start: Annotated[ServiceDate, Query(description="first day (YYYY-MM-DD)")],
    end: Annotated[ServiceDate | None, Query(description="last day, default = start")] = None,
) -> dict:
    """CALL-3: per day, the share of calls that never connected: (missed + abandoned + out of hours) / received."""
    service.check_line(line)
    end = end or start
    if end < start or (end - start).days > 366:
        raise Invalid("期間の指定が正しくありません（最大366日）。", field="end")
    view = await service.view(principal.municipality)
    await view.catch_up()
    days, totals = [], {"received": 0, "missed": 0, "abandoned": 0, "out_of_hours": 0}
    day = start
    while day <= end:
        s = view.day_stats(line, day)
        row = {
            "day": day.isoformat(),
            "received": s.received,
            "missed": s.missed,
            "abandoned": s.abandoned,
            "out_of_hours": s.out_of_hours,
            "never_connected": s.never_connected,
            "share": s.never_connected_share,
        }
        days.append(row)
        for k in totals:
            totals[k] += row[k]
        day += timedelta(days=1)
    never = totals["missed"] + totals["abandoned"] + totals["out_of_hours"]
    share = round(never / totals["received"], 4) if totals["received"] else None
    return {
        "line": line,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "total": {**totals, "never_connected": never, "share": share},
    }


@lines_router.get("/{line}/live", responses=event_stream())
async def live(
    line: Ident, request: Request, service: Service, principal: Reader, once: bool = False
) -> EventSourceResponse:
    """Server-sent events: `state` (seats, calls in progress, callback queue, alerts) at once and
    on every change, `alert` for each new alert. `once=true` sends the state and ends."""
    service.check_line(line)
    view = await service.view(principal.municipality)
    await view.catch_up()
    cal = service.calendar(principal.municipality)

    def state() -> dict:
        now = service.clock()
        return {
            "event": "state",
            "data": json.dumps(view.snapshot(line, now, open_now=cal.is_open(now)), ensure_ascii=False),
        }

    queue = view.subscribe()

    async def stream():
        try:
            yield state()
            if once:
                return
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=30)
                except TimeoutError:
                    yield state()  # refresh "now", overdue flags
                    continue
                batch = [item]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                for _event, alert in batch:
                    if alert is not None and alert.line in (line, None):
                        yield {"event": "alert", "data": json.dumps(alert.as_dict(), ensure_ascii=False)}
                yield state()
        finally:
            view.unsubscribe(queue)

    return EventSourceResponse(revocable(request.app, principal, stream()), ping=15)


categories_router = APIRouter(prefix="/v1/categories", tags=["lines"], responses=problems(401, 403, 503))


@categories_router.get("")
async def categories(service: Service, principal: Reader) -> dict:
    """The inquiry category tree the calls are closed with."""
    return {"categories": [c.as_dict() for c in service.tree]}


# =============================================================================================
# Calls (CALL-2 … CALL-5)
# =============================================================================================

calls_router = APIRouter(
    prefix="/v1/calls", tags=["calls"], responses=problems(401, 403, 404, 422, 503), route_class=HotRoute
)  # served without FastAPI's solver


class ReceiveIn(_In):
    line: Ident = "main"


class AnswerIn(_In):
    seat: TypedIdent


class OpinionIn(_In):
    kind: Literal["opinion", "request", "topic", "difficulty"]
    step: ProcedureStep | None = None
    text: FreeText = Field(min_length=1)


class FaqRefIn(_In):
    faq_id: UUID
    revision: int = Field(ge=1)


class CallbackIn(_In):
    """The citizen's number and when they want to be called (CALL-3, CALL-4)."""

    phone: SecretStr = Field(min_length=10, max_length=30, description="kept only in the encrypted phone store")
    window_start: ServiceInstant | None = None
    window_end: ServiceInstant | None = None
    needs_city: bool | None = Field(
        default=None, description="the city must decide first (default: true for escalations)"
    )
    topic: ev.CategoryCode | None = None


class CloseIn(_In):
    categories: list[ev.CategoryCode] = Field(min_length=1, max_length=10)
    resolution: ev.Resolution
    provider_category: ev.ProviderCategory | None = None
    ward: Ident | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=6 * 3600)
    notes: FreeText | None = None
    opinions: list[OpinionIn] = Field(default=[], max_length=20)
    faq_used: list[FaqRefIn] = Field(default=[], max_length=20)
    callback: CallbackIn | None = None  # with resolution escalated_callback


def _call_dict(call: d.Call) -> dict[str, Any]:
    return {
        "call_id": str(call.call_id),
        "line": call.line,
        "status": call.status,
        "received_at": call.received_at.isoformat(),
        "within_hours": call.within_hours,
        "overflow": call.overflow,
        "seat": call.seat,
        "operator": call.operator,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "resolution": call.resolution,
        "never_connected": call.status in d.NEVER_CONNECTED,
        # the reference (受付番号) to give the caller: a repeat call quotes it (no phone number kept)
        "reference": ev.call_reference(call.call_id),
        "offer_choice": call.offer_choice,
        "repeat_of": call.repeat_of,
    }


@calls_router.post("", status_code=201, responses=problems(409))
async def receive(body: ReceiveIn, service: Service, principal: CallWriter, cid: CorrelationId) -> dict:
    """A call comes in: it rings, or is offered waiting/callback (all seats busy, out of hours; CALL-3)."""
    call_id, events = await service.receive_call(principal.municipality, principal.actor, body.line, cid)
    offer = next((e for e in events if isinstance(e, ev.OverflowOffered)), None)
    route = "ring" if offer is None else ("out_of_hours" if offer.reason == "out_of_hours" else "overflow")
    return {
        "call_id": str(call_id),
        "route": route,
        "options": list(offer.options) if offer else [],
        "reference": ev.call_reference(call_id),
        "events": _events(events),
    }


class OfferChoiceIn(_In):
    choice: ev.OverflowOption


class RepeatOfIn(_In):
    reference: str = Field(pattern=r"^[0-9]{4}-?[0-9]{4}$", description="the earlier call's reference, e.g. 4821-0937")


@calls_router.post("/{call_id}/offer-choice", responses=problems(409))
async def offer_choice(
    call_id: UUID, body: OfferChoiceIn, service: Service, principal: CallWriter, cid: CorrelationId
) -> dict:
    """The caller's choice at the overflow / out-of-hours offer: wait, callback or call again later (CALL-3)."""
    events = await service.record_offer_choice(principal.municipality, principal.actor, call_id, body.choice, cid)
    return {"call_id": str(call_id), "choice": body.choice, "events": _events(events)}


@calls_router.post("/{call_id}/repeat-of", responses=problems(409))
async def repeat_of(
    call_id: UUID, body: RepeatOfIn, service: Service, principal: CallWriter, cid: CorrelationId
) -> dict:
    """This call repeats the caller's earlier call, by the reference given then (no phone number is kept)."""
    digits = body.reference.replace("-", "")
    reference = f"{digits[:4]}-{digits[4:]}"
    events = await service.link_repeat_call(principal.municipality, principal.actor, call_id, reference, cid)
    return {"call_id": str(call_id), "repeat_of": reference, "events": _events(events)}


@calls_router.get("/{call_id}")
async def get_call(call_id: UUID, service: Service, principal: Reader) -> dict:
    """One call's state and its recorded events (CALL-5: every call is recorded)."""
    call, events = await service.get_call(principal.municipality, call_id)
    if call is None:
        raise NotFound("通話が見つかりません。")
    # notes and opinions are stored sealed: shown decrypted, or 「削除済み」 once erased
    dumped = [json.loads(e.model_dump_json()) for e in events]
    return {**_call_dict(call), "events": await service.vault.reveal_tree(principal.municipality, dumped)}


@calls_router.post("/{call_id}/answer", responses=problems(409))
async def answer(call_id: UUID, body: AnswerIn, service: Service, principal: Operator, cid: CorrelationId) -> dict:
    """The operator seated at `seat` answers the call."""
    events = await service.answer(principal.municipality, principal.actor, call_id, body.seat, cid)
    return {"call_id": str(call_id), "events": _events(events)}


@calls_router.post("/{call_id}/missed", responses=problems(409))
async def missed(call_id: UUID, service: Service, principal: CallWriter, cid: CorrelationId) -> dict:
    """The call rang out without an answer (never connected)."""
    events = await service.mark_missed(principal.municipality, principal.actor, call_id, cid)
    return {"call_id": str(call_id), "events": _events(events)}


@calls_router.post("/{call_id}/abandoned", responses=problems(409))
async def abandoned(call_id: UUID, service: Service, principal: CallWriter, cid: CorrelationId) -> dict:
    """The caller hung up while waiting (never connected)."""
    events = await service.mark_abandoned(principal.municipality, principal.actor, call_id, cid)
    return {"call_id": str(call_id), "events": _events(events)}


@calls_router.post("/{call_id}/close", responses=problems(409))
async def close(call_id: UUID, body: CloseIn, service: Service, principal: Operator, cid: CorrelationId) -> dict:
    """Close an answered call: categories, resolution, duration, notes, opinions, FAQ used (CALL-2, CALL-5);
    with `escalated_callback` and `callback`, the callback task is opened too (CALL-4)."""
    if body.callback is not None and body.resolution != "escalated_callback":
        raise Invalid("折り返し情報は、エスカレーション（折り返し）で終了する場合だけ入力します。", field="callback")
    m, actor = principal.municipality, principal.actor
    if body.callback is not None:
        # a bad number or window refuses the whole request, before the call is closed
        normalize_phone(body.callback.phone.get_secret_value())
        d.check_window(body.callback.window_start, body.callback.window_end, service.clock())
    events = await service.close_call(
        m,
        actor,
        call_id,
        by_manager=principal.has(Role.manager),
        cid=cid,
        categories=tuple(body.categories),
        resolution=body.resolution,
        provider_category=body.provider_category,
        ward=body.ward,
        duration_seconds=body.duration_seconds,
        notes=body.notes,
        opinions=tuple(ev.CallOpinion(kind=o.kind, step=o.step, text=o.text) for o in body.opinions),
        faq_used=tuple(ev.FaqRef(faq_id=r.faq_id, revision=r.revision) for r in body.faq_used),
    )
    result: dict[str, Any] = {"call_id": str(call_id), "events": _events(events)}
    if body.callback is not None:
        cb = body.callback
        more = await service.request_callback(
            m,
            actor,
            call_id,
            cb.phone.get_secret_value(),
            window_start=cb.window_start,
            window_end=cb.window_end,
            needs_city=cb.needs_city,
            topic=cb.topic,
            cid=cid,
        )
        result["callback_id"] = str(call_id)
        result["events"] += _events(more)
    return result


@calls_router.post("/{call_id}/callback", status_code=201, responses=problems(409))
async def request_callback(
    call_id: UUID, body: CallbackIn, service: Service, principal: CallWriter, cid: CorrelationId
) -> dict:
    """The caller chose a callback (out of hours, all seats busy, missed) or an escalation needs one."""
    events = await service.request_callback(
        principal.municipality,
        principal.actor,
        call_id,
        body.phone.get_secret_value(),
        window_start=body.window_start,
        window_end=body.window_end,
        needs_city=body.needs_city,
        topic=body.topic,
        cid=cid,
    )
    requested = next(e for e in events if isinstance(e, ev.CallbackRequested))
    return {
        "callback_id": str(requested.callback_id),
        "due_at": requested.due_at.isoformat(),
        "needs_city": requested.needs_city,
        "events": _events(events),
    }


# =============================================================================================
# Callbacks (CALL-3, CALL-4)
# =============================================================================================

callbacks_router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"], responses=problems(401, 403, 404, 422, 503))


class EscalateIn(_In):
    question: FreeText = Field(min_length=1)
    channel: Literal["phone", "email", "meeting", "other"] = "phone"


class CityAnswerIn(_In):
    answer: FreeText = Field(min_length=1)


class AttemptIn(_In):
    reached: bool
    failure: ev.AttemptFailure | None = None
    resolution: ev.Resolution = "answered_on_spot"
    categories: list[ev.CategoryCode] = Field(default=[], max_length=10)
    duration_seconds: int = Field(default=0, ge=0, le=6 * 3600)
    notes: FreeText | None = None


class CancelIn(_In):
    reason: Literal["citizen_called_again", "withdrawn", "duplicate", "other"]


@callbacks_router.get("")
async def list_callbacks(service: Service, principal: Reader, line: Ident | None = None) -> dict:
    """The callback queue: open tasks by due time (overdue ones flagged)."""
    view = await service.view(principal.municipality)
    await view.catch_up()
    now = service.clock()
    return {
        "callbacks": [callback_dict(cb, now) for cb in view.open_callbacks(line)],
        "totals": dict(view.callback_totals),
    }


@callbacks_router.get("/{callback_id}")
async def get_callback(callback_id: UUID, service: Service, principal: Reader) -> dict:
    """One callback task and its events (never the number)."""
    cb, events = await service.get_callback(principal.municipality, callback_id)
    if cb is None:
        raise NotFound("折り返しが見つかりません。")
    dumped = [json.loads(e.model_dump_json()) for e in events]
    return {
        **callback_dict(cb, service.clock()),
        "events": await service.vault.reveal_tree(principal.municipality, dumped),
    }


@callbacks_router.get("/{callback_id}/phone", responses=problems(409, 410))
async def read_phone(
    callback_id: UUID, response: Response, service: Service, principal: Operator, cid: CorrelationId
) -> dict:
    """The number to call back, for an operator or the manager with the task due; the read is recorded."""
    number = await service.read_number(principal.municipality, principal.actor, callback_id, cid)
    response.headers["Cache-Control"] = "no-store"
    return {"callback_id": str(callback_id), "phone": number}


@callbacks_router.post("/{callback_id}/escalate", responses=problems(409))
async def escalate(
    callback_id: UUID, body: EscalateIn, service: Service, principal: Manager, cid: CorrelationId
) -> dict:
    """CALL-4: the manager asks the city (委託者) for instructions."""
    events = await service.escalate_to_city(
        principal.municipality, principal.actor, callback_id, body.question, body.channel, cid
    )
    return {"callback_id": str(callback_id), "events": _events(events)}


@callbacks_router.post("/{callback_id}/city-answer", responses=problems(409))
async def city_answer(
    callback_id: UUID, body: CityAnswerIn, service: Service, principal: Manager, cid: CorrelationId
) -> dict:
    """CALL-4: the manager records the city's answer; the call back is due again."""
    events = await service.record_city_answer(principal.municipality, principal.actor, callback_id, body.answer, cid)
    return {"callback_id": str(callback_id), "events": _events(events)}


@callbacks_router.post("/{callback_id}/attempts", responses=problems(409))
async def attempt(
    callback_id: UUID, body: AttemptIn, service: Service, principal: Operator, cid: CorrelationId
) -> dict:
    """The result of a call-back attempt: done, or failed (next one due; the last one ends the task)."""
    events = await service.record_attempt(
        principal.municipality,
        principal.actor,
        callback_id,
        reached=body.reached,
        failure=body.failure,
        cid=cid,
        resolution=body.resolution,
        categories=tuple(body.categories),
        duration_seconds=body.duration_seconds,
        notes=body.notes,
    )
    cb, _ = await service.get_callback(principal.municipality, callback_id)
    return {"callback_id": str(callback_id), "status": cb.status if cb else None, "events": _events(events)}


@callbacks_router.post("/{callback_id}/cancel", responses=problems(409))
async def cancel(callback_id: UUID, body: CancelIn, service: Service, principal: Manager, cid: CorrelationId) -> dict:
    """The manager cancels a callback task (e.g. the citizen called again); the number is destroyed."""
    events = await service.cancel_callback(principal.municipality, principal.actor, callback_id, body.reason, cid)
    return {"callback_id": str(callback_id), "events": _events(events)}


# =============================================================================================
# FAQ (電話対応Q&A)
# =============================================================================================

faq_router = APIRouter(prefix="/v1/faq", tags=["faq"], responses=problems(401, 403, 404, 422, 503))

Keyword = Annotated[FreeText, Field(min_length=1, max_length=40)]


class FaqIn(_In):
    question: FreeText = Field(min_length=1)
    answer: FreeText = Field(min_length=1)
    categories: list[ev.CategoryCode] = Field(default=[], max_length=10)
    keywords: list[Keyword] = Field(default=[], max_length=20)


class FaqReviseIn(FaqIn):
    expected_revision: int | None = Field(default=None, ge=1, description="the revision you edited (409 if stale)")


class FaqRetireIn(_In):
    reason: Literal["outdated", "duplicate", "wrong", "other"] = "outdated"
    expected_revision: int | None = Field(default=None, ge=1)


def _faq_dict(entry: d.Faq) -> dict[str, Any]:
    return {
        "faq_id": str(entry.faq_id),
        "revision": entry.revision,
        "question": entry.question,
        "answer": entry.answer,
        "categories": list(entry.categories),
        "keywords": list(entry.keywords),
        "retired": entry.retired,
        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
    }


@faq_router.get("")
async def search_faq(
    service: Service,
    principal: Reader,
    q: Annotated[str, Query(max_length=200)] = "",
    category: ev.CategoryCode | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict:
    """Search the Q&A while on a call: every word of `q` must appear (question, answer or keywords)."""
    view = await service.view(principal.municipality)
    hits = view.faq.search(q, category=category, limit=limit)
    return {"query": q, "results": [{**_faq_dict(h.entry), "score": h.score} for h in hits]}


@faq_router.get("/{faq_id}")
async def get_faq(faq_id: UUID, service: Service, principal: Reader, revision: int | None = None) -> dict:
    """One entry (the current revision, or the one a call record names)."""
    view = await service.view(principal.municipality)
    entry = view.faq.get(faq_id, revision)
    if entry is None:
        raise NotFound("Q&Aが見つかりません。")
    return _faq_dict(entry)


@faq_router.post("", status_code=201, responses=problems(409))
async def create_faq(body: FaqIn, service: Service, principal: Manager, cid: CorrelationId) -> dict:
    """The manager adds an entry (revision 1)."""
    events = await service.create_faq(
        principal.municipality,
        principal.actor,
        question=body.question,
        answer=body.answer,
        categories=body.categories,
        keywords=body.keywords,
        cid=cid,
    )
    created = events[0]
    return {"faq_id": str(created.faq_id), "revision": 1, "events": _events(events)}  # type: ignore[attr-defined]


@faq_router.put("/{faq_id}", responses=problems(409))
async def revise_faq(faq_id: UUID, body: FaqReviseIn, service: Service, principal: Manager, cid: CorrelationId) -> dict:
    """The manager revises an entry (a new revision; old ones stay readable)."""
    events = await service.revise_faq(
        principal.municipality,
        principal.actor,
        faq_id,
        question=body.question,
        answer=body.answer,
        categories=body.categories,
        keywords=body.keywords,
        expected_revision=body.expected_revision,
        cid=cid,
    )
    view = await service.view(principal.municipality)
    entry = view.faq.get(faq_id)
    return {"faq_id": str(faq_id), "revision": entry.revision if entry else None, "events": _events(events)}


@faq_router.post("/{faq_id}/retire", responses=problems(409))
async def retire_faq(faq_id: UUID, body: FaqRetireIn, service: Service, principal: Manager, cid: CorrelationId) -> dict:
    """The manager retires an entry (no longer found by search)."""
    events = await service.retire_faq(
        principal.municipality,
        principal.actor,
        faq_id,
        reason=body.reason,
        expected_revision=body.expected_revision,
        cid=cid,
    )
    return {"faq_id": str(faq_id), "events": _events(events)}


def routers() -> list[APIRouter]:
    return [lines_router, categories_router, callbacks_router, faq_router]


FIRST = [calls_router]  # the busiest commands, matched before every other route (create_service_app)
