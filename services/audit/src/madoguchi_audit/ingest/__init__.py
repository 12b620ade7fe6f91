"""The log writer: every message of every log stream, once, into audit.log, hash-chained.

Shape (ARCHITECTURE "Measured ceilings": raw pull + COPY is the fast path):

- one shared `Reader` per stream (MG_DESK, MG_CALLS, MG_DEVICE, MG_AUDIT, MG_ADMIN, MG_REPORT;
  not the DLQ): an ack-less ephemeral consumer started after the stream sequence stored for that
  stream, whose subscription callback only appends to one in-memory buffer;
- one writer loop drains the buffer in arrival order: that order, fixed by the writer, is the
  merge of the streams. Per batch, in ONE transaction as `audit_writer`: COPY the chained rows,
  move every stream's stored sequence and the chain head. Positions are head+1.. assigned inside
  that transaction, so they are gap-free and never reused (a failed transaction assigns none).
- Exactly once: a message whose sequence is at or below its stream's stored sequence is
  skipped, so a restart, a re-created consumer or a redelivery writes nothing twice. A session
  advisory lock makes a second replica wait as a standby instead of interleaving.
- Duplicate event ids (an outbox resend after the dedup window) are recorded: the log records
  what the bus holds, in bus order, and the auditors can see the resend (same event_id twice);
  dropping them here would make the log disagree with the stream it vouches for. The batch's
  transaction names each such record in `duplicate` with the position that first carried the id
  (one indexed query per batch), so counts over the log (device activity, alert rules) take it once.
- Malformed messages are recorded too (parsed = false, envelope columns empty): the audit log
  is the one consumer that must not look away from bad input.

After committing, the writer signs a checkpoint every N records or T seconds (checkpoints.py),
in the same transaction as the batch that reaches it, and exports it (file, JetStream) after.

Fails closed (SEC-2): it signs only with the current key of the log's key chain (keys.py), and on
start and after every failure it checks the stored head against the last checkpoint it signed
itself (read back from the stream and the file, never from the database) and against what this
process committed: rows missing, a moved chain_head, a broken link since the checkpoint or a
per-stream position that no record backs stop the writer for good, with an urgent HQ alert and
no signature over it. Before each checkpoint it counts the records it is about to vouch for.

The package, along its seams:

- `loop.py`     the reader loop: `Ingest` (readers, buffer, pipeline, checkpoint timer, restarts, standby);
- `batch.py`    batch building: messages to chained COPY rows, stream positions, hour runs, event ids;
- `writer.py`   the batch's transaction (COPY, event_first and duplicates, bookkeeping, checkpoint) and the export
                of signed checkpoints;
- `failclosed.py` the fail-closed checks and the urgent alert of a writer that stopped.
"""

from __future__ import annotations

from madoguchi_audit.ingest.batch import CHAIN_SLICE, CHECKPOINT_TYPE, Prepared, day_spans, event_ids, prepare
from madoguchi_audit.ingest.failclosed import Tampered
from madoguchi_audit.ingest.loop import Ingest, filter_subjects

__all__ = [
    "CHAIN_SLICE",
    "CHECKPOINT_TYPE",
    "Ingest",
    "Prepared",
    "Tampered",
    "day_spans",
    "event_ids",
    "filter_subjects",
    "prepare",
]
