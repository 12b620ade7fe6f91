"""Hypothesis strategies for valid events of every type, built from the exported JSON Schemas.

`events(cls, municipality)` draws JSON documents from `cls.model_json_schema()` (patterns, lengths,
bounds, enums, nested $defs, unions) and keeps those the model itself accepts (the model has
checks a schema cannot say: the personal-data guard, cross-field rules). With `extreme=True` every number is at its upper bound and every list at its longest. Timestamps are drawn over
the range the contract allows with offsets from -12:00 to +14:00.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from hypothesis import strategies as st
from pydantic import ValidationError

from madoguchi_shared.events import Event

_ZONES = [dt.timezone(dt.timedelta(hours=h)) for h in (-12, -5, 0, 9, 14)]
FORMATS = {
    "date-time": st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=st.sampled_from(_ZONES)
    ).map(lambda t: t.isoformat()),
    "date": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)).map(dt.date.isoformat),
    "time": st.times().map(lambda t: t.isoformat()),
    "uuid": st.uuids().map(str),
    "duration": st.integers(0, 86_400).map(lambda s: f"PT{s}S"),
}
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


# Ids whose shape the contract leaves to Ident but which the read side takes apart (a desk-day is
# "<desk>_<YYYY-MM-DD>"): drawn in that shape, or nothing downstream would look at them.
HINTS = {
    "deskday_id": st.tuples(st.from_regex(r"^[a-z]{1,8}-[0-9]{1,2}$", fullmatch=True), FORMATS["date"]).map(
        lambda t: f"{t[0]}_{t[1]}"
    ),
}


# Fields the model derives from others (a given value must agree): left to the model.
DERIVED = {"line_day"}


def strategy(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0, extreme: bool = False) -> st.SearchStrategy:
    """A strategy for documents of `schema`. `extreme`: every number at its upper bound, every
    list at its longest (what a table cannot hold is found there)."""

    def sub(s: dict[str, Any]) -> st.SearchStrategy:
        return strategy(s, defs, depth + 1, extreme)

    if "$ref" in schema:
        return sub(defs[schema["$ref"].rsplit("/", 1)[1]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([sub(s) for s in schema[key]])
    if "allOf" in schema:
        return sub(schema["allOf"][0])
    t = schema.get("type")
    if isinstance(t, list):
        return st.one_of([strategy({**schema, "type": x}, defs, depth) for x in t])
    if t == "null":
        return st.none()
    if t == "boolean":
        return st.booleans()
    if t == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -(2**63)) + ("exclusiveMinimum" in schema))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 2**63) - ("exclusiveMaximum" in schema))
        if extreme:
            return st.just(int(hi))
        return st.integers(int(lo), int(hi))
    if t == "number":
        if extreme and "maximum" in schema:
            return st.just(float(schema["maximum"]))
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
            max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if t == "string":
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 200)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
        return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=lo, max_size=min(hi, 60))
    if t == "array":
        lo, hi = schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)
        if "prefixItems" in schema:
            return st.tuples(*[sub(s) for s in schema["prefixItems"]]).map(list)
        items = sub(schema.get("items", {"type": "string"}))
        return st.lists(
            items,
            min_size=max(lo, hi) if extreme else lo,
            max_size=max(lo, hi),
            unique_by=(lambda x: repr(x)) if schema.get("uniqueItems") else None,
        )
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = {k: HINTS[k] if k in HINTS else sub(v) for k, v in props.items() if k in required}
        optional = {
            k: HINTS[k] if k in HINTS else sub(v) for k, v in props.items() if k not in required and k not in DERIVED
        }
        if extreme:  # every optional field present
            fixed, optional = {**fixed, **optional}, {}
        if not props and isinstance(schema.get("additionalProperties"), dict):
            return st.dictionaries(
                st.from_regex(r"^[a-z_]{1,16}$", fullmatch=True), sub(schema["additionalProperties"]), max_size=3
            )
        return st.fixed_dictionaries(fixed, optional=optional)
    return st.one_of(st.integers(-1000, 1000), TEXT, st.none())  # an unconstrained value (Any)


def events(cls: type[Event], municipality: str, *, extreme: bool = False) -> st.SearchStrategy[Event]:
    """Valid events of one type, in one municipality (so a test sees only its own)."""
    schema = cls.model_json_schema()
    defs = schema.get("$defs", {})

    def build(doc: dict) -> Event | None:
        doc = {**doc, "municipality": municipality, "event_id": str(uuid.uuid4())}
        try:
            return cls.model_validate(doc)
        except (ValidationError, ValueError):
            return None

    return strategy(schema, defs, extreme=extreme).map(build).filter(lambda e: e is not None)


__all__ = ["events", "strategy"]
