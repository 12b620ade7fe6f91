"""Deterministic identifiers: the same seed gives the same event ids, visit ids and call ids.

Event and aggregate ids are UUIDv7 (time-ordered, as the real services allocate them) whose
timestamp is the simulated instant and whose random bits come from the simulation's seeded
`random.Random`, so a run can be repeated exactly and a re-publish is deduplicated by JetStream
(ARCHITECTURE rule 1: Nats-Msg-Id = event_id).
"""

from __future__ import annotations

import random
from datetime import date, datetime
from uuid import UUID

_MASK48 = (1 << 48) - 1


def uuid7_at(rng: random.Random, at: datetime) -> UUID:
    """A UUIDv7 for instant `at` with random bits from `rng` (RFC 9562 layout)."""
    ms = int(at.timestamp() * 1000) & _MASK48
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    return UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


def unit_rng(seed: int | str, *parts: object) -> random.Random:
    """An independent generator for one unit of simulation (a desk-day, a line-day, ...).

    Seeding from a string is deterministic across runs and platforms (sha512 of the text), and
    each unit's draws do not depend on which other units were simulated or in which order, so
    the stream can be generated in any grouping without changing a single event.
    """
    return random.Random("|".join(str(p) for p in (seed, *parts)))


def municipality_check_digit(first5: str) -> int:
    """Check digit of a local government code (全国地方公共団体コード): weights 6,5,4,3,2 mod 11."""
    total = sum(int(c) * w for c, w in zip(first5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def synthetic_codes(n: int, prefix: str = "8") -> list[str]:
    """`n` municipality codes that no real municipality has (prefecture numbers stop at 47).

    `prefix` is one digit 5-9; e.g. 8 gives 800005, 800013, ...
    """
    if len(prefix) != 1 or not prefix.isdigit() or prefix < "5":
        raise ValueError("prefix must be one digit from 5 to 9 (never a real prefecture)")
    if n > 10_000:
        raise ValueError("at most 10,000 synthetic municipalities per prefix")
    out = []
    for i in range(n):
        first5 = f"{prefix}{i:04d}"
        out.append(first5 + str(municipality_check_digit(first5)))
    return out


def staff_ids(desk: str, n: int) -> list[str]:
    """Supporters of a desk: staff codes, never names (e.g. chuo-1-s1)."""
    return [f"{desk}-s{k}" for k in range(1, n + 1)]


MANAGER_ID = "mgr-1"
ROUNDER_ID = "rnd-1"
OPERATOR_IDS = ("op-1", "op-2")


def device_id(desk: str) -> str:
    return f"{desk}-pc"


def day_key(day: date) -> str:
    return day.isoformat()
