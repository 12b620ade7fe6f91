"""A full day at one desk, told through the domain (no server)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time

from desk_harness import MANAGER, SUPPORTER, SUPPORTER2, DeskHarness

from madoguchi_desk import domain as d
from madoguchi_shared.calendar import TOKYO


def test_story_a_day_at_chuo_1():
    h = DeskHarness(date(2021, 4, 1))  # Thursday, extended to 19:00
    at = lambda hh, mm: datetime.combine(h.day.day, time(hh, mm), TOKYO)  # noqa: E731
    h.at(8, 40).run(d.RecordPreparation(at(8, 15), at(8, 40)))
    h.open_morning(SUPPORTER, SUPPORTER2)
    h.run(d.RecordMask(SUPPORTER.id, True))
    h.run(d.RecordMask(SUPPORTER2.id, True))

    # a visitor takes ticket 1, is served, the card is handed over and returned, the desk is disinfected
    h.at(9)
    h.issue(3)
    h.at(9, 2)
    h.call_next()
    v1 = h.start_visit(1)
    h.visit(v1, d.RecordDetails("female", "70s", ("mykey_pc", "mynapoint_application"), True, True, "electronic_money"))
    h.visit(v1, d.HandCardToStaff())
    h.visit(v1, d.ReturnCard())
    h.at(9, 20).visit(v1, d.EndVisit("completed"))
    h.run(d.MarkDisinfected())

    # ticket 2 forgot the PIN: two failures, a warning, not completed, and an opinion
    h.call_next(SUPPORTER2)
    v2 = h.start_visit(2, SUPPORTER2)
    h.visit(v2, d.RecordPinFailure(), SUPPORTER2)
    h.visit(v2, d.RecordPinFailure(), SUPPORTER2)
    h.visit(v2, d.RecordDetails("male", "60s", ("mynapoint_application",), True, False), SUPPORTER2)
    h.visit(v2, d.RecordOpinion("difficulty", "暗証番号を覚えていなかった", "pin_entry"), SUPPORTER2)
    h.at(9, 40).visit(v2, d.EndVisit("not_completed", "pin_locked_or_forgotten"), SUPPORTER2)
    h.run(d.MarkDisinfected(), SUPPORTER2)

    # ticket 3 does not come; a complaint is escalated and resolved by the manager
    h.call_next()
    h.run(d.Recall(3))
    h.run(d.NoShow(3))
    h.run(d.RaiseEscalation("complaint", "案内表示がわかりにくいとのご意見"))
    h.run(d.AcknowledgeEscalation(1), MANAGER)
    h.at(10).run(d.ResolveEscalation(1, "表示位置を変更"), MANAGER)

    # lunch: one supporter takes a break, the other stays
    h.at(12).run(d.StartAbsence(SUPPORTER2.id, "break", 45))
    h.at(12, 45).run(d.EndAbsence(SUPPORTER2.id))

    # closing (19:00 today): both leave, the closing check, clean-up after hours, the manager ends the day
    h.at(19, 5)
    h.run(d.CheckOut(SUPPORTER.id))
    h.run(d.CheckOut(SUPPORTER2.id), SUPPORTER2)
    h.run(d.CheckEquipment("closing"))
    h.at(19, 30).run(d.RecordCleanup(at(19, 5), at(19, 30)))
    h.run(d.EndDay(), MANAGER)

    counts = Counter(h.types())
    assert (
        counts["desk.ticket_issued"] == 3 and counts["desk.ticket_served"] == 2 and counts["desk.ticket_no_show"] == 1
    )
    assert counts["desk.pin_lock_warning_issued"] == 1 and counts["desk.devices_disinfected"] == 2
    assert "desk.staffing_breach_detected" not in counts  # DESK-5 held all day
    assert "desk.visit_started_before_disinfection" not in counts
    assert h.day.status == "ended" and all(p[2] for p in h.day.preparations + h.day.cleanups)
    assert h.visits[v1].service_seconds == 18 * 60 and h.visits[v2].outcome == "not_completed"
