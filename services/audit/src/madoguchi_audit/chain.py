"""The hash chain: what one log record is, what is hashed, and how the envelope columns are
derived from the bytes received (ASVS 16.4.2).

A record is the message exactly as the bus holds it (`data`, the canonical JSON bytes pydantic
wrote) plus where it came from and the envelope columns auditors filter on. Its hash is

    hash = sha256(prev_hash || header || data)

where `header` is one line naming the record's source and its columns (see `header`). Hashing
the header as well as the data means that editing an indexed column (say `ward`, to hide a
record from a ward filter) breaks the chain just like editing the event. The header is built
from the stored columns by PostgreSQL itself when verifying (`HEADER_SQL`), so the verifier never
parses JSON and reaches a few hundred thousand records a second.

The first record's prev_hash is `GENESIS` (32 zero bytes). Positions start at 1, are gap-free and
never reused: they are assigned by the single writer (ingest/) inside the transaction that
appends the batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

GENESIS = bytes(32)
NULL = "\x1e"  # stands for SQL NULL in the header (never part of an accepted envelope value)
SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Columns of audit.log in COPY order.
COLUMNS = (
    "position",
    "stream",
    "stream_seq",
    "subject",
    "parsed",
    "event_id",
    "type",
    "occurred_at",
    "municipality",
    "ward",
    "desk",
    "actor_id",
    "actor_role",
    "device_id",
    "correlation_id",
    "data",
    "prev_hash",
    "hash",
)


class Envelope(NamedTuple):
    """The envelope columns of a record; all None when the bytes are not a readable event.

    Ids are canonical UUID text (lowercase, hyphenated), as PostgreSQL prints a uuid.
    """

    parsed: bool
    event_id: str | None = None
    type: str | None = None
    occurred_at: datetime | None = None
    municipality: str | None = None
    ward: str | None = None
    desk: str | None = None
    actor_id: str | None = None
    actor_role: str | None = None
    device_id: str | None = None
    correlation_id: str | None = None


UNPARSED = Envelope(False)


def _text(value: object) -> str | None:
    """An envelope string column: printable ASCII of reasonable length, else refuse the envelope."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 200 and value.isascii() and value.isprintable():
        return value
    raise ValueError("not an envelope string")


def _uuid(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a uuid")
    return str(UUID(value))


def _device_id(doc: dict, actor: dict) -> object:
    # Device events name the desk PC in `device_id`; an agent acting on its own is the actor.
    for key in ("device_id", "device"):
        if isinstance(doc.get(key), str):
            return doc[key]
    if actor.get("role") == "device":
        return actor.get("id")
    return None


def envelope_json(data: bytes) -> Envelope:
    """The reference reading: parse the JSON, take the envelope fields; anything odd is UNPARSED.

    Deliberately lenient (no pydantic): the log records what the bus holds, readable or not.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict):
            return UNPARSED
        actor = doc.get("actor") or {}
        if not isinstance(actor, dict):
            return UNPARSED
        occurred = doc.get("occurred_at")
        occurred_at = None
        if occurred is not None:
            occurred_at = datetime.fromisoformat(occurred)
            if occurred_at.tzinfo is None or not (1000 <= occurred_at.year <= 9998):
                return UNPARSED
        return Envelope(
            True,
            _uuid(doc.get("event_id")),
            _text(doc.get("type")),
            occurred_at,
            _text(doc.get("municipality")),
            _text(doc.get("ward")),
            _text(doc.get("desk")),
            _text(actor.get("id")),
            _text(actor.get("role")),
            _text(_device_id(doc, actor)),
            _uuid(doc.get("correlation_id")),
        )
    except (ValueError, TypeError, AttributeError, OverflowError):
        return UNPARSED


# The fast reading of what pydantic writes (madoguchi_shared.events.dump_event): the envelope
# fields first, in a fixed order, with simple values. It is taken only when nothing later in the
# document could make a JSON reader see another value (one of those keys again, nested or not;
# inside a JSON string a quote is always escaped, so `"ward":` can only be a key; and no `\u`
# escape, with which a key can be spelled otherwise: `"w\u0061rd":` is `"ward":` to a JSON
# reader). Then it gives what envelope_json gives, several times faster; anything else goes to
# envelope_json.
# (A document whose canonical envelope is followed by invalid JSON keeps the envelope's columns
# here where envelope_json would say unparsed: the record and its bytes are the same either way.)
_ID = r"[A-Za-z0-9_-]{1,64}"
_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_FAST = re.compile(
    r'\{"event_id":"(' + _UUID_RE + r')","type":"([a-z_]{1,16}\.[a-z0-9_]{1,64})","version":[0-9]{1,6},'
    r'"occurred_at":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?'
    r'(?:Z|[+-][0-9]{2}:[0-9]{2}))",'
    r'"recorded_at":"[0-9T:.Z+-]{1,40}","municipality":"([0-9]{6})",'
    r'"ward":(?:"(' + _ID + r')"|null),"desk":(?:"(' + _ID + r')"|null),'
    r'"actor":\{"id":"(' + _ID + r')","role":"([a-z_]{1,32})"\},'
    r'"correlation_id":(?:"(' + _UUID_RE + r')"|null),"causation_id":(?:"' + _UUID_RE + r'"|null)[,}]',
    re.ASCII,
)
_AGAIN = re.compile(r'"(?:event_id|type|occurred_at|municipality|ward|desk|actor|correlation_id|device)":')
_DEVICE = re.compile(r'"device_id":"(' + _ID + r')"[,}]', re.ASCII)
_fromiso = datetime.fromisoformat
_new = tuple.__new__  # an Envelope without NamedTuple's Python-level __new__ (per-message cost)
_MICROSECOND = timedelta(microseconds=1)
_N = "\x1e"


def _fast_values(data: bytes) -> tuple[tuple, str] | None:
    """The fast reading (see above): the envelope's values and their part of the header (`env_header`), or None
    when the JSON reader must decide."""
    text = data.decode("utf-8")
    m = _FAST.match(text)
    if m is None:
        return None
    end = m.end()  # the rest is searched in place (no copy of it)
    if _AGAIN.search(text, end) or text.find("\\u", end) >= 0:
        return None
    eid, typ, occ, mun, ward, desk, aid, role, corr = m.groups()
    at = text.find('"device_id":', end)
    if at < 0:
        device = aid if role == "device" else None
    else:
        d = _DEVICE.match(text, at)
        if (
            d is None
            or text.find("{", end, at) >= 0
            or text.find("[", end, at) >= 0
            or text.find('"device_id":', at + 1) >= 0
        ):
            return None  # not a single plain top-level string: let the JSON reader decide
        device = d.group(1)
    occurred_at = _fromiso(occ)
    if not (1000 <= occurred_at.year <= 9998):
        return None
    return (True, eid, typ, occurred_at, mun, ward, desk, aid, role, device, corr), (
        f"1\x1f{eid}\x1f{typ}\x1f{(occurred_at - _EPOCH) // _MICROSECOND}\x1f{mun}\x1f"
        f"{_N if ward is None else ward}\x1f{_N if desk is None else desk}\x1f{aid}\x1f{role}\x1f"
        f"{_N if device is None else device}\x1f{_N if corr is None else corr}\n"
    )


def _fast(data: bytes) -> Envelope | None:
    values = _fast_values(data)
    return None if values is None else _new(Envelope, values[0])


def envelope(data: bytes) -> Envelope:
    """The envelope columns of a message: the fast reading when it applies, else the JSON reading."""
    try:
        fast = _fast(data)
    except ValueError:  # not UTF-8, or a date that does not exist
        fast = None
    return fast if fast is not None else envelope_json(data)


def micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (the header's occurred_at): exact (a timedelta is a whole
    number of microseconds, and timedelta // timedelta is an int, in C)."""
    return (value - _EPOCH) // _MICROSECOND


def env_header(env: Sequence) -> str:
    """The envelope's part of the header line (`header`)."""
    (
        parsed,
        event_id,
        type_,
        occurred_at,
        municipality,
        ward,
        desk,
        actor_id,
        actor_role,
        device_id,
        correlation_id,
    ) = env
    n = NULL
    return (
        f"{'1' if parsed else '0'}\x1f"
        f"{n if event_id is None else event_id}\x1f{n if type_ is None else type_}\x1f"
        f"{n if occurred_at is None else micros(occurred_at)}\x1f{n if municipality is None else municipality}\x1f"
        f"{n if ward is None else ward}\x1f{n if desk is None else desk}\x1f{n if actor_id is None else actor_id}\x1f"
        f"{n if actor_role is None else actor_role}\x1f{n if device_id is None else device_id}\x1f"
        f"{n if correlation_id is None else correlation_id}\n"
    )


def header(stream: str, stream_seq: int, subject: str, env: Sequence) -> bytes:
    """The header line hashed with the data. Must equal what HEADER_SQL builds from the columns.

    `env` is an Envelope, or the same eleven values read back from the table (uuids as UUID).
    """
    return f"{stream}\x1f{stream_seq}\x1f{subject}\x1f{env_header(env)}".encode()


# The same header, built by PostgreSQL from the stored columns (the verifier's fast path).
HEADER_SQL = r"""convert_to(concat_ws(E'\x1f',
    stream, stream_seq::text, subject, CASE WHEN parsed THEN '1' ELSE '0' END,
    coalesce(event_id::text, E'\x1e'), coalesce(type, E'\x1e'),
    coalesce(((extract(epoch FROM occurred_at) * 1000000)::bigint)::text, E'\x1e'),
    coalesce(municipality, E'\x1e'), coalesce(ward, E'\x1e'), coalesce(desk, E'\x1e'),
    coalesce(actor_id, E'\x1e'), coalesce(actor_role, E'\x1e'), coalesce(device_id, E'\x1e'),
    coalesce(correlation_id::text, E'\x1e')) || E'\n', 'UTF8')"""


def link(prev_hash: bytes, head: bytes, data: bytes) -> bytes:
    return hashlib.sha256(prev_hash + head + data).digest()


class Message(NamedTuple):
    """One message as read from a stream."""

    stream: str
    seq: int
    subject: str
    data: bytes


def _values(data: bytes) -> tuple[tuple, str]:
    """A message's envelope values and their part of the header: the fast reading when it applies, else the JSON
    reading (as `envelope`)."""
    try:
        fast = _fast_values(data)
    except ValueError:  # not UTF-8, or a date that does not exist
        fast = None
    if fast is not None:
        return fast
    env = envelope_json(data)
    return tuple(env), env_header(env)


def chain_records(messages: Iterable, position: int, prev: bytes) -> tuple[list[tuple], int, bytes]:
    """Turn messages (Message or the shared reader's StoredMessage) into COPY rows (in COLUMNS order)
    after (position, prev). Returns rows, last position, head."""
    rows: list[tuple] = []
    append = rows.append
    sha = hashlib.sha256
    values = _values
    for m in messages:
        stream, seq, subject, data = m.stream, m.seq, m.subject, m.data
        env, tail = values(data)
        position += 1
        digest = sha(prev + f"{stream}\x1f{seq}\x1f{subject}\x1f{tail}".encode() + data).digest()
        append((position, stream, seq, subject, *env, data, prev, digest))
        prev = digest
    return rows, position, prev


class Row(NamedTuple):
    """A stored record as the verifier reads it: the header comes from the columns."""

    position: int
    header: bytes
    data: bytes
    prev_hash: bytes
    hash: bytes


def row_from_columns(values: Sequence) -> Row:
    """A verifier Row from a full row in COLUMNS order (in-memory path, archives, tests)."""
    position, stream, seq, subject = values[0], values[1], values[2], values[3]
    return Row(position, header(stream, seq, subject, values[4:15]), values[15], values[16], values[17])
