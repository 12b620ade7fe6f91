"""The subject scheme, in one place.

Every event lives on exactly one subject, one per aggregate, so JetStream's
expected-last-subject-sequence check gives optimistic concurrency per aggregate:

    mg.<context>.<municipality>.<aggregate>.<aggregate_id>

- context: desk | calls | device | audit | admin | report  (one stream each, see bus.STREAMS)
- municipality: the 6-digit local government code (全国地方公共団体コード), e.g. 011002 for Sapporo
- aggregate: the kind of aggregate (visit, deskday, queue, call, callback, agent, staff, ...)
- aggregate_id: its id; tokens are [A-Za-z0-9_-] only (no dots, no wildcards)

Dead letters go to mg.dlq.<consumer> with the reason in headers.
Examples:
    mg.desk.011002.deskday.chuo-1_2021-04-01
    mg.desk.011002.visit.0192f0a4-...            (UUIDv7)
    mg.calls.011002.callback.0192f0a4-...
    mg.device.011002.agent.chuo-1-pc
"""

from __future__ import annotations

import functools
import re

PREFIX = "mg"
CONTEXTS = ("desk", "calls", "device", "audit", "admin", "report")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MUNICIPALITY = re.compile(r"^[0-9]{6}$")


class SubjectError(ValueError):
    pass


def token(value: str) -> str:
    """Return value as a subject token, refusing dots, wildcards and spaces."""
    if not TOKEN.match(value):
        raise SubjectError(f"not a valid subject token: {value!r}")
    return value


@functools.lru_cache(maxsize=65536)  # a command names its aggregate's subject several times (issue 19)
def aggregate_subject(context: str, municipality: str, aggregate: str, aggregate_id: str) -> str:
    if context not in CONTEXTS:
        raise SubjectError(f"unknown context {context!r}")
    if not MUNICIPALITY.match(municipality):
        raise SubjectError(f"municipality must be a 6-digit code, got {municipality!r}")
    return f"{PREFIX}.{context}.{municipality}.{token(aggregate)}.{token(aggregate_id)}"


def context_filter(context: str, municipality: str | None = None, aggregate: str | None = None) -> str:
    """A wildcard filter: all of a context, optionally one municipality and aggregate kind."""
    parts = [PREFIX, context, municipality or "*"]
    if aggregate:
        parts.append(aggregate)
        parts.append("*")
        return ".".join(parts)
    return ".".join(parts) + ".>"


def dlq_subject(consumer: str) -> str:
    return f"{PREFIX}.dlq.{token(consumer)}"


def dlq_replay_subject(consumer: str) -> str:
    """Where an operator asks a consumer to apply one of its dead letters again."""
    return f"{PREFIX}.dlq.replay.{token(consumer)}"


DLQ_FILTER = f"{PREFIX}.dlq.*"  # every consumer's dead letters (not the replay requests)


def stream_of(context: str) -> str:
    """The stream holding a context's events (see bus.STREAMS)."""
    if context not in CONTEXTS and context != "dlq":
        raise SubjectError(f"unknown context {context!r}")
    return f"MG_{context.upper()}"


def stream_filter(stream: str) -> str:
    """The filter matching every message of one stream, e.g. MG_DESK -> mg.desk.>"""
    return f"{PREFIX}.{stream.removeprefix('MG_').lower()}.>"


def parse(subject: str) -> tuple[str, str, str, str]:
    """Split an aggregate subject into (context, municipality, aggregate, aggregate_id)."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        raise SubjectError(f"not an aggregate subject: {subject!r}")
    return parts[1], parts[2], parts[3], parts[4]


# --- filters and permissions -------------------------------------------------------------------
# Every subject and wildcard a service, tool or test names is built here (tests/test_service_shape.py
# fails on a string starting with "mg." anywhere else).

EDGE = "edge"  # a desk edge's heartbeat (core NATS, no stream): mg.edge.<municipality>.<desk>
_OTHER_CONTEXTS = ("dlq", EDGE)


def _wild(value: str, *, last: bool = False) -> str:
    if value == "*" or (last and value == ">"):
        return value
    return token(value)


def everything(context: str) -> str:
    """Every subject of one context (a stream's subjects, a permission): mg.<context>.>"""
    if context not in CONTEXTS and context not in _OTHER_CONTEXTS:
        raise SubjectError(f"unknown context {context!r}")
    return f"{PREFIX}.{context}.>"


def pattern(context: str, municipality: str = "*", aggregate: str = "*", aggregate_id: str = "*") -> str:
    """A wildcard over aggregate subjects, e.g. pattern("desk", m, "deskday") = mg.desk.<m>.deskday.*;
    each part is a token or "*", and the aggregate id may be ">" (an id followed by anything)."""
    if context not in CONTEXTS:
        raise SubjectError(f"unknown context {context!r}")
    if municipality != "*" and not MUNICIPALITY.match(municipality):
        raise SubjectError(f"municipality must be a 6-digit code, got {municipality!r}")
    return f"{PREFIX}.{context}.{municipality}.{_wild(aggregate)}.{_wild(aggregate_id, last=True)}"


def edge_subject(municipality: str, desk: str) -> str:
    """A desk edge's heartbeat subject (services/desk/EDGE.md)."""
    return f"{PREFIX}.{EDGE}.{token(municipality)}.{token(desk)}"


def edge_filter(municipality: str) -> str:
    """Every desk edge's heartbeat in one municipality."""
    return f"{PREFIX}.{EDGE}.{token(municipality)}.*"
