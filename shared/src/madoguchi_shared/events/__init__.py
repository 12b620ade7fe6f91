"""The one definition of every event: a discriminated union over all bounded contexts.

Each context has its own module (desk, calls, device, audit, admin, report). Importing this
package imports them all, so REGISTRY and the TypeAdapter below know every type.

Reading an event: `parse_event(raw)` applies upcasters first, so an event written as version 1
is read as the current version (ARCHITECTURE: "an upcasting hook").
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from madoguchi_shared.events.base import REGISTRY, SYSTEM, Actor, Envelope, Event, Frozen, Ident, Role, new_id, utcnow
from madoguchi_shared.narrow import is_dict

__all__ = [
    "REGISTRY",
    "SYSTEM",
    "Actor",
    "Envelope",
    "Event",
    "Frozen",
    "Ident",
    "Role",
    "new_id",
    "utcnow",
    "UnknownEventType",
    "adapter",
    "parse_event",
    "dump_event",
    "upcaster",
    "event_types",
]

# Import every context module in this package so their classes register.
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")


class UnknownEventType(ValueError):
    pass


# (type, version written) -> function turning that payload dict into the next version's dict.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcaster(event_type: str, from_version: int):
    """Register a function that lifts a payload of `event_type` from `from_version` to the next."""

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def event_types() -> list[str]:
    return sorted(REGISTRY)


@cache
def adapter() -> TypeAdapter[Event]:
    """One TypeAdapter over the discriminated union of every registered event type."""
    classes = tuple(REGISTRY[name] for name in sorted(REGISTRY))
    union = Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter[Event](union)  # pyright: ignore[reportArgumentType] - a union built at run time is no static type


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    event_type: str = data.get("type", "")
    version: int = data.get("version", 1)
    while (event_type, version) in UPCASTERS:
        data = UPCASTERS[(event_type, version)](dict(data))
        version = data["version"] = version + 1
    return data


# The event's tag as written by `dump_event` (the envelope's second field); a tag that is not the
# top-level one cannot pass the concrete class's `type` literal, so a wrong guess only costs time.
_TAG = re.compile(rb'"type"\s*:\s*"([a-z_]+\.[a-z_]+)"')


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Parse an event from JSON bytes (or a dict), upcasting old versions. Raises ValueError."""
    if not UPCASTERS and isinstance(raw, bytes | str):
        # Fast path (every read-side consumer parses every event it reads back): the concrete class
        # named by the tag parses and validates the JSON in one pass (pydantic-core), about twice as
        # fast as the discriminated union and four times the dict path below; still every field is
        # validated, so what does not parse is refused as before. Any failure is re-read below.
        tag = _TAG.search(raw.encode() if isinstance(raw, str) else raw)
        cls = REGISTRY.get(tag.group(1).decode()) if tag else None
        try:
            return cls.model_validate_json(raw) if cls is not None else adapter().validate_json(raw)
        except ValidationError:
            pass
    data = json.loads(raw) if isinstance(raw, bytes | str) else raw
    if not is_dict(data):
        raise ValueError("an event must be a JSON object")
    if data.get("type") not in REGISTRY:
        raise UnknownEventType(f"unknown event type {data.get('type')!r}")
    return adapter().validate_python(upcast(data))


def dump_event(event: Event) -> bytes:
    # model_dump_json()'s bytes without its decode to str and our encode back (issue 19)
    return event.__pydantic_serializer__.to_json(event)


__all__ += ["ValidationError", "upcast"]
