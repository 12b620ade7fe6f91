"""The read side's fast parse (issue 12 item 7, `madoguchi_shared.read_events`).

Properties, over EVERY event type (hypothesis, from the exported JSON Schemas):
- a valid event read back by the fast path has exactly the model's values (and `as_model` gives
  the model back, `model`/`is_a` dispatch like `type`/`isinstance`);
- a payload out of the contract (a number past its bound, a string too long or off its pattern, a
  missing or unknown field, a wrong type, a NUL character, not JSON) is refused by the fast path
  as by the model, and the runner puts it among the batch's dead letters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from madoguchi_shared.events import REGISTRY, Event, dump_event, parse_event
from madoguchi_shared.projection_batch import parse
from madoguchi_shared.read_events import as_model, is_a, model, read_batch, read_event
from madoguchi_shared.reader import StoredMessage
from tests.utils.event_strategies import events as event_strategy

TYPES = sorted(REGISTRY)
SETTINGS = settings(
    max_examples=3,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.large_base_example],
)


def plain(v: Any) -> Any:
    """Values to compare: models and Structs as dicts of their fields, instants with their offsets."""
    if isinstance(v, BaseModel):
        return {k: plain(getattr(v, k)) for k in type(v).model_fields if k != "type"}
    if isinstance(v, msgspec.Struct):
        return {k: plain(getattr(v, k)) for k in v.__struct_fields__}
    if isinstance(v, tuple | list):
        return (type(v).__name__, [plain(x) for x in v])
    if isinstance(v, dt.datetime | dt.time):
        return (type(v).__name__, v.isoformat())
    if isinstance(v, enum.Enum):
        return (type(v).__name__, v.value)
    return (type(v).__name__, v)


@pytest.mark.parametrize("name", TYPES)
def test_the_fast_path_reads_the_models_values(name: str) -> None:
    for extreme in (False, True):

        @SETTINGS
        @given(event_strategy(REGISTRY[name], "011002", extreme=extreme))
        def check(event: Event) -> None:
            fast = read_event(dump_event(event))
            assert plain(fast) == plain(event)
            assert model(fast) is type(event) and is_a(fast, Event) and is_a(fast, type(event))
            assert as_model(fast) == event

        check()


def _schema_fields(cls: type[Event]) -> dict[str, dict[str, Any]]:
    schema = cls.model_json_schema()
    defs = schema.get("$defs", {})
    out = {}
    for k, s in schema["properties"].items():
        s = defs[s["$ref"].rsplit("/", 1)[1]] if "$ref" in s else s
        out[k] = next((x for x in s.get("anyOf", []) if x.get("type") not in (None, "null")), s)
    return out


def mutations(cls: type[Event], doc: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Ways to put a valid event's JSON out of the contract (each refused by the model)."""
    fields = _schema_fields(cls)
    out: list[tuple[str, dict[str, Any] | bytes]] = [
        ("unknown field", {**doc, "surname": "x"}),
        ("not JSON", json.dumps(doc).encode()[:-1]),
        ("not an object", b"[1, 2]"),
        ("unknown type", {**doc, "type": "desk.no_such_event"}),
        ("municipality off its pattern", {**doc, "municipality": doc["municipality"] + "\n"}),
        ("municipality wrong type", {**doc, "municipality": 11002}),
        ("NUL in a string", {**doc, "municipality": "01100\u0000"}),
        ("event_id not a uuid", {**doc, "event_id": "not-a-uuid"}),
        ("occurred_at without zone", {**doc, "occurred_at": "2021-04-01T09:00:00"}),
        ("version past its bound", {**doc, "version": 1001}),
    ]
    for k, s in fields.items():
        if k in ("type", "municipality"):
            continue
        if cls.model_fields[k].is_required():
            out.append((f"{k} missing", {x: v for x, v in doc.items() if x != k}))
        if s.get("type") == "integer" and "maximum" in s:
            out.append((f"{k} past its maximum", {**doc, k: s["maximum"] + 1}))
        if s.get("type") == "integer" and "minimum" in s:
            out.append((f"{k} below its minimum", {**doc, k: s["minimum"] - 1}))
        if s.get("type") == "number" and "maximum" in s:
            out.append((f"{k} past its maximum", {**doc, k: s["maximum"] * 2 + 1}))
        if s.get("type") == "string" and "maxLength" in s and "pattern" not in s:
            out.append((f"{k} too long", {**doc, k: "x" * (s["maxLength"] + 1)}))
        if s.get("type") == "string" and "pattern" in s and isinstance(doc.get(k), str):
            out.append((f"{k} off its pattern", {**doc, k: doc[k] + "\n"}))
        if "enum" in s:
            out.append((f"{k} not one of its values", {**doc, k: "no_such_value"}))
        if s.get("type") == "boolean":
            out.append((f"{k} wrong type", {**doc, k: "maybe"}))
    return [(why, m if isinstance(m, bytes) else json.dumps(m, ensure_ascii=False).encode()) for why, m in out]


@pytest.mark.parametrize("name", TYPES)
def test_what_the_model_refuses_the_fast_path_refuses_and_the_runner_dead_letters(name: str) -> None:
    cls = REGISTRY[name]

    @settings(SETTINGS, max_examples=2)
    @given(event_strategy(cls, "011002"), st.data())
    def check(event: Event, data: st.DataObject) -> None:
        doc = json.loads(dump_event(event))
        cases = mutations(cls, doc)
        for why, raw in data.draw(st.permutations(cases))[:10]:
            with pytest.raises(ValueError):
                parse_event(raw)  # the model refuses it ...
            with pytest.raises(ValueError):
                read_event(raw)  # ... and so does the fast path, or it would have returned the event
            batch = asyncio.run(parse([StoredMessage("MG_DESK", 7, event.subject, None, raw)], 0))
            assert batch is not None and not batch.good and [b[0].seq for b in batch.bad] == [7], why

    check()


@pytest.mark.parametrize("escaped", [False, True])
def test_a_batch_is_read_as_each_of_its_messages_alone(escaped: bool) -> None:
    """`read_batch` (the runner's path: one NUL scan and one pattern check per type for the whole
    batch) gives, message by message, what `read_event` gives: the same values, the same refusals,
    with valid events of every type and refused ones side by side (a new value off its pattern
    among values seen before, a NUL, personal data); `escaped`: a backslash somewhere in the batch."""

    @settings(SETTINGS, max_examples=2)
    @given(st.tuples(*(event_strategy(REGISTRY[name], "011002") for name in TYPES)), st.data())
    def check(events: tuple[Event, ...], data: st.DataObject) -> None:
        raws = [dump_event(e) for e in events]
        for e in events[:: max(1, len(events) // 12)]:
            raws += [raw for _why, raw in mutations(type(e), json.loads(dump_event(e)))]
        if escaped:
            raws.append(dump_event(events[0]).replace(b'"municipality":"011002"', b'"municipality":"01100\\u0032"'))
        raws = data.draw(st.permutations(raws))
        alone: list[object] = []
        for raw in raws:
            try:
                alone.append(plain(read_event(raw)))
            except ValueError:
                alone.append(ValueError)
        together = [ValueError if isinstance(r, ValueError) else plain(r) for r in read_batch(raws)]
        assert together == alone
        assert any(r is ValueError for r in together) and any(r is not ValueError for r in together)

    check()


def test_a_struct_the_model_would_refuse_is_never_built_from_a_pydantic_spelling() -> None:
    """A spelling only pydantic's lax mode reads (a number as a string) is read by the model and
    handed on canonically: same values, no second opinion."""
    from madoguchi_shared.events import desk as dk

    e = dk.TicketIssued(municipality="011002", ward="w", desk="d-1", deskday_id="d-1_2021-04-01", ticket_no=7)
    doc = json.loads(dump_event(e))
    doc["ticket_no"] = "7"
    fast = read_event(json.dumps(doc).encode())
    assert plain(fast) == plain(e) and isinstance(fast, msgspec.Struct)


def test_free_text_with_personal_data_put_on_a_stream_directly_is_refused() -> None:
    """A message written past the services (a tool's or a laptop's bus credentials) was never
    screened: the fast path reads its plain free text through the PII guard, so the runner
    dead-letters it instead of projecting the number into a table."""
    from uuid import uuid4

    from madoguchi_shared.events.desk import OpinionRecorded

    opinion = OpinionRecorded(
        municipality="011002", ward="chuo", desk="chuo-1", visit_id=uuid4(), kind="opinion", text="特になし"
    )
    raw = json.loads(dump_event(opinion))
    assert read_event(json.dumps(raw).encode()).text == "特になし"  # type: ignore[attr-defined] - an OpinionRecorded
    for text in ("番号は123456789018です", "連絡先 090-1234-5678", "taro@example.jp"):
        with pytest.raises(ValueError) as info:
            read_event(json.dumps({**raw, "text": text}).encode())
        assert "personal data" in str(info.value) and "5678" not in str(info.value)
    sealed = "sealed:v1:" + str(uuid4()) + ":" + "A" * 40
    assert read_event(json.dumps({**raw, "text": sealed}).encode()).text == sealed  # type: ignore[attr-defined]


def test_a_laptops_machine_text_with_personal_data_is_refused_on_read() -> None:
    """A laptop publishes its own events: a path or a reader name holding a My Number, sent past
    the agent's own validation, is refused by the read side too."""
    from madoguchi_shared.events.device import PersonalDataFileFound

    found = PersonalDataFileFound(
        municipality="011002",
        device_id="chuo-1-pc",
        root="desktop",
        path="memo.txt",
        kinds=("my_number",),
        findings=1,
        size_bytes=10,
        quarantine=True,
        quarantined=True,
    )
    raw = json.loads(dump_event(found))
    assert read_event(json.dumps(raw).encode()).path == "memo.txt"  # type: ignore[attr-defined] - a PersonalDataFileFound
    with pytest.raises(ValueError, match="personal data"):
        read_event(json.dumps({**raw, "path": "123456789018.txt"}).encode())
