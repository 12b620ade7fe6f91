"""Settings for every service: env vars with the MADOGUCHI_ prefix, sane defaults for one machine."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MADOGUCHI_", extra="ignore")

    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True

    # NATS: a URL to reach; the embedded runtime starts one on nats_port when nats_url is local.
    nats_url: str = "nats://127.0.0.1:4222"
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    stream_replicas: int = 1
    # How long a command-line tool waits for its first connect before it says the bus is unreachable
    # (bus.connect_tool); a service waits as long as it takes (it must outlive a restarting nats-server).
    nats_connect_timeout: float = Field(default=10.0, gt=0)
    # How long a request waits for PostgreSQL (each statement, and a pooled connection) before its 503
    # (madoguchi_shared.db): a frozen server otherwise held a request for the pool's 60 s command timeout.
    db_request_timeout: float = Field(default=5.0, gt=0)
    # TLS to NATS (off the box): the CA that signed the servers' certificates (server verification),
    # and this client's own certificate and key where the servers verify clients (desk laptops, and
    # every service under `make cluster`). A CA set means TLS is required: no clear-text fallback.
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    nats_tls_hostname: str = ""  # the name in the servers' certificate when the URL holds another
    # NATS credentials (deployments: one identity per service). Empty: the identity on file under
    # data_dir/secrets/nats/ (madoguchi_shared.natsauth) — the service's own in a service, the
    # administrator's in the command-line tools — or none when nothing is on file.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")

    # PostgreSQL: a DSN to reach; empty means the embedded server under data_dir on pg_port.
    pg_dsn: str = ""
    pg_port: int = 5433

    # The municipality this deployment serves by default (全国地方公共団体コード, Sapporo = 011002).
    municipality: str = "011002"
    config_file: Path | None = None

    # Identity: HS256 key for staff tokens; empty means a key generated once under data_dir.
    token_secret: SecretStr = SecretStr("")
    token_ttl_seconds: int = 8 * 3600
    # Login (ASVS 6.3): an account locks after this many failed passwords in a row, for this long;
    # one client address may fail this many logins per window before it waits (HTTP 429).
    login_max_failures: int = 5
    login_lock_seconds: int = 15 * 60
    login_rate_limit: int = 20
    login_rate_window_seconds: int = 5 * 60
    # Shared secret for service-to-service calls (a service token is minted from it).
    service_secret: SecretStr = SecretStr("")

    host: str = "127.0.0.1"
    desk_port: int = 8101
    calls_port: int = 8102
    reporting_port: int = 8103
    audit_port: int = 8104
    console_port: int = 8100
    # uvicorn worker processes for the command services (desk, calls); 0 = one per core (`make run`).
    # Each worker keeps its own aggregate cache: a stale one costs a conflict and a refresh (rule 2).
    api_workers: int = Field(default=1, ge=0, le=64)
    # HTTPS for the console and APIs (uvicorn): certificate and key; every answer over HTTPS carries
    # HSTS. Empty: plain HTTP on host (loopback), for a reverse proxy that terminates TLS (deploy/).
    https_cert: Path | None = None
    https_key: Path | None = None

    extra: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _nats_url_follows_port(self) -> Settings:
        """MADOGUCHI_NATS_PORT alone moves the embedded server, and every tool follows it there."""
        if "nats_url" not in self.model_fields_set:
            self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        if "@" not in self.nats_url:
            self.nats_url = self.nats_url_for("admin")
        return self

    def nats_tls(self):
        """The bus client's ssl.SSLContext, or None when no TLS is configured."""
        if self.nats_tls_ca is None and self.nats_tls_cert is None:
            return None
        from madoguchi_shared.tls import client_context

        return client_context(self.nats_tls_ca, self.nats_tls_cert, self.nats_tls_key)

    def nats_url_for(self, identity: str) -> str:
        """nats_url with credentials: MADOGUCHI_NATS_USER/_PASSWORD if set, else `identity`'s on file
        (a service passes its name), else the URL as it is. Passwords are URL-safe (see natsauth)."""
        if self.nats_user:
            user, password = self.nats_user, self.nats_password.get_secret_value()
        else:
            from madoguchi_shared import natsauth

            found = natsauth.load(self.data_dir, identity)
            if found is None:
                return self.nats_url
            user, password = found.user, found.password
        return ",".join(_with_userinfo(u.strip(), user, password) for u in self.nats_url.split(",") if u.strip())

    def resolved_token_secret(self) -> str:
        """The token key: from settings, else read or created once under data_dir (mode 0600)."""
        value = self.token_secret.get_secret_value()
        if value:
            return value
        return _key_file(self.data_dir.resolve() / "secrets" / "token.key")

    def embedded_pg_dsn(self) -> str:
        """The embedded server's superuser (operator tools): its password is in the data folder."""
        secret = self.data_dir.resolve() / "postgres" / "superuser.password"
        auth = f"madoguchi:{secret.read_text().strip()}" if secret.exists() else "madoguchi"
        return f"postgresql://{auth}@127.0.0.1:{self.pg_port}/madoguchi"

    def resolved_pg_dsn(self) -> str:
        return self.pg_dsn or self.embedded_pg_dsn()


@functools.cache
def _key_file(path: Path) -> str:
    """A key kept in a file: created once (mode 0600), read once per process (it is on every request's path)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _with_userinfo(url: str, user: str, password: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "nats", url
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}"


def redact_url(url: str) -> str:
    """A NATS URL (or a comma-separated list) fit for a message: user and password removed."""
    out: list[str] = []
    for u in url.split(","):
        scheme, sep, rest = u.strip().partition("://")
        out.append(f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else u.strip().rsplit("@", 1)[-1])
    return ",".join(out)
