"""Supervision events on the admin stream: what `madoguchi run` saw and did about its children.

A child process (a service, nats-server, PostgreSQL) that exits without being asked is restarted
with backoff; each restart is an event, so the audit log shows every outage of the platform itself.
Subject: ``mg.admin.<municipality>.process.<process>`` (e.g. ``...process.desk``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from madoguchi_shared.events.base import Event, Ident


class ProcessRestarted(Event):
    """A supervised child exited unexpectedly and was started again."""

    context: ClassVar[str] = "admin"
    aggregate: ClassVar[str] = "process"
    aggregate_field: ClassVar[str] = "process"
    type: Literal["admin.process_restarted"] = "admin.process_restarted"
    process: Ident  # desk, calls, ..., nats-server, postgresql
    exit_code: int | None = Field(default=None, ge=-255, le=255)  # negative: the signal that ended it (-9: killed)
    restarts: int = Field(ge=1, le=1_000_000)  # restarts of this child since `madoguchi run` started
    down_seconds: float = Field(ge=0, le=31_536_000)  # from noticing the exit to serving again
    backoff_seconds: float = Field(ge=0, le=86_400)
