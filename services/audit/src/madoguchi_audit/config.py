"""The audit service's own settings (env prefix MADOGUCHI_AUDIT_), on top of the shared Settings.

`AuditSettings.from_settings(settings)` takes data_dir and the municipality from the shared
settings, then `settings.extra` entries named `audit_<field>`, then MADOGUCHI_AUDIT_* variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from madoguchi_shared.settings import Settings


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MADOGUCHI_AUDIT_", extra="ignore")

    data_dir: Path = Path("var")
    municipality: str = "011002"  # publishes checkpoints and alerts under this code

    # The log
    schema_name: str = Field(default="audit", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    log_id: str = Field(default="oplog", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Which municipalities the log records; empty = every municipality on the bus.
    municipalities: list[str] = Field(default_factory=list)
    ingest_batch: int = Field(default=20_000, ge=1)  # records per transaction, at most
    run_ingest: bool = True

    # Signed checkpoints: every N records or T seconds (whichever first, when there is news).
    checkpoint_every: int = Field(default=1_000, ge=1)
    checkpoint_seconds: float = Field(default=1.0, gt=0)
    signing_key_hex: SecretStr = SecretStr("")  # 32-byte Ed25519 seed as hex; empty = key file
    signing_key_file: Path | None = None  # default <data_dir>/audit/signing.key
    trusted_keys_dir: Path | None = None  # default <data_dir>/audit/keys (public keys, statements.jsonl)
    checkpoint_file: Path | None = None  # default <data_dir>/audit/checkpoints.jsonl
    # Key trust (keys.py): the first start of a log with no key anywhere (no key file, no key
    # statement on the stream or on disk) introduces a fresh key itself, as `madoguchi audit init`
    # would, and logs its fingerprint. Set false where install is a separate, witnessed step.
    init_on_first_start: bool = True
    # The fingerprint the city recorded at install; when set, a key chain with another root is refused.
    root_fingerprint: str = ""
    # Verification: stream messages stored more than this long before the run must be in the log.
    reconcile_grace_seconds: float = Field(default=5.0, ge=0)

    # Retention: the city sets it; 0 = keep everything in the table.
    retention_days: int = Field(default=1825, ge=0)
    archive_dir: Path | None = None  # default <data_dir>/audit/archive

    # HQ alerts (SEC-2)
    run_alerts: bool = True
    timezone: str = "Asia/Tokyo"
    opening_time: str = "08:45"  # DESK-1, CALL-1 (used when no desk/line open event is seen)
    closing_time: str = "17:15"
    heartbeat_silence_seconds: int = Field(default=300, ge=10)
    no_supporter_grace_seconds: int = Field(default=300, ge=0)  # DESK-5: a short absence is allowed
    card_in_reader_seconds: int = Field(default=600, ge=10)  # DESK-9
    reraise_after_seconds: int = Field(default=900, ge=10)
    denied_count: int = Field(default=5, ge=2)
    denied_window_seconds: int = Field(default=600, ge=10)
    desk_capacity: int = Field(default=80, ge=1)  # DESK-2: visitors per desk per day
    call_capacity: int = Field(default=20, ge=1)  # CALL-1: calls per day

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    @property
    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.audit_dir / "signing.key"

    @property
    def resolved_trusted_keys_dir(self) -> Path:
        return self.trusted_keys_dir or self.audit_dir / "keys"

    @property
    def resolved_statements_file(self) -> Path:
        return self.resolved_trusted_keys_dir / "statements.jsonl"

    @property
    def resolved_checkpoint_file(self) -> Path:
        return self.checkpoint_file or self.audit_dir / "checkpoints.jsonl"

    @property
    def resolved_archive_dir(self) -> Path:
        return self.archive_dir or self.audit_dir / "archive"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> AuditSettings:
        values: dict = {"data_dir": settings.data_dir, "municipality": settings.municipality}
        for key, value in settings.extra.items():
            if key.startswith("audit_"):
                values[key.removeprefix("audit_")] = value
        values.update(overrides)
        return cls(**values)
