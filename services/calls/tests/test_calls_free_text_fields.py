"""Every free-text field of the calls API (call notes, opinions in a call, callback attempts, questions to the
city and its answers, FAQ entries and their keywords), driven as an outsider would: each hostile spelling is
refused 422 as problem+json in Japanese, never echoed, in no log line, not on the bus; ordinary phone-desk notes
pass the guard on every field; a number split over two fields of one request is refused (the fields are read
together). The fields are found from the routers (nested models too), so a new free-text field that is not
driven here fails the first test.

Not joined: two REQUESTS each holding half a number. The guard would have to keep the earlier text to read it with
the next, and free text is sealed and erasable (madoguchi_shared.sealed). A request with two of the card's groups of
four (「一二三四 五六七八」) is refused alone (the four digits left identify nobody); halves of six digits each
(「123456」, then 「789018」) pass: six digits alone identify nobody."""

from __future__ import annotations

import inspect
import logging
from typing import Any
from uuid import uuid4

import pytest
import structlog
from calls_harness import jst, running_line
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel

import madoguchi_calls.api as calls_api_module
from madoguchi_shared.auth import Role
from madoguchi_shared.pii import _is_free_text_field  # pyright: ignore[reportPrivateUsage] - the type's own marker
from tests.utils.auth import staff_headers
from tests.utils.pii_spellings import FIFTH_PASS

HOSTILE = {
    "九〇一八": "番号は一二三四 五六七八 九〇一八 です",
    "玖〇壱捌": "壱弐参肆・伍陸漆捌・玖〇壱捌",
    "5678\u200b9018": "1234\u200b5678\u200b9018",
    "123-4567": "電話 123-4567 に折り返し希望",
    "５６７８－１２３４": "TEL：５６７８－１２３４",
    "ジーメール": "やまだアットマークジーメールドットコム",
    "鰐淵": "鰐淵 はなこ様から",
    "昭和50年1月2日": "昭和50年1月2日生の方",
    "北1条西2丁目": "札幌市中央区北1条西2丁目 在住",
    "080-1234-5678": "〇八〇の1234の5678",
    # the fourth pass (shared/tests/test_pii_fourth_pass.py)
    "060-0001": "〒060-0001 へ転送希望",
    "西2丁目3-4": "北1条西2丁目3-4",
    "1の2の3": "1の2の3に住んでいます",
    "昭和50年、…5月5日": "生年月日は昭和50年、…5月5日です",
    "五六七八。九〇一二": "一二三四の五六七八。九〇一二です",
    "一二三四 五六七八": "続きは一二三四 五六七八",
    "被保険者番号 87654321": "被保険者番号 87654321",
    "四月一日 はなこ": "四月一日 はなこ様から",
    # the fifth pass (shared/tests/test_pii_fifth_pass.py): the spellings an outsider sends through every field
    **FIFTH_PASS,
}
ORDINARY = "電話 3件、折り返し 2件。10:00-12:00 混雑"

CALL = "0192f0a4-7c3e-7d2a-9a51-3f0e5d6c7b8a"
CLOSE = {"categories": ["other"], "resolution": "answered_on_spot"}
FAQ = {"question": "申請の期限は", "answer": "窓口で案内", "keywords": ["期限"]}

# every free-text field -> (url, a valid body without it, how the text goes in)
FIELDS: dict[tuple[str, str], tuple[str, str, dict[str, Any], str]] = {
    ("/v1/calls/{call_id}/close", "notes"): ("POST", f"/v1/calls/{CALL}/close", CLOSE, "notes"),
    ("/v1/calls/{call_id}/close", "opinions[].text"): ("POST", f"/v1/calls/{CALL}/close", CLOSE, "opinion"),
    ("/v1/callbacks/{callback_id}/escalate", "question"): ("POST", f"/v1/callbacks/{CALL}/escalate", {}, "question"),
    ("/v1/callbacks/{callback_id}/city-answer", "answer"): ("POST", f"/v1/callbacks/{CALL}/city-answer", {}, "answer"),
    ("/v1/callbacks/{callback_id}/attempts", "notes"): (
        "POST",
        f"/v1/callbacks/{CALL}/attempts",
        {"reached": True},
        "notes",
    ),
    ("/v1/faq", "question"): ("POST", "/v1/faq", FAQ, "question"),
    ("/v1/faq", "answer"): ("POST", "/v1/faq", FAQ, "answer"),
    ("/v1/faq", "keywords[]"): ("POST", "/v1/faq", FAQ, "keyword"),
    ("/v1/faq/{faq_id}", "question"): ("PUT", f"/v1/faq/{CALL}", FAQ, "question"),
    ("/v1/faq/{faq_id}", "answer"): ("PUT", f"/v1/faq/{CALL}", FAQ, "answer"),
    ("/v1/faq/{faq_id}", "keywords[]"): ("PUT", f"/v1/faq/{CALL}", FAQ, "keyword"),
}


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        if _is_free_text_field(info):
            out.add(prefix + name + ("[]" if "list[" in repr(info.annotation) else ""))
        for arg in getattr(info.annotation, "__args__", ()) or ():
            if inspect.isclass(arg) and issubclass(arg, BaseModel):
                out |= _fields(arg, f"{prefix}{name}[].")
    return out


def free_text_fields_of_the_routers() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for router in vars(calls_api_module).values():
        if not isinstance(router, APIRouter):
            continue
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for param in route.dependant.body_params:
                model = param.field_info.annotation
                if inspect.isclass(model) and issubclass(model, BaseModel):
                    found |= {(route.path, f) for f in _fields(model)}
    return found


def test_every_free_text_field_of_the_calls_api_is_driven():
    assert free_text_fields_of_the_routers() == set(FIELDS)


def _body(rest: dict[str, Any], how: str, text: str) -> dict[str, Any]:
    if how == "opinion":
        return {**rest, "opinions": [{"kind": "opinion", "text": text}]}
    if how == "keyword":
        return {**rest, "keywords": [text[:40]]}
    return {**rest, how: text}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}")


@pytest.mark.timeout(240)
async def test_every_free_text_field_refuses_every_spelling_without_echo_log_or_event(settings, municipality):
    stdlib = _Lines()
    root = logging.getLogger()
    root.addHandler(stdlib)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        async with running_line(
            settings.model_copy(update={"log_level": "DEBUG"}), municipality, jst(2021, 4, 8, 9, 0)
        ) as line:
            everyone = await staff_headers(
                line.service.js,
                settings,
                municipality,
                "ALL1",
                [Role.operator, Role.manager, Role.city_staff],
                (),
            )
            before = await line.raw_messages()
            with structlog.testing.capture_logs() as captured:
                for (_path, _field), (method, url, rest, how) in FIELDS.items():
                    for value, text in HOSTILE.items():
                        r = await line.client.request(method, url, headers=everyone, json=_body(rest, how, text))
                        assert r.status_code == 422, (url, how, text, r.status_code, r.text)
                        assert r.headers["content-type"].startswith("application/problem+json")
                        assert "個人情報" in r.json()["detail"], r.text
                        assert value not in r.text and text not in r.text, (url, r.text)
                    r = await line.client.request(method, url, headers=everyone, json=_body(rest, how, ORDINARY))
                    assert r.status_code != 422 or "個人情報" not in r.text, (url, how, r.text)
                # one number split over two fields of one request: read together
                for body in (
                    # (halves of six: 「1234 5678」 is refused alone since the fourth pass)
                    {**CLOSE, "notes": "番号は 123456", "opinions": [{"kind": "opinion", "text": "続きは 789018"}]},
                    {**CLOSE, "notes": "電話", "opinions": [{"kind": "opinion", "text": "123-4567 とのこと"}]},
                    {**CLOSE, "notes": "〇九〇の一二三四", "opinions": [{"kind": "request", "text": "五六七八"}]},
                    # a name split over two fields: the family name in the notes, the given name in an opinion
                    {**CLOSE, "notes": "相談者 鰐淵", "opinions": [{"kind": "opinion", "text": "はなこ様より"}]},
                    {**CLOSE, "notes": "来庁者 ワニブチ", "opinions": [{"kind": "request", "text": "ハナコ"}]},
                ):
                    r = await line.client.post(f"/v1/calls/{uuid4()}/close", headers=everyone, json=body)
                    assert r.status_code == 422 and "個人情報" in r.text, (body, r.text)
                    assert "789018" not in r.text and "4567" not in r.text and "五六七八" not in r.text
                    assert "鰐淵" not in r.text and "はなこ" not in r.text and "ハナコ" not in r.text
                for question, answer in (("番号 123456", "789018 です"), ("連絡先は 090-1234", "5678 です")):
                    r = await line.client.post(
                        "/v1/faq", headers=everyone, json={**FAQ, "question": question, "answer": answer}
                    )
                    assert r.status_code == 422, (question, answer, r.text)
            stored = await line.raw_messages()
            assert len(stored) - len(before) == 3  # the three ordinary FAQ entries, nothing else
            for data in stored:
                for value in [
                    *HOSTILE,
                    "5678 です",
                    "789018 です",
                    "123-4567 とのこと",
                    "五六七八",
                    "鰐淵",
                    "ワニブチ",
                ]:  # (a bare 9018 turns up in UUIDs)
                    assert value.encode() not in data
        logged = [repr(entry) for entry in captured] + stdlib.lines
    finally:
        root.removeHandler(stdlib)
        root.setLevel(previous_level)
    assert sum("'request'" in line and "422" in line for line in logged) >= len(FIELDS) * len(HOSTILE)
    for entry in logged:
        for value, text in HOSTILE.items():
            assert value not in entry and text not in entry, entry
