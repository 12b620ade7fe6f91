"""The event envelope and the registry every event type joins.

Every event is a frozen pydantic model with extra="forbid" and a Literal `type` tag. A concrete
event class names its bounded context, its aggregate kind and the field that holds the aggregate
id; from those it knows its subject (see madoguchi_shared.subjects). Nothing here carries
personal data: the actor is a staff id and role, never a citizen (ARCHITECTURE.md rule 5).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from time import time_ns
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Required, TypedDict, dataclass_transform
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from madoguchi_shared import subjects
from madoguchi_shared.entropy import random_int, uuid_from_int
from madoguchi_shared.narrow import is_dict, is_sequence

if TYPE_CHECKING:
    from pydantic._internal._model_construction import ModelMetaclass, NoInitField

    # What the type checker sees of a frozen model: pydantic's own transform, frozen by default. Every model
    # below sets frozen=True in its model_config, which the checker does not read; without this it takes each
    # field as assignable, and an event narrowing the envelope's `type: str` to its Literal tag as an unsafe
    # override. Frozen, the narrowing is sound: no instance can be given another tag.
    @dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(Field, PrivateAttr, NoInitField))
    class _FrozenModelMeta(ModelMetaclass): ...

    class FrozenModel(BaseModel, metaclass=_FrozenModelMeta): ...
else:
    FrozenModel = BaseModel

MunicipalityCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
# Ids of wards, desks, devices, staff, tickets, ...: safe as subject tokens.
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# The largest integer any event carries: a PostgreSQL bigint holds it and JSON readers (JavaScript)
# read it exactly. Every integer and float field of every event has an upper bound (issue 12):
# what the tables can hold and what makes sense (a ticket number is at most 9,999, not 2^62).
MAX_SAFE_INT = 2**53 - 1


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("時刻は窓口の現地時刻（例: 19:00）で、タイムゾーンを付けずに指定してください。")
    return value


# A time of day on a desk's wall clock (opening hours): never with a zone, which would make it an
# instant that cannot be compared with the configured hours (and "00:00:00Z" is no closing time).
WallClockTime = Annotated[time, AfterValidator(_wall_clock)]


_last_id_ms = 0
_RANDOM_76 = (1 << 76) - 1
_VARIANT_MASK = ~(0xC000 << 48)
_VERSION_7 = (0x8000 << 48) | (7 << 76)  # RFC 9562 variant and version 7


def new_id() -> UUID:
    """A UUIDv7: time-ordered, used for event ids and aggregate ids.

    uuid6.uuid7's layout and order (48 bits of Unix milliseconds, moved past the last id's when the
    clock has not advanced, then 76 random bits under the version and variant), built here without
    its pure-Python UUID subclass and random module: an event is built on every command."""
    global _last_id_ms
    ms = time_ns() // 1_000_000
    if ms <= _last_id_ms:
        ms = _last_id_ms + 1
    _last_id_ms = ms
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80) | (random_int(80) & _RANDOM_76)
    return uuid_from_int((value & _VARIANT_MASK) | _VERSION_7)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(str, enum.Enum):
    manager = "manager"  # 業務責任者
    rounder = "rounder"  # ラウンダー
    supporter = "supporter"  # 支援員
    operator = "operator"  # オペレーター
    city_staff = "city_staff"  # 委託者（市職員）
    auditor = "auditor"
    administrator = "administrator"
    service = "service"  # another service of the system
    device = "device"  # a desk PC's agent
    system = "system"  # the platform itself (timers, rules)


class Actor(FrozenModel):
    """Who caused the event: a staff id and role, a service or a device. Never a citizen."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Ident
    role: Role


SYSTEM = Actor(id="system", role=Role.system)


class Envelope(TypedDict, total=False):
    """The envelope fields a decision fills in for every event it returns (a domain's Ctx.envelope()), typed
    key by key so that `Event(**ctx.envelope(), ...)` is checked field by field. A domain whose events name
    a ward and a desk extends it with them."""

    municipality: Required[str]
    actor: Actor
    occurred_at: datetime
    correlation_id: UUID | None


class Frozen(FrozenModel):
    """Base for value objects inside events."""

    model_config = ConfigDict(frozen=True, extra="forbid")


_CONTAINERS = (dict, list, tuple)
# values that hold no string: passed over by their exact type, one set lookup (an event's envelope is
# mostly these; each cost two isinstance calls before). A subclass of any of them takes the long way.
_NO_TEXT: frozenset[type[object]] = frozenset({UUID, datetime, date, time, int, bool, float, type(None)})


def _holds_nul(value: Any) -> bool:
    """A string holding NUL anywhere in `value` (keys and values of dicts, items of lists and tuples).
    Run on every event built: strings are checked in place, only containers recurse."""
    if isinstance(value, str):
        return "\x00" in value
    if is_dict(value):
        return _any_nul(value.keys()) or _any_nul(value.values())
    if is_sequence(value):
        return _any_nul(value)
    return False


def _any_nul(items: Iterable[Any]) -> bool:
    for item in items:
        kind = type(item)  # pyright: ignore[reportUnknownVariableType] - any value of the event's input
        if kind is str:
            if "\x00" in item:
                return True
        elif kind in _NO_TEXT:
            continue
        elif isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, _CONTAINERS) and _holds_nul(item):
            return True
    return False


class Event(FrozenModel):
    """The envelope. Subclasses add `type: Literal[...]`, their payload fields and three ClassVars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context: ClassVar[str]  # desk | calls | device | audit | admin | report
    aggregate: ClassVar[str]  # aggregate kind, a subject token
    aggregate_field: ClassVar[str]  # name of the field holding the aggregate id

    event_id: UUID = Field(default_factory=new_id)
    type: str
    version: int = Field(default=1, ge=1, le=1_000)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    recorded_at: AwareDatetime = Field(default_factory=utcnow)
    municipality: MunicipalityCode
    ward: Ident | None = None
    desk: Ident | None = None
    actor: Actor = SYSTEM
    correlation_id: UUID | None = None
    causation_id: UUID | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL can hold no NUL character (text refuses the byte, jsonb the \u0000 escape), and no
        # person types one: an event holding one is refused here rather than stalling a projection.
        if _holds_nul(data):
            raise ValueError("文字コード0（NUL）を含む値は記録できません。")
        return data

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        literal = getattr(field, "annotation", None)
        args = getattr(literal, "__args__", ())
        if field is not None and len(args) == 1 and isinstance(args[0], str):
            name = args[0]
            if name in REGISTRY and REGISTRY[name] is not cls:
                raise TypeError(f"event type {name!r} defined twice")
            for attr in ("context", "aggregate", "aggregate_field"):
                if not hasattr(cls, attr):
                    raise TypeError(f"event {name} lacks ClassVar {attr}")
            REGISTRY[name] = cls

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))

    @property
    def subject(self) -> str:
        return subjects.aggregate_subject(self.context, self.municipality, self.aggregate, self.aggregate_id)

    def caused(self, **changes: Any) -> dict[str, Any]:
        """Envelope fields for an event caused by this one (same correlation, causation = this)."""
        return {
            "municipality": self.municipality,
            "ward": self.ward,
            "desk": self.desk,
            "correlation_id": self.correlation_id or self.event_id,
            "causation_id": self.event_id,
            **changes,
        }


REGISTRY: dict[str, type[Event]] = {}
