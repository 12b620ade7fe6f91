"""Credentials on the bus (the embedded default): one NATS identity per service, per desk laptop,
for the supervisor and for the administrator's command-line tools, each allowed only its own subjects.

Identities live under ``<data_dir>/secrets/nats/`` (one JSON file each, mode 0600: user, password,
what it is); `write_server_config` turns them into the ``authorization`` block nats-server is started
with (``nats-auth.conf``, mode 0600). A client without a valid user and password is refused at
connect, so no local process can publish into a stream of record.

Permissions (publish; what a client may read matters less here and is kept simple):

* a service: its own contexts' subjects (desk → ``mg.desk.>``), the admin stream (logins, refusals),
  dead letters and the HQ alert a projection raises with one (``mg.audit.*.alert.>``), the JetStream API except deleting or purging streams and messages, acks, flow
  control, KV writes and replies; it may subscribe to anything;
* a desk laptop (``device-<id>``): only its own subject ``mg.device.<m>.agent.<device>``, plus the
  JetStream calls its agent makes (the policy KV of its municipality, the ordered consumer that follows
  the desk's visits, stream lookup, the notice's staff check); it may subscribe only to its replies
  and its municipality's policy keys;
* the supervisor: only ``mg.admin.*.process.>`` (its restart events);
* ``admin``: everything (the `madoguchi` tools on the server, the test fixtures).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from madoguchi_shared import subjects

Kind = Literal["admin", "service", "device", "edge", "supervisor"]

# The contexts whose streams a service writes besides admin and the dead letters.
SERVICE_CONTEXTS: dict[str, tuple[str, ...]] = {
    "desk": ("desk",),
    "calls": ("calls",),
    "reporting": ("report",),
    "audit": ("audit",),
    "console": (),
}
POLICY_BUCKET = "mg_policy"
# No service deletes a stream. Deleting or purging messages of the streams of record is refused by
# the streams themselves (deny_delete, deny_purge); the text-key stream needs it to shred a key.
# Nor does a service change a stream of record's configuration: an update that sets a limit
# (max_msgs 2, max_bytes, max_msgs_per_subject 1, other subjects) makes the server drop messages of a
# deny-delete stream at once — the signed checkpoints on MG_AUDIT among them. `madoguchi run` creates
# and updates the streams as the tools' identity (`madoguchi streams`) before any service starts.
LOG_STREAMS = ("MG_DESK", "MG_CALLS", "MG_DEVICE", "MG_AUDIT", "MG_ADMIN", "MG_REPORT")  # = bus.LOG_STREAMS
_NEVER = ("$JS.API.STREAM.DELETE.>", *(f"$JS.API.STREAM.UPDATE.{s}" for s in LOG_STREAMS))


@dataclass(frozen=True)
class Identity:
    user: str
    password: str = field(repr=False)
    kind: Kind
    contexts: tuple[str, ...] = ()
    municipality: str | None = None
    device: str | None = None
    desk: str | None = None

    def connect_options(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password}

    def credential(self) -> str:
        """The credential file's contents for this identity (what an agent's config points to)."""
        return json.dumps({"user": self.user, "password": self.password}, indent=2) + "\n"


def secrets_dir(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "secrets" / "nats"


def _path(data_dir: Path, user: str) -> Path:
    return secrets_dir(data_dir) / f"{user}.json"


def load(data_dir: Path, user: str) -> Identity | None:
    try:
        raw = json.loads(_path(data_dir, user).read_text())
    except (OSError, ValueError):
        return None
    raw["contexts"] = tuple(raw.get("contexts", ()))
    return Identity(**raw)


def ensure(data_dir: Path, user: str, kind: Kind, **details: Any) -> Identity:
    """The identity, created once with a random password (the file is mode 0600)."""
    existing = load(data_dir, user)
    wanted: dict[str, Any] = {"kind": kind, **{k: (tuple(v) if k == "contexts" else v) for k, v in details.items()}}
    if existing is not None and all(getattr(existing, k) == v for k, v in wanted.items()):
        return existing
    identity = Identity(user=user, password=existing.password if existing else secrets.token_urlsafe(32), **wanted)
    path = _path(data_dir, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(asdict(identity), indent=2) + "\n")
    tmp.replace(path)
    return identity


def identities(data_dir: Path) -> list[Identity]:
    folder = secrets_dir(data_dir)
    if not folder.is_dir():
        return []
    found = (load(data_dir, p.stem) for p in sorted(folder.glob("*.json")))
    return [i for i in found if i is not None]


def device_user(device_id: str) -> str:
    return f"device-{device_id}"


def _named(identity: Identity, value: str | None) -> str:
    """A device's or an edge's municipality, device or desk: always on file for those identities."""
    if value is None:
        raise ValueError(f"the {identity.kind} identity {identity.user} lacks its municipality, device or desk")
    return value


def permissions(identity: Identity) -> dict[str, Any]:
    if identity.kind == "admin":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if identity.kind == "supervisor":
        return {
            "publish": {"allow": [subjects.pattern("admin", "*", "process", ">")]},
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    if identity.kind == "edge":
        return {
            "publish": {
                "allow": [
                    "$JS.API.INFO",
                    "$JS.API.STREAM.NAMES",
                    "$JS.API.STREAM.INFO.MG_DESK",
                    *_edge_publish(identity),
                ]
            },
            "subscribe": {"allow": ["_INBOX.>", *_edge_subscribe(identity)]},
        }
    if identity.kind == "device":
        m, bucket = _named(identity, identity.municipality), POLICY_BUCKET
        return {
            "publish": {
                "allow": [
                    subjects.aggregate_subject("device", m, "agent", _named(identity, identity.device)),
                    "$JS.API.INFO",
                    "$JS.API.STREAM.NAMES",
                    "$JS.API.STREAM.MSG.GET.MG_ADMIN",  # the monitoring notice's staff check (optional)
                    f"$JS.API.STREAM.INFO.KV_{bucket}",
                    f"$JS.API.DIRECT.GET.KV_{bucket}.>",
                    f"$JS.API.STREAM.MSG.GET.KV_{bucket}",
                    "$JS.API.STREAM.INFO.MG_DESK",
                    "$JS.API.CONSUMER.CREATE.MG_DESK",
                    "$JS.API.CONSUMER.CREATE.MG_DESK.>",
                    "$JS.API.CONSUMER.INFO.MG_DESK.>",
                    "$JS.API.CONSUMER.DELETE.MG_DESK.>",
                    "$JS.FC.MG_DESK.>",
                ]
            },
            "subscribe": {"allow": ["_INBOX.>", f"$KV.{bucket}.{m}.>"]},
        }
    own = [subjects.everything(context) for context in identity.contexts]
    return {
        "publish": {
            "allow": [
                *own,
                subjects.everything("admin"),
                subjects.everything("dlq"),
                subjects.pattern("audit", "*", "alert", ">"),  # a projection's dead-letter alert
                "mg_textkey.>",  # the keys of sealed free text (madoguchi_shared.sealed)
                "$JS.API.>",
                "$JS.ACK.>",
                "$JS.FC.>",
                "$KV.>",
                "_INBOX.>",
            ],
            "deny": list(_NEVER),
        },
        "subscribe": {"allow": [">"]},
    }


def _edge_publish(identity: Identity) -> list[str]:
    """A laptop's desk edge (`edge-<device>`, services/desk/EDGE.md), beside its agent: it appends the
    desk's desk-days and visits (subjects cannot name the desk inside the desk-day token, so any
    desk-day of its municipality; HQ's domain refuses a desk-day held by another edge), seals free
    text, reads the calendar, staff and accounts, and sends its heartbeat."""
    m, desk = _named(identity, identity.municipality), _named(identity, identity.desk)
    kv = [f"KV_{b}" for b in ("mg_staff", "mg_revoked")]
    return [
        subjects.pattern("desk", m, "deskday"),
        subjects.pattern("desk", m, "visit"),
        subjects.edge_subject(m, desk),
        f"mg_textkey.{m}.>",
        "$JS.API.DIRECT.GET.MG_DESK",
        "$JS.API.DIRECT.GET.MG_ADMIN",
        "$JS.API.STREAM.INFO.MG_TEXT_KEYS",
        "$JS.API.DIRECT.GET.MG_TEXT_KEYS",
        "$JS.API.DIRECT.GET.MG_TEXT_KEYS.>",
        "$JS.API.STREAM.MSG.GET.MG_TEXT_KEYS",
        *(f"$JS.API.STREAM.INFO.{s}" for s in kv),
        *(f"$JS.API.CONSUMER.CREATE.{s}" for s in kv),
        *(f"$JS.API.CONSUMER.CREATE.{s}.>" for s in kv),
        *(f"$JS.API.CONSUMER.DELETE.{s}.>" for s in kv),
        *(f"$JS.API.CONSUMER.INFO.{s}.>" for s in kv),
        *(f"$JS.API.DIRECT.GET.{s}.>" for s in kv),
        *(f"$JS.API.STREAM.MSG.GET.{s}" for s in kv),
        *(f"$JS.FC.{s}.>" for s in kv),
    ]


def _edge_subscribe(identity: Identity) -> list[str]:
    m = _named(identity, identity.municipality)
    return [subjects.aggregate_subject("desk", m, "calendar", "city"), subjects.pattern("desk", m, "deskday")]


def server_config_path(data_dir: Path) -> Path:
    return secrets_dir(data_dir) / "nats-auth.conf"


def write_server_config(data_dir: Path) -> Path:
    """The authorization block for nats-server from every identity on file (mode 0600)."""
    users: list[dict[str, Any]] = [
        {"user": i.user, "password": i.password, "permissions": permissions(i)} for i in identities(data_dir)
    ]
    if not users:
        raise RuntimeError(f"no NATS identities under {secrets_dir(data_dir)}")
    path = server_config_path(data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    # JSON values are valid NATS configuration; the strings are quoted, so a "$" is never a variable
    tmp.write_text(
        "# generated by madoguchi from secrets/nats/*.json; edits are overwritten\n"
        f"authorization: {json.dumps({'users': users}, indent=2)}\n"
    )
    tmp.replace(path)
    return path


def ensure_embedded(data_dir: Path, services: list[str] | tuple[str, ...]) -> Path:
    """Identities for the tools, the supervisor and every service (created once), and the server config."""
    ensure(data_dir, "admin", "admin")
    ensure(data_dir, "supervisor", "supervisor")
    for name in services:
        ensure(data_dir, name, "service", contexts=SERVICE_CONTEXTS.get(name, ()))
    return write_server_config(data_dir)


def issue_device(data_dir: Path, device_id: str, municipality: str, desk: str | None = None) -> Identity:
    """A desk laptop's identity (created once), the server config rewritten, and a running embedded
    nats-server told to reload it (SIGHUP) so the credential is accepted at once."""
    identity = ensure(
        data_dir, device_user(device_id), "device", municipality=municipality, device=device_id, desk=desk
    )
    write_server_config(data_dir)
    reload_server(data_dir)
    return identity


def edge_user(device_id: str) -> str:
    return f"edge-{device_id}"


def issue_edge(data_dir: Path, device_id: str, municipality: str, desk: str) -> Identity:
    """The desk edge's identity on a laptop (its own user beside the agent's), accepted at once (reload)."""
    identity = ensure(data_dir, edge_user(device_id), "edge", municipality=municipality, device=device_id, desk=desk)
    write_server_config(data_dir)
    reload_server(data_dir)
    return identity


def reload_server(data_dir: Path) -> bool:
    """Tell the running embedded nats-server, or every node of a loopback cluster (`make cluster`), to
    re-read its users (SIGHUP). False when none runs."""
    nats_dir = Path(data_dir).resolve() / "nats"
    told = False
    for pid_file in [nats_dir / "nats-server.pid", *sorted(nats_dir.glob("nats-*/nats-server.pid"))]:
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if b"nats-server" in cmdline:
            os.kill(pid, signal.SIGHUP)
            told = True
    return told


def connect_options(data_dir: Path, user: str) -> dict[str, str]:
    """user/password for `bus.connect` when that identity is on file, else nothing (a server without auth)."""
    identity = load(data_dir, user)
    return identity.connect_options() if identity else {}
