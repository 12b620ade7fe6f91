"""The device events' contract: no personal data in paths, names or card fields (rule 5)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from madoguchi_shared import subjects
from madoguchi_shared.events import dump_event, parse_event
from madoguchi_shared.events import device as ev
from madoguchi_shared.pii import my_number_check_digit

MY_NUMBER = "12345678901" + str(my_number_check_digit("12345678901"))
ENVELOPE = dict(municipality="011002", ward="chuo", desk="chuo-1", device_id="chuo-1-pc")


def test_subject_is_one_per_device():
    e = ev.Heartbeat(
        agent_version="0.1.0", policy_version=3, outbox_depth=1, outbox_bytes=10, link_up=True, uptime_s=5, **ENVELOPE
    )
    assert e.subject == subjects.aggregate_subject("device", "011002", "agent", "chuo-1-pc")
    assert parse_event(dump_event(e)) == e


def test_relative_paths_hide_the_root_and_any_flagged_segment():
    root = "/home/yamada/Desktop"
    assert ev.safe_relative_path(f"{root}/a/b.txt", root) == "a/b.txt"
    assert ev.safe_relative_path(f"{root}/{MY_NUMBER}/b.txt", root) == "[redacted]/b.txt"
    assert ev.safe_relative_path(f"{root}/佐藤 090-1234-5678.xlsx", root) == "[redacted].xlsx"
    assert ev.safe_relative_path(f"{root}/x@example.com.csv", root) == "[redacted].csv"


def test_executable_paths_hide_the_account_name():
    assert ev.safe_executable_path("/home/yamada/bin/tool") == "~/bin/tool"
    assert ev.safe_executable_path("/root/tool") == "~/tool"
    assert ev.safe_executable_path("/usr/bin/chromium") == "/usr/bin/chromium"
    assert ev.safe_executable_path(f"/opt/{MY_NUMBER}/x") == "/opt/[redacted]/x"


def test_fields_refuse_personal_data_as_a_safety_net():
    with pytest.raises(ValidationError):
        ev.PersonalDataFileFound(
            root="desktop",
            path=f"{MY_NUMBER}.txt",
            kinds=("my_number",),
            findings=1,
            size_bytes=1,
            quarantine=True,
            quarantined=False,
            **ENVELOPE,
        )
    with pytest.raises(ValidationError):
        ev.CardInserted(reader=f"reader {MY_NUMBER}", atr="3B95", **ENVELOPE)
    with pytest.raises(ValidationError):
        ev.CardInserted(reader="Virtual PCD 00 00", atr="3b 95", **ENVELOPE)  # hex, upper case, no spaces
    assert ev.redact(f"Reader ({MY_NUMBER}) 00 00") == "Reader ([redacted]) 00 00"


def test_every_device_event_type_is_registered():
    from madoguchi_shared.events import event_types

    device_types = {t for t in event_types() if t.startswith("device.")}
    assert device_types == {
        "device.agent_started",
        "device.agent_stopped",
        "device.heartbeat",
        "device.policy_applied",
        "device.policy_changed",
        "device.outbox_size_alarm",
        "device.synthetic_load",
        "device.monitoring_notice_shown",
        "device.monitoring_notice_acknowledged",
        "device.reader_attached",
        "device.reader_detached",
        "device.card_inserted",
        "device.card_removed",
        "device.card_left_in_reader",
        "device.process_violation",
        "device.usb_device_attached",
        "device.usb_device_removed",
        "device.usb_violation",
        "device.personal_data_file_found",
        "device.monitoring_notice_declined",
        "device.monitoring_gap",
        "device.process_started",
        "device.session_changed",
        "device.file_activity",
        "device.file_not_scanned",
        "device.print_job",
    }


def _hostile_machine_texts() -> list[str]:
    """Hostile spellings (the guard's seeded corpora and named passes) as a laptop could report them: alone,
    inside a product name, and written twice in a row (a finding may cover only part of that)."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "shared" / "tests"))
    import test_pii_third_pass as third
    from pii_corpus import HOSTILE, hostile_corpus

    texts: list[str] = []
    for kind in sorted(HOSTILE):
        texts += hostile_corpus(kind, 60, 31)
    for kind, make in sorted(third.GENERATORS.items()):
        rng = random.Random(kind)
        texts += [make(rng) for _ in range(25)]
    texts += list(third.HOSTILE.values())
    return [variant for t in texts for variant in (t, f"USB {t} Disk", t + t)]


def test_sanitised_names_and_paths_are_always_accepted_by_the_events():
    """A sanitised name or path must pass the event's own check: a refusal there loses the event (a file holding
    personal data found, a USB device attached). Before, redact() left the halves of a number written twice
    (「7361の7544の65717361の7544の6571」 -> 「7361の[redacted]の7544の6571」, a My Number again), and a number spread over
    folders (1234/5678/9018.txt, 090-1234/5678.pdf) stayed in the path, each folder clean alone."""
    from madoguchi_shared.pii import find_personal_data

    root = "/home/yamada/Desktop"
    for text in _hostile_machine_texts():
        name = ev.redact(text)
        assert find_personal_data(name) == [] and len(name) <= 256, text
        ev.UsbDeviceAttached(
            port="1-1", vendor_id="0781", product_id="5567", device_class="08", allowed=False, product=name, **ENVELOPE
        )
        folders = text.replace("/", "_").replace(" ", "/")  # every word a folder
        for path in (f"{root}/{folders}.txt", f"{root}/{text.replace('/', '_')}/x.pdf"):
            rel = ev.safe_relative_path(path, root)
            assert find_personal_data(rel) == [], (path, rel)
            exe = ev.safe_executable_path(path)
            assert find_personal_data(exe) == [] and exe.startswith("~/"), (path, exe)
    for folders in ("1234/5678/9018.txt", "090-1234/5678.pdf", "1234 5678/9018.txt"):
        assert ev.safe_relative_path(f"{root}/{folders}", root).startswith("[redacted]/"), folders
    assert ev.safe_relative_path(f"{root}/報告書/2021年度/集計.xlsx", root) == "報告書/2021年度/集計.xlsx"
    assert ev.safe_executable_path("/home/yamada") == "~" and ev.safe_executable_path("/") == "/"
