"""Real servers for tests: one nats-server and one PostgreSQL per test session (port 0, temp dirs)."""

from __future__ import annotations

import random
from pathlib import Path

from madoguchi_shared.runtime import NatsServer, PostgresServer
from madoguchi_shared.settings import Settings


def unique_municipality() -> str:
    """Tests isolate by municipality: it is part of every subject and key. 9xxxxx is never real."""
    return f"9{random.randrange(0, 100000):05d}"


def make_settings(nats: NatsServer, pg: PostgresServer, data_dir: Path, **overrides) -> Settings:
    return Settings(
        nats_url=nats.url,
        pg_dsn=pg.dsn,
        data_dir=data_dir,
        token_secret="test-token-secret-not-for-production-000000",
        service_secret="test-service-secret-not-for-production-0000",
        log_json=False,
        **overrides,
    )
