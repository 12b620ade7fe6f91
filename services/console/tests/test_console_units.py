"""The console's pure parts: where a role lands, what it may open, how API errors reach a field."""

from __future__ import annotations

from madoguchi_console import permissions
from madoguchi_console import charts
from madoguchi_console.upstream import ApiError, _japanese_lines
from madoguchi_shared.events.base import Role


def test_each_role_lands_on_its_own_screen():
    assert permissions.home_path([Role.supporter]) == "/desk"
    assert permissions.home_path([Role.operator]) == "/phone"
    assert permissions.home_path([Role.manager]) == "/hq"
    assert permissions.home_path([Role.rounder]) == "/hq"
    assert permissions.home_path([Role.city_staff]) == "/reports"
    assert permissions.home_path([Role.auditor]) == "/audit"
    assert [s.key for s in permissions.nav_items([Role.manager])] == [
        "desk",
        "hq",
        "phone",
        "reports",
        "staff",
        "policy",
    ]
    assert not permissions.may_open([Role.supporter], "staff") and not permissions.may_open([Role.rounder], "staff")
    assert permissions.may_open([Role.manager], "policy") and not permissions.may_open([Role.rounder], "policy")
    assert not permissions.may_open([Role.supporter], "audit")
    assert not permissions.may_open([Role.city_staff], "hq")


def test_a_validation_error_lands_next_to_the_form_field():
    exc = ApiError(
        422,
        "入力内容に誤りがあります",
        "text: ...",
        errors=[{"field": "opinions.0.text", "message": "個人情報が含まれています", "type": "value_error"}],
    )
    errors, top = exc.for_form({"text": "opinion_text", "gender": "gender"})
    assert errors == {"opinion_text": "個人情報が含まれています"}
    assert top is None


def test_a_refusal_without_a_field_goes_to_the_top_of_the_form():
    errors, top = ApiError(409, "競合", "お待ちの方はいません。", code="queue_empty").for_form({"text": "opinion_text"})
    assert errors == {} and top == "お待ちの方はいません。"


def test_english_type_messages_and_english_halves_are_not_shown():
    exc = ApiError(422, "t", "d", errors=[{"field": "gender", "message": "Field required", "type": "missing"}])
    assert exc.field_errors()["gender"] == "入力してください。"
    assert (
        _japanese_lines("保存しませんでした。\n・12桁の数字\nPersonal data was found.\n- a 12-digit number")
        == "保存しませんでした。\n・12桁の数字"
    )


def test_charts_escape_their_labels():
    svg = charts.hbars([("<b>", 3), ("女性", 1)], title="性別")
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert 'aria-label="性別"' in svg
    # every chart carries its numbers as a table (for screen readers and exact values)
    assert "<table>" in svg and '<th scope="row">女性</th><td class="num">1</td>' in svg


def test_desk_severity_from_the_wait_the_queue_staffing_and_alerts():
    from madoguchi_console.domain import Thresholds, desk_severity

    t = Thresholds(wait_amber_minutes=30, wait_red_minutes=60, queue_amber=8, queue_red=15)
    base = {"open_now": True, "queue": {"waiting": []}, "estimated_wait_minutes": 0, "staffing": {}, "alerts": []}
    assert desk_severity(base, t) == ("ok", [])
    assert desk_severity({**base, "estimated_wait_minutes": 40}, t) == ("amber", ["待ち時間40分"])
    assert desk_severity({**base, "longest_wait_minutes": 70, "estimated_wait_minutes": 20}, t) == (
        "red",
        ["待ち時間70分"],
    )
    assert desk_severity({**base, "estimated_wait_minutes": 30}, t)[0] == "ok"  # above, not at, the threshold
    assert desk_severity({**base, "queue": {"waiting": list(range(8))}}, t) == ("amber", ["待ち8人"])
    assert desk_severity({**base, "queue": {"waiting": list(range(15))}}, t) == ("red", ["待ち15人"])
    assert desk_severity({**base, "staffing": {"breach_open": True}}, t) == ("red", ["支援員不在"])
    assert desk_severity({**base, "alerts": [{"level": "urgent"}]}, t) == ("red", ["緊急のお知らせ"])
    assert desk_severity({**base, "open_now": False}, t) == ("closed", [])
    assert desk_severity(None, t)[0] == "unknown"


def test_japanese_dates_times_and_phone_numbers():
    from madoguchi_console.views import jst_datetime, phone_number

    assert jst_datetime("2021-04-02T03:00:00+00:00") == "令和3年4月2日（金）12:00"
    assert phone_number("0111234567") == "011-123-4567"
    assert phone_number("09012345678") == "090-1234-5678"
    assert phone_number("0312345678") == "03-1234-5678"


def test_the_municipality_sets_the_hq_thresholds():
    from madoguchi_shared.municipality import load_municipality

    m = load_municipality("011002")
    assert (m.desk_severity.wait_amber_minutes, m.desk_severity.wait_red_minutes) == (30, 60)


def test_phone_notices_shown_only_while_they_hold():
    from madoguchi_console.screens.phone import current_notices

    alerts = [
        {
            "kind": "no_operator_seated",
            "severity": "critical",
            "at": "2021-04-01T23:45:00+00:00",
            "ref": "d",
            "message_ja": "電話回線「main」: 受付時間中に着席しているオペレーターがいません（08:45から）。",
        },
        {
            "kind": "seat_coverage_restored",
            "severity": "info",
            "at": "2021-04-02T00:05:00+00:00",
            "ref": "d",
            "message_ja": "電話回線「main」: オペレーターが着席しました（不在 20 分）。",
        },
        {
            "kind": "callback_escalated",
            "severity": "info",
            "at": "2021-04-02T01:00:00+00:00",
            "ref": "cb1",
            "message_ja": "折り返し案件を委託者（市）へ確認中です。",
        },
        {
            "kind": "capacity_approaching",
            "severity": "info",
            "at": "2021-04-02T02:00:00+00:00",
            "ref": "d",
            "message_ja": "80%",
        },
        {
            "kind": "capacity_reached",
            "severity": "warning",
            "at": "2021-04-02T03:00:00+00:00",
            "ref": "d",
            "message_ja": "100%",
        },
    ]
    seated = {"breach_open": False, "alerts": alerts, "callback_queue": [{"callback_id": "cb1", "city_answered": True}]}
    shown = current_notices(seated)
    # Operators are seated (no 「不在」), the city answered (no 「市へ確認中」), the latest capacity only.
    assert [a["kind"] for a in shown] == ["capacity_reached"]
    asking = {**seated, "callback_queue": [{"callback_id": "cb1", "city_answered": False}]}
    assert "callback_escalated" in [a["kind"] for a in current_notices(asking)]
    empty = {"breach_open": True, "alerts": alerts[:1], "callback_queue": []}
    assert [a["message_ja"] for a in current_notices(empty)] == [
        "受付時間中に着席しているオペレーターがいません（08:45から）。"
    ]


def test_a_desk_whose_laptop_is_offline_is_amber_at_hq_with_since_when():
    from madoguchi_console.domain import Thresholds, desk_severity

    t = Thresholds(wait_amber_minutes=30, wait_red_minutes=60, queue_amber=8, queue_red=15)
    base = {"open_now": True, "queue": {"waiting": [4, 5]}, "estimated_wait_minutes": 5, "staffing": {}, "alerts": []}
    online = {**base, "edge_link": {"online": True, "label_ja": "オンライン"}}
    assert desk_severity(online, t) == ("ok", [])
    offline = {**base, "edge_link": {"online": False, "label_ja": "オフライン（10:20 から）"}}
    assert desk_severity(offline, t) == ("amber", ["オフライン（10:20 から）"])
    marked = {**online, "marked": [{"rule": "during_suspension", "tickets": [3]}]}
    assert desk_severity(marked, t) == ("amber", ["オフライン中の記録 要確認1件"])


def test_hq_shows_a_desk_offline_since_its_last_heartbeat_with_the_last_known_queue():
    from madoguchi_console.domain import Thresholds
    from madoguchi_console.screens.hq import _card
    from madoguchi_console.views import make_templates

    t = Thresholds(wait_amber_minutes=30, wait_red_minutes=60, queue_amber=8, queue_red=15)
    status = {
        "desk": "chuo-1",
        "open_now": True,
        "day_status": "started",
        "staffing": {"breach_open": False},
        "absent": [],
        "on_duty": [{"staff_id": "S1"}],
        "visitors": 12,
        "expected_max": 80,
        "alerts": [],
        "queue": {"waiting": [11, 12], "served": 9},
        "estimated_wait_minutes": 8,
        "edge_link": {"online": False, "label_ja": "オフライン（10:20 から）", "pending_at_last_contact": 0},
    }
    card = _card({"desk": "chuo-1", "ward_name_ja": "中央区"}, status, t)
    html = make_templates().get_template("hq/_desks.html").render(cards=[card], is_manager=False)
    assert 'data-testid="hq-edge-offline">オフライン（10:20 から）・最後に届いた待ち状況<' in html
    assert 'data-testid="hq-waiting">2<' in html and 'data-severity="amber"' in html
    online = {**status, "edge_link": {"online": True, "label_ja": "オンライン"}}
    html = (
        make_templates()
        .get_template("hq/_desks.html")
        .render(cards=[_card({"desk": "chuo-1"}, online, t)], is_manager=False)
    )
    assert "hq-edge-offline" not in html
