"""The agent's own configuration file (TOML): who this PC is and where its data lives.

What the PC is (device id, municipality, ward, desk, desk role) and how it reaches the bus is
local; what it enforces (allow-list, USB, watched folders, thresholds) is the policy, which comes
from the bus (policy.py). Example (`madoguchi agent init-config` writes one):

    device_id = "chuo-1-pc"
    municipality = "011002"
    ward = "chuo"
    desk = "chuo-1"
    role = "desk"
    nats_url = "nats://hq.example.jp:4222"
    nats_credential = "/etc/madoguchi/nats.json"  # the device credential (`madoguchi nats credential`)
    nats_tls_ca = "/etc/madoguchi/tls/ca.pem"      # verify the servers (TLS off the box)
    nats_tls_cert = "/etc/madoguchi/tls/chuo-1-pc.pem"  # this laptop's client certificate
    nats_tls_key = "/etc/madoguchi/tls/chuo-1-pc.key"
    data_dir = "/var/lib/madoguchi-agent"
    process_users = ["desk"]                     # OS accounts of the desk session
"""

from __future__ import annotations

import json
import tomllib
from typing import Literal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from madoguchi_shared.events.base import Ident, MunicipalityCode


class Monitors(BaseModel):
    """Switch monitors off where a PC lacks the part (or in tests that exercise one alone)."""

    model_config = ConfigDict(extra="forbid")
    card: bool = True
    processes: bool = True
    usb: bool = True
    files: bool = True
    desk_visits: bool = True  # follow the desk's visits for DESK-9
    sessions: bool = True  # logon, logoff, lock, unlock (logind on the system D-Bus)
    printing: bool = True  # print jobs (CUPS)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Ident
    municipality: MunicipalityCode
    ward: Ident
    desk: Ident
    role: Ident = "desk"  # the desk role whose policy applies (key <municipality>.<role>)

    nats_url: str = "nats://127.0.0.1:4222"
    nats_creds: Path | None = None  # a NATS .creds file (JWT + nkey seed), for an operator-mode NATS
    # the seed of this laptop's own nkey (a file "SU..."), where the NATS user is defined by its
    # public key (`authorization { users: [{nkey: U...}] }`): nothing secret leaves the laptop
    nats_nkey_seed: Path | None = None
    # The device's own user and password on the bus (JSON {"user", "password"}, mode 0600), as
    # `madoguchi nats credential --device <id>` writes it: it may publish only to its own subject.
    nats_credential: Path | None = None
    # TLS to the bus (issue 18 §5): the server is verified against `nats_tls_ca` (the system's
    # roots when only a certificate is given); `nats_tls_cert`/`_key` are this laptop's client
    # certificate, where the servers verify clients. The credential above goes over the same TLS.
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    nats_tls_hostname: str | None = None  # the name in the server's certificate, when not the URL's host
    data_dir: Path = Path("/var/lib/madoguchi-agent")

    # The desk users: processes of these OS accounts are monitored, their home folders hold the
    # watched folders ("~/Desktop"...). Empty = the accounts logged in on the PC now (uid >= 1000),
    # looked at again every process_scan_s. And/or the process trees under these pids (a kiosk
    # session leader). Never the whole machine: system services run under their own accounts
    # and are not the desk's applications. Nothing in scope is a loud MonitoringGap.
    process_users: tuple[str, ...] = ()
    process_root_pids: tuple[int, ...] = ()
    # where program starts come from: the kernel's notices (needs root), or a poll of /proc
    # (a loud MonitoringGap: a short-lived program may be missed)
    process_source: Literal["netlink", "poll"] = "netlink"

    sysfs_usb_root: Path = Path("/sys/bus/usb/devices")
    dbus_address: str | None = None  # the D-Bus where logind is; None = the system bus
    cups_url: str = "http://127.0.0.1:631"  # the CUPS scheduler (IPP over HTTP)
    print_poll_s: float = Field(default=2.0, gt=0)

    # The local journal: a cap in bytes, alarms at 25 % / 75 % (OutboxSizeAlarm), shedding of
    # low-value events only at 100 %.
    outbox_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # kept free for a full disk: the events that must never be lost and the deletes of sent rows
    outbox_reserve_bytes: int = Field(default=2 * 1024 * 1024, ge=0)
    outbox_batch: int = Field(default=2000, ge=1, le=4000)
    outbox_ack_timeout_s: float = Field(default=10.0, gt=0)

    policy_bucket: str = "mg_policy"
    policy_poll_s: float = Field(default=30.0, gt=0)
    # On start, replay this much of the desk's events to know whether a visit is in progress.
    desk_lookback_h: float = Field(default=12.0, ge=0)
    monitors: Monitors = Monitors()

    @model_validator(mode="after")
    def _tls_pair(self) -> AgentConfig:
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ValueError("nats_tls_cert and nats_tls_key go together (the client certificate and its key)")
        return self

    def nats_options(self) -> dict:
        """Credential and TLS options for nats.connect (the agent, the notice's staff check)."""
        options: dict = {}
        if self.nats_creds:
            options["user_credentials"] = str(self.nats_creds)
        if self.nats_nkey_seed:
            options["nkeys_seed"] = str(self.nats_nkey_seed)
        if self.nats_credential:
            credential = json.loads(self.nats_credential.read_text())
            options["user"], options["password"] = credential["user"], credential["password"]
        if self.nats_tls_ca or self.nats_tls_cert:
            from madoguchi_shared import tls

            options["tls"] = tls.client_context(self.nats_tls_ca, self.nats_tls_cert, self.nats_tls_key)
            if self.nats_tls_hostname:
                options["tls_hostname"] = self.nats_tls_hostname
        return options

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
        return cls.model_validate(data)

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.db"

    @property
    def policy_cache_path(self) -> Path:
        return self.data_dir / "policy.json"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def running_marker(self) -> Path:
        return self.data_dir / "agent.running"

    @property
    def policy_key(self) -> str:
        return f"{self.municipality}.{self.role}"

    @property
    def desk_policy_key(self) -> str:
        """This desk's own policy, when it differs from its role's (it wins)."""
        return f"{self.municipality}.{self.role}.{self.desk}"


EXAMPLE = """# madoguchi-agent configuration (one desk PC)
device_id = "chuo-1-pc"
municipality = "011002"
ward = "chuo"
desk = "chuo-1"
role = "desk"
nats_url = "nats://127.0.0.1:4222"
# nats_credential = "/etc/madoguchi/nats.json"   # from `madoguchi nats credential --device chuo-1-pc ...`
# nats_tls_ca = "/etc/madoguchi/tls/ca.pem"       # TLS off the box: the servers' CA
# nats_tls_cert = "/etc/madoguchi/tls/chuo-1-pc.pem"   # this laptop's client certificate and key
# nats_tls_key = "/etc/madoguchi/tls/chuo-1-pc.key"
data_dir = "/var/lib/madoguchi-agent"
process_users = ["desk"]

[monitors]
card = true
processes = true
usb = true
files = true
desk_visits = true
sessions = true
printing = true
"""
