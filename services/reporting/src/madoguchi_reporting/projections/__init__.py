"""The statistics projections (REP-1, REP-2, REP-6), exactly once (ARCHITECTURE rule 3).

Three `madoguchi_shared.projection.Projection`s, each storing its stream position in
``reporting.projection_checkpoint`` in the same transaction as its changes:

* ``reporting-desk``   MG_DESK  (mg.desk.>):  visits, tickets, desk-days, escalations, opinions, ... (`desk`)
* ``reporting-calls``  MG_CALLS (mg.calls.>): calls, callbacks, line-days (`calls`)
* ``reporting-deliverables`` MG_REPORT (mg.report.*.deliverable.*): deliverables (`deliverables`)

Each batch is folded in memory and written set-based through `store`; after the statistics, in
the same transaction, `outbox` bumps the affected reports' data revisions and queues their
`report.report_updated` events (switched off for a rebuild: `Notifier(enabled=False)`).
"""

from __future__ import annotations

from functools import partial

from madoguchi_shared import subjects
from madoguchi_shared.projection import Guard, Projection

from madoguchi_reporting.projections.calls import CallRow, apply_calls, call_figures
from madoguchi_reporting.projections.deliverables import apply_deliverables
from madoguchi_reporting.projections.desk import VisitRow, apply_desk, visit_figures
from madoguchi_reporting.projections.outbox import Notifier, drain_outbox, write_outbox
from madoguchi_reporting.projections.store import REBUILD_LOCK, RebuildInProgress, live_batch_guard, local, to_ms
from madoguchi_reporting.schema import SCHEMA

DESK = "reporting-desk"
CALLS = "reporting-calls"
DELIVERABLES = "reporting-deliverables"
# Events per batch at most: a projection catching up (a rebuild, a restart after a pause) applies
# this many per transaction, so a batch's fixed costs (round trips, commit) are paid rarely; a live
# projection applies what has arrived (the reader waits 20 ms at most to fill a batch). Bigger
# batches also write less: a visit whose events straddle two batches is loaded and upserted twice,
# and a desk-day's counters are upserted once per batch (PostgreSQL CPU per event of a rebuild
# 12.2 -> 9.4 us from 4,000 to 16,000).
BATCH = 16000


def rebuild_guard(notifier: Notifier) -> Guard | None:
    """A live projection's: a stored position behind its own while a rebuild runs is the rebuild's (it
    waits); a rebuild's own projections have none (theirs being behind is commits lost)."""
    return partial(live_batch_guard, live=True) if notifier.enabled else None


def desk_projection(
    notifier: Notifier, *, name: str = DESK, filters: list[str] | None = None, batch: int = BATCH
) -> Projection:
    """The desk projection (a test may give another name and a municipality's filter)."""
    return Projection(
        name,
        "MG_DESK",
        filters or [subjects.stream_filter("MG_DESK")],
        partial(apply_desk, notifier=notifier),
        SCHEMA,
        batch=batch,
        rebuild_guard=rebuild_guard(notifier),
    )


def projections(notifier: Notifier | None = None, batch: int = BATCH) -> list[Projection]:
    """The three projections (the shared runner and reader); `Notifier(enabled=False)` for a rebuild."""
    notifier = notifier or Notifier()
    return [
        desk_projection(notifier, batch=batch),
        Projection(
            CALLS,
            "MG_CALLS",
            [subjects.stream_filter("MG_CALLS")],
            partial(apply_calls, notifier=notifier),
            SCHEMA,
            batch=batch,
            rebuild_guard=rebuild_guard(notifier),
        ),
        Projection(
            DELIVERABLES,
            "MG_REPORT",
            [subjects.context_filter("report", None, "deliverable")],
            apply_deliverables,
            SCHEMA,
            batch=batch,
            rebuild_guard=rebuild_guard(notifier),
        ),
    ]


__all__ = [
    "projections",
    "desk_projection",
    "Notifier",
    "VisitRow",
    "CallRow",
    "visit_figures",
    "call_figures",
    "drain_outbox",
    "write_outbox",
    "REBUILD_LOCK",
    "RebuildInProgress",
    "DESK",
    "CALLS",
    "DELIVERABLES",
    "BATCH",
    "to_ms",
    "local",
]
