"""How a service shows its projections: /readyz details and Prometheus metrics per projection."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client.metrics_core import Metric

    from madoguchi_shared.projection import Projection


class ProjectionMetrics:
    """Prometheus collector: lag, dead letters, applied events and transient failures per projection."""

    def __init__(self, projections: Callable[[], Sequence[Projection]]):
        self.projections = projections

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lag = GaugeMetricFamily(
            "madoguchi_projection_lag", "Messages in the stream past the stored position", labels=["projection"]
        )
        dead = CounterMetricFamily(
            "madoguchi_projection_dead_letters", "Events dead-lettered since start", labels=["projection"]
        )
        applied = CounterMetricFamily(
            "madoguchi_projection_applied", "Events applied since start", labels=["projection"]
        )
        transient = CounterMetricFamily(
            "madoguchi_projection_transient_failures",
            "Batches retried after a transient failure",
            labels=["projection"],
        )
        for p in self.projections():
            lag.add_metric([p.name], p.lag)
            dead.add_metric([p.name], p.dead_lettered)
            applied.add_metric([p.name], p.applied)
            transient.add_metric([p.name], p.transient_failures)
        yield from (lag, dead, applied, transient)


def install_health(app: FastAPI, projections: Callable[[], Sequence[Projection]]) -> None:
    """Show the projections in /readyz (`projections`: name -> health) and /metrics of a service app."""

    def details() -> dict[str, Any]:
        return {p.name: p.health() for p in projections()}

    app.state.ready_details["projections"] = details
    app.state.metrics_registry.register(ProjectionMetrics(projections))


__all__ = ["ProjectionMetrics", "install_health"]
