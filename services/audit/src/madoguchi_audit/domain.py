"""The alert aggregate as pure functions: HQ acknowledges or closes an alert (SEC-2).

    state = fold of the alert subject's events (evolve)
    events = acknowledge(state, actor, note) / close(state, actor, note)

The service shell loads the subject (bus.load), decides, and appends with the subject's last
sequence as the expectation, so two people acknowledging at once get one success and one 409.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from madoguchi_shared.events import Actor, Envelope, Event
from madoguchi_shared.events.audit import AlertAcknowledged, AlertRaised, AlertReraised, AlertResolved
from madoguchi_shared.errors import Conflict, NotFound


@dataclass(frozen=True)
class Alert:
    alert_id: str
    municipality: str
    rule: str
    severity: str
    ward: str | None
    desk: str | None
    device_id: str | None
    title: str
    message: str
    raised_at: datetime
    status: str = "open"  # open | acknowledged | resolved
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    reraise_count: int = 0
    resolved_at: datetime | None = None


def evolve(alert: Alert | None, event: Event) -> Alert | None:
    if isinstance(event, AlertRaised):
        return Alert(
            event.alert_id,
            event.municipality,
            event.rule,
            event.severity,
            event.ward,
            event.desk,
            event.device_id,
            event.title,
            event.message,
            event.occurred_at,
        )
    if alert is None:
        return None
    if isinstance(event, AlertAcknowledged):
        return replace(
            alert,
            status="acknowledged" if alert.status == "open" else alert.status,
            acknowledged_by=event.acknowledged_by,
            acknowledged_at=event.occurred_at,
        )
    if isinstance(event, AlertReraised):
        return replace(alert, reraise_count=event.reraise_count)
    if isinstance(event, AlertResolved):
        return replace(alert, status="resolved", resolved_at=event.occurred_at)
    return alert


class _AlertEnvelope(Envelope):
    ward: str | None
    desk: str | None


def _envelope(alert: Alert, actor: Actor, correlation_id: UUID | None) -> _AlertEnvelope:
    return {
        "municipality": alert.municipality,
        "ward": alert.ward,
        "desk": alert.desk,
        "actor": actor,
        "correlation_id": correlation_id,
    }


def acknowledge(alert: Alert | None, actor: Actor, note: str | None, correlation_id: UUID | None = None) -> list[Event]:
    if alert is None:
        raise NotFound("指定された警報は見つかりません。")
    if alert.status == "resolved":
        raise Conflict("この警報は既に解決済みです。")
    if alert.status == "acknowledged":
        raise Conflict(f"この警報は既に確認済みです（確認者: {alert.acknowledged_by}）。")
    return [
        AlertAcknowledged(
            alert_id=alert.alert_id, acknowledged_by=actor.id, note=note, **_envelope(alert, actor, correlation_id)
        )
    ]


def close(alert: Alert | None, actor: Actor, note: str | None, correlation_id: UUID | None = None) -> list[Event]:
    if alert is None:
        raise NotFound("指定された警報は見つかりません。")
    if alert.status == "resolved":
        raise Conflict("この警報は既に解決済みです。")
    return [
        AlertResolved(
            alert_id=alert.alert_id, reason="closed_by_staff", note=note, **_envelope(alert, actor, correlation_id)
        )
    ]
