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
