"""The fast parse of events read back from the streams of record (issue 12 item 7).

An event in a stream of record was validated by its pydantic model when it was written
(`madoguchi_shared.events`, the ONE definition of every event). Reading it back, the read side
(projections, replays) needs its values, not a second full validation: `read_event` decodes it
with msgspec into a Struct generated at import FROM the pydantic model — same field names, same
types, same bounds (integer ranges, string lengths and patterns, literals, tuple lengths, nested
models, aware datetimes), unknown fields refused — about fifteen times faster than the model.

What it does not run again are the model's Python validators (cross-field rules): those held when
the event was written. The personal-data screen of free text it does run again, on plain (unsealed)
text only: a message put on a stream by a tool or a laptop was never validated by a service. Anything that does not decode
(not JSON, an unknown type, a missing field, a value out of its bounds, a NUL character, which no
table can hold) raises `ValueError`, so the runner dead-letters it as before. A payload the
Structs refuse but the model accepts (a spelling pydantic's lax mode reads, an old version with
an upcaster) is read by the model and handed on in its canonical form.

A Struct is not an instance of its model (pydantic refuses virtual subclasses): a handler
dispatches through a table made by `keyed` (model and Struct classes as keys), on `model(e)`,
the event's model class, or tests `is_a(e, cls)`, for either. A Struct has the model's fields,
not its methods: code that needs the model (to dump it) calls `as_model`. `tests/test_read_events.py` proves, for every event
type, that the fast path gives the model's values and refuses what the model refuses.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import functools
import itertools
import operator
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, cast, get_args, get_origin

from typing_extensions import TypeIs
from uuid import UUID

import annotated_types as at
import msgspec
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from madoguchi_shared.events import REGISTRY, UPCASTERS, Event, dump_event, parse_event
from madoguchi_shared.pii import find_personal_data
from madoguchi_shared.sealed import is_sealed

_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}
MODEL_OF: dict[type, type[BaseModel]] = {}
# Metadata of a pydantic field that runs Python code (validators, the PII screen, the erasable marker):
# it held when the event was written and is not run again.
# AllowInfNan(False) needs nothing: JSON has no NaN or infinity and msgspec refuses them.
_SKIPPED = ("AfterValidator", "BeforeValidator", "WrapValidator", "_ScreenBeforeValidation", "_Erasable", "AllowInfNan")


def _pattern(p: str) -> str:
    # pydantic-core's regex: `$` is the end of the text; Python's `re.search` (msgspec) also matches
    # before a final newline, so an anchored pattern ends in `\Z` here.
    return p[:-1] + r"\Z" if p.endswith("$") and not p.endswith(r"\$") else p


def _meta(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        name = type(m).__name__
        if isinstance(m, at.Ge | at.Le | at.Gt | at.Lt | at.MinLen | at.MaxLen):
            field = {"Ge": "ge", "Le": "le", "Gt": "gt", "Lt": "lt", "MinLen": "min_length", "MaxLen": "max_length"}
            out[field[name]] = getattr(m, field[name])
        elif name in ("StringConstraints", "_PydanticGeneralMetadata"):
            for attr in ("strip_whitespace", "to_upper", "to_lower", "strict"):
                if getattr(m, attr, None):
                    raise TypeError(f"read_events: {attr} is not supported")
            for attr in ("min_length", "max_length"):
                if getattr(m, attr, None) is not None:
                    out[attr] = getattr(m, attr)
            if getattr(m, "pattern", None) is not None:
                out["pattern"] = _pattern(str(m.pattern))
        elif isinstance(m, FieldInfo):
            out.update(_meta(m.metadata))
        elif name not in _SKIPPED:
            raise TypeError(f"read_events: unsupported field metadata {m!r}")
    return out


def _type(tp: Any, metadata: list[Any]) -> Any:
    """The msgspec type of a pydantic annotation with its metadata."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *extra = get_args(tp)
        return _type(inner, [*extra, *metadata])
    if origin in (Union, types.UnionType):
        # the field's bounds hold for each member (e.g. `int | None` with ge/le bounds the int)
        args = tuple(_type(a, metadata) if a is not type(None) else a for a in get_args(tp))
        return Union[args]  # noqa: UP007 - built at run time
    meta: dict[str, Any] = _meta(metadata)  # msgspec.Meta's keyword arguments
    if origin is Literal or tp in (bool, UUID, dt.date) or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        base = tp
    elif origin is tuple:
        args = get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"read_events: unsupported tuple {tp!r}")
        base = tuple[_type(args[0], []), ...]
    elif tp is AwareDatetime or tp is dt.datetime:
        base, meta = dt.datetime, {**meta, "tz": True}  # every instant in an event is aware (property-tested)
    elif tp is dt.time:
        base, meta = dt.time, {**meta, "tz": False}  # a wall-clock time (base.WallClockTime)
    elif tp in (str, int, float):
        base = tp
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        base = struct_of(tp)
    else:
        raise TypeError(f"read_events: unsupported annotation {tp!r}")
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


# An event's own string fields with a pattern (ids, codes: the same few values over and over) are
# checked after the decode against a set of values already seen to match (`_patterns_hold`), not by
# msgspec, which runs the pattern (Python's `re`) on every value of every event: the same refusal,
# at a set lookup per field instead of a regex search.
_Check = tuple[Callable[[object], tuple[object, ...]], "re.Pattern[str]", set[object]]
_Checks = tuple[_Check, ...]
_PATTERN_CHECKS: dict[type, _Checks] = {}
_MATCHED: dict[tuple[str, bool], set[object]] = {}  # (pattern, None allowed) -> values that match
_MATCHED_MAX = 100_000


def _unpatterned(tp: Any) -> tuple[Any, str | None, bool]:
    """(`tp` without its pattern, the pattern, None allowed) for a `str` or `str | None` field with a
    pattern; (tp, None, False) for anything else."""
    nullable = get_origin(tp) is Union and len(get_args(tp)) == 2 and type(None) in get_args(tp)
    inner = next(a for a in get_args(tp) if a is not type(None)) if nullable else tp
    if get_origin(inner) is not Annotated:
        return tp, None, False
    base, meta = get_args(inner)
    if base is not str or not isinstance(meta, msgspec.Meta) or meta.pattern is None:
        return tp, None, False
    rest = {k: getattr(meta, k) for k in ("min_length", "max_length") if getattr(meta, k) is not None}
    stripped = Annotated[str, msgspec.Meta(**rest)] if rest else str
    return (Union[stripped, None] if nullable else stripped), meta.pattern, nullable  # noqa: UP007 - built at run time


def _patterns_hold(e: object) -> bool:
    """The pattern of every field `_unpatterned` took out of `e`'s Struct holds (`read_event` has
    its own copy of this loop)."""
    for get, pattern, matched in _PATTERN_CHECKS.get(type(e), ()):
        if not matched.issuperset(values := get(e)):
            if not all(isinstance(v, str) and pattern.search(v) for v in values if v not in matched):
                return False
            if len(matched) > _MATCHED_MAX:
                matched.intersection_update((None,))  # forget the values seen (None stays allowed)
            matched.update(values)
    return True


def struct_of(model: type[BaseModel]) -> type[msgspec.Struct]:
    """The Struct generated from a pydantic model (an event, or a value object inside one)."""
    if model in _STRUCTS:
        return _STRUCTS[model]
    fields: list[tuple[str, Any, Any]] = []
    tag: str | None = None
    patterned: dict[tuple[str, bool], list[str]] = {}
    for name, info in model.model_fields.items():
        if issubclass(model, Event) and name == "type":
            tag = get_args(info.annotation)[0]
            continue
        tp = _type(info.annotation, list(info.metadata))
        if issubclass(model, Event):  # an event's own fields (a value object's keep their patterns)
            tp, pattern, nullable = _unpatterned(tp)
            if pattern is not None:
                patterned.setdefault((pattern, nullable), []).append(name)
        if info.is_required():
            fields.append((name, tp, msgspec.NODEFAULT))
        elif info.default_factory is not None:
            # pydantic types a factory as maybe taking the validated data; the events' factories take none
            fields.append((name, tp, msgspec.field(default_factory=cast(Any, info.default_factory))))
        else:
            default = info.default
            if isinstance(default, BaseModel):  # e.g. the SYSTEM actor: the same values as a Struct
                default = msgspec.convert(default.model_dump(mode="json"), struct_of(type(default)))
            fields.append((name, tp, default))
    required = [f for f in fields if f[2] is msgspec.NODEFAULT]
    optional = [f for f in fields if f[2] is not msgspec.NODEFAULT]
    struct = msgspec.defstruct(
        model.__name__,
        [(n, t) for n, t, _ in required] + optional,
        kw_only=True,
        forbid_unknown_fields=True,
        frozen=True,
        gc=False,  # never in a cycle (values, tuples of values, value objects): no work for the collector
        tag_field="type" if tag else None,
        tag=tag,
        module=__name__,
    )
    _STRUCTS[model] = struct
    MODEL_OF[struct] = model
    checks: list[_Check] = []
    for (pattern, nullable), names in patterned.items():
        matched = _MATCHED.setdefault((pattern, nullable), {None} if nullable else set())
        checks.append((operator.attrgetter(*names, names[0]), re.compile(pattern), matched))  # always a tuple
    if checks:
        _PATTERN_CHECKS[struct] = tuple(checks)
    return struct


# Free text (and a laptop's machine text: paths, reader and process names) is screened again on read (a message put on a stream by anything but a service, e.g.
# with a tool's or a laptop's bus credentials, was never validated): per Struct, its free-text
# fields and the fields holding nested models that have some.
_TextFields = tuple[tuple[str, bool], ...]  # (field, True = free text itself / False = nested models)
_TEXT_FIELDS: dict[type, _TextFields] = {}


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _nested_models(arg)]


def _text_fields(model: type[BaseModel]) -> _TextFields:
    out: list[tuple[str, bool]] = []
    for name, info in model.model_fields.items():
        marks = repr(info.annotation) + repr(info.metadata)
        if "ScreenBeforeValidation()" in marks or "Erasable()" in marks or "function _checked" in marks:
            out.append((name, True))
        elif any(_text_fields(m) for m in _nested_models(info.annotation)):
            out.append((name, False))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _holds_personal_data(text: str) -> bool:
    """The PII guard's verdict on one text (a pure function of the text: the same text read again,
    e.g. a stock phrase, is not analysed again)."""
    return bool(find_personal_data(text))


def _screen_texts(value: object) -> None:
    fields = _TEXT_FIELDS.get(type(value))
    if not fields:
        return
    for name, is_text in fields:
        item = getattr(value, name)
        if is_text:
            if isinstance(item, str) and not is_sealed(item) and _holds_personal_data(item):
                raise ValueError(f"{name}: personal data in free text (never stored; the value is not shown)")
        else:
            nested: tuple[object, ...] = tuple(cast(Any, item)) if isinstance(item, tuple | list) else (item,)
            for one in nested:
                _screen_texts(one)


_EVENTS: dict[str, type[msgspec.Struct]] = {name: struct_of(cls) for name, cls in sorted(REGISTRY.items())}
for _model, _struct in list(_STRUCTS.items()):
    if _fields := _text_fields(_model):
        _TEXT_FIELDS[_struct] = _fields
_TAG_OF: dict[type, str] = {s: n for n, s in _EVENTS.items()}
_DECODER = msgspec.json.Decoder(Union[tuple(_EVENTS.values())])  # noqa: UP007 - a tagged union, one pass
_NUL = b"\\u0000"  # a NUL character escaped in JSON (an escaped backslash before "u0000" only errs on the safe side)


def read_event(raw: bytes) -> Event:
    """An event read back from a stream of record, as its generated Struct (typed as its model:
    the same fields and values). Raises ValueError for anything that is not a valid event."""
    if _NUL not in raw:
        e: Event | None  # the Struct, read as its model (the same fields and values)
        try:
            e = cast(Event, _DECODER.decode(raw))
        except (msgspec.ValidationError, msgspec.DecodeError):
            e = None
        # `_patterns_hold`, written out: this runs for every event read (one call fewer per event)
        for get, pattern, matched in _PATTERN_CHECKS.get(type(e), ()):
            if not matched.issuperset(values := get(e)):
                if not all(isinstance(v, str) and pattern.search(v) for v in values if v not in matched):
                    break  # off its pattern: the model below refuses it, and says why
                if len(matched) > _MATCHED_MAX:
                    matched.intersection_update((None,))  # forget the values seen (None stays allowed)
                matched.update(values)
        else:
            if e is not None and (not UPCASTERS or (_TAG_OF[type(e)], e.version) not in UPCASTERS):
                if type(e) in _TEXT_FIELDS:
                    _screen_texts(e)
                return e
    # Not in the Structs' spelling: the model decides (and explains); what it accepts is read canonically.
    event = parse_event(raw)
    try:
        e = _DECODER.decode(dump_event(event))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"{event.type}: not readable by the read side: {exc}") from None
    if not _patterns_hold(e):
        raise ValueError(f"{event.type}: not readable by the read side: a field off its pattern")
    return cast(Event, e)  # as above: the Struct, read as its model


def read_batch(raws: Sequence[bytes]) -> list[Event | ValueError]:
    """`read_event` over a batch (a projection's): each message's event, or the ValueError that
    `read_event` raises for it, in its place. The same results at less cost per event: the NUL
    check is one scan of the batch for a backslash (no escape at all, so no escaped NUL; else
    per message), and each pattern check one set comparison per event type over the whole batch
    (`_patterns_hold` per event only for a type with a value not seen before)."""
    decode = _DECODER.decode
    decoded: list[Event | None] = []
    add = decoded.append
    if b"\\" not in b"".join(raws):
        for raw in raws:
            try:
                add(decode(raw))
            except (msgspec.ValidationError, msgspec.DecodeError):
                add(None)  # read again by `read_event` below: the model decides, and explains
    else:
        for raw in raws:
            try:
                add(None if _NUL in raw else decode(raw))
            except (msgspec.ValidationError, msgspec.DecodeError):
                add(None)
    groups: dict[type, list[int]] = collections.defaultdict(list)
    for i, e in enumerate(decoded):
        groups[type(e)].append(i)
    slow: list[int] = groups.pop(type(None), [])
    at = decoded.__getitem__
    for cls, idxs in groups.items():
        for get, pattern, matched in _PATTERN_CHECKS.get(cls, ()):
            if not matched.issuperset(itertools.chain.from_iterable(map(get, map(at, idxs)))):
                # a value not seen before: each event of the type as `read_event` checks it
                kept: list[int] = []
                for i in idxs:
                    values = get(decoded[i])
                    if matched.issuperset(values):
                        kept.append(i)
                    elif all(isinstance(v, str) and pattern.search(v) for v in values if v not in matched):
                        if len(matched) > _MATCHED_MAX:
                            matched.intersection_update((None,))  # forget the values seen (None stays allowed)
                        matched.update(values)
                        kept.append(i)
                    else:
                        slow.append(i)  # off its pattern: `read_event` refuses it, and says why
                idxs[:] = kept
        if UPCASTERS:
            tag = _TAG_OF[cls]
            slow += [i for i in idxs if (tag, cast(Event, decoded[i]).version) in UPCASTERS]
        if cls in _TEXT_FIELDS:
            for i in idxs:
                try:
                    _screen_texts(decoded[i])
                except ValueError:
                    slow.append(i)
    out = cast(list["Event | ValueError"], decoded)
    for i in sorted(set(slow)):
        try:
            out[i] = read_event(raws[i])
        except ValueError as exc:
            out[i] = exc
    return out


M = TypeVar("M", bound=BaseModel)


def as_model(e: M) -> M:
    """The pydantic model of an event (or value object) read by `read_event`, for its methods."""
    if isinstance(e, msgspec.Struct):
        model = MODEL_OF[type(e)]
        return cast(M, model.model_validate_json(msgspec.json.encode(e)))  # MODEL_OF: the model `e` was read as
    return e


T = TypeVar("T")


def is_a(e: object, cls: type[T]) -> TypeIs[T]:
    """`isinstance` for an event read by `read_event` (its Struct) or a model instance."""
    return issubclass(MODEL_OF.get(type(e)) or type(e), cls)


V = TypeVar("V")


def keyed(table: Mapping[type, V]) -> dict[type, V]:
    """A handler table keyed by model classes, with their Structs as keys too: `table[type(e)]`
    dispatches an event read by `read_event` (or a model instance) with one dict lookup."""
    out = dict(table)
    out.update({_STRUCTS[m]: v for m, v in table.items() if m in _STRUCTS})
    return out


def model(e: T) -> type[T]:
    """The model class of an event read by `read_event` (or of a model instance): what handlers dispatch on."""
    return cast(type[T], MODEL_OF.get(type(e)) or type(e))  # a Struct's model: the type `e` is read as


__all__ = ["read_event", "read_batch", "as_model", "is_a", "keyed", "model", "struct_of", "MODEL_OF"]
