"""Fixtures of the device-agent tests (the session's nats-server comes from the root conftest)."""

from __future__ import annotations

import pytest
from agent_harness import Pcscd, VirtualCard


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory):
    """The real PC/SC stack: pcscd with vpcd's two virtual readers. Fails (never skips) when the
    Debian packages are missing: the card-reader tests must run in CI."""
    try:
        daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log").start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield daemon
    daemon.stop()


@pytest.fixture
def virtual_card(pcscd, tmp_path):
    card = VirtualCard(tmp_path / "vicc.log")
    yield card
    card.remove()
