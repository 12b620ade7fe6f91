"""The phone line's rules without any server: decide/evolve per aggregate, the schedule, the FAQ search."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import reduce

import pytest
from calls_harness import jst
from pydantic import ValidationError

from madoguchi_calls import domain as d
from madoguchi_calls import schedule
from madoguchi_calls.categories import DEFAULT_TREE, codes
from madoguchi_calls.faq import SEED, FaqIndex
from madoguchi_shared import subjects
from madoguchi_shared.errors import DomainError, Forbidden, Invalid
from madoguchi_shared.events import Actor, Role, new_id, parse_event, dump_event
from madoguchi_shared.events import calls as ev
from madoguchi_shared.municipality import load_municipality

M = "011002"
OP = Actor(id="OP1", role=Role.operator)
MANAGER = Actor(id="MG1", role=Role.manager)
SAPPORO = load_municipality(M)
CAL = SAPPORO.phone_calendar()
DAY = date(2021, 4, 8)  # a Thursday


def fold(evolve, events, state=None):
    """The state after these events (the service folds the stored ones with bus.fold)."""
    return reduce(evolve, events, state)


def ctx(at: datetime, actor: Actor = OP) -> d.Ctx:
    return d.Ctx(M, actor, at)


def run(decide, evolve, state, cmd, at, actor=OP):
    events = decide(state, cmd, ctx(at, actor))
    return fold(evolve, events, state), events


# --- CALL-1: seats, coverage, daily volume ---------------------------------------------------


def test_call1_last_operator_leaving_during_hours_raises_breach_and_sign_in_restores():
    line, events = run(d.decide_line, d.evolve_line, None, d.SignIn("main", DAY, "s1", "OP1"), jst(2021, 4, 8, 8, 40))
    assert [e.type for e in events] == ["calls.operator_signed_in"]
    assert events[0].subject == subjects.aggregate_subject("calls", M, "line", "main_2021-04-08")
    with pytest.raises(DomainError):  # the seat is taken
        d.decide_line(line, d.SignIn("main", DAY, "s1", "OP2"), ctx(jst(2021, 4, 8, 9)))
    line, events = run(
        d.decide_line,
        d.evolve_line,
        line,
        d.SignOut("main", DAY, "s1", "OP1", within_hours=True, reason="break"),
        jst(2021, 4, 8, 12),
    )
    assert [e.type for e in events] == ["calls.operator_signed_out", "calls.no_operator_seated"]
    assert line.breach_since == jst(2021, 4, 8, 12)
    # the periodic check does not raise the same gap twice
    assert (
        d.decide_line(line, d.CheckCoverage("main", DAY, True, jst(2021, 4, 8, 8, 45)), ctx(jst(2021, 4, 8, 12, 5)))
        == []
    )
    line, events = run(d.decide_line, d.evolve_line, line, d.SignIn("main", DAY, "s2", "OP2"), jst(2021, 4, 8, 12, 30))
    assert [e.type for e in events] == ["calls.operator_signed_in", "calls.seat_coverage_restored"]
    assert events[1].gap_seconds == 30 * 60 and line.breach_since is None


def test_call1_nobody_seated_at_opening_is_a_breach_since_the_opening():
    events = d.decide_line(None, d.CheckCoverage("main", DAY, True, jst(2021, 4, 8, 8, 45)), ctx(jst(2021, 4, 8, 9)))
    assert [e.type for e in events] == ["calls.no_operator_seated"]
    assert events[0].since == jst(2021, 4, 8, 8, 45)
    assert (
        d.decide_line(None, d.CheckCoverage("main", DAY, False, jst(2021, 4, 8, 8, 45)), ctx(jst(2021, 4, 8, 18))) == []
    )


def test_call1_signing_out_after_hours_or_on_a_call_is_handled():
    line, _ = run(d.decide_line, d.evolve_line, None, d.SignIn("main", DAY, "s1", "OP1"), jst(2021, 4, 8, 8, 40))
    with pytest.raises(DomainError, match="通話中"):
        d.decide_line(
            line, d.SignOut("main", DAY, "s1", "OP1", within_hours=True, on_call=True), ctx(jst(2021, 4, 8, 17))
        )
    events = d.decide_line(line, d.SignOut("main", DAY, "s1", "OP1", within_hours=False), ctx(jst(2021, 4, 8, 17, 20)))
    assert [e.type for e in events] == ["calls.operator_signed_out"]


def test_call1_thresholds_of_the_expected_maximum_once_each():
    assert d.threshold_counts(20, (80, 100, 125)) == [(16, 80), (20, 100), (25, 125)]
    line = None
    raised = []
    for count in range(1, 26):
        cmd = d.CountCalls("main", DAY, count, new_id(), 20, (80, 100, 125))
        assert d.counts_to_raise(line, cmd) == bool(d.decide_line(line, cmd, ctx(jst(2021, 4, 8, 9))))  # the shortcut
        line, events = run(
            d.decide_line,
            d.evolve_line,
            line,
            d.CountCalls("main", DAY, count, new_id(), 20, (80, 100, 125)),
            jst(2021, 4, 8, 9) + timedelta(minutes=count),
        )
        raised += events
    assert [(e.level, e.count, e.threshold) for e in raised] == [
        ("approaching", 16, 16),
        ("reached", 20, 20),
        ("exceeded", 25, 25),
    ]
    # a late count that jumps over a threshold still raises it, once
    events = d.decide_line(None, d.CountCalls("main", DAY, 21, new_id(), 20, (80, 100, 125)), ctx(jst(2021, 4, 8, 15)))
    assert [e.threshold for e in events] == [16, 20]


# --- CALL-2 / CALL-3 / CALL-5: a call ---------------------------------------------------------


def receive(within=True, free=1, at=jst(2021, 4, 8, 10)):  # noqa: B008 - a constant instant, built once
    call_id = new_id()
    cmd = d.ReceiveCall(
        call_id,
        "main",
        within_hours=within,
        seats_signed_in=1,
        seats_free=free,
        next_opening=None if within else jst(2021, 4, 9, 8, 45),
    )
    return run(d.decide_call, d.evolve_call, None, cmd, at)


def test_call3_out_of_hours_call_is_offered_a_callback_and_never_connects():
    call, events = receive(within=False, at=jst(2021, 4, 8, 18, 30))
    assert [e.type for e in events] == ["calls.call_received", "calls.overflow_offered", "calls.call_out_of_hours"]
    assert events[1].options == ("callback", "call_again")
    assert call.status == "out_of_hours" and call.status in d.NEVER_CONNECTED
    with pytest.raises(DomainError):
        d.decide_call(call, d.AnswerCall("s1", "OP1", operator_seated=True), ctx(jst(2021, 4, 8, 18, 31)))


def test_call3_all_seats_busy_offers_waiting_or_callback():
    call, events = receive(free=0)
    assert [e.type for e in events] == ["calls.call_received", "calls.overflow_offered"]
    assert events[1].reason == "all_seats_busy" and events[1].options == ("wait", "callback")
    assert call.status == "waiting"
    # the caller waits and is answered after 3 minutes
    call, events = run(
        d.decide_call, d.evolve_call, call, d.AnswerCall("s1", "OP1", operator_seated=True), jst(2021, 4, 8, 10, 3)
    )
    assert events[0].wait_seconds == 180 and call.status == "answered"


def test_call3_waiting_caller_choosing_a_callback_is_a_missed_call_and_a_task():
    call, _ = receive(free=0)
    events = d.decide_request_callback(
        call, None, d.RequestCallback(call.call_id, jst(2021, 4, 9, 12), 3), ctx(jst(2021, 4, 8, 10, 2))
    )
    assert [e.type for e in events] == ["calls.call_missed", "calls.callback_requested"]
    assert events[0].reason == "callback_chosen" and events[1].reason == "overflow"
    assert events[1].callback_id == call.call_id  # one task per call, same id
    assert "phone" not in dump_event(events[1]).decode()


def test_call2_close_with_referrals_names_the_provider_category():
    call, _ = receive()
    call, _ = run(
        d.decide_call, d.evolve_call, call, d.AnswerCall("s1", "OP1", operator_seated=True), jst(2021, 4, 8, 10, 1)
    )
    known = codes(DEFAULT_TREE)
    with pytest.raises(Invalid) as refused:
        d.decide_call(
            call,
            d.CloseCall("OP1", ("payment_services",), "referred_payment_provider", known_categories=known),
            ctx(jst(2021, 4, 8, 10, 6)),
        )
    assert refused.value.field == "provider_category"
    with pytest.raises(DomainError, match="分類"):
        d.decide_call(
            call,
            d.CloseCall("OP1", ("weather",), "answered_on_spot", known_categories=known),
            ctx(jst(2021, 4, 8, 10, 6)),
        )
    with pytest.raises(Forbidden):  # only the operator on the call (or the manager) closes it
        d.decide_call(
            call, d.CloseCall("OP2", ("pin",), "answered_on_spot", known_categories=known), ctx(jst(2021, 4, 8, 10, 6))
        )
    call2, events = run(
        d.decide_call,
        d.evolve_call,
        call,
        d.CloseCall(
            "OP1",
            ("payment_services", "mynapoint.application"),
            "referred_payment_provider",
            provider_category="qr_code",
            known_categories=known,
            opinions=(
                ev.CallOpinion(
                    kind="difficulty", step="payment_service_choice", text="決済サービスの選び方が分かりにくい"
                ),
            ),
        ),
        jst(2021, 4, 8, 10, 6),
    )
    closed = events[0]
    assert closed.duration_seconds == 300 and closed.provider_category == "qr_code" and call2.status == "closed"
    assert parse_event(dump_event(closed)) == closed


def test_call2_referral_to_national_call_centre_and_ward_desk():
    known = codes(DEFAULT_TREE)
    for resolution, extra in (("referred_national_call_centre", {}), ("guided_to_ward_desk", {"ward": "kita"})):
        call, _ = receive()
        call, _ = run(
            d.decide_call, d.evolve_call, call, d.AnswerCall("s1", "OP1", operator_seated=True), jst(2021, 4, 8, 10, 1)
        )
        events = d.decide_call(
            call,
            d.CloseCall(
                "OP1",
                ("complaint_card_system",),
                resolution,
                known_categories=known,
                known_wards=frozenset({"kita"}),
                **extra,
            ),
            ctx(jst(2021, 4, 8, 10, 4)),
        )
        assert events[0].resolution == resolution


def test_call5_free_text_with_personal_data_cannot_become_an_event():
    with pytest.raises(ValidationError) as refused:
        ev.CallClosed(
            municipality=M,
            call_id=new_id(),
            categories=("other",),
            resolution="answered_on_spot",
            duration_seconds=60,
            notes="折り返し先 090-1234-5678",
        )
    assert "090" not in str(refused.value)
    with pytest.raises(ValidationError):
        ev.CallOpinion(kind="opinion", text="マイナンバー 1234 5678 9018 を聞かれた")


def test_call_answer_needs_the_operator_seated():
    call, _ = receive()
    with pytest.raises(Invalid) as refused:
        d.decide_call(call, d.AnswerCall("s1", "OP1", operator_seated=False), ctx(jst(2021, 4, 8, 10, 1)))
    assert refused.value.field == "seat"


# --- CALL-4: a callback task ------------------------------------------------------------------


def escalated_call():
    call, _ = receive()
    call, _ = run(
        d.decide_call, d.evolve_call, call, d.AnswerCall("s1", "OP1", operator_seated=True), jst(2021, 4, 8, 10, 1)
    )
    call, _ = run(
        d.decide_call,
        d.evolve_call,
        call,
        d.CloseCall("OP1", ("mynapoint",), "escalated_callback", known_categories=codes(DEFAULT_TREE)),
        jst(2021, 4, 8, 10, 8),
    )
    return call


def test_call4_escalation_waits_for_the_city_then_the_callback_is_done():
    call = escalated_call()
    events = d.decide_request_callback(
        call, None, d.RequestCallback(call.call_id, jst(2021, 4, 9, 12), 3), ctx(jst(2021, 4, 8, 10, 8))
    )
    assert [e.type for e in events] == ["calls.callback_requested"]
    assert events[0].reason == "escalation" and events[0].needs_city
    cb = fold(d.evolve_callback, events)
    with pytest.raises(DomainError, match="委託者"):
        d.decide_callback(cb, d.ReadNumber(), ctx(jst(2021, 4, 8, 10, 9)))
    cb, _ = run(
        d.decide_callback,
        d.evolve_callback,
        cb,
        d.EscalateToCity("ポイント付与の対象になるか市の判断が必要"),
        jst(2021, 4, 8, 10, 30),
        MANAGER,
    )
    assert cb.status == "awaiting_city"
    cb, _ = run(
        d.decide_callback,
        d.evolve_callback,
        cb,
        d.RecordCityAnswer("対象になると回答あり", jst(2021, 4, 8, 16)),
        jst(2021, 4, 8, 14),
        MANAGER,
    )
    assert cb.status == "open" and cb.ready_to_call and cb.due_at == jst(2021, 4, 8, 16)
    cb, events = run(d.decide_callback, d.evolve_callback, cb, d.ReadNumber(), jst(2021, 4, 8, 14, 5))
    assert events[0].type == "calls.callback_number_read"
    cb, events = run(
        d.decide_callback,
        d.evolve_callback,
        cb,
        d.RecordAttempt(reached=True, duration_seconds=240),
        jst(2021, 4, 8, 14, 10),
    )
    assert events[0].type == "calls.callback_completed" and cb.status == "done"
    with pytest.raises(DomainError):
        d.decide_callback(cb, d.ReadNumber(), ctx(jst(2021, 4, 8, 14, 11)))
    cb, events = run(
        d.decide_callback, d.evolve_callback, cb, d.EraseContact(had_contact=True), jst(2021, 4, 8, 14, 10)
    )
    assert events[0].type == "calls.callback_contact_erased" and cb.erased
    assert d.decide_callback(cb, d.EraseContact(had_contact=False), ctx(jst(2021, 4, 8, 14, 12))) == []


def test_call4_attempts_up_to_the_maximum_then_failed_for_good():
    call, _ = receive(within=False, at=jst(2021, 4, 8, 18))
    cb = fold(
        d.evolve_callback,
        d.decide_request_callback(
            call, None, d.RequestCallback(call.call_id, jst(2021, 4, 9, 12), 3), ctx(jst(2021, 4, 8, 18, 1))
        ),
    )
    reasons = []
    for i, reason in enumerate(("no_answer", "busy", "no_answer")):
        cb, events = run(
            d.decide_callback,
            d.evolve_callback,
            cb,
            d.RecordAttempt(reached=False, failure=reason, next_due_at=jst(2021, 4, 9, 10 + i)),
            jst(2021, 4, 9, 9 + i),
        )
        reasons.append(events[0].type)
    assert reasons == ["calls.callback_attempt_failed", "calls.callback_attempt_failed", "calls.callback_failed"]
    assert cb.status == "failed" and cb.failed_attempts == 3


def test_call4_overdue_is_raised_once_per_due_time():
    call, _ = receive(within=False, at=jst(2021, 4, 8, 18))
    cb = fold(
        d.evolve_callback,
        d.decide_request_callback(
            call, None, d.RequestCallback(call.call_id, jst(2021, 4, 9, 12), 3), ctx(jst(2021, 4, 8, 18, 1))
        ),
    )
    assert d.decide_callback(cb, d.CheckOverdue(), ctx(jst(2021, 4, 9, 11))) == []
    cb, events = run(d.decide_callback, d.evolve_callback, cb, d.CheckOverdue(), jst(2021, 4, 9, 12, 1))
    assert events[0].due_at == jst(2021, 4, 9, 12)
    assert d.decide_callback(cb, d.CheckOverdue(), ctx(jst(2021, 4, 9, 13))) == []


def test_call4_a_call_answered_on_the_spot_needs_no_callback():
    call, _ = receive()
    call, _ = run(
        d.decide_call, d.evolve_call, call, d.AnswerCall("s1", "OP1", operator_seated=True), jst(2021, 4, 8, 10, 1)
    )
    call, _ = run(
        d.decide_call,
        d.evolve_call,
        call,
        d.CloseCall("OP1", ("pin",), "answered_on_spot", known_categories=codes(DEFAULT_TREE)),
        jst(2021, 4, 8, 10, 3),
    )
    with pytest.raises(DomainError, match="対象ではありません"):
        d.decide_request_callback(
            call, None, d.RequestCallback(call.call_id, jst(2021, 4, 9, 12), 3), ctx(jst(2021, 4, 8, 10, 4))
        )


# --- due times in business hours ----------------------------------------------------------------


def test_call3_due_times_fall_inside_the_lines_business_hours():
    policy = schedule.CallbackPolicy()
    # Thursday evening -> Friday noon
    assert schedule.first_due(CAL, policy, jst(2021, 4, 8, 18, 30)) == jst(2021, 4, 9, 12)
    # Friday evening -> Monday noon; before Golden Week (Apr 29 Thu holiday) -> Apr 30
    assert schedule.first_due(CAL, policy, jst(2021, 4, 9, 18)) == jst(2021, 4, 12, 12)
    assert schedule.first_due(CAL, policy, jst(2021, 4, 28, 17, 30)) == jst(2021, 4, 30, 12)
    # a window the line can serve: due by its end; a window after hours: the default
    assert schedule.first_due(CAL, policy, jst(2021, 4, 8, 18), jst(2021, 4, 12, 10), jst(2021, 4, 12, 11)) == jst(
        2021, 4, 12, 11
    )
    assert schedule.first_due(CAL, policy, jst(2021, 4, 8, 18), jst(2021, 4, 9, 18), jst(2021, 4, 9, 20)) == jst(
        2021, 4, 9, 12
    )
    # open time only: 60 minutes from Friday 16:45 is Monday 9:15
    assert schedule.add_open_time(CAL, jst(2021, 4, 9, 16, 45), 60) == jst(2021, 4, 12, 9, 15)
    assert schedule.add_open_time(CAL, jst(2021, 4, 10, 11), 30) == jst(2021, 4, 12, 9, 15)


# --- FAQ ------------------------------------------------------------------------------------------


def test_faq_search_is_case_width_and_kana_insensitive_and_versioned():
    index = FaqIndex()
    ids = []
    for item in SEED:
        e = ev.FaqEntryCreated(
            municipality=M,
            faq_id=new_id(),
            question=item["question"],
            answer=item["answer"],
            categories=tuple(item["categories"]),
            keywords=tuple(item["keywords"]),
        )
        index.apply(e)
        ids.append(e.faq_id)
    assert index.search("マイキー")[0].entry.question == "マイキーIDとは何ですか？"
    assert index.search("まいきー")[0].entry.question == "マイキーIDとは何ですか？"  # hiragana finds katakana
    assert index.search("ＱＲ")[0].entry.categories == ("payment_services",)  # full-width, case
    assert index.search("暗証番号 ロック")[0].entry.categories == ("pin",)  # every word must match
    assert index.search("暗証番号 天気") == []
    assert {h.entry.faq_id for h in index.search("", category="card")} == {ids[-1]}
    index.apply(
        ev.FaqEntryRevised(
            municipality=M,
            faq_id=ids[0],
            revision=2,
            question="マイキーIDとは？",
            answer="マイナポイントの申込みに使うIDです。",
            keywords=("マイキー",),
        )
    )
    assert index.get(ids[0]).revision == 2 and index.get(ids[0], 1).question == "マイキーIDとは何ですか？"
    index.apply(ev.FaqEntryRetired(municipality=M, faq_id=ids[0], revision=2))
    assert all(h.entry.faq_id != ids[0] for h in index.search("マイキー"))


def test_faq_revisions_need_the_current_revision():
    faq = fold(d.evolve_faq, d.decide_faq(None, d.CreateFaq(new_id(), "Q", "A"), ctx(jst(2021, 4, 1, 9), MANAGER)))
    faq, events = run(
        d.decide_faq, d.evolve_faq, faq, d.ReviseFaq("Q2", "A2", expected_revision=1), jst(2021, 4, 1, 10), MANAGER
    )
    assert events[0].revision == 2
    with pytest.raises(DomainError, match="現在の版: 2"):
        d.decide_faq(faq, d.ReviseFaq("Q3", "A3", expected_revision=1), ctx(jst(2021, 4, 1, 11), MANAGER))
    assert d.decide_faq(faq, d.ReviseFaq("Q2", "A2"), ctx(jst(2021, 4, 1, 11), MANAGER)) == []


def test_the_live_view_reads_a_delivered_message_s_stream_sequence_as_nats_py_does():
    from nats.aio.msg import Msg

    from madoguchi_calls.live import _stream_sequence

    for reply in (
        "$JS.ACK.CALLS.view.1.4242.17.1700000000000000000.3",  # the form nats-server delivers
        "$JS.ACK.hub.ACCHASH.CALLS.view.1.4242.17.1700000000000000000.3.tok",  # with a domain: nats-py reads it
    ):
        msg = Msg(_client=None, subject=subjects.everything("calls"), reply=reply)  # type: ignore[arg-type] - no client needed to read metadata
        assert _stream_sequence(msg) == msg.metadata.sequence.stream
