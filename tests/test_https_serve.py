"""HTTPS for the console and APIs: `madoguchi serve` with MADOGUCHI_HTTPS_CERT / _KEY answers over
TLS only, with HSTS; a client that does not know the CA is refused; plain HTTP gets no answer."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from madoguchi_shared import tls
from madoguchi_shared.runtime import free_port


def test_serve_over_https_with_hsts(settings, tmp_path):
    material = tls.generate(tmp_path / "tls")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MADOGUCHI_")},
        "MADOGUCHI_NATS_URL": settings.nats_url,
        "MADOGUCHI_PG_DSN": settings.pg_dsn,
        "MADOGUCHI_DATA_DIR": str(tmp_path / "data"),
        "MADOGUCHI_DESK_PORT": str(port),
        "MADOGUCHI_TOKEN_SECRET": settings.token_secret.get_secret_value(),
        "MADOGUCHI_SERVICE_SECRET": settings.service_secret.get_secret_value(),
        "MADOGUCHI_HTTPS_CERT": str(material.server.cert),
        "MADOGUCHI_HTTPS_KEY": str(material.server.key),
        "MADOGUCHI_LOG_JSON": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "madoguchi_shared.cli", "serve", "desk"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    trusted = ssl.create_default_context(cafile=str(material.ca))
    url = f"https://127.0.0.1:{port}/healthz"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(url, context=trusted, timeout=2) as resp:
                    assert resp.status == 200
                    assert resp.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
                    assert resp.headers["x-content-type-options"] == "nosniff"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline
                time.sleep(0.3)
        with pytest.raises(urllib.error.URLError) as refused:  # the system's roots do not know this CA
            urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=5)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no clear-text answer
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
