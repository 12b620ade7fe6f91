"""Every free-text field of the desk API, driven as an outsider would: each hostile spelling (a My Number in
kanji, 大字 or with zero-width characters between the digits, a local phone number after a label, an e-mail
address read out in kana, a rare family name with a kana given name, a date of birth in 和暦, a home address)
is refused 422 as problem+json in Japanese, never echoed, never in a log line, never on the bus; ordinary desk
notes with the same words pass the guard on every field. The fields are found from the routers, so a new
free-text field that is not driven here fails the first test."""

from __future__ import annotations

import inspect
import logging
from datetime import datetime
from typing import Any

import pytest
import structlog
from desk_api import FakeClock, auth, desk_app, train
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel

import madoguchi_desk.api as desk_api_module
from madoguchi_shared import bus
from madoguchi_shared.auth import Role
from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.pii import _is_free_text_field  # pyright: ignore[reportPrivateUsage] - the type's own marker
from madoguchi_shared.subjects import context_filter
from tests.utils.auth import staff_headers
from tests.utils.pii_spellings import FIFTH_PASS

# value that must never come back or be stored -> the text that carries it
HOSTILE = {
    "九〇一八": "番号は一二三四 五六七八 九〇一八 です",
    "玖〇壱捌": "壱弐参肆・伍陸漆捌・玖〇壱捌",
    "5678\u200b9018": "1234\u200b5678\u200b9018",
    "123-4567": "電話 123-4567 に折り返し希望",
    "５６７８－１２３４": "TEL：５６７８－１２３４",
    "ジーメール": "やまだアットマークジーメールドットコムへ送付",
    "鰐淵": "鰐淵 はなこ様が来庁",
    "昭和50年1月2日": "昭和50年1月2日生の方",
    "S50.1.2": "生年月日 S50.1.2",
    "北1条西2丁目": "札幌市中央区北1条西2丁目 在住",
    "080-1234-5678": "〇八〇の1234の5678",
    # the fourth pass (shared/tests/test_pii_fourth_pass.py): postal codes, house numbers without the city, a birth
    # date in two phrases, a My Number over two sentences or in the card's groups, other cards' numbers, rare names
    "060-0001": "〒060-0001 へ転送希望",
    "０６０－０００１": "郵便番号０６０－０００１",
    "西2丁目3-4": "北1条西2丁目3-4",
    "一丁目2番3号": "一丁目2番3号の方",
    "1の2の3": "1の2の3に住んでいます",
    "昭和50年、…5月5日": "生年月日は昭和50年、…5月5日です",
    "五六七八。九〇一二": "一二三四の五六七八。九〇一二です",
    "一二三四 五六七八": "続きは一二三四 五六七八",
    "記号123 番号4567": "保険証 記号123 番号4567",
    "四月一日 はなこ": "四月一日 はなこ様が来庁",
    "ワニブチ ハナコ": "ワニブチ ハナコ 来庁",
    # the fifth pass (shared/tests/test_pii_fifth_pass.py): the spellings an outsider sends through every field
    **FIFTH_PASS,
}
ORDINARY = "電話 3件、うち折り返し 2件。10:00-12:00 は窓口混雑、受付番号 123 まで案内"
# ordinary notes with the same words, numbers and places (each passes the guard on every field)
ORDINARY_MORE = [
    "カード読取エラーのため再来庁を案内",
    "13時に折り返し予定。令和3年4月1日から受付開始",
    "〒060-8611 札幌市役所、北区役所 2番窓口へ案内",
    "生年月日の記入漏れ、令和3年4月1日に再来庁",
    "四月一日は混雑予想、保険証の確認 3件",
]

# every free-text field of the desk API -> (method, path, role, other fields of a valid body)
WINDOW = {"start": "2021-05-06T09:00:00+09:00", "end": "2021-05-06T12:00:00+09:00", "reason": "pandemic"}
FIELDS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("/v1/calendar/suspensions", "note"): ("manager", WINDOW),
    ("/v1/calendar/delays", "note"): ("manager", {"until": "2021-05-07T10:00:00+09:00", "reason": "disaster"}),
    ("/v1/calendar/special-openings", "note"): ("manager", {"date": "2021-05-08", "open": "09:00", "close": "12:00"}),
    ("/v1/calendar/extended-hours", "note"): ("manager", {"date": "2021-05-10", "close": "19:00"}),
    ("/v1/desks/{desk_id}/day/cannot-start", "note"): ("staff", {"reason": "staff_shortage"}),
    ("/v1/desks/{desk_id}/day/cannot-continue", "note"): ("staff", {"reason": "staff_shortage"}),
    ("/v1/desks/{desk_id}/equipment-checks", "note"): ("staff", {"phase": "opening"}),
    ("/v1/desks/{desk_id}/escalations", "summary"): ("staff", {"category": "complaint"}),
    ("/v1/desks/{desk_id}/escalations/{no}/escalate-to-city", "summary"): ("manager", {}),
    ("/v1/desks/{desk_id}/escalations/{no}/resolve", "outcome"): ("manager", {}),
    ("/v1/desks/{desk_id}/incidents/{no}/close", "note"): ("manager", {}),
    ("/v1/visits/{visit_id}/opinions", "text"): ("staff", {"kind": "opinion"}),
    ("/v1/visits/{visit_id}/corrections", "note"): ("staff", {}),
}


def free_text_fields_of_the_routers() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for router in vars(desk_api_module).values():
        if not isinstance(router, APIRouter):
            continue
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for param in route.dependant.body_params:
                model = param.field_info.annotation
                if inspect.isclass(model) and issubclass(model, BaseModel):
                    for name, info in model.model_fields.items():
                        if _is_free_text_field(info):
                            found.add((route.path, name))
    return found


def test_every_free_text_field_of_the_desk_api_is_driven():
    assert free_text_fields_of_the_routers() == set(FIELDS)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}")


@pytest.mark.timeout(240)
async def test_every_free_text_field_refuses_every_spelling_without_echo_log_or_event(settings, municipality, nc, js):
    clock = FakeClock(datetime(2021, 4, 6, 11, 0, tzinfo=TOKYO))
    await train(js, municipality, "S1")
    both = await staff_headers(js, settings, municipality, "S1", [Role.supporter, Role.manager], ("higashi",))
    tokens = {"staff": both, "manager": await auth(js, settings, municipality, "M1", Role.manager)}
    paths = {"desk_id": "higashi-1", "no": "1", "visit_id": "0192f0a4-7c3e-7d2a-9a51-3f0e5d6c7b8a"}
    stdlib = _Lines()
    logging.getLogger().addHandler(stdlib)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        async with desk_app(settings, municipality, clock, log_level="DEBUG") as (_app, client):
            with structlog.testing.capture_logs() as captured:
                for (path, field), (role, rest) in FIELDS.items():
                    url = path.format(**paths)
                    for value, text in HOSTILE.items():
                        r = await client.post(url, headers=tokens[role], json={**rest, field: text})
                        assert r.status_code == 422, (url, field, text, r.status_code, r.text)
                        assert r.headers["content-type"].startswith("application/problem+json")
                        assert "個人情報" in r.json()["detail"], r.text
                        assert value not in r.text and text not in r.text, (url, r.text)
                    # ordinary writing passes the guard on every field (the command itself may be refused
                    # for the state: no escalation 1 yet, an unknown visit)
                    for ordinary in (ORDINARY, *ORDINARY_MORE):
                        r = await client.post(url, headers=tokens[role], json={**rest, field: ordinary})
                        assert r.status_code != 422 or "個人情報" not in r.text, (url, field, ordinary, r.text)
        logged = [repr(entry) for entry in captured] + stdlib.lines
    finally:
        logging.getLogger().removeHandler(stdlib)
        logging.getLogger().setLevel(previous_level)
    assert sum("'request'" in line and "422" in line for line in logged) >= len(FIELDS) * len(HOSTILE)
    # (every refusal was logged as a request line, only without the text)
    for line in logged:
        for value, text in HOSTILE.items():
            assert value not in line and text not in line, line
    async for _seq, subject, data, _headers in bus.load_filter(js, context_filter("desk", municipality)):
        for value in HOSTILE:
            assert value.encode() not in data, subject
