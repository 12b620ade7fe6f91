"""The three copies of the checkpoints (stream, file, database) compared by `audit verify`: a checkpoint
signed while the verifier reads is news, not a missing copy; a copy removed after it was exported is a fault."""

from __future__ import annotations

from datetime import UTC, datetime

from madoguchi_shared.events import Actor
from madoguchi_shared.events.audit import CheckpointSigned

from madoguchi_audit.verify import compare_copies


def _cp(position: int) -> CheckpointSigned:
    return CheckpointSigned(
        municipality="011002",
        actor=Actor(id="audit-service", role="system"),
        log_id="oplog",
        position=position,
        head=f"{position:064x}",
        signed_at=datetime(2026, 12, 5, tzinfo=UTC),
        key_id="0123456789abcdef",
        signature="ab" * 64,
    )


def test_a_checkpoint_signed_while_the_verifier_reads_is_not_a_fault():
    # The `exported` flags are read first (cp 2 did not exist yet), then the stream, the file and the database:
    # cp 2 reached the database only; the writer has not exported it yet, or did so after the file was read.
    one, two = _cp(1), _cp(2)
    copies = {"stream": [one], "file": [one], "database": [one, two]}
    faults, _ = compare_copies(copies, {1: True})
    assert faults == []


def test_a_checkpoint_exported_but_gone_from_the_file_is_a_fault():
    one, two = _cp(1), _cp(2)
    copies = {"stream": [one], "file": [one], "database": [one, two]}
    faults, _ = compare_copies(copies, {1: True, 2: True})
    assert [(f.kind, f.position) for f in faults] == [("copies_disagree", 2)]
    assert "exported but is not in the file" in faults[0].detail


def test_the_file_copy_is_read_for_one_municipality(tmp_path):
    """A data folder shared by two municipalities' logs (both called oplog): each reads only its own lines."""
    from madoguchi_audit.checkpoints import append_to_file, read_file

    path = tmp_path / "checkpoints.jsonl"
    ours, theirs = _cp(1), _cp(1).model_copy(update={"municipality": "012025", "head": "f" * 64})
    append_to_file(path, [theirs, ours])
    assert read_file(path, "oplog", "011002") == [ours]
    assert read_file(path, "oplog", "012025") == [theirs]
