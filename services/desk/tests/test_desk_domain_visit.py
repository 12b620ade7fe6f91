"""Visits (DESK-4, DESK-7), card custody (DESK-9), the PIN-lock guard and escalations (DESK-6)."""

from __future__ import annotations

import pytest
from desk_harness import MANAGER, DeskHarness
from pydantic import ValidationError

from madoguchi_desk import domain as d
from madoguchi_shared.errors import DomainError
from madoguchi_shared.events import desk as ev


def _visit(h: DeskHarness):
    h.open_morning()
    h.at(9)
    h.issue()
    h.call_next()
    return h.start_visit(1)


def test_desk4_visit_carries_only_statistics():
    h = DeskHarness()
    v = _visit(h)
    [e] = h.visit(
        v,
        d.RecordDetails(
            "not_stated", "80_and_over", ("mykey_pc", "mynapoint_application", "mykey_pc"), True, True, "qr_code"
        ),
    )
    assert e.purposes == ("mykey_pc", "mynapoint_application")
    fields = set(ev.VisitDetailsRecorded.model_fields) - set(ev.Event.model_fields)
    assert fields == {
        "visit_id",
        "gender",
        "age_band",
        "purposes",
        "support_needed",
        "support_given",
        "payment_service",
    }
    with pytest.raises(ValidationError):
        ev.VisitDetailsRecorded(
            municipality="011002",
            ward="chuo",
            desk="chuo-1",
            visit_id=v,
            gender="male",
            age_band="45",
            purposes=("mykey_pc",),
            support_needed=True,
            support_given=True,
        )


def test_desk4_outcome_not_completed_needs_a_reason():
    h = DeskHarness()
    v = _visit(h)
    with pytest.raises(DomainError):
        h.visit(v, d.EndVisit("not_completed"))
    [e] = h.visit(v, d.EndVisit("not_completed", "card_not_brought"))
    assert e.reason == "card_not_brought"


def test_desk7_opinion_with_my_number_is_refused():
    h = DeskHarness()
    v = _visit(h)
    [e] = h.visit(v, d.RecordOpinion("difficulty", "暗証番号の入力画面がわかりにくい", "pin_entry"))
    assert e.step == "pin_entry"
    with pytest.raises(ValidationError) as refused:
        h.visit(v, d.RecordOpinion("opinion", "私の番号は123456789018です"))
    assert "123456789018" not in str(refused.value)


def test_pin_guard_warns_after_second_failure_of_the_4_digit_pin():
    h = DeskHarness()
    v = _visit(h)
    assert [e.type for e in h.visit(v, d.RecordPinFailure("user_auth"))] == ["desk.pin_failure_recorded"]
    failure, warning = h.visit(v, d.RecordPinFailure("user_auth"))
    assert failure.failures == 2 and not failure.locked
    assert isinstance(warning, ev.PinLockWarningIssued) and warning.remaining == 1
    assert "あと1回" in warning.message_ja and "初期化" in warning.message_ja
    [third] = h.visit(v, d.RecordPinFailure("user_auth"))
    assert third.locked
    with pytest.raises(DomainError) as refused:
        h.visit(v, d.RecordPinFailure("user_auth"))
    assert refused.value.code == "pin_locked"
    # the signature password allows 5 tries: warned after the 4th
    for _ in range(3):
        assert len(h.visit(v, d.RecordPinFailure("signature"))) == 1
    assert len(h.visit(v, d.RecordPinFailure("signature"))) == 2


def test_desk9_visit_cannot_complete_while_card_held():
    h = DeskHarness()
    v = _visit(h)
    h.visit(v, d.HandCardToStaff())
    with pytest.raises(DomainError) as refused:
        h.visit(v, d.EndVisit("completed"))
    assert refused.value.code == "card_held" and "返却" in refused.value.detail
    h.visit(v, d.ReturnCard())
    assert h.visit(v, d.EndVisit("completed"))[0].outcome == "completed"


def test_desk9_card_left_behind_is_an_urgent_incident_with_checklist():
    h = DeskHarness()
    v = _visit(h)
    h.visit(v, d.EndVisit("completed"))
    incident, left = h.card_left_behind(v)
    assert isinstance(incident, ev.IncidentOpened) and incident.urgency == "urgent" and incident.visit_id == v
    assert [s.key for s in incident.checklist] == ["phone_city", "keep_card_safe", "record_handover"]
    assert "委託者（市）へ電話" in incident.checklist[0].text_ja and "【至急】" in incident.message_ja
    assert isinstance(left, ev.CardLeftBehind) and left.incident_no == incident.incident_no
    with pytest.raises(DomainError):
        h.card_left_behind(v)
    with pytest.raises(DomainError) as refused:
        h.run(d.CloseIncident(1), MANAGER)
    assert refused.value.code == "checklist_open"
    for step in ("phone_city", "keep_card_safe", "record_handover"):
        h.run(d.CompleteIncidentStep(1, step), MANAGER)
    h.run(d.CloseIncident(1, "区役所へ引渡し済み"), MANAGER)
    assert h.day.incidents[1].closed_at is not None


def test_desk6_escalation_raised_acknowledged_escalated_to_city_and_resolved():
    h = DeskHarness()
    v = _visit(h)
    [raised] = h.run(d.RaiseEscalation("complaint", "待ち時間について強いご不満", v))
    assert raised.escalation_no == 1
    h.at(9, 5).run(d.AcknowledgeEscalation(1), MANAGER)
    h.at(9, 10).run(d.EscalateToCity(1, "市の判断が必要なため報告"), MANAGER)
    [resolved] = h.at(10).run(d.ResolveEscalation(1, "市より案内方法の指示あり、対応済み"), MANAGER)
    assert resolved.resolved_by == "city"
    esc = h.day.escalations[1]
    assert (esc.raised_at.hour, esc.acknowledged_at.minute, esc.escalated_at.minute, esc.resolved_at.hour) == (
        9,
        5,
        10,
        10,
    )
    with pytest.raises(DomainError):
        h.run(d.AcknowledgeEscalation(1), MANAGER)
    with pytest.raises(ValidationError):
        h.run(d.RaiseEscalation("complaint", "連絡先 090-1234-5678 に折り返し希望"))


def test_visit_correction_changes_the_outcome_later():
    h = DeskHarness()
    v = _visit(h)
    h.visit(v, d.RecordDetails("female", "30s", ("mynapoint_application",), True, True))
    h.visit(v, d.EndVisit("not_completed", "other"))
    with pytest.raises(DomainError) as refused:
        h.visit(v, d.RecordDetails("female", "40s", ("mynapoint_application",), True, True))
    assert refused.value.code == "visit_ended"
    [c] = h.visit(v, d.CorrectVisit(outcome="completed", age_band="40s", note="後日完了を確認"))
    assert isinstance(c, ev.VisitCorrected)
    assert h.visits[v].outcome == "completed" and h.visits[v].reason is None and h.visits[v].details.age_band == "40s"
    with pytest.raises(DomainError):
        h.visit(v, d.CorrectVisit(outcome="completed"))
