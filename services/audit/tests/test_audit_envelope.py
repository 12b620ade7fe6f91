"""The envelope columns the writer derives from each message: the fast reading of pydantic's
output gives exactly what a JSON reader gives, on real events and on crafted look-alikes."""

from __future__ import annotations

import json

from audit_harness import sample_events
from hypothesis import given, settings
from hypothesis import strategies as st

from madoguchi_shared.events import dump_event

from madoguchi_audit import chain

BASE = [dump_event(e) for e in sample_events("011002", 40, seed=3)]

KEYS = [
    "event_id",
    "type",
    "occurred_at",
    "municipality",
    "ward",
    "desk",
    "actor",
    "correlation_id",
    "device",
    "device_id",
    "id",
    "role",
    "note",
]
VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from(["chuo", "S0001", "device"]),
    st.just({"id": "x", "role": "device"}),
    st.lists(st.just({"device_id": "pc-9"}), max_size=2),
)


def test_real_events_take_the_fast_reading_and_agree_with_json():
    for data in BASE:
        fast = chain._fast(data)
        assert fast is not None and fast == chain.envelope_json(data)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(BASE),
    extra=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3),
    nested=st.booleans(),
)
def test_any_appended_keys_give_the_json_reading(base, extra, nested):
    text = base.decode()[:-1]
    for key, value in extra:
        item = {key: value}
        text += "," + json.dumps({"inner": item} if nested else item)[1:-1]
    data = (text + "}").encode()
    assert chain.envelope(data) == chain.envelope_json(data)


def test_odd_but_valid_messages_agree_and_garbage_is_unparsed():
    doc = json.loads(BASE[2])
    upper = dict(doc, event_id=doc["event_id"].upper())
    spaced = json.dumps(doc, indent=1).encode()
    reordered = json.dumps(dict(reversed(list(doc.items())))).encode()
    for data in (json.dumps(upper).encode(), spaced, reordered):
        assert chain.envelope(data) == chain.envelope_json(data) and chain.envelope(data).parsed
    assert chain.envelope(json.dumps(upper).encode()).event_id == doc["event_id"]  # canonical text
    for junk in (b"", b"\xff\xfe", b"[1,2]", b"null", b'{"occurred_at": "yesterday"}', b'{"ward": "chuo\\u0000"}'):
        assert chain.envelope(junk).parsed is False


def test_a_key_spelled_with_an_escape_gives_the_json_reading():
    """`"w\\u0061rd":` is `"ward":` to a JSON reader (the last one wins): the fast reading must not keep the first
    (it did: the record was filed under the first ward while every JSON reader saw the second)."""
    for key, value in [("ward", "minami"), ("desk", "kita-9"), ("type", "desk.x"), ("device_id", "pc-9")]:
        for spelled in (f"\\u{ord(key[0]):04x}{key[1:]}", f"{key[:-1]}\\u{ord(key[-1]):04X}"):
            for nested in (False, True):
                item = f'"{spelled}":"{value}"'
                data = (BASE[2].decode()[:-1] + "," + (f'"inner":{{{item}}}' if nested else item) + "}").encode()
                assert chain.envelope(data) == chain.envelope_json(data)
                if key == "ward" and not nested:
                    assert chain.envelope(data).ward == "minami"
